"""The SSO group mapping page (platform admins) and the service accounts page (team admins), clicked through."""
import requests
from playwright.sync_api import expect

from apps.sso.models import GroupMapping
from tests.factories import UserFactory, member


def test_a_platform_admin_maps_a_group_then_deletes_the_mapping(page, login, team):
    login(page, UserFactory(username="root", is_superuser=True, is_staff=True))
    page.goto("/settings/")
    page.get_by_role("link", name="SSO group mappings").click()
    mappings = page.locator("#group-mappings")
    mappings.get_by_label("IdP group").fill("ml-fraud-approvers")
    mappings.get_by_label("Maps to").select_option(team.slug)
    mappings.get_by_label("Role").select_option("approver")
    mappings.get_by_role("button", name="Add mapping").click()
    expect(page.get_by_role("status")).to_contain_text("Mapped ml-fraud-approvers")
    expect(mappings.locator("tr", has_text="ml-fraud-approvers")).to_contain_text("Approver")
    asked = []  # deleting asks first
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    mappings.get_by_role("button", name="Delete the mapping of ml-fraud-approvers").click()
    page.wait_for_timeout(300)
    assert asked == ["Delete the mapping of ml-fraud-approvers? Its members lose what it grants at their next sign-in."]
    assert GroupMapping.objects.exists()  # said no: still there
    page.once("dialog", lambda dialog: dialog.accept())
    mappings.get_by_role("button", name="Delete the mapping of ml-fraud-approvers").click()
    expect(mappings.get_by_text("No mappings yet")).to_be_visible()
    assert not GroupMapping.objects.exists()


def test_a_team_admin_creates_a_service_account_and_issues_a_token_shown_once(page, login, live_server, team):
    login(page, member(team, "team_admin", "fraud-lead"))
    page.goto("/settings/")
    page.get_by_role("link", name="Service accounts").click()
    form = page.locator("#service-accounts")
    form.get_by_label("Name").fill("ci-pipeline")
    form.get_by_label("Role").select_option("ml_engineer")
    form.get_by_role("button", name="Create service account").click()
    account = page.locator(".service-account", has_text="svc.fraud.ci-pipeline")
    expect(account).to_contain_text("role ML engineer")

    account.get_by_label("Token name").fill("deploy")
    account.get_by_label("Scope").select_option("operate")
    account.get_by_role("button", name="Issue token").click()
    token = page.locator("#new-token code").inner_text()
    me = requests.get(f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.json()["username"] == "svc.fraud.ci-pipeline"
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)

    account = page.locator(".service-account", has_text="svc.fraud.ci-pipeline")
    page.once("dialog", lambda dialog: dialog.accept())
    account.get_by_role("button", name="Revoke token deploy").click()
    expect(account.locator("tr", has_text="deploy")).to_contain_text("revoked")
    assert requests.get(f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 401
