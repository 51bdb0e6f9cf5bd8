"""Browser tests: the Costs page (filters, charts, budget banner, export) and the Quotas page (headroom,
checking a request, platform admins setting a quota)."""
import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.costs.models import BudgetAlert, TeamBudget, UsageDaily, UtilizationDaily
from apps.costs.services import allocation_start
from apps.registry.models import ModelVersion, RegisteredModel
from tests.costs import factories as f
from tests.factories import member


@pytest.fixture
def month_of_costs(team, other_team):
    """Rollup rows as the beat job leaves them (no raw samples: reports read rollups only)."""
    cluster, gtype = f.cluster(), f.gpu_type()
    version = ModelVersion.objects.create(model=RegisteredModel.objects.create(name="fraud-classifier", team=team),
                                          version=3)
    first = date.today().replace(day=1)
    for offset in range(min(date.today().day, 5)):
        day = first + timedelta(days=offset)
        UsageDaily.objects.create(day=day, team=team, cluster=cluster, gpu_type=gtype, model_version=version,
                                  gpu_hours=48, gpu_cost=Decimal("120"), idle_gpu_hours=20, idle_cost=Decimal("50"))
        UsageDaily.objects.create(day=day, team=other_team, cluster=cluster, gpu_type=gtype, gpu_hours=24,
                                  gpu_cost=Decimal("60"))
        UsageDaily.objects.create(day=day, kind="unallocated", cluster=cluster, gpu_type=gtype, gpu_hours=24,
                                  gpu_cost=Decimal("60"))
        for node in ("gpu-a", "gpu-b"):
            for gpu in range(2):
                UtilizationDaily.objects.create(day=day, cluster=cluster, node=node, gpu_index=gpu, samples=144,
                                                avg_util=30 + 20 * gpu, avg_mem_used_mb=1000, mem_total_mb=81920,
                                                avg_power_w=200)
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("700"), thresholds=[50, 80, 100])
    BudgetAlert.objects.create(team=team, month=first, threshold=80, spent=Decimal("600"), budget=Decimal("700"),
                               forecast=Decimal("3600"))
    return {"days": min(date.today().day, 5)}


def test_costs_page_filters_charts_banner_and_export(page, login, platform_admin, month_of_costs):
    login(page, platform_admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Costs", exact=True).click()
    days = month_of_costs["days"]
    # Today's figures, not those of the moment the alert fired (600.00).
    expect(page.get_by_role("alert")).to_contain_text(f"team fraud has spent {120 * days:.2f} USD of its 700.00 USD budget")
    table = page.locator("#cost-table")
    # Grouped by team, no second team column: label, GPU-hours, GPU cost, CPU + memory, idle, shared, total.
    expect(table.locator("thead th")).to_have_text(["Team", "GPU-hours", "GPU cost", "CPU + memory", "of which idle",
                                                    "Shared unallocated", "Total (USD)"])
    expect(table.locator("tbody tr[data-key='fraud'] td").nth(6)).to_have_text(f"{120 * days:.2f} USD")
    expect(table.locator("tbody tr[data-key='fraud'] td").nth(4)).to_have_text(f"{50 * days:.2f} USD")
    expect(table.locator("tbody tr[data-key='unallocated']")).to_be_visible()
    expect(page.locator("#cost-chart .main-svg").first).to_be_visible()
    expect(page.locator("#util-heatmap .main-svg").first).to_be_visible()
    expect(page.locator("#burn-charts figure[data-team='fraud'] .main-svg").first).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(1)  # one banner per team: the highest threshold crossed

    page.get_by_label("Share unallocated capacity across teams").check()
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile("share_unallocated=on"))
    expect(table.locator("tbody tr[data-key='unallocated']")).to_have_count(0)
    # 60 a day of unallocated capacity spread 2:1 over fraud and search.
    expect(table.locator("tbody tr[data-key='fraud'] td").nth(5)).to_have_text(f"{40 * days:.2f} USD")

    page.get_by_label("Cost per", exact=True).select_option("model")
    page.get_by_role("button", name="Apply").click()
    expect(table.locator("tbody tr").first).to_contain_text("fraud-classifier")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(download.path()).read())))
    assert rows[0]["label"] == "fraud-classifier" and Decimal(rows[0]["idle_cost"]) == 50 * days


def test_team_member_sees_only_their_team(page, login, team, month_of_costs):
    login(page, member(team, "viewer", "vera"))
    page.goto("/costs/")
    rows = page.locator("#cost-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-key", "fraud")


def test_quota_page_headroom_and_checking_a_request(page, login, team):
    gtype = f.gpu_type(capacity=16)
    f.quota(team, gtype, guaranteed=4, borrow_limit=0)
    allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=3)
    login(page, member(team, "ml_engineer", "dave"))
    page.goto("/costs/")
    page.get_by_role("link", name="GPU quotas and headroom →").click()
    row = page.locator("#quota-table tbody tr[data-gpu='A100-80GB']")
    expect(row.locator("td").nth(3)).to_have_text("3")
    expect(row.locator("td").nth(4)).to_have_text("1")

    page.get_by_label("GPUs").fill("2")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("status")).to_contain_text("Refused: Team 'fraud' uses 3 × A100-80GB of guaranteed 4; "
                                                       "2 more do not fit, 1 would.")
    page.get_by_label("GPUs").fill("1")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("status")).to_contain_text("Allowed: Fits: 1 × A100-80GB.")
    expect(page.locator("#quota-form")).to_have_count(0)  # only platform admins set quotas


