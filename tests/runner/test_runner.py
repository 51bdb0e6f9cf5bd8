"""The runner (apps/core/runner.py) against real PostgreSQL: claims with SKIP LOCKED, leases that expire and are
reclaimed, a lost lease that fences the handler's write, backoff, and exhaustion into needs_attention.

The kinds here are registered over MonitorRun rows with handlers of the test's own, so each behaviour of the
runner is exercised alone; tests/runner/test_kinds.py covers the kinds the apps register."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.core import runner
from apps.monitoring.models import MonitorRun
from tests.factories import TeamFactory
from tests.monitoring import factories as f


def _needs_attention(row, error):
    MonitorRun.objects.filter(pk=row.pk).update(status="needs_attention")
    audit_record(actor=None, action="test.needs_attention", target=row, team=row.monitor.team,
                 changes={"status": [row.status, "needs_attention"], "error": [None, error]})


def kind(name, handler, **options):
    options.setdefault("backoff", lambda attempts: timedelta(0))
    return runner.register(runner.WorkKind(
        name=f"test.{name}", model=MonitorRun, due=lambda: MonitorRun.objects.filter(status="queued"),
        handler=handler, on_exhausted=_needs_attention, **options))


def finish(lease):
    with lease.holding() as row:
        MonitorRun.objects.filter(pk=row.pk).update(status="succeeded", message=f"done by {lease.owner}")


@pytest.fixture(autouse=True)
def test_kinds_stay_in_their_test(monkeypatch):
    monkeypatch.setattr(runner, "_KINDS", dict(runner._KINDS))


@pytest.fixture
def mon(db):
    return f.monitor(TeamFactory(slug="fraud"))


def queued(mon, n=1, **fields):
    return [f.run(mon, status="queued", window_start=f.T0 + timedelta(days=i), window_end=f.T0 + timedelta(days=i + 1),
                  **fields) for i in range(n)]


def race(workers: int, target):
    start, results, errors = threading.Barrier(workers), [], []

    def work(i):
        try:
            start.wait()
            results.append(target(i))
        except Exception as exc:  # surfaced below, with the thread's error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_two_runners_racing_for_one_row_one_wins(transactional_db):
    [row] = queued(f.monitor(TeamFactory(slug="fraud")))
    calls = []

    def handler(lease):
        calls.append(lease.owner)
        time.sleep(0.5)  # the loser's claim happens while the winner works
        finish(lease)

    kind("race_one", handler)
    results = race(2, lambda i: runner.tick("test.race_one", ids=[row.pk], owner=f"runner-{i}"))

    assert sorted(results, key=len) == [{}, {"done": 1}]
    assert len(calls) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_owner, row.message) == ("succeeded", 1, "", f"done by {calls[0]}")


def test_four_runners_share_twenty_rows_each_done_once(transactional_db):
    rows = queued(f.monitor(TeamFactory(slug="fraud")), 20)
    calls, lock = [], threading.Lock()

    def handler(lease):
        with lock:
            calls.append(lease.pk)
        time.sleep(0.02)
        finish(lease)

    kind("race_many", handler)
    results = race(4, lambda i: runner.tick("test.race_many", owner=f"runner-{i}"))

    assert sorted(calls) == sorted(r.pk for r in rows)  # every row once, none twice
    assert sum(r.get("done", 0) for r in results) == 20
    assert set(MonitorRun.objects.values_list("status", "attempts").distinct()) == {("succeeded", 1)}


def test_a_live_lease_is_left_alone_and_an_expired_one_is_reclaimed(mon):
    [row] = queued(mon)
    kind("reclaim", finish)
    dead = runner.claim(runner.kind_get("test.reclaim"), owner="killed-worker")  # claimed, then the worker died
    assert dead.attempt == 1

    assert runner.tick("test.reclaim") == {}  # the lease is live: nobody else takes the row
    MonitorRun.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    seen = {}

    def handler(lease):
        seen["error"] = lease.row().last_error
        finish(lease)

    kind("reclaim", handler)
    assert runner.tick("test.reclaim", owner="next-runner") == {"done": 1}

    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_owner, row.lease_until) == ("succeeded", 2, "", None)
    assert "Attempt 1 lost its runner (killed-worker)" in seen["error"]
    assert row.last_error == ""  # a success clears it


def test_a_lost_lease_stops_the_handler_from_writing(mon):
    [row] = queued(mon)
    outcome = {}

    def handler(lease):
        # Meanwhile our lease expired (a long GC pause, a network partition) and another runner took the row.
        MonitorRun.objects.filter(pk=lease.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        outcome["other"] = runner.claim(lease.kind, owner="other-runner")
        outcome["extend"] = lease.extend()
        finish(lease)  # raises LeaseLost: nothing is written
        outcome["wrote"] = True

    kind("lost", handler)
    assert runner.tick("test.lost", owner="slow-runner", limit=1) == {"lease_lost": 1}

    assert outcome["other"].owner == "other-runner" and outcome["extend"] is False and "wrote" not in outcome
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.attempts, row.message) == ("queued", "other-runner", 2, "")
    with pytest.raises(runner.LeaseLost):
        runner.Lease(kind=runner.kind_get("test.lost"), pk=row.pk, owner="slow-runner", attempt=1).check()


def test_a_failure_backs_off_then_exhaustion_needs_attention_and_is_audited(mon):
    [row] = queued(mon)

    def handler(lease):
        raise ConnectionError("MLflow unreachable")

    kind("exhaust", handler, max_attempts=3, backoff=lambda attempts: timedelta(seconds=30 * attempts))
    assert runner.tick("test.exhaust") == {"retry": 1}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 1, "")
    assert row.last_error == "ConnectionError: MLflow unreachable"
    assert timedelta(seconds=25) < row.next_attempt_at - timezone.now() <= timedelta(seconds=30)
    assert runner.tick("test.exhaust") == {}  # backing off: not due yet
    assert runner.due_count("test.exhaust") == 0

    for attempt in (2, 3):
        MonitorRun.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
        assert runner.tick("test.exhaust") == ({"retry": 1} if attempt < 3 else {"needs_attention": 1})
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_owner, row.next_attempt_at) == ("needs_attention", 3, "", None)
    assert row.last_error == "ConnectionError: MLflow unreachable"
    event = AuditEvent.objects.get(action="test.needs_attention", object_id=str(row.pk))
    assert event.changes["error"] == [None, "ConnectionError: MLflow unreachable"]
    assert runner.tick("test.exhaust") == {}  # needs attention: no longer due


def test_a_permanent_failure_needs_attention_at_once(mon):
    [row] = queued(mon)

    def handler(lease):
        raise runner.PermanentFailure("The version was deleted in MLflow.")

    kind("permanent", handler, max_attempts=10)
    assert runner.tick("test.permanent") == {"needs_attention": 1}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("needs_attention", 1, "The version was deleted in MLflow.")


def test_a_row_whose_last_attempt_lost_its_worker_needs_attention_without_running(mon):
    [row] = queued(mon, lease_owner="killed-worker", attempts=3,
                   lease_until=timezone.now() - timedelta(seconds=1))
    ran = []
    kind("lost_last", ran.append, max_attempts=3)

    assert runner.tick("test.lost_last") == {"needs_attention": 1}
    assert ran == []
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_owner) == ("needs_attention", 3, "")
    assert "Attempt 3 lost its runner (killed-worker)" in row.last_error


def test_retry_now_makes_a_row_due_with_a_fresh_round(mon):
    [row] = queued(mon, attempts=3, next_attempt_at=timezone.now() + timedelta(hours=1), last_error="boom")
    kind("retry", finish, max_attempts=3)
    assert runner.due_count("test.retry") == 0

    runner.retry_now(row=row, fields={"last_error": ""})
    assert runner.due_count("test.retry") == 1
    assert runner.tick("test.retry") == {"done": 1}
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("succeeded", 1)


def test_kinds_are_registered_once_per_model():
    kind("unique", finish)
    with pytest.raises(ValueError, match="already registered"):
        runner.register(runner.WorkKind(name="test.unique", model=AuditEvent, due=AuditEvent.objects.none,
                                        handler=finish, on_exhausted=_needs_attention))
    with pytest.raises(ValueError, match="queue must be"):
        runner.register(runner.WorkKind(name="test.queue", model=MonitorRun, due=MonitorRun.objects.none,
                                        handler=finish, on_exhausted=_needs_attention, queue="fast"))
    with pytest.raises(LookupError, match="No work kind named"):
        runner.kind_get("test.nothing")


def test_a_lost_wake_up_hint_delays_work_until_the_sweep(celery_worker_process, private_broker):
    """The queued run's hint never reaches a worker (Redis lost it, the process died before on-commit): the row is
    still due, and the beat's sweep sends a tick to the kind's queue, where a real worker does the run."""
    from apps.core.tasks import sweep_task
    from apps.monitoring.services import RUN_KIND

    mon = f.monitor(TeamFactory(slug="fraud"))
    f.logs(mon.model_version, f.frame(300, seed=3))
    [row] = queued(mon)  # written without its outbox message: the hint is lost
    time.sleep(2)
    row.refresh_from_db()
    assert row.status == "queued"

    assert sweep_task() == {RUN_KIND: 1}  # what the beat runs every RUNNER_SWEEP_SECONDS
    deadline = time.monotonic() + 90
    while MonitorRun.objects.get(pk=row.pk).status != "succeeded":
        assert time.monotonic() < deadline, MonitorRun.objects.get(pk=row.pk).progress_message
        time.sleep(0.3)
    row.refresh_from_db()
    assert (row.attempts, row.lease_owner, row.current_rows) == (1, "", 300)
    assert sweep_task() == {}  # nothing due any more
