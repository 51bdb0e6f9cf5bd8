"""Monitor runs on the runner (kind monitoring.run): a run orphaned in RUNNING (its worker was killed) is reclaimed
once its lease expires and run again; a failing attempt goes back to the queue with its error; out of attempts the
run needs attention, visible with its last error, until an operator retries it. Every step is audited.

(Before the runner a beat task, monitoring.recover_runs, reclaimed orphans and a run out of attempts ended
`failed`; these tests were rewritten for the runner, which does both in its claim.)"""
import threading
from datetime import timedelta

from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.monitoring.models import MonitorRun
from apps.monitoring.services import RUN_KIND, monitor_run_execute

from . import factories as f


def _orphan(mon, attempts=1, expired=True):
    lease = timezone.now() + timedelta(seconds=-5 if expired else 300)
    return f.run(mon, status="running", attempts=attempts, lease_owner="killed-worker", lease_until=lease,
                 progress=40, progress_message="Computing drift")


def _events(run, action):
    return list(AuditEvent.objects.filter(action=action, object_id=str(run.pk)).values_list("changes", flat=True))


def test_an_expired_running_run_is_reclaimed_and_completes(mon):
    f.logs(mon.model_version, f.frame(600, seed=5))
    orphan, alive = _orphan(mon), _orphan(mon, expired=False)

    assert monitor_run_execute(run_id=alive.pk, report=False) is None  # a live lease: its worker still runs it
    run = monitor_run_execute(run_id=orphan.pk, report=False)

    assert (run.status, run.attempts, run.lease_owner, run.lease_until, run.current_rows) == ("succeeded", 2, "", None,
                                                                                             600)
    [changes] = _events(orphan, "monitoring.run.reclaim")
    assert changes["status"] == ["running", "queued"] and "Attempt 1 lost its runner (killed-worker)" in \
        changes["error"][1]
    alive.refresh_from_db()
    assert (alive.status, alive.lease_owner) == ("running", "killed-worker") and not _events(alive,
                                                                                            "monitoring.run.reclaim")


def test_two_runners_racing_reclaim_an_expired_run_once(transactional_db, mon):
    f.logs(mon.model_version, f.frame(300, seed=5))
    orphan = _orphan(mon)
    start, results = threading.Barrier(2), []

    def execute():
        try:
            start.wait()
            results.append(monitor_run_execute(run_id=orphan.pk, report=False))
        finally:
            connection.close()

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(r is None for r in results) == [False, True]
    assert len(_events(orphan, "monitoring.run.reclaim")) == 1 and len(_events(orphan, "monitoring.run.finish")) == 1


def test_a_run_whose_last_attempt_lost_its_worker_needs_attention(mon):
    orphan = _orphan(mon, attempts=3)  # MONITORING_RUN_MAX_ATTEMPTS = 3

    assert runner.tick(RUN_KIND) == {"needs_attention": 1}

    orphan.refresh_from_db()
    assert (orphan.status, orphan.lease_owner, orphan.lease_until, orphan.attempts) == ("needs_attention", "", None, 3)
    assert orphan.message.startswith("Needs attention after 3 attempt(s): Attempt 3 lost its runner (killed-worker)")
    [changes] = _events(orphan, "monitoring.run.needs_attention")
    assert changes["status"] == ["running", "needs_attention"] and changes["error"][1] == orphan.last_error