def test_platform_admin_sets_a_quota(page, login, team, platform_admin):
    f.gpu_type()
    login(page, platform_admin)
    page.goto(f"/costs/quotas/?team={team.slug}")
    expect(page.get_by_text("has no GPU quota")).to_be_visible()
    page.get_by_label("Guaranteed").fill("6")
    page.get_by_label("Borrow limit").fill("2")
    page.get_by_label("Cohort").fill("ml-shared")
    page.get_by_role("button", name="Save quota").click()
    expect(page.get_by_role("status")).to_contain_text("Quota for fraud on A100-80GB saved.")
    row = page.locator("#quota-table tbody tr[data-gpu='A100-80GB']")
    expect(row.locator("td").nth(2)).to_have_text("6")
    expect(row.locator("td").nth(6)).to_have_text("ml-shared")


def test_platform_admin_closes_last_month(page, login, platform_admin):
    last_month = date.today().replace(day=1) - timedelta(days=1)
    login(page, platform_admin)
    page.goto(f"/costs/?month={last_month:%Y-%m}")
    # No usage that month: a sentence, not an empty chart (an empty date axis draws a tick per day of a year).
    expect(page.get_by_text("No GPU usage recorded for this period.")).to_have_count(2)
    asked = []
    # Closing is final, so it asks first; saying no leaves the month open.
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name=f"Close {last_month:%B %Y}").click()
    page.wait_for_timeout(300)
    assert asked == [f"Close {last_month:%B %Y}? Its figures will never change again."]
    expect(page.get_by_role("button", name=f"Close {last_month:%B %Y}")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Close {last_month:%B %Y}").click()
    expect(page.locator("#month-state")).to_contain_text(f"{last_month:%B %Y} was closed on")
    expect(page.get_by_text(f"{last_month:%B %Y} is closed: its figures won't change")).to_be_visible()
    expect(page.get_by_role("button", name=f"Close {last_month:%B %Y}")).to_have_count(0)


@pytest.fixture
def served_deployment(team, other_team):
    """A deployment serving fraud-classifier v2 this month: its GPU cost in the rollups and 2,000 predictions
    logged through it in the prediction log (the source of cost per 1,000 predictions)."""
    from datetime import datetime, timezone as dt_timezone

    from apps.monitoring import logstore
    from apps.monitoring.models import PredictionBatch
    from tests.deployments.factories import deployment_in

    deployment = deployment_in(team, "healthy", name="fraud-serving")
    version = deployment.current_revision.model_version
    cluster, gtype = f.cluster(), f.gpu_type()
    first = date.today().replace(day=1)
    days = min(date.today().day, 5)
    for offset in range(days):
        UsageDaily.objects.create(day=first + timedelta(days=offset), team=team, cluster=cluster, gpu_type=gtype,
                                  model_version=version, deployment_id=deployment.pk, gpu_hours=24,
                                  gpu_cost=Decimal("60"))
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("5000"), thresholds=[50, 80, 100])
    TeamBudget.objects.create(team=other_team, monthly_amount=Decimal("17.51"), thresholds=[50, 80, 100])
    batch = PredictionBatch.objects.create(team=team, model_version=version, batch_id="served", source="json",
                                           received=2000, accepted=2000)
    start = datetime.combine(first, datetime.min.time(), tzinfo=dt_timezone.utc)
    logstore.ensure_partitions(start, start + timedelta(hours=1))
    logstore.copy_rows((version.pk, deployment.pk, batch.pk, start + timedelta(seconds=i), f"s-{i}", {"x": 1.0}, "1",
                        None, None, 12.0, None) for i in range(2000))
    return {"deployment": deployment, "version": version, "total": Decimal(60 * days)}


def test_costs_name_and_link_deployments_with_cost_per_1000_predictions(page, login, platform_admin,
                                                                        served_deployment):
    deployment, version, total = (served_deployment[k] for k in ("deployment", "version", "total"))
    login(page, platform_admin)
    page.goto("/costs/?group_by=deployment")
    row = page.locator(f"#cost-table tbody tr[data-key='{deployment.pk}']")
    expect(row.get_by_role("link", name="fraud/fraud-serving")).to_have_attribute("href", f"/deployments/{deployment.pk}/")
    expect(row.locator("td").nth(1)).to_have_text("fraud")
    expect(row.locator("td").nth(7)).to_have_text(f"{total:.2f} USD")
    expect(row.locator("td").nth(8)).to_have_text("2000")
    expect(row.locator("td").nth(9)).to_have_text(f"{total / 2:.4f} USD")  # total / 2,000 × 1,000
    expect(page.locator("#cost-table")).not_to_contain_text(f"deployment {deployment.pk}")

    breakdown = page.locator(f"#breakdown-table tbody tr[data-key='{version.model.name}|{deployment.pk}']")
    expect(breakdown.get_by_role("link", name=version.model.name)).to_have_attribute(
        "href", f"/registry/models/{version.model.pk}/")
    expect(breakdown.get_by_role("link", name="fraud/fraud-serving")).to_be_visible()
    expect(breakdown.locator("td").nth(5)).to_have_text(f"{total / 2:.4f} USD")

    # One small burn-down per team, each on its own scale.
    expect(page.locator("#burn-charts figure")).to_have_count(2)
    expect(page.locator("#burn-charts figure[data-team='search'] .main-svg").first).to_be_visible()
    expect(page.locator("#burn-charts figure[data-team='fraud'] figcaption")).to_have_text("fraud · budget 5000.00 USD")
