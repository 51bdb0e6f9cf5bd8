"""The local target end to end: real model servers, real predictions through the deployment endpoint,
a canary split, promotion, a second version and a one-click rollback, all audited."""
import collections

import pytest
import requests

from apps.audit.models import AuditEvent
from apps.deployments.models import Deployment, LocalProcess
from apps.deployments.rollout import rollout_drive
from apps.deployments.services import deployment_create, deployment_deploy, deployment_promote, deployment_rollback
from tests.deployments.conftest import ROWS

pytestmark = pytest.mark.mlflow


def predict(deployment, n=1):
    answers = collections.Counter()
    for _ in range(n):
        response = requests.post(deployment.endpoint_url, json=ROWS, timeout=30)
        assert response.status_code == 200, response.text
        answers[(response.headers["X-Revision"], response.json()["predictions"][0])] += 1
    return answers


def test_deploy_canary_promote_and_rollback(engineer, team, staging, local, local_dir, versions):
    v1, v2 = versions
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=local, resources={"cpu": "500m", "memory": "512Mi"})
    assert deployment.status == "pending"
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 100}
    assert predict(deployment, 3) == {("1", 0): 3}

    revision = deployment_deploy(actor=engineer, deployment=deployment, model_version=v2,
                                 strategy={"kind": "canary", "steps": [{"weight": 30, "pause": True},
                                                                       {"weight": 60, "pause": True}, {"weight": 100}]})
    assert revision.number == 2
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "awaiting_promotion"
    assert deployment.traffic == {"1": 70, "2": 30}
    answers = predict(deployment, 40)
    assert answers[("1", 0)] and answers[("2", 1)], answers  # both revisions answered through one endpoint

    deployment_promote(actor=engineer, deployment=deployment)
    deployment.refresh_from_db()
    assert deployment.traffic == {"1": 40, "2": 60} and deployment.status == "awaiting_promotion"
    deployment_promote(actor=engineer, deployment=deployment)
    from apps.deployments.rollout import route

    route(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"2": 100}
    assert deployment.warm_revision.number == 1
    assert predict(deployment, 3) == {("2", 1): 3}
    warm_pid = LocalProcess.objects.get(deployment=deployment, revision__number=1).pid

    rollback = deployment_rollback(actor=engineer, deployment=deployment, reason="latency regression")
    assert rollback.number == 3 and rollback.rollback_of.number == 1 and rollback.reason == "rollback"
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    # Revision 3 serves, on revision 1's warm workload: the traffic map and X-Revision say 3, not 1.
    assert deployment.status == "healthy" and deployment.traffic == {"3": 100}
    assert predict(deployment, 3) == {("3", 0): 3}
    # Inside the warm window the rollback is a traffic switch: the same server process serves again.
    assert LocalProcess.objects.get(deployment=deployment, revision__number=1).pid == warm_pid

    actions = list(AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk))
                   .values_list("action", flat=True).order_by("id"))
    assert actions[0] == "deployment.create"
    for action in ("deployment.deploy", "deployment.promote", "deployment.rollback", "deployment.rollout_ready"):
        assert action in actions


def test_shadow_then_ab_split(engineer, team, staging, local, local_dir, versions):
    import json

    v1, v2 = versions
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2,
                      strategy={"kind": "shadow", "percent": 100})
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "awaiting_promotion" and deployment.traffic == {"1": 100}
    assert deployment.shadow == {"revision": 2, "percent": 100}
    routes = json.loads((local_dir / f"deployment-{deployment.pk}" / "routes.json").read_text())
    assert routes["shadow"]["revision"] == "2"
    assert predict(deployment, 5) == {("1", 0): 5}  # shadow responses are discarded
    deployment_promote(actor=engineer, deployment=deployment)
    rollout_drive(deployment_id=deployment.pk)

    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v1,
                      strategy={"kind": "ab", "variants": [{"revision": 1, "weight": 30}, {"revision": 2, "weight": 30},
                                                            {"revision": "new", "weight": 40}]})
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 30, "2": 30, "3": 40}
    answers = predict(deployment, 40)
    assert {rev for rev, _ in answers} == {"1", "2", "3"}, answers


