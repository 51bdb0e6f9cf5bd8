"""The deployment page's actions in a real browser: Roll back names what it goes back to, asks first and says what
will change, is disabled with the reason when there is nothing to go back to; rollout controls show only where they act; a viewer
sees no action at all."""
import re

import pytest
from playwright.sync_api import expect

from apps.deployments.models import DeploymentRevision
from tests.deployments.factories import deployment_in, local_cluster
from tests.factories import member


@pytest.fixture
def healthy(team, transactional_db):
    """r2 (fraud-classifier v2) serves; r1 (v1) is still warm."""
    return deployment_in(team, "healthy", cluster=local_cluster())


def rollbacks(deployment) -> int:
    return DeploymentRevision.objects.filter(deployment=deployment, reason="rollback").count()


def test_rollback_names_its_target_and_confirms_what_changes(page, login, team, healthy):
    login(page, member(team, "ml_engineer", "dave-rb"))
    page.goto(f"/deployments/{healthy.pk}/")
    button = page.locator("#btn-rollback")
    expect(button).to_have_text("Roll back to r1 · fraud-classifier v1")
    expect(button).to_have_class(re.compile(r"\bdanger\b"))
    expect(page.locator("#btn-reapply")).not_to_have_class(re.compile(r"\bdanger\b"))

    button.click()
    dialog = page.get_by_role("dialog", name="Roll back?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("from r2 · fraud-classifier v2 to r1 · fraud-classifier v1: traffic switches back "
                                   "to r1, still warm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert rollbacks(healthy) == 0

    button.click()
    dialog.get_by_role("button", name="Roll back to r1").click()
    expect(page.locator(".message.success")).to_be_visible()
    assert rollbacks(healthy) == 1


def test_rollout_controls_show_only_in_states_where_they_act_and_follow_the_state_live(page, login, team, healthy):
    login(page, member(team, "ml_engineer", "dave-rb"))
    page.goto(f"/deployments/{healthy.pk}/")
    expect(page.locator("#btn-reapply")).to_be_visible()
    for verb in ("promote", "pause", "resume", "abort"):  # a healthy deployment has no rollout to act on
        expect(page.locator(f"#btn-{verb}")).to_be_hidden()

    type(healthy).objects.filter(pk=healthy.pk).update(status="awaiting_promotion")
    # The status poll (no reload) brings the rollout's controls and takes Re-apply away.
    for verb in ("promote", "pause", "abort"):
        expect(page.locator(f"#btn-{verb}")).to_be_visible()
    expect(page.locator("#btn-resume")).to_be_hidden()
    expect(page.locator("#btn-reapply")).to_be_hidden()


def test_rollback_is_disabled_with_the_reason_when_nothing_served_before(page, login, team, healthy):
    healthy.revisions.filter(number=1).update(status="failed")
    type(healthy).objects.filter(pk=healthy.pk).update(warm_revision=None, warm_until=None)
    login(page, member(team, "ml_engineer", "dave-rb"))
    page.goto(f"/deployments/{healthy.pk}/")
    expect(page.locator("#btn-rollback")).to_be_disabled()
    expect(page.locator("#rollback-why")).to_have_text(re.compile("no earlier revision that served; nothing to roll "
                                                                  "back to"))
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_viewer_sees_no_deployment_action(page, login, team, healthy):
    login(page, member(team, "viewer", "vera-rb"))
    page.goto(f"/deployments/{healthy.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(healthy.name)
    expect(page.locator("main button")).to_have_count(0)


VIEWER_MAY = {("/costs/quotas/", "Check"), ("/settings/", "Create token")}


@pytest.fixture
def team_pages(team, healthy):
    from tests.monitoring import factories as monitoring

    monitor = monitoring.monitor(team)
    monitoring.run(monitor)
    alert = monitoring.alert(monitor)
    version = monitor.model_version
    return ["/", "/registry/", f"/registry/models/{version.model_id}/", f"/registry/versions/{version.pk}/",
            "/registry/inbox/", "/registry/policies/", "/deployments/", f"/deployments/{healthy.pk}/",
            "/monitoring/", f"/monitoring/monitors/{monitor.pk}/", f"/monitoring/alerts/{alert.pk}/",
            "/costs/", "/costs/quotas/", "/settings/"]


def test_viewer_sees_no_mutating_control_on_any_page(page, login, team, team_pages):
    """A change is a POST form; a viewer's pages have none (filters and exports are GET), except a quota check (a
    what-if that changes nothing) and the viewer's own API token."""
    login(page, member(team, "viewer", "vera-all"))
    offered = {}
    for path in team_pages:
        page.goto(path, wait_until="domcontentloaded", timeout=30_000)
        labels = [label for label in page.locator("main form[method=post] button").all_inner_texts()
                  if (path, label) not in VIEWER_MAY]
        if labels:
            offered[path] = labels
    assert not offered, f"a viewer is offered: {offered}"
