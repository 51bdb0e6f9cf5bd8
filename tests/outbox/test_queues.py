"""Control-path work (rollouts, rollbacks, publishes, webhooks) and bulk work (drift runs, reports, syncs,
rollups) travel on separate queues, so a rollback never waits behind a drift run."""
import time

from django.conf import settings

from apps.core import runner
from apps.deployments.models import Deployment
from apps.deployments.rollout import ROLLOUT_KIND
from apps.deployments.services import deployment_create, deployment_rollback
from controlplane.celery import app
from tests.deployments.factories import deployment_in, environment, kube_cluster, model_version
from tests.factories import TeamFactory, member
from tests.harness.celery_worker import celery_worker
from tests.harness.kube_server import kube_server  # noqa: F401


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_every_task_of_ours_has_a_queue_a_worker_consumes():
    app.loader.import_default_modules()  # autodiscovers every app's tasks module
    ours = sorted(name for name in app.tasks if not name.startswith("celery."))
    assert "runner.tick" in ours and "monitoring.run_monitor" in ours
    assert [name for name in ours if name not in settings.CELERY_TASK_ROUTES] == []
    assert {name: queue_of(name) for name in ours} == {
        name: route["queue"] for name, route in settings.CELERY_TASK_ROUTES.items()}
    assert set(map(queue_of, ours)) == {"control", "bulk"}


def test_a_rollback_goes_to_control_and_a_drift_run_to_bulk(db):
    team = TeamFactory(slug="fraud")
    deployment = deployment_in(team)
    deployment_rollback(actor=member(team, "ml_engineer", "eng"), deployment=deployment, reason="alert")
    # The rollback is the runner's rollout drive: its wake-up tick goes to the kind's queue.
    assert runner.due_count(ROLLOUT_KIND) == 1 and runner.kind_get(ROLLOUT_KIND).queue == "control"
    assert queue_of("monitoring.run_monitor") == "bulk"
    assert queue_of("registry.sync") == "bulk"


def test_a_rollout_runs_at_once_while_bulk_work_is_queued(private_broker, transactional_db, tmp_path,
                                                           kube_server):  # noqa: F811
    team = TeamFactory(slug="fraud")
    engineer = member(team, "ml_engineer", "eng")
    cluster = kube_cluster(url=kube_server.url, team=team)
    # Twenty drift runs wait on the bulk queue (nobody consumes it here; a busy bulk pool looks the same).
    for run_id in range(20):
        app.send_task("monitoring.run_monitor", kwargs={"run_id": 10_000 + run_id})
    broker = private_broker.client()
    assert broker.llen("bulk") == 20

    with celery_worker(private_broker.url, tmp_path / "worker-control.log", queues="control"):
        started = time.monotonic()
        deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=model_version(team),
                                       environment=environment("staging"), cluster=cluster)
        while Deployment.objects.get(pk=deployment.pk).status != "healthy":
            assert time.monotonic() - started < 10, Deployment.objects.get(pk=deployment.pk).status_message
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    print(f"rollout healthy {elapsed:.2f}s after the click with 20 drift runs queued")
    assert kube_server.kmock.get("apps/v1/deployments", "fraud-staging", "fraud-r1") is not None
    assert broker.llen("bulk") == 20  # the control worker never took bulk work
