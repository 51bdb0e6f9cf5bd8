"""Nothing lost, nothing stuck: concurrent rollbacks, Redis down at submit, a worker killed mid-rollout,
all against real PostgreSQL, Redis, Celery worker processes and the Kubernetes test API server. Rollout drives
are the runner's (kind deployments.rollout): the row is the record of what is due, a wake-up only a hint."""
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from apps.core import runner
from apps.core.errors import Conflict
from apps.core.tasks import sweep_task
from apps.deployments.models import Deployment, DeploymentRevision
from apps.deployments.rollout import ROLLOUT_KIND
from apps.deployments.services import deployment_rollback
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
    assert Deployment.objects.get(pk=deployment.pk).desired_generation == deployment.desired_generation + 1


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
    assert Deployment.objects.get().status == "pending"
    assert runner.due_count(ROLLOUT_KIND) == 1  # the wake-up was lost with Redis; the row says what is due

    private_broker.start()  # same port: the worker reconnects
    assert sweep_task() == {ROLLOUT_KIND: 1}  # what the beat does every few seconds
    deadline = time.monotonic() + 60
    while Deployment.objects.get().status != "healthy":
        assert time.monotonic() < deadline, Deployment.objects.get().status_message
        time.sleep(0.3)
    assert kube_server.kmock.get("apps/v1/deployments", "fraud-staging", "fraud-r1") is not None


def test_worker_killed_mid_rollout_converges_through_the_runner(kube_setup, private_broker, celery_worker_process,
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
    # The killed drive's lease outlives it; the runner reclaims the deployment once it expires (here: now).
    assert deployment.lease_owner and runner.due_count(ROLLOUT_KIND) == 0
    Deployment.objects.filter(pk=deployment.pk).update(lease_until=timezone.now())
    assert runner.tick(ROLLOUT_KIND) == {"done": 1}  # what a worker's tick does after the beat's sweep
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 100}
    assert (deployment.lease_owner, deployment.attempts, deployment.last_error) == ("", 0, "")
    assert DeploymentRevision.objects.filter(deployment=deployment).count() == 1
