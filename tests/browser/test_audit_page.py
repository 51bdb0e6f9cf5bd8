import csv
import io
import re

import pytest
from playwright.sync_api import expect

from apps.teams import services
from tests.factories import UserFactory, member


@pytest.fixture
def history(platform_admin):
    """A team with a small audit history, written by the real services: 1 team.create, 2 membership.add,
    1 membership.change_role."""
    team = services.team_create(actor=platform_admin, slug="vision", name="Vision")
    admin = member(team, "team_admin", "vision-admin")  # factory: not audited
    services.membership_add(actor=admin, team=team, username=UserFactory(username="alice").username, role="viewer")
    bob = services.membership_add(actor=admin, team=team, username=UserFactory(username="bob").username,
                                  role="viewer")
    services.membership_change_role(actor=admin, membership=bob, role="approver")
    return {"team": team, "admin": admin}


def open_audit_page(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")


def filter_by_action(page, action: str):
    page.get_by_label("Action").select_option(action)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=" + re.escape(action)))


def test_lists_events_and_filter_by_action_narrows_table(page, login, history):
    login(page, history["admin"])
    open_audit_page(page)
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.get_by_text("Page 1 of 1 · 4 events")).to_be_visible()
    # Newest first.
    expect(rows.nth(0)).to_contain_text("membership.change_role")
    expect(rows.nth(3)).to_contain_text("team.create")

    filter_by_action(page, "membership.add")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i).locator("td").nth(4)).to_have_text("membership.add")
        expect(rows.nth(i).locator("td").nth(2)).to_have_text("vision-admin")
    expect(page.get_by_label("Action")).to_have_value("membership.add")
    expect(page.get_by_text("2 events")).to_be_visible()

    # A trailing dot filters by prefix.
    filter_by_action(page, "membership.")
    expect(rows).to_have_count(3)

    # The picker offers the families and actions there are, nothing else.
    options = page.get_by_label("Action").locator("option").all_inner_texts()
    assert options == ["any", "membership.* (all)", "membership.add", "membership.change_role", "team.* (all)",
                       "team.create"], options


def test_chart_renders_with_local_plotly(page, login, history):
    login(page, history["admin"])
    open_audit_page(page)
    chart = page.locator("#audit-chart")
    expect(chart.locator(".main-svg").first).to_be_attached()
    # One bar trace per action family, named in the legend.
    legend = chart.locator(".legendtext")
    expect(legend).to_have_count(2)
    assert sorted(legend.all_text_contents()) == ["membership", "team"]
    expect(chart.locator(".barlayer .point").first).to_be_attached()


def test_export_csv_downloads_filtered_events(page, login, history):
    login(page, history["admin"])
    open_audit_page(page)
    filter_by_action(page, "membership.add")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename == "audit.csv"
    with open(download.path(), newline="") as fh:
        text = fh.read()
    assert text.startswith("id,occurred_at"), text[:200]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["action"] for row in rows] == ["membership.add", "membership.add"]


def test_role_change_made_in_the_ui_appears_in_audit_log(page, login, history):
    login(page, history["admin"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin", exact=True).click()
    page.get_by_label("Role of alice in vision").select_option(label="ML engineer")
    page.locator("#members tbody tr", has_text="alice").get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Role changed.")

    open_audit_page(page)
    newest = page.locator("#audit-table tbody tr").first
    cells = newest.locator("td")
    expect(cells.nth(2)).to_have_text("vision-admin")
    expect(cells.nth(3)).to_have_text("vision")
    expect(cells.nth(4)).to_have_text("membership.change_role")
    expect(cells.nth(6)).to_contain_text("viewer")
    expect(cells.nth(6)).to_contain_text("ml_engineer")


def test_changes_read_as_before_and_after_objects_link_and_pages_stay_short(page, login, team, team_admin):
    from apps.audit.services import audit_record
    from tests.deployments.factories import deployment_in, local_cluster

    deployment = deployment_in(team, cluster=local_cluster())
    for i in range(60):
        audit_record(actor=team_admin, action="deployment.rollback", target=deployment,
                     changes={"status": ["healthy", "pending"], "traffic": [{"2": 100}, {"3": 100}],
                              "reason": f"drift alert {i}: " + "long explanation " * 12})
    login(page, team_admin)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/audit/")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_text("Page 1 of 3 · 60 events")).to_be_visible()
    changes = rows.first.locator(".changes li")
    expect(changes).to_have_count(3)
    expect(changes.filter(has_text="status")).to_have_text("status healthy → pending")
    expect(changes.filter(has_text="traffic")).to_have_text('traffic {"2": 100} → {"3": 100}')
    expect(rows.first.locator("td").nth(6)).not_to_contain_text("[")
    link = rows.first.get_by_role("link", name=f"deployment {deployment.pk}")
    expect(link).to_have_attribute("href", f"/deployments/{deployment.pk}/")
    height = page.evaluate("document.scrollingElement.scrollHeight")
    assert height < 3000, f"25 rows make a {height} px page"

    page.locator("#audit-filters").get_by_label("Team").select_option(team.slug)
    page.get_by_label("Action").select_option("deployment.")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("60 events")).to_be_visible()
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_text("Page 2 of 3 · 60 events")).to_be_visible()
    rows.first.get_by_role("link", name=f"deployment {deployment.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(deployment.name)
