"""Nothing silently gives up: a rollout whose cluster stays down is retried by the runner with backoff and,
out of attempts, needs attention (audited) on its page and the dashboard until someone retries it."""
import pytest

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.deployments.models import Deployment
from apps.deployments.rollout import ROLLOUT_KIND, rollout_drive
from apps.deployments.services import deployment_create
from tests.deployments.factories import kube_cluster, model_version
from tests.factories import member
from tests.harness.kube_server import kube_server  # noqa: F401


@pytest.fixture
def deployment(kube_server, engineer, team, staging):  # noqa: F811
    return deployment_create(actor=engineer, team=team, name="fraud", model_version=model_version(team),
                             environment=staging, cluster=kube_cluster(url=kube_server.url, team=team))


def test_a_cluster_down_for_every_attempt_needs_attention_until_retried(kube_server, deployment, engineer, team,  # noqa: F811
                                                                        client_for, client):
    kind = runner.kind_get(ROLLOUT_KIND)
    kube_server.call(lambda kmock: kmock.fail_next(503, count=50, methods=("PATCH",)))
    # The earlier attempts failed the same way; this is the last one.
    Deployment.objects.filter(pk=deployment.pk).update(attempts=kind.max_attempts - 1)

    assert rollout_drive(deployment_id=deployment.pk) == "needs_attention"
    deployment.refresh_from_db()
    assert (deployment.status, deployment.resume_status, deployment.lease_owner) == ("needs_attention",
                                                                                    "progressing", "")
    assert "503" in deployment.last_error and "Gave up after" in deployment.status_message
    event = AuditEvent.objects.get(action="deployment.needs_attention")
    assert event.changes["status"] == ["progressing", "needs_attention"] and "503" in event.changes["error"][1]
    assert runner.due_count(ROLLOUT_KIND) == 0  # given up: not claimed again and again

    client.force_login(engineer)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="needs-attention"' in page and 'id="btn-retry"' in page and "503" in page
    home = client.get("/").content.decode()
    assert f"/deployments/{deployment.pk}/" in home and "Deployment" in home

    viewer = member(team, "viewer", "watcher")
    assert client_for(viewer).post(f"/api/v1/deployments/deployments/{deployment.pk}/retry/").status_code == 403

    kube_server.call(lambda kmock: kmock.faults.clear())  # the cluster is back
    response = client_for(engineer).post(f"/api/v1/deployments/deployments/{deployment.pk}/retry/")
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["attempts"], response.json()["last_error"]) == (
        "progressing", 0, "")
    assert AuditEvent.objects.filter(action="deployment.retry", actor_label="eng").exists()
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert (deployment.status, deployment.traffic) == ("healthy", {"1": 100})

    again = client_for(engineer).post(f"/api/v1/deployments/deployments/{deployment.pk}/retry/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_needs_attention"


def test_a_rollback_is_possible_while_a_deployment_needs_attention(kube_server, deployment, engineer):  # noqa: F811
    from apps.deployments.services import deployment_rollback

    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    kind = runner.kind_get(ROLLOUT_KIND)
    from apps.deployments.services import deployment_deploy

    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk),
                      model_version=model_version(deployment.team, version=2))
    kube_server.call(lambda kmock: kmock.fail_next(503, count=50, methods=("PATCH",)))
    Deployment.objects.filter(pk=deployment.pk).update(attempts=kind.max_attempts - 1)
    assert rollout_drive(deployment_id=deployment.pk) == "needs_attention"

    kube_server.call(lambda kmock: kmock.faults.clear())
    revision = deployment_rollback(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk),
                                   reason="stuck rollout")
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert (deployment.status, deployment.current_revision_id, deployment.traffic) == ("healthy", revision.pk,
                                                                                      {"3": 100})
