"""Permission before state in deployments, jobs and monitoring: a role that may not act gets 403 whatever the
object's state or the body, so it learns nothing (no 409 about states, no 400/404 about inputs)."""
import pytest

from apps.audit.models import AuditEvent
from apps.deployments.models import Job
from tests.deployments.factories import deployment_in, environment, kube_cluster
from tests.factories import member
from tests.monitoring import factories as mf

pytestmark = pytest.mark.django_db

DEPLOYMENTS = "/api/v1/deployments/deployments/"


@pytest.fixture
def viewer(team):
    return member(team, "viewer", "vic")


def _assert_forbidden(response, capability="operate"):
    assert response.status_code == 403, response.json()
    assert f"needs the '{capability}' capability" in response.json()["error"]["message"]


@pytest.mark.parametrize("status, verb, body", [
    ("pending", "rollback", {}),                      # an engineer would get 409: a rollout is being dispatched
    ("healthy", "promote", {}),                       # 409: nothing awaits promotion
    ("healthy", "resume", {}),                        # 409: not paused
    ("failed", "reapply", {}),                        # 409: no serving revision
    ("healthy", "deploy", {"model_version": 999999}),  # 404: no such version
    ("healthy", "deploy", {"colour": "blue"}),         # 400: unknown field
    ("healthy", "rollback", {"to_revision": 77}),     # 404: no such revision
])
def test_viewer_gets_403_whatever_the_state_or_body(client_for, viewer, team, status, verb, body):
    deployment = deployment_in(team, status)
    response = client_for(viewer).post(f"{DEPLOYMENTS}{deployment.pk}/{verb}/", body, format="json")
    _assert_forbidden(response)
    assert deployment.revisions.count() == 2 and not AuditEvent.objects.filter(action__startswith="deployment.").exists()


def test_approver_cannot_abort_a_rollout_it_cannot_operate(client_for, team):
    deployment = deployment_in(team, "awaiting_promotion")
    _assert_forbidden(client_for(member(team, "approver", "ann")).post(f"{DEPLOYMENTS}{deployment.pk}/abort/"))


def test_engineer_breaking_glass_on_a_busy_deployment_gets_403_not_409(client_for, team):
    deployment = deployment_in(team, "pending")
    response = client_for(member(team, "ml_engineer", "eng")).post(
        f"{DEPLOYMENTS}{deployment.pk}/rollback/", {"break_glass_reason": "urgent"}, format="json")
    _assert_forbidden(response, "administer")


@pytest.mark.parametrize("body", [
    {"model_version": 999999, "environment": "moon", "cluster": "nowhere", "name": "x"},
    {"name": "Not A Slug!", "colour": "blue"},
])
def test_viewer_creating_a_deployment_gets_403_before_any_input_error(client_for, viewer, team, body):
    response = client_for(viewer).post(DEPLOYMENTS, {"team": team.slug, **body}, format="json")
    _assert_forbidden(response)


def test_other_team_sees_nothing(client_for, team, other_team):
    deployment = deployment_in(team, "pending")
    response = client_for(member(other_team, "team_admin", "mallory")).post(f"{DEPLOYMENTS}{deployment.pk}/rollback/")
    assert response.status_code == 404


def test_viewer_job_dispatch_and_retry_are_403(client_for, viewer, team):
    environment("staging")
    cluster = kube_cluster(team=team)
    client = client_for(viewer)
    _assert_forbidden(client.post("/api/v1/deployments/jobs/", {"team": team.slug, "cluster": cluster.name,
                                                               "namespace": "kube-system"}, format="json"))
    job = Job.objects.create(team=team, cluster=cluster, namespace="fraud-staging", name="done", image="i",
                             command=["x"], status="succeeded")
    _assert_forbidden(client.post(f"/api/v1/deployments/jobs/{job.pk}/retry/"))  # an engineer: 409, not failed


def test_viewer_on_monitoring_actions_gets_403_before_state_or_body(client_for, viewer, team):
    monitor = mf.monitor(team)
    resolved = mf.alert(monitor, status="resolved")
    client = client_for(viewer)
    # An engineer would get 409 (resolved alert, no deployment linked) or 400 (bad body).
    _assert_forbidden(client.post(f"/api/v1/monitoring/alerts/{resolved.pk}/rollback/"))
    _assert_forbidden(client.post(f"/api/v1/monitoring/alerts/{resolved.pk}/resolve/", {"bogus": 1}, format="json"))
    _assert_forbidden(client.post(f"/api/v1/monitoring/monitors/{monitor.pk}/rollback/", {"bogus": 1}, format="json"))
    _assert_forbidden(client.patch(f"/api/v1/monitoring/monitors/{monitor.pk}/", {"window": "fortnightly"},
                                   format="json"))
    _assert_forbidden(client.post(f"/api/v1/monitoring/monitors/{monitor.pk}/auto-rollback/", {"enabled": "maybe"},
                                  format="json"), "administer")
