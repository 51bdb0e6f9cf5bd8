"""One drive at a time: the reconcile beat re-drives a rollout only once its drive lease has expired, and
the local driver claims a process's row before it spawns, so concurrent spawns start one process."""
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.deployments.drivers import deployment_spec, driver_for, local_adopt
from apps.deployments.models import Deployment, LocalProcess
from apps.deployments.rollout import rollout_drive, rollout_stuck
from apps.deployments.tasks import reconcile_task
from tests.deployments.factories import deployment_in, kube_cluster
from tests.factories import TeamFactory
from tests.harness.kube_server import kube_server  # noqa: F401


def test_reconcile_redrives_a_rollout_only_once_its_drive_lease_expired(kube_server, transactional_db,  # noqa: F811
                                                                       local_dir):
    team = TeamFactory(slug="fraud")
    deployment = deployment_in(team, "progressing", cluster=kube_cluster(url=kube_server.url, team=team))
    held_until = timezone.now() + timedelta(minutes=4)
    # A drive waiting for a slow model server: updated_at is old, the lease is live.
    Deployment.objects.filter(pk=deployment.pk).update(updated_at=timezone.now() - timedelta(minutes=10),
                                                       lease_owner="drive-1", lease_until=held_until)

    assert list(rollout_stuck(older_than_seconds=60)) == []
    assert reconcile_task()["redriven"] == 0
    assert rollout_drive(deployment_id=deployment.pk, reclaim=True) == "driven elsewhere"
    deployment.refresh_from_db()
    assert (deployment.lease_owner, deployment.lease_until) == ("drive-1", held_until)

    # The worker died: its lease runs out and the next beat takes over, then releases the lease.
    Deployment.objects.filter(pk=deployment.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert [d.pk for d in rollout_stuck(older_than_seconds=60)] == [deployment.pk]
    assert reconcile_task()["redriven"] == 1
    deployment.refresh_from_db()
    assert (deployment.lease_owner, deployment.lease_until) == ("", None)


def _sessions_running(config: Path) -> set[int]:
    """Session ids of live processes started with this router config (launcher and router share one)."""
    sessions = set()
    for proc in Path("/proc").iterdir():
        try:
            if str(config).encode() in (proc / "cmdline").read_bytes():
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] not in ("Z", "X"):
                    sessions.add(int(stat[4]))
        except (OSError, IndexError):
            continue
    return sessions


def test_two_concurrent_spawns_start_one_process(transactional_db, local_dir):
    deployment = deployment_in(TeamFactory(slug="fraud"))
    config = Path(local_dir) / f"deployment-{deployment.pk}" / "routes.json"
    barrier = threading.Barrier(2)
    results = []

    def spawn():
        try:
            barrier.wait()
            driver = driver_for(deployment.cluster).driver
            row, started = driver._spawn(deployment_spec(deployment), "router", ["--config", str(config)])
            results.append((row.id, started))
        finally:
            connection.close()

    threads = [threading.Thread(target=spawn) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert sorted(started for _, started in results) == [False, True]
    assert len({pk for pk, _ in results}) == 1
    row = LocalProcess.objects.get(deployment=deployment, role="router")
    assert row.pid and len(_sessions_running(config)) == 1


@pytest.mark.django_db
def test_adoption_judges_only_this_hosts_processes(local_dir):
    deployment = deployment_in(TeamFactory(slug="fraud"))
    dead_pid = 2 ** 22 + 1  # above any pid_max (at most 2**22): never alive
    LocalProcess.objects.create(role="router", deployment=deployment, host="other-worker", pid=dead_pid, port=1)
    LocalProcess.objects.create(role="server", deployment=deployment, revision=deployment.current_revision,
                                pid=dead_pid, port=2)

    assert local_adopt() == {"adopted": 0, "forgotten": 1, "killed": 0}
    assert list(LocalProcess.objects.values_list("host", flat=True)) == ["other-worker"]
