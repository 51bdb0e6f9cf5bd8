"""Run now through the outbox and a real Celery worker: the run finishes with verdicts and a report,
and a redelivered message does nothing."""
import time
from datetime import timedelta

from apps.monitoring.models import MonitorRun
from apps.monitoring.services import monitor_run_request
from apps.outbox.models import OutboxMessage
from apps.outbox.services import _publish
from tests.factories import member

from . import factories as f


def wait_for(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def test_run_now_through_the_outbox_and_a_worker(celery_worker_process, private_broker, team):
    engineer = member(team, "ml_engineer", "eng")
    mon = f.monitor(team)
    f.logs(mon.model_version, f.frame(400, drift=True))
    run = monitor_run_request(actor=engineer, monitor=mon, window_start=f.T0, window_end=f.T0 + timedelta(days=1))
    wait_for(lambda: MonitorRun.objects.get(pk=run.pk).status not in ("queued", "running"))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.state == "drifting" and run.progress == 100
    assert run.features.filter(drifted=True).count() == 5 and hasattr(run, "report")
    finished_at = run.finished_at

    _publish(OutboxMessage.objects.get(dedup_key=f"monitoring-run:{run.pk}"))  # the broker delivers it again
    time.sleep(3)
    run.refresh_from_db()
    assert run.finished_at == finished_at and run.features.count() == 5
