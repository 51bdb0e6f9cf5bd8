"""Nothing lost, nothing stuck: concurrent rollbacks, Redis down at submit, a worker killed mid-rollout,
all against real PostgreSQL, Redis, Celery worker processes and the Kubernetes test API server."""
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.errors import Conflict
from apps.deployments.models import Deployment, DeploymentRevision
from apps.deployments.rollout import rollout_drive, rollout_stuck
from apps.deployments.services import deployment_rollback
from apps.outbox.choices import OutboxStatus
from apps.outbox.models import OutboxMessage
from apps.outbox.services import outbox_publish_due
from tests.deployments.factories import deployment_in, environment, kube_cluster, model_version
from tests.factories import TeamFactory, member
from tests.harness.kube_server import kube_server  # noqa: F401


def test_two_rollbacks_clicked_at_once_make_one_rollback(transactional_db):
    team = TeamFactory(slug="fraud")
    engineer = member(team, "ml_engineer", "eng")
    deployment = deployment_in(team)
    barrier = threading.Barrier(2)
    results = []

    def click():
        try:
            barrier.wait()
            results.append(deployment_rollback(actor=engineer, deployment=deployment, reason="click"))
        except Conflict as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "DeploymentRevision"]
    assert DeploymentRevision.objects.filter(deployment=deployment, reason="rollback").count() == 1
    assert OutboxMessage.objects.filter(dedup_key__startswith=f"deployments.rollback:{deployment.pk}:").count() == 1


@pytest.fixture
def kube_setup(kube_server, transactional_db):  # noqa: F811
    team = TeamFactory(slug="fraud")
    engineer = member(team, "ml_engineer", "eng")
    cluster = kube_cluster(url=kube_server.url, team=team)
    return team, engineer, cluster, model_version(team, version=1)


def test_redis_down_at_submit_keeps_the_deployment_and_delivers_later(kube_setup, private_broker, client_for,
                                                                      celery_worker_process, kube_server):  # noqa: F811
    team, engineer, cluster, version = kube_setup
    private_broker.stop()
    started = time.monotonic()
    response = client_for(engineer).post("/api/v1/deployments/deployments/", {
        "team": team.slug, "name": "fraud", "model_version": version.pk, "environment": "staging",
        "cluster": cluster.name}, format="json")
    assert response.status_code == 201 and time.monotonic() - started < 10
    message = OutboxMessage.objects.get(topic="deployments.drive")
    assert message.status == OutboxStatus.PENDING and message.last_error
    assert Deployment.objects.get().status == "pending"

    private_broker.start()  # same port: the worker reconnects
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    assert outbox_publish_due()["published"] == 1
    deadline = time.monotonic() + 60
    while Deployment.objects.get().status != "healthy":
        assert time.monotonic() < deadline, Deployment.objects.get().status_message
        time.sleep(0.3)
    assert kube_server.kmock.get("apps/v1/deployments", "fraud-staging", "fraud-r1") is not None


def test_worker_killed_mid_rollout_converges_through_reconcile(kube_setup, private_broker, celery_worker_process,
                                                                kube_server):  # noqa: F811
    team, engineer, cluster, version = kube_setup
    kube_server.kmock.outcome = "stuck"  # the cluster never reports ready while the first worker waits
    from apps.deployments.services import deployment_create

    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=version,
                                   environment=environment("staging"), cluster=cluster)
    deadline = time.monotonic() + 60
    while DeploymentRevision.objects.get(deployment=deployment).status != "applying":
        assert time.monotonic() < deadline, "the worker never started applying"
        time.sleep(0.2)
    celery_worker_process.kill()  # SIGKILL mid-watch: no cleanup, no status written
    celery_worker_process.wait(10)
    deployment.refresh_from_db()
    assert deployment.status == "progressing"

    kube_server.kmock.outcome = "ready"
    # The killed drive's lease outlives it; reconcile takes over once it expires (here: expire it now).
    assert deployment.lease_until is not None and not list(rollout_stuck(older_than_seconds=0))
    Deployment.objects.filter(pk=deployment.pk).update(lease_until=timezone.now())
    stuck = list(rollout_stuck(older_than_seconds=0))
    assert [d.pk for d in stuck] == [deployment.pk]
    rollout_drive(deployment_id=deployment.pk, reclaim=True)  # what the reconcile beat does for each one
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 100}
    assert DeploymentRevision.objects.filter(deployment=deployment).count() == 1
