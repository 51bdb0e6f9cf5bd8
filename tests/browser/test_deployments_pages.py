"""Deployments pages in a real browser: the wizard from version to review to submit, the deployment page's
rollout controls, one-click rollback and live status, and cluster administration."""
import re

import pytest
from playwright.sync_api import expect

from apps.deployments.models import Deployment, DeploymentRevision
from apps.deployments.transitions import deployment_transition
from tests.deployments.factories import deployment_in, environment, local_cluster, model_version
from tests.factories import member


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "dave-d")


@pytest.fixture
def targets(transactional_db):
    environment("staging")
    environment("production")
    return local_cluster()


def test_wizard_drafts_reviews_and_submits(page, login, engineer, team, targets):
    from tests.costs.factories import gpu_type

    version = model_version(team, version=1)
    gpu_type("A100-80GB")
    login(page, engineer)
    page.goto("/deployments/")
    page.click("#new-deployment")
    # Steps numbered once, by the list; the current one marked.
    expect(page.locator("#wizard-steps li").first).to_have_text(re.compile(r"^\s*Model version"))
    expect(page.locator("#wizard-steps li[aria-current=step]")).to_contain_text("Model version")
    # Nothing approved anywhere: no version is preselected, and the page says why.
    expect(page.locator("#no-approved-version")).to_be_visible()
    page.select_option("#model_version", str(version.pk))
    page.fill("#name", "Fraud API")  # refused on this step, not at the end
    page.click("#wizard-next")
    expect(page.locator(".message.error")).to_contain_text("can't be a deployment name")
    expect(page.locator("#wizard-steps li[aria-current=step]")).to_contain_text("Model version")
    page.fill("#name", "fraud-api")
    page.select_option("#model_version", str(version.pk))
    page.click("#wizard-next")
    expect(page.locator("#environment")).to_be_visible()
    page.select_option("#environment", "staging")
    page.select_option("#cluster", "local")
    page.click("#wizard-next")
    # The GPU type is picked from the cluster's catalog.
    expect(page.locator("#gpu_type option")).to_have_text(["none", "A100-80GB (80 GB)"])
    page.fill("#cpu", "2 GPUs")
    page.click("#wizard-next")
    expect(page.locator(".message.error")).to_contain_text("cpu must be a Kubernetes CPU quantity")
    page.fill("#cpu", "250m")
    page.click("#wizard-next")
    page.check("input[name=kind][value=canary]")
    page.fill("#steps", "20,100")
    page.click("#wizard-next")
    # The draft is resumable from the list.
    page.goto("/deployments/")
    expect(page.locator("#drafts")).to_contain_text("fraud-api")
    page.click("#drafts a")
    expect(page.locator("#review")).to_contain_text("approved for staging")
    expect(page.locator("#admission")).to_contain_text("fits")
    expect(page.locator("#manifest-diff")).to_contain_text("LocalModelServer")
    expect(page.locator("#review-strategy")).to_have_text("Canary: 20 % → 100 %, pausing for promotion after each step")
    expect(page.locator("#review-resources")).to_have_text("1 replica · CPU 250m · memory 512Mi")
    expect(page.locator("#review")).not_to_contain_text("{'")
    page.click("#wizard-submit")
    expect(page.locator(".message.success")).to_contain_text("fraud-api submitted")
    expect(page.locator("#status-value")).to_have_text("pending")
    deployment = Deployment.objects.get(name="fraud-api")
    assert deployment.current_revision.strategy["steps"] == [{"weight": 20, "pause": True},
                                                             {"weight": 100, "pause": True}]
    assert deployment.current_revision.resources["cpu"] == "250m"


def test_promote_rollback_and_live_status(page, login, engineer, team, targets):
    deployment = deployment_in(team, "awaiting_promotion")
    login(page, engineer)
    page.goto(f"/deployments/{deployment.pk}/")
    expect(page.locator("#status-value")).to_have_text("awaiting_promotion")
    page.click("#btn-promote")
    expect(page.locator(".message.success")).to_have_text("Promoted.")
    expect(page.locator("#status-value")).to_have_text("healthy")

    page.click("button.rollback-to[data-revision='1']")
    expect(page.locator(".message.success")).to_contain_text("re-applies revision 1")
    expect(page.locator("#revision-3")).to_contain_text("Rollback of r1")
    # Progress appears without a reload: the engine moves the deployment, the page polls and shows it.
    deployment = Deployment.objects.get(pk=deployment.pk)
    deployment_transition(deployment=deployment, to="progressing", fields={"status_message": "Applying revision 3"})
    expect(page.locator("#status-value")).to_have_text("progressing", timeout=8000)
    expect(page.locator("#status-message")).to_have_text("Applying revision 3")
    assert DeploymentRevision.objects.filter(deployment=deployment, reason="rollback").count() == 1
    expect(page.locator("#history")).to_contain_text("deployment.rollback")


def test_viewer_sees_no_controls(page, login, team, targets):
    viewer = member(team, "viewer", "vera-d")
    deployment = deployment_in(team)
    login(page, viewer)
    page.goto(f"/deployments/{deployment.pk}/")
    expect(page.locator("#status-value")).to_have_text("healthy")
    expect(page.locator("#controls")).to_have_count(0)


def test_platform_admin_adds_a_cluster_and_tests_it(page, login, platform_admin, targets):
    login(page, platform_admin)
    page.goto("/deployments/")
    page.click("#clusters-link")
    page.fill("#c-name", "edge")
    page.fill("#c-url", "http://127.0.0.1:9")
    page.fill("#c-token", "super-secret-token")
    page.click("#cluster-add")
    expect(page.locator(".message.success")).to_have_text("Cluster edge added.")
    expect(page.locator("#clusters-table")).to_contain_text("token (encrypted)")
    assert "super-secret-token" not in page.content()
    page.click("button.test-connection[data-cluster='local']")
    expect(page.locator(".message.success")).to_contain_text("local: Local processes")
    page.click("button.test-connection[data-cluster='edge']")
    expect(page.locator(".message.error")).to_contain_text("unreachable")
