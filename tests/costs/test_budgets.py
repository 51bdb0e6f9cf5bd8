"""Budget alerts: each threshold once per team and month, with a webhook and a forecast."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.costs.budgets import budget_status, budgets_check, month_end_forecast
from apps.costs.models import BudgetAlert, TeamBudget, UsageDaily
from apps.outbox.models import OutboxMessage
from tests.factories import WebhookEndpointFactory

from . import factories as f

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)  # half of November gone


def spend(team, amount: str, day=NOW.date()):
    UsageDaily.objects.create(day=day, kind="allocated", team=team, cluster=f.cluster(), gpu_cost=Decimal(amount))


def test_forecast_is_the_month_to_date_burn_rate_carried_to_month_end():
    assert month_end_forecast(spent=Decimal("150"), now=NOW) == Decimal("300.00")


def test_each_threshold_alerts_once_per_month(team):
    hook = WebhookEndpointFactory(team=team, events=["costs.budget_threshold"])
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("1000"), thresholds=[50, 80, 100])
    spend(team, "600")
    with_hooks = budgets_check(now=NOW)
    assert [a.threshold for a in with_hooks] == [50]
    assert budgets_check(now=NOW) == []  # nothing new: no second alert
    spend(team, "250", NOW.date() - timedelta(days=1))
    assert [a.threshold for a in budgets_check(now=NOW)] == [80]
    assert list(BudgetAlert.objects.values_list("threshold", flat=True).order_by("threshold")) == [50, 80]
    messages = OutboxMessage.objects.filter(topic="teams.deliver_webhook")
    assert messages.count() == 2 and all(m.payload["endpoint_id"] == hook.pk for m in messages)
    body = messages.get(dedup_key__endswith=":80").payload["body"]
    assert body["event"] == "costs.budget_threshold" and body["spent"] == "850.00" and body["forecast"] == "1700.00"
    assert "threshold 80 %" in body["text"]
    assert AuditEvent.objects.filter(action="costs.budget.alert").count() == 2
    # A new month starts over.
    assert [a.threshold for a in budgets_check(now=datetime(2026, 12, 1, 12, tzinfo=timezone.utc))] == []


def test_status_reports_percent_and_forecast(team):
    budget = TeamBudget.objects.create(team=team, monthly_amount=Decimal("200"), thresholds=[50, 80, 100])
    spend(team, "100")
    status = budget_status(budget=budget, now=NOW)
    assert status["percent"] == 50.0 and status["forecast"] == Decimal("200.00") and status["forecast_percent"] == 100.0


def test_table_banner_and_burn_down_forecast_agree(team):
    from apps.costs.selectors import burn_down

    budget = TeamBudget.objects.create(team=team, monthly_amount=Decimal("1000"), thresholds=[50, 80, 100])
    spend(team, "100", NOW.date() - timedelta(days=1))
    at = NOW + timedelta(hours=6)  # 15.25 days into a 30-day month: a fractional day
    status = budget_status(budget=budget, now=at)
    assert status["spent"] == Decimal("100.00")
    assert status["forecast"] == (Decimal("100") / Decimal("15.25") * 30).quantize(Decimal("0.01"))
    chart = burn_down(budget=budget, month=NOW.date().replace(day=1), now=at)
    assert chart["forecast_days"][0] == "2026-11-16" and chart["forecast_days"][-1] == "2026-11-30"
    assert chart["forecast"][0] == 900.0  # left now
    # The chart's month end is the budget minus the table's forecast.
    assert chart["forecast"][-1] == pytest.approx(float(Decimal("1000") - status["forecast"]), abs=0.01)
    past = burn_down(budget=budget, month=date(2026, 10, 1), now=at)
    assert past["forecast"] == [] and len(past["days"]) == 31


def test_banner_shows_current_figures_for_the_filtered_team_only(team, other_team, platform_admin, client):
    from django.utils import timezone as dj_timezone

    from apps.costs.services import month_start

    first = month_start(dj_timezone.now()).date()
    for t in (team, other_team):
        TeamBudget.objects.create(team=t, monthly_amount=Decimal("100"), thresholds=[50])
        BudgetAlert.objects.create(team=t, month=first, threshold=50, spent=Decimal("60"), budget=Decimal("100"),
                                   forecast=Decimal("999"))
    spend(team, "75", dj_timezone.now().date())
    client.force_login(platform_admin)
    page = client.get("/costs/", {"team": team.slug}).content.decode()
    assert 'id="budget-banner-search"' not in page
    banner = page.split('id="budget-banner-fraud">', 1)[1].split("</div>", 1)[0]
    assert "has spent 75.00 USD of its 100.00 USD budget" in banner and "999" not in banner


def test_one_banner_per_team_the_highest_threshold_with_todays_figures(team, platform_admin):
    from apps.costs.budgets import budget_banners

    month = NOW.date().replace(day=1)
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("100"), thresholds=[50, 80])
    for threshold in (50, 80):
        BudgetAlert.objects.create(team=team, month=month, threshold=threshold, spent=Decimal("85"),
                                   budget=Decimal("100"), forecast=Decimal("999"))
    spend(team, "90", NOW.date() - timedelta(days=1))
    [banner] = budget_banners(user=platform_admin, month=month, now=NOW)
    assert (banner["team"], banner["threshold"], banner["spent"], banner["budget"]) == (team.slug, 80,
                                                                                        Decimal("90.00"), 100)
    assert banner["forecast_ready"] and banner["forecast"] == Decimal("180.00")  # 90 in 15 of 30 days
    # Two days into the month the run rate says little: no forecast, and the page says so.
    early = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)
    [banner] = budget_banners(user=platform_admin, month=month, now=early)
    assert not banner["forecast_ready"]


def test_dashboard_and_quotas_show_the_costs_pages_banner(team, platform_admin, client):
    from django.utils import timezone as dj_timezone

    from apps.costs.services import month_start

    first = month_start(dj_timezone.now()).date()
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("100"), thresholds=[50, 80])
    for threshold in (50, 80):
        BudgetAlert.objects.create(team=team, month=first, threshold=threshold, spent=Decimal("85"),
                                   budget=Decimal("100"), forecast=Decimal("999"))
    spend(team, "90", dj_timezone.now().date())
    client.force_login(platform_admin)
    for path in ("/", f"/costs/quotas/?team={team.slug}", "/costs/"):
        page = client.get(path).content.decode()
        assert page.count('id="budget-banner-') == 1, path
        banner = page.split(f'id="budget-banner-{team.slug}">', 1)[1].split("</div>", 1)[0]
        assert "has spent 90.00 USD of its 100.00 USD budget" in banner and "(crossed 80 %)" in banner, path
        assert "999" not in banner and "85" not in banner, path
    assert f'href="/costs/?team={team.slug}">Costs of {team.slug}</a>' in client.get("/").content.decode()
