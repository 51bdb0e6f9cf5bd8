"""Playwright harness: one headless Debian Chromium per session, a fresh context per test, Django's live server.

Every test in this folder gets the `browser` marker. On a failed test the page is screenshotted and the
path is added to the failure report.
"""
import os
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio loop in the main thread; Django refuses ORM calls from a thread
# with a running loop unless told it is safe. Tests here call factories and services between page actions.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.factories import PASSWORD  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
TIMEOUT_MS = 10_000
HERE = Path(__file__).parent

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(config, items):
    # Called with the whole session's items, so only mark the ones that live in this folder.
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    page = getattr(item, "funcargs", {}).get("page")
    if report.when != "call" or not report.failed or page is None or page.is_closed():
        return
    folder = item.funcargs["tmp_path_factory"].mktemp("screenshots", numbered=True)
    path = folder / f"{item.name[:100]}.png".replace("/", "_")
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception as exc:  # a crashed page must not hide the original failure
        report.sections.append(("browser screenshot", f"could not take a screenshot: {exc}"))
        return
    report.sections.append(("browser screenshot", f"{path} (page was at {page.url})"))
    print(f"\nscreenshot of the failed page: {path}")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. Browser tests need Debian's Chromium: "
            "`apt-get install -y chromium` (or set CHROMIUM_PATH). `playwright install` is not used here.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, transactional_db, tmp_path_factory):
    """A page in a fresh browser context (own cookies), with relative URLs resolved against the live server."""
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def login():
    """login(page, user): sign in through the real login form and wait for the dashboard."""
    def do_login(page, user, password: str = PASSWORD):
        page.goto("/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
        return page
    return do_login
