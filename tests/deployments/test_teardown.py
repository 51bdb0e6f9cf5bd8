"""Deployment teardown: it stops serving (the route and every workload removed by the drive, outside any
transaction), gives back the GPUs (reservations released, ledger intervals closed), keeps the history, and
is terminal (409 for a second teardown and for any new revision). On the Kubernetes emulator and, with real
model servers, on the local target."""
import pytest
import requests

from apps.audit.models import AuditEvent
from apps.costs.models import GpuAllocation, GpuReservation
from apps.deployments.models import Deployment, LocalProcess
from apps.deployments.rollout import TORN_DOWN_MESSAGE, rollout_drive
from apps.deployments.services import deployment_create, deployment_deploy
from tests.deployments.factories import gpu_quota, model_version
from tests.deployments.test_cluster_traffic import NS, _gateway_cluster
from tests.factories import member
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)

URL = "/api/v1/deployments/deployments/"
GPU = {"cpu": "500m", "memory": "512Mi", "gpu_type": "a100-80gb", "gpu_count": 1, "replicas": 1, "autoscaling": None}
CANARY_10 = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100}]}


def _actions(deployment) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk))
                .order_by("id").values_list("action", flat=True))


def test_teardown_on_kubernetes_removes_route_and_workloads_releases_gpus_and_is_terminal(
        kube_server, engineer, team, staging, client_for):  # noqa: F811
    cluster = _gateway_cluster(kube_server, team)
    gpu_quota(cluster=cluster, team=team)
    v1, v2, v3 = (model_version(team, version=n) for n in (1, 2, 3))
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=cluster, resources=GPU)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2,
                      strategy=CANARY_10)
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "awaiting_promotion" and deployment.traffic == {"1": 90, "2": 10}
    assert kube_server.call(lambda k: k.get("gateway.networking.k8s.io/v1/httproutes", NS, "fraud")) is not None
    assert GpuAllocation.objects.filter(deployment_id=deployment.pk, stopped_at__isnull=True).count() == 1

    viewer = member(team, "viewer", "watcher")
    assert client_for(viewer).post(f"{URL}{deployment.pk}/teardown/").status_code == 403  # permission first
    api = client_for(engineer)
    response = api.post(f"{URL}{deployment.pk}/teardown/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "torn_down" and response.json()["traffic"] == {}
    # GPUs are given back at once: nothing reserved, no open ledger interval.
    assert not GpuReservation.objects.filter(deployment_id=deployment.pk, status="reserved").exists()
    assert not GpuAllocation.objects.filter(deployment_id=deployment.pk, stopped_at__isnull=True).exists()

    assert rollout_drive(deployment_id=deployment.pk) == "torn down"  # the cluster work, in the drive
    get = lambda plural, name: kube_server.call(lambda k: k.get(plural, NS, name))  # noqa: E731
    assert get("gateway.networking.k8s.io/v1/httproutes", "fraud") is None
    for name in ("fraud-r1", "fraud-r2"):
        assert get("apps/v1/deployments", name) is None and get("v1/services", name) is None
    assert get("networking.k8s.io/v1/networkpolicies", "fraud") is None
    deployment.refresh_from_db()
    assert deployment.status == "torn_down" and deployment.status_message == TORN_DOWN_MESSAGE
    assert deployment.endpoint_url == ""
    assert deployment.revisions.count() == 2  # history kept
    actions = _actions(deployment)
    assert "deployment.teardown" in actions and actions[-1] == "deployment.torn_down"
    teardown = AuditEvent.objects.get(object_id=str(deployment.pk), action="deployment.teardown")
    assert teardown.changes["status"] == ["awaiting_promotion", "torn_down"] and teardown.actor_id == engineer.pk
    # Finished: the runner has nothing more to do, and nothing more is recorded.
    assert rollout_drive(deployment_id=deployment.pk) == "not due" and _actions(deployment) == actions

    again = api.post(f"{URL}{deployment.pk}/teardown/")
    assert again.status_code == 409 and "already torn down" in again.json()["error"]["message"]
    deploy = api.post(f"{URL}{deployment.pk}/deploy/", {"model_version": v3.pk}, format="json")
    assert deploy.status_code == 409 and "accepts no new revision" in deploy.json()["error"]["message"], deploy.content
    rollback = api.post(f"{URL}{deployment.pk}/rollback/", {"reason": "bring it back"}, format="json")
    assert rollback.status_code == 409 and "torn down" in rollback.json()["error"]["message"]
    assert api.post(f"{URL}{deployment.pk}/reapply/").status_code == 409
    assert api.get(f"{URL}{deployment.pk}/").json()["status"] == "torn_down"
    assert api.get(f"{URL}?status=torn_down").json()["count"] == 1


@pytest.mark.mlflow
def test_teardown_on_the_local_target_stops_every_process_from_the_page(engineer, team, staging, local, local_dir,
                                                                        versions, client):
    from tests.deployments.conftest import ROWS
    from workers.drivers.local import pid_alive

    v1, v2 = versions
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2)
    rollout_drive(deployment_id=deployment.pk)  # r2 serves, r1 kept warm: two servers and the router
    deployment.refresh_from_db()
    endpoint, pids = deployment.endpoint_url, _pids(deployment)
    assert len(pids) == 3 and all(pid_alive(pid) for pid in pids)
    assert requests.post(endpoint, json=ROWS, timeout=30).headers["X-Revision"] == "2"

    client.force_login(engineer)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="btn-teardown" type="submit" class="danger"' in page and "data-confirm=\"Tear down fraud?" in page
    response = client.post(f"/deployments/{deployment.pk}/teardown/")
    assert response.status_code == 302
    assert rollout_drive(deployment_id=deployment.pk) == "torn down"

    assert not LocalProcess.objects.filter(deployment=deployment).exists()
    assert not any(pid_alive(pid) for pid in pids)
    assert not (local_dir / f"deployment-{deployment.pk}" / "routes.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.post(endpoint, json=ROWS, timeout=5)
    deployment.refresh_from_db()
    assert deployment.status == "torn_down" and deployment.revisions.count() == 2
    assert {"deployment.teardown", "deployment.torn_down"} <= set(_actions(deployment))
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "btn-teardown" not in page and TORN_DOWN_MESSAGE in page
    with pytest.raises(Exception, match="accepts no new revision"):
        deployment_deploy(actor=engineer, deployment=deployment, model_version=v1)


def _pids(deployment):
    return list(LocalProcess.objects.filter(deployment=deployment).values_list("pid", flat=True))
