"""One drive at a time: rollout drives are the runner's (kind deployments.rollout), so two runners never
drive one deployment at once, a dead worker's lease is reclaimed, and newer desired state interrupts a
readiness wait; the local driver claims a process's row before it spawns, so concurrent spawns start one
process."""
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.core import runner
from apps.deployments.drivers import deployment_spec, driver_for, local_adopt
from apps.deployments.models import Deployment, DeploymentRevision, LocalProcess
from apps.deployments.rollout import ROLLOUT_KIND, rollout_drive
from apps.deployments.services import deployment_create, deployment_deploy, deployment_rollback
from tests.deployments.factories import deployment_in, environment, kube_cluster, model_version
from tests.factories import TeamFactory, member
from tests.harness.kube_server import kube_server  # noqa: F401


def test_two_runners_racing_for_one_deployment_one_wins(transactional_db):
    deployment = deployment_in(TeamFactory(slug="fraud"), "progressing")
    kind = runner.kind_get(ROLLOUT_KIND)
    barrier = threading.Barrier(2)
    leases = []

    def race(owner):
        try:
            barrier.wait()
            leases.append(runner.claim(kind, ids=[deployment.pk], owner=owner))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(f"runner-{n}",)) for n in range(2)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    won = [lease for lease in leases if lease is not None]
    assert len(leases) == 2 and len(won) == 1
    deployment.refresh_from_db()
    assert (deployment.lease_owner, deployment.attempts) == (won[0].owner, 1)
    assert rollout_drive(deployment_id=deployment.pk) == "not due"  # a live lease: nobody else drives it


def _deployment_on(kube_server):  # noqa: F811
    """Team fraud's deployment `fraud` (v1, staging) on the emulated cluster, and its ML engineer."""
    team = TeamFactory(slug="fraud")
    engineer = member(team, "ml_engineer", "eng")
    return deployment_create(actor=engineer, team=team, name="fraud", model_version=model_version(team),
                             environment=environment("staging"),
                             cluster=kube_cluster(url=kube_server.url, team=team)), engineer


def test_an_expired_drive_lease_is_reclaimed_and_driven(kube_server, transactional_db):  # noqa: F811
    deployment, _ = _deployment_on(kube_server)
    # A worker claimed it and died mid-drive: its lease runs out, nothing was written.
    dead = runner.claim(runner.kind_get(ROLLOUT_KIND), ids=[deployment.pk], owner="dead-worker")
    assert dead is not None and rollout_drive(deployment_id=deployment.pk) == "not due"
    Deployment.objects.filter(pk=deployment.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert runner.tick(ROLLOUT_KIND) == {"done": 1}
    deployment.refresh_from_db()
    assert (deployment.status, deployment.traffic) == ("healthy", {"1": 100})
    assert (deployment.lease_owner, deployment.lease_until, deployment.attempts) == ("", None, 0)
    assert deployment.observed_generation == deployment.desired_generation
    assert runner.due_count(ROLLOUT_KIND) == 0


def test_a_drive_killed_between_revision_ready_and_the_split_is_finished_by_the_next_one(kube_server,  # noqa: F811
                                                                                        transactional_db):
    """The chaos test's seed 419306: a worker died after marking revision 1 ready but before giving it traffic.
    The reclaimed drive must finish the rollout, not record the generation as observed and leave it progressing."""
    deployment, _ = _deployment_on(kube_server)
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    # Rewind to the crash window: revision ready, deployment progressing with no traffic, generation unobserved.
    Deployment.objects.filter(pk=deployment.pk).update(
        status="progressing", traffic={}, stable_revision=None, status_message="Applying revision 1",
        observed_generation=deployment.desired_generation - 1)
    assert DeploymentRevision.objects.get(deployment=deployment, number=1).status == "ready"

    assert runner.tick(ROLLOUT_KIND) == {"done": 1}
    deployment.refresh_from_db()
    assert (deployment.status, deployment.traffic, deployment.stable_revision.number) == ("healthy", {"1": 100}, 1)
    assert deployment.status_message == "Revision 1 serves 100 %."
    assert deployment.observed_generation == deployment.desired_generation


def test_a_rollback_during_a_readiness_wait_interrupts_it(kube_server, transactional_db, settings):  # noqa: F811
    settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS = 120  # uninterrupted, the wait would last this long
    deployment, engineer = _deployment_on(kube_server)
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    time.sleep(3 * kube_server.kmock.controller_delay)  # the fake controller has settled revision 1's objects
    kube_server.kmock.outcome = "stuck"  # revision 2 never becomes ready
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk),
                      model_version=model_version(deployment.team, version=2))
    results = []

    def drive():
        try:
            results.append(rollout_drive(deployment_id=deployment.pk))
        finally:
            connection.close()

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 30
    while not DeploymentRevision.objects.filter(deployment=deployment, number=2, status="applying").exists():
        assert time.monotonic() < deadline, "the drive never started waiting for revision 2"
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the wait
    kube_server.kmock.outcome = "ready"  # what the rollback re-applies (revision 1's workload) settles
    clicked = time.monotonic()
    deployment_rollback(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), reason="slow canary")
    driver.join(30)
    took = time.monotonic() - clicked
    deployment.refresh_from_db()
    assert results and "routed" in results[0], results
    assert (deployment.status, deployment.current_revision.number, deployment.traffic) == ("healthy", 3, {"3": 100})
    assert DeploymentRevision.objects.get(deployment=deployment, number=2).status == "aborted"
    assert deployment.observed_generation == deployment.desired_generation and deployment.lease_owner == ""
    print(f"rollback during a readiness wait: driven to healthy {took:.2f}s after the click")
    assert took < 3.0, f"the rollback waited {took:.1f}s for the readiness wait"


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


