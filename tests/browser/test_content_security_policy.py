"""The Content-Security-Policy refuses inline scripts without the nonce and eval: pages must still work,
and the browser must report no violation on them."""
import re

from playwright.sync_api import expect

from apps.teams.services import membership_add
from tests.factories import UserFactory, member


def test_pages_work_without_csp_violations(page, login, team):
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    admin = member(team, "team_admin", "csp-admin")
    UserFactory(username="newcomer")
    membership_add(actor=admin, team=team, username="newcomer", role="viewer")  # a bar in the audit chart
    login(page, admin)

    page.goto("/audit/")  # Plotly, drawn by an inline script carrying the nonce
    expect(page.locator("#audit-chart .barlayer .point").first).to_be_attached()

    page.goto("/api/docs/")  # Swagger UI from drf-spectacular-sidecar, its start-up script a separate file
    # Swagger UI renders a long operation list virtually (only what is on screen): check the first operation.
    expect(page.get_by_text(re.compile(r"/api/v1/audit/events/")).first).to_be_visible()

    assert violations == []