def test_a_failing_run_retries_then_needs_attention_and_an_operator_retries_it(mon, team, client_for, engineer,
                                                                                 viewer):
    f.logs(mon.model_version, f.frame(300, seed=5))
    run = f.run(mon, status="queued")
    reference = mon.reference
    type(mon).objects.filter(pk=mon.pk).update(reference=None)  # the reference vanished: the run cannot read it

    assert monitor_run_execute(run_id=run.pk, report=False).status == "queued"
    run.refresh_from_db()
    assert run.attempts == 1 and run.last_error.startswith("AttributeError:") and run.next_attempt_at > timezone.now()
    assert run.message == f"Attempt 1 of 3 failed: {run.last_error}"
    [changes] = _events(run, "monitoring.run.attempt_failed")
    assert changes["status"] == ["running", "queued"] and changes["error"] == [None, run.last_error]
    assert monitor_run_execute(run_id=run.pk, report=False) is None  # backing off: not due yet

    for _ in range(2):
        MonitorRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now())
        monitor_run_execute(run_id=run.pk, report=False)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.next_attempt_at) == ("needs_attention", 3, None)
    assert run.last_error.startswith("AttributeError:")
    assert _events(run, "monitoring.run.needs_attention")[0]["status"] == ["queued", "needs_attention"]
    assert runner.due_count(RUN_KIND) == 0

    # Visible on the monitor page with its last error and Retry, and in the API.
    page = Client()
    page.force_login(engineer)
    html = page.get(f"/monitoring/monitors/{mon.pk}/").content.decode()
    assert 'id="runs-needing-attention"' in html and escape(run.last_error) in html and "retry-run" in html
    assert client_for(viewer).get(f"/api/v1/monitoring/runs/{run.pk}/").json()["last_error"] == run.last_error

    # Retry: operators only, audited, a fresh round of attempts.
    denied = client_for(viewer).post(f"/api/v1/monitoring/runs/{run.pk}/retry/")
    assert denied.status_code == 403
    type(mon).objects.filter(pk=mon.pk).update(reference=reference)
    response = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/retry/")
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["attempts"], response.json()["last_error"]) == ("queued", 0, "")
    [changes] = _events(run, "monitoring.run.retry")
    assert changes["status"] == ["needs_attention", "queued"]
    assert AuditEvent.objects.get(action="monitoring.run.retry", object_id=str(run.pk)).actor == engineer
    assert runner.tick(RUN_KIND) == {"done": 1}
    run.refresh_from_db()
    assert (run.status, run.attempts, run.current_rows) == ("succeeded", 1, 300)
    again = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/retry/")
    assert again.status_code == 409 and "only a run that needs attention" in again.json()["error"]["message"]


def test_retry_from_the_monitor_page(mon, engineer):
    run = f.run(mon, status="needs_attention", attempts=3, last_error="MemoryError")
    page = Client()
    page.force_login(engineer)
    response = page.post(f"/monitoring/runs/{run.pk}/retry/", follow=True)
    assert f"Run #{run.pk} queued again" in response.content.decode()
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("queued", 0)


def test_a_full_report_that_keeps_failing_needs_attention_and_asking_again_retries(mon, engineer, client_for):
    from apps.monitoring.models import ReportRender
    from apps.monitoring.services import REPORT_KIND

    f.logs(mon.model_version, f.frame(300, seed=5))
    run = monitor_run_execute(run_id=f.run(mon, status="queued").pk, report=False)
    response = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/full-report/")
    assert response.status_code == 202
    render = ReportRender.objects.get(run=run)
    reference = mon.reference
    type(mon).objects.filter(pk=mon.pk).update(reference=None)  # the render cannot read its reference
    assert runner.tick(REPORT_KIND) == {"needs_attention": 1}  # retrying can't bring the reference back
    render.refresh_from_db()
    assert render.status == "needs_attention" and "no reference dataset" in render.last_error
    assert _events(render, "monitoring.report.needs_attention")[0]["status"] == ["queued", "needs_attention"]
    page = Client()
    page.force_login(engineer)
    assert 'id="reports-needing-attention"' in page.get(f"/monitoring/monitors/{mon.pk}/").content.decode()
    assert f"run #{run.pk}" in page.get("/").content.decode()

    type(mon).objects.filter(pk=mon.pk).update(reference=reference)
    assert client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/full-report/").status_code == 202
    render.refresh_from_db()
    assert (render.status, render.attempts, render.last_error) == ("queued", 0, "")
    assert _events(render, "monitoring.report.retry")[0]["status"] == ["needs_attention", "queued"]
    assert runner.tick(REPORT_KIND) == {"done": 1}
    render.refresh_from_db()
    run.refresh_from_db()
    assert render.status == "done" and run.report.sampled is False