def test_the_local_drivers_readiness_wait_stops_when_asked(tmp_path):
    """Django-free: the local driver's wait polls `should_stop()` and stops within a poll of it saying so."""
    import subprocess
    import sys
    from datetime import datetime, timezone as tz

    from workers.drivers import ClusterConnection, DeploymentSpec, LocalConfig, ProcessRecord, RevisionSpec
    from workers.drivers import WaitInterrupted
    from workers.drivers.local import LocalDriver, free_port

    # A process that looks like a model server which never becomes healthy (nothing listens on its port).
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "workers.model_server"])
    record = ProcessRecord(id=1, role="server", pid=slow.pid, port=free_port(), pid_file="", log_file="",
                           started_at=datetime.now(tz.utc))

    class Store:
        def get(self, **kwargs):
            return record

    driver = LocalDriver(ClusterConnection(cluster_id=1, name="local"),
                         LocalConfig(base_dir=tmp_path, tracking_uri="http://127.0.0.1:9", ready_timeout=60), Store())
    revision = RevisionSpec(deployment=DeploymentSpec(id=1, name="fraud", namespace="ns", team="fraud",
                                                      serving_revision=1, endpoint_url=""),
                            id=1, number=2, model_name="m", model_version="2", artifact_uri="")
    asked_at = time.monotonic() + 1.0
    try:
        started = time.monotonic()
        with pytest.raises(WaitInterrupted):
            driver.wait_ready(revision=revision, timeout=60, should_stop=lambda: time.monotonic() >= asked_at)
        stopped = time.monotonic()
    finally:
        slow.kill()
        slow.wait(10)
    assert stopped - asked_at < 0.5 and stopped - started < 2


@pytest.mark.django_db
def test_a_deployment_the_previous_release_inserts_is_due_for_the_runner():
    """During a rolling upgrade old web pods insert deployments without the runner's columns: the database
    defaults (migration 0013) fill them, and the row is due."""
    existing = deployment_in(TeamFactory(slug="fraud"))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO deployments_deployment (team_id, name, model_id, environment_id, cluster_id, namespace, "
            "status, status_message, rollout_step, traffic, shadow, endpoint_url, drift, served_traffic, "
            "lock_version, lease_owner, created_at, updated_at) SELECT team_id, 'old-pod', model_id, environment_id, "
            "cluster_id, namespace, 'pending', '', -1, '{}', '{}', '', '{}', '{}', 0, '', now(), now() "
            "FROM deployments_deployment WHERE id = %s RETURNING id", [existing.pk])
        inserted = cursor.fetchone()[0]
    row = Deployment.objects.get(pk=inserted)
    assert (row.desired_generation, row.observed_generation, row.attempts, row.last_error) == (1, 0, 0, "")
    assert runner.kind_get(ROLLOUT_KIND).due().filter(pk=inserted).exists()
