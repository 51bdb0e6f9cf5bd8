import re
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import UserFactory, member


@pytest.fixture
def admin(team):
    return member(team, "team_admin", "settings-admin")


def open_admin_page(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin")


def api_me(live_server, token: str) -> requests.Response:
    return requests.get(f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_api_token_shown_once_works_then_revoked(page, login, live_server, admin):
    login(page, admin)
    open_admin_page(page)
    tokens = page.locator("#api-tokens")
    expect(tokens.get_by_text("No tokens yet.")).to_be_visible()

    tokens.get_by_label("Name").fill("ci-pipeline")
    tokens.get_by_label("Scope").select_option("operate")
    tokens.get_by_label("Expires in (days)").fill("30")
    tokens.get_by_role("button", name="Create token").click()

    new_token = page.locator("#new-token")
    expect(new_token).to_be_visible()
    expect(new_token).to_contain_text("ci-pipeline")
    expect(new_token).to_contain_text("it will not be shown again")
    plaintext = new_token.locator("code").inner_text().strip()
    assert re.fullmatch(r"cp_[0-9a-f]{8}_\S+", plaintext), plaintext

    row = tokens.locator("tbody tr", has_text="ci-pipeline")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("active")
    expect(row).to_contain_text("operate")
    expect(row).to_contain_text(f"{timezone.now() + timedelta(days=30):%Y-%m-%d}")
    # The table only shows the prefix, never the secret.
    expect(row).not_to_contain_text(plaintext)

    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin")
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.get_by_text(plaintext)).to_have_count(0)
    expect(row).to_have_count(1)

    response = api_me(live_server, plaintext)
    assert response.status_code == 200, response.text
    assert response.json()["username"] == admin.username

    page.once("dialog", lambda dialog: dialog.accept())  # revoking asks first
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Token revoked.")
    expect(row.locator(".badge")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)

    assert api_me(live_server, plaintext).status_code == 401


def test_team_admin_adds_member_with_role(page, login, team, admin):
    newcomer = UserFactory(username="newcomer")
    login(page, admin)
    open_admin_page(page)
    members = page.locator("#members")
    expect(members.locator("tbody tr", has_text="newcomer")).to_have_count(0)

    members.get_by_label("Team").select_option(label=team.name)
    members.get_by_label("Username").fill(newcomer.username)
    members.get_by_label("Role", exact=True).select_option(label="ML engineer")
    members.get_by_role("button", name="Add member").click()

    expect(page.get_by_role("status")).to_have_text("Added newcomer.")
    row = members.locator("tbody tr", has_text="newcomer")
    expect(row).to_have_count(1)
    expect(row.locator("td").first).to_have_text(team.slug)
    expect(row.get_by_label(f"Role of newcomer in {team.slug}")).to_have_value("ml_engineer")


def test_adding_unknown_user_shows_error(page, login, admin):
    login(page, admin)
    open_admin_page(page)
    members = page.locator("#members")
    members.get_by_label("Username").fill("nobody-by-that-name")
    members.get_by_role("button", name="Add member").click()
    expect(page.locator(".message.error")).to_have_text("No user named 'nobody-by-that-name'.")
    expect(members.locator("tbody tr", has_text="nobody-by-that-name")).to_have_count(0)


def test_viewer_sees_members_but_no_add_form(page, login, team, admin):
    viewer = member(team, "viewer", "just-looking")
    login(page, viewer)
    open_admin_page(page)
    members = page.locator("#members")
    expect(members.locator("tbody tr", has_text=admin.username)).to_have_count(1)
    expect(members.get_by_role("button", name="Add member")).to_have_count(0)
    expect(members.get_by_label("Username")).to_have_count(0)
    # Roles are shown as text, not as editable selects, and nothing can be removed.
    expect(members.locator("tbody tr", has_text="just-looking")).to_contain_text("Viewer")
    expect(members.locator("select")).to_have_count(0)
    expect(members.get_by_role("button", name="Remove")).to_have_count(0)


def test_team_switcher_changes_current_team(page, login, team, other_team):
    user = member(team, "viewer", "two-teams")
    member(other_team, "ml_engineer", "two-teams")
    login(page, user)
    switcher = page.get_by_label("Team", exact=True)
    # Teams are ordered by slug, so the first one (fraud) is current until the user picks another.
    expect(switcher).to_have_value(team.slug)
    expect(switcher.locator("option")).to_have_text([team.name, other_team.name])

    switcher.select_option(label=other_team.name)  # submits the form on change
    expect(page.get_by_role("status")).to_have_text(f"Now working in team {other_team.name}.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.get_by_label("Team", exact=True)).to_have_value(other_team.slug)

    # The choice sticks for the session, on other pages too.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    expect(page.locator("#team-switch")).to_have_value(other_team.slug)


def test_team_admin_adds_and_removes_a_webhook(page, login, admin):
    login(page, admin)
    open_admin_page(page)
    hooks = page.locator("#webhooks")
    hooks.get_by_label("Name").fill("slack-ml")
    hooks.get_by_label("URL").fill("not a url")
    hooks.get_by_role("button", name="Add webhook").click()
    expect(page.locator(".message.error")).to_contain_text("is not an http(s) URL")
    hooks = page.locator("#webhooks")
    hooks.get_by_label("Name").fill("slack-ml")
    hooks.get_by_label("URL").fill("http://127.0.0.1:9/slack")
    hooks.get_by_label("Events").fill("registry., deployment.rollback")
    hooks.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#new-webhook-secret")).to_contain_text("whsec_")
    row = page.locator("#webhooks tbody tr", has_text="slack-ml")
    expect(row).to_contain_text("registry., deployment.rollback")
    expect(row).to_contain_text("http://127.0.0.1:9/…/****")  # the path (a Slack URL's secret) never shows
    expect(row).not_to_contain_text("/slack")
    first_secret = page.locator("#new-webhook-secret code").inner_text()
    row.get_by_role("button", name="Rotate the secret of slack-ml").click()
    expect(page.locator(".message.success")).to_contain_text("Signing secret rotated")
    expect(page.locator("#new-webhook-secret code")).not_to_have_text(first_secret)
    page.reload()
    expect(page.locator("#new-webhook-secret")).to_have_count(0)  # shown once
    row = page.locator("#webhooks tbody tr", has_text="slack-ml")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#webhooks")).to_contain_text("No webhooks.")


def test_platform_admin_requeues_a_dead_letter(page, login, team):
    from django.utils import timezone

    from apps.outbox.choices import OutboxStatus
    from apps.outbox.models import OutboxMessage

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    message = OutboxMessage.objects.create(topic="teams.deliver_webhook", payload={}, dedup_key="dead-ui", team=team,
                                           status=OutboxStatus.DEAD, attempts=12, last_error="OperationalError: down",
                                           next_attempt_at=timezone.now())
    login(page, root)
    open_admin_page(page)
    row = page.locator("#dead-letters tbody tr", has_text="teams.deliver_webhook")
    expect(row).to_contain_text("OperationalError: down")
    row.get_by_role("button", name="Requeue").click()
    expect(page.locator(".message.success")).to_contain_text("Message requeued.")
    message.refresh_from_db()
    assert message.status != OutboxStatus.DEAD and message.attempts <= 1