def test_restarted_worker_adopts_live_processes_and_restarts_dead_ones(engineer, team, staging, local, local_dir,
                                                                       versions):
    import os
    import signal

    from apps.deployments.tasks import reconcile_task
    from apps.deployments.drivers import local_adopt
    from workers.drivers.local import pid_alive

    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                   environment=staging, cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    router = LocalProcess.objects.get(deployment=deployment, role="router")
    server = LocalProcess.objects.get(deployment=deployment, role="server")
    assert local_adopt() == {"adopted": 2, "forgotten": 0, "killed": 0}

    os.killpg(server.pid, signal.SIGKILL)  # the model server dies while no worker watches
    # A stray process whose row was never written (its worker died right after spawning it) is cleaned up.
    stray = (local_dir / f"deployment-{deployment.pk}" / "server-r99.pid")
    stray.write_text('{"pid": %d, "role": "router"}' % router.pid)
    counts = local_adopt()
    assert counts["forgotten"] == 1
    result = reconcile_task()
    assert result["reconciled"] == 1
    restarted = LocalProcess.objects.get(deployment=deployment, role="server")
    assert restarted.pid != server.pid and pid_alive(restarted.pid, "server")
    deployment.refresh_from_db()
    assert predict(deployment, 2) == {("1", 0): 2}  # the same stable endpoint serves again


def test_rollback_is_numbered_as_its_own_revision_everywhere(engineer, team, staging, local, local_dir, versions,
                                                             client):
    """r1 (v1), r2 (v2), roll back: r3 runs r1's workload. The API's traffic, the deployment page's Traffic and
    Status, and the router's X-Revision all say 3; r1's workload is named as what r3 runs."""
    import json
    import re

    from rest_framework.test import APIClient

    v1, v2 = versions
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2)
    rollout_drive(deployment_id=deployment.pk)
    rollback = deployment_rollback(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk),
                                   reason="latency regression")
    assert rollback.number == 3 and rollback.rollback_of.number == 1
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()

    api = APIClient()
    api.force_authenticate(engineer)
    body = api.get(f"/api/v1/deployments/deployments/{deployment.pk}/").json()
    assert body["status"] == "healthy" and body["current_revision"] == 3 and body["stable_revision"] == 3
    assert body["traffic"] == {"3": 100} and body["workload_revisions"] == {"3": 1}
    assert body["served_traffic"]["split"] == {"3": 100}
    revisions = {r["number"]: r for r in api.get(f"/api/v1/deployments/deployments/{deployment.pk}/revisions/")
                 .json()["results"]}
    assert revisions[3]["workload_revision"] == 1 and revisions[3]["rollback_of"] == 1
    assert revisions[2]["workload_revision"] == 2

    response = requests.post(deployment.endpoint_url, json=ROWS, timeout=30)
    assert response.status_code == 200 and response.headers["X-Revision"] == "3"

    client.force_login(engineer)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    status = json.loads(re.search(r'<script id="status-data" type="application/json">(.*?)</script>', page).group(1))
    assert status["traffic"] == {"3": 100} and status["workloads"] == {"3": 1} and status["revision"] == 3
    assert status["served"]["split"] == {"3": 100}
    assert "Revision 3 serves 100 %" in status["message"]
    assert "r3 <span class=\"muted workload\">(runs r1's workload)</span>" in page

    events = AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk),
                                       action="deployment.rollout_ready").order_by("-id")
    assert events.first().changes["revision"] == [None, 3]


def test_a_dead_warm_standby_is_started_again_not_reported_as_drift(engineer, team, staging, local, local_dir,
                                                                    versions):
    """`make run` stops every model server on Ctrl-C; the next start routes the serving revision again, and the
    reconcile beat must bring back the warm standby a rollback switches to as well (it read as "degraded:
    missing server r1" for the rest of its warm window)."""
    import os
    import signal

    from apps.deployments.tasks import reconcile_task
    from workers.drivers.local import pid_alive

    v1, v2 = versions
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=deployment, model_version=v2, strategy={"kind": "rolling"})
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"2": 100} and deployment.warm_revision.number == 1
    standby = LocalProcess.objects.get(deployment=deployment, revision__number=1)
    os.killpg(standby.pid, signal.SIGKILL)

    assert reconcile_task()["reconciled"] == 1
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.drift == {}, deployment.status_message
    restarted = LocalProcess.objects.get(deployment=deployment, revision__number=1)
    assert restarted.pid != standby.pid and pid_alive(restarted.pid, "server")
    assert predict(deployment, 2) == {("2", 1): 2}
