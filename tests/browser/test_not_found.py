"""Not found in a real browser: an unknown path and another team's objects answer 404 with the app's page, at
the URL that was asked for (no redirect to a list), and never Django's debug page listing URL patterns."""
import pytest
from playwright.sync_api import expect

from tests.deployments.factories import deployment_in, local_cluster
from tests.factories import member
from tests.monitoring import factories as monitoring


@pytest.fixture
def other_teams_objects(other_team, transactional_db):
    deployment = deployment_in(other_team, cluster=local_cluster())
    monitor = monitoring.monitor(other_team)
    return {
        f"/deployments/{deployment.pk}/": f"Deployment {deployment.pk} not found.",
        f"/monitoring/monitors/{monitor.pk}/": None,
        f"/registry/models/{monitor.model_version.model_id}/": None,
        f"/registry/versions/{monitor.model_version_id}/": None,
        "/no-such-page/": "Nothing at /no-such-page/.",
        "/deployments/999999/": "Deployment 999999 not found.",
    }


def test_unknown_and_other_teams_pages_answer_404_at_their_url(page, login, team, other_teams_objects):
    login(page, member(team, "team_admin", "nf-admin"))
    for path, message in other_teams_objects.items():
        response = page.goto(path)
        assert response.status == 404, path
        assert page.url.endswith(path), f"{path} moved to {page.url}"
        expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
        if message:
            expect(page.locator("main")).to_contain_text(message)
        expect(page.get_by_text("URLconf")).to_have_count(0)
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
