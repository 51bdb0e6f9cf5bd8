"""A run orphaned in RUNNING (its worker was killed) is reclaimed once its lease expires, run again, and
failed with its last error when its attempts are spent; every failure is audited with its state change."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.monitoring.models import MonitorRun
from apps.monitoring.services import monitor_run_execute, monitor_runs_recover
from apps.outbox.models import OutboxMessage

from . import factories as f


def _orphan(mon, attempts=1, expired=True):
    lease = timezone.now() + timedelta(seconds=-5 if expired else 300)
    return f.run(mon, status="running", attempts=attempts, lease_until=lease, progress=40,
                 progress_message="Computing drift")


def _events(run, action):
    return list(AuditEvent.objects.filter(action=action, object_id=str(run.pk)).values_list("changes", flat=True))


def test_an_expired_running_run_is_reclaimed_and_completes(mon):
    f.logs(mon.model_version, f.frame(600, seed=5))
    orphan, alive = _orphan(mon), _orphan(mon, expired=False)

    assert monitor_runs_recover() == {"reclaimed": 1, "failed": 0}

    orphan.refresh_from_db()
    assert (orphan.status, orphan.attempts, orphan.lease_until) == ("queued", 1, None)
    assert "stopped reporting during attempt 1" in orphan.last_error and "Computing drift" in orphan.last_error
    [changes] = _events(orphan, "monitoring.run.reclaim")
    assert changes["status"] == ["running", "queued"]
    assert OutboxMessage.objects.filter(topic="monitoring.run_monitor",
                                        dedup_key=f"monitoring-run:{orphan.pk}:attempt-2").count() == 1
    alive.refresh_from_db()
    assert alive.status == "running" and not _events(alive, "monitoring.run.reclaim")

    run = monitor_run_execute(run_id=orphan.pk, report=False)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.lease_until, run.current_rows) == ("succeeded", 2, None, 600)


def test_two_recoveries_racing_claim_an_expired_run_once(transactional_db, mon):
    orphan = _orphan(mon)
    start, results = threading.Barrier(2), []

    def recover():
        try:
            start.wait()
            results.append(monitor_runs_recover())
        finally:
            connection.close()

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(r["reclaimed"] for r in results) == [0, 1]
    assert len(_events(orphan, "monitoring.run.reclaim")) == 1
    assert OutboxMessage.objects.filter(dedup_key__startswith=f"monitoring-run:{orphan.pk}:").count() == 1


def test_a_run_out_of_attempts_fails_with_its_last_error(mon, settings):
    settings.MONITORING_RUN_MAX_ATTEMPTS = 3
    orphan = _orphan(mon, attempts=3)

    assert monitor_runs_recover() == {"reclaimed": 0, "failed": 1}

    orphan.refresh_from_db()
    assert (orphan.status, orphan.progress, orphan.lease_until) == ("failed", 100, None)
    assert orphan.message.startswith("Run failed after 3 attempts: The worker stopped reporting during attempt 3")
    assert orphan.last_error in orphan.message and orphan.finished_at is not None
    [changes] = _events(orphan, "monitoring.run.fail")
    assert changes["status"] == ["running", "failed"] and changes["attempts"] == [None, 3]
    assert not OutboxMessage.objects.filter(dedup_key__startswith=f"monitoring-run:{orphan.pk}:").exists()


def test_a_failing_run_is_audited_with_its_error(mon):
    run = f.run(mon, status="queued")
    type(mon).objects.filter(pk=mon.pk).update(reference=None)  # the reference vanished: the run cannot read it

    with pytest.raises(AttributeError):
        monitor_run_execute(run_id=run.pk, report=False)

    run = MonitorRun.objects.get(pk=run.pk)
    assert (run.status, run.attempts, run.lease_until) == ("failed", 1, None)
    assert run.last_error.startswith("AttributeError:") and run.message == f"Run failed: {run.last_error}"
    [changes] = _events(run, "monitoring.run.fail")
    assert changes["status"] == ["running", "failed"] and changes["error"] == [None, run.last_error]
