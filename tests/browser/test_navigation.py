import re

import pytest
from playwright.sync_api import expect

from tests.factories import member

NAV_PAGES = [
    # (link text, heading, path prefix)
    ("Registry", "Registry", "/registry/"),
    ("Deployments", "Deployments", "/deployments/"),
    ("Monitoring", "Monitoring", "/monitoring/"),
    ("Costs", "Costs", "/costs/"),
    ("Audit", "Audit log", "/audit/"),
    ("Admin", "Admin", "/settings/"),
]


@pytest.fixture
def user(team):
    return member(team, "team_admin", "nav-admin")


def test_every_nav_link_opens_its_page_and_marks_itself_current(page, login, user):
    login(page, user)
    nav = page.get_by_role("navigation", name="Main")
    for text, heading, path in NAV_PAGES:
        nav.get_by_role("link", name=text, exact=True).click()
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        # Pages may add context after the name ("Costs November 2026").
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(rf"^{heading}\b"))
        expect(nav.get_by_role("link", name=text, exact=True)).to_have_attribute("aria-current", "page")
        # Exactly one link is the current page.
        expect(nav.locator("[aria-current]")).to_have_count(1)


def test_logout_returns_to_login_page(page, login, user):
    login(page, user)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    # The session is really gone: a protected page sends us back to the login form.
    page.goto("/audit/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")


def test_wrong_password_shows_error(page, user):
    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
