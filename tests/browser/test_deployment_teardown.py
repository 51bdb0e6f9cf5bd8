"""The deployment page's Tear down button in a real browser: danger-styled, it asks first (dismissing changes
nothing), then the deployment is torn down, the button is gone and the history shows the event."""
import pytest
from playwright.sync_api import expect

from apps.deployments.models import Deployment
from tests.deployments.factories import deployment_in, environment, local_cluster
from tests.factories import member


@pytest.fixture
def targets(transactional_db):
    environment("staging")
    return local_cluster()


def test_teardown_asks_first_then_tears_down(page, login, team, targets):
    engineer = member(team, "ml_engineer", "tess-d")
    deployment = deployment_in(team)
    login(page, engineer)
    page.goto(f"/deployments/{deployment.pk}/")
    button = page.locator("#btn-teardown")
    expect(button).to_have_class("danger")

    page.once("dialog", lambda dialog: dialog.dismiss())
    button.click()
    expect(page.locator("#status-value")).to_have_text("healthy")
    assert Deployment.objects.get(pk=deployment.pk).status == "healthy"

    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    button.click()
    expect(page.locator(".message.success")).to_contain_text("Torn down")
    expect(page.locator("#status-value")).to_have_text("torn_down")
    assert "Tear down fraud?" in questions[0] and "history" in questions[0].lower()
    expect(page.locator("#btn-teardown")).to_have_count(0)
    expect(page.locator("#history")).to_contain_text("deployment.teardown")
    assert Deployment.objects.get(pk=deployment.pk).status == "torn_down"
