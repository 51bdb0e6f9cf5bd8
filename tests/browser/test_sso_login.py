"""Logging in through a real OpenID Connect provider (tests/harness/oidc_provider.py) in Chromium: the provider's
own login form, memberships reconciled from its groups claim at each login, the "no team yet" page, logout at
the provider, and a clear error when the provider is down while platform admins can still use their password."""
import pytest
from playwright.sync_api import expect

from apps.sso.models import GroupMapping
from apps.teams.choices import MembershipSource
from apps.teams.models import Membership
from tests.harness.mlflow_server import free_port
from tests.harness.oidc_provider import PASSWORD as PROVIDER_PASSWORD
from tests.factories import TeamFactory, UserFactory


@pytest.fixture
def mapped(oidc_provider_live):
    fraud, search = TeamFactory(slug="fraud"), TeamFactory(slug="search")
    GroupMapping.objects.create(group="ml-fraud-approvers", team=fraud, role="approver")
    GroupMapping.objects.create(group="ml-search", team=search, role="ml_engineer")
    return fraud, search


def sso_login(page, login: str, password: str = PROVIDER_PASSWORD):
    page.goto("/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    expect(page.get_by_role("heading", name="Test provider sign-in")).to_be_visible()
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def log_out(page):
    page.get_by_role("button", name="Log out").click()


def test_groups_change_between_logins(page, oidc_provider_live, mapped):
    fraud, search = mapped
    oidc_provider_live.set_user("grace", groups=["ml-fraud-approvers"], name="Grace Hopper")

    sso_login(page, "grace")
    expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
    grace = Membership.objects.get(team=fraud, user__username="grace")
    assert (grace.role, grace.source) == ("approver", MembershipSource.SSO)
    assert grace.user.first_name == "Grace" and grace.user.email == "grace@example.test"
    page.goto("/settings/")
    row = page.locator("#members tr", has_text="grace")
    expect(row).to_contain_text("from SSO")

    # At the provider, grace leaves the fraud approvers and joins search: the next login follows.
    oidc_provider_live.set_user("grace", groups=["ml-search"])
    log_out(page)
    # RP-initiated logout: the provider ends its session too (so it asks for the password again), then sends
    # the browser back to the login page.
    expect(page.get_by_role("heading", name="Sign out of the test provider?")).to_be_visible()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", level=1, name="Log in")).to_be_visible()
    sso_login(page, "grace")
    expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
    teams = dict(Membership.objects.filter(user__username="grace").values_list("team__slug", "role"))
    assert teams == {"search": "ml_engineer"}


def test_a_user_whose_groups_map_to_nothing_sees_no_team_yet(page, oidc_provider_live, mapped):
    oidc_provider_live.set_user("henry", groups=["marketing"])
    sso_login(page, "henry")
    expect(page.get_by_role("heading", level=1, name="No team yet")).to_be_visible()
    expect(page.locator("#no-team")).to_contain_text("marketing")


def test_wrong_password_at_the_provider_stays_there(page, oidc_provider_live, mapped):
    oidc_provider_live.set_user("ivy", groups=["ml-search"])
    sso_login(page, "ivy", password="not-it")
    expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
    assert not Membership.objects.filter(user__username="ivy").exists()


def test_provider_down_is_a_clear_error_and_admins_keep_their_password(page, oidc_provider_live, settings, login):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.LOCAL_PASSWORD_LOGIN = False
    admin = UserFactory(username="break-glass", is_superuser=True, is_staff=True)
    page.goto("/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Test IdP is unavailable")
    expect(page.get_by_role("alert")).to_contain_text("did not answer")
    expect(page.locator("#sso-error")).to_contain_text("platform admins can still log in there with their local "
                                                      "password")
    page.get_by_role("link", name="Back to the login page").click()
    expect(page.get_by_role("heading", name="Platform admin login")).to_be_visible()
    login(page, admin)
