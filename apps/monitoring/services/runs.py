"""Monitor runs: queue a window, compute drift and performance, store the report."""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import runner
from apps.core.errors import Conflict, InvalidInput
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import columnar, engine, logstore, summaries
from ..choices import ColumnKind, ColumnRole, MonitorState, RunStatus, Window
from ..models import FeatureDrift, Monitor, MonitorRun, PartitionSummary, ReferenceDataset
from . import partition_summaries
from ..transitions import run_transition
from .alerts import _evaluate_alerts
from .reports import _store_report

logger = logging.getLogger(__name__)

WINDOW_LENGTH = {Window.HOURLY: timedelta(hours=1), Window.DAILY: timedelta(days=1)}
RUN_KIND = "monitoring.run"  # the runner's work kind (apps/monitoring/runner.py)


def _floor(ts: datetime, window: str) -> datetime:
    ts = ts.astimezone(dt_timezone.utc)
    if window == Window.HOURLY:
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def last_complete_window(monitor: Monitor, now: datetime | None = None) -> tuple[datetime, datetime]:
    end = _floor(now or timezone.now(), monitor.window)
    return end - WINDOW_LENGTH[monitor.window], end


@transaction.atomic
def monitor_run_request(*, actor, monitor: Monitor, window_start: datetime | None = None,
                        window_end: datetime | None = None, trigger: str = "manual") -> MonitorRun:
    """Queue a run ("Run now" or the schedule). Without a window: the one that ends now (manual) or
    the last complete window (schedule). A scheduled window is queued once."""
    if trigger == "manual":
        require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    if monitor.reference_id is None:
        raise Conflict(f"Monitor '{monitor.name}' has no reference data yet; upload or select a reference first.")
    if (window_start is None) != (window_end is None):
        raise InvalidInput("Give both window_start and window_end, or neither (the window that ends now).",
                           fields={"window_end" if window_end is None else "window_start": ["Required with the other."]})
    if window_start is None:
        if trigger == "manual":
            window_end = timezone.now()
            window_start = window_end - WINDOW_LENGTH[monitor.window]
        else:
            window_start, window_end = last_complete_window(monitor)
    if window_end <= window_start:
        raise InvalidInput("window_end must be after window_start.", fields={"window_end": ["Before the start."]})
    if window_end - window_start > timedelta(days=31):
        raise InvalidInput("A window may span at most 31 days.", fields={"window_end": ["Window too long."]})
    if trigger != "manual":
        existing = MonitorRun.objects.filter(monitor=monitor, window_start=window_start, window_end=window_end,
                                             trigger=trigger).first()
        if existing:
            return existing
    run = MonitorRun.objects.create(monitor=monitor, window_start=window_start, window_end=window_end, trigger=trigger,
                                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                                    progress_message="Queued")
    audit_record(actor=actor, action="monitoring.run.request", target=run, team=monitor.team,
                 changes={"monitor": [None, monitor.name], "window": [None, f"{window_start.isoformat()} – {window_end.isoformat()}"],
                          "trigger": [None, trigger]})
    outbox_enqueue(topic="monitoring.run_monitor", payload={"run_id": run.pk}, dedup_key=f"monitoring-run:{run.pk}",
                   team=monitor.team)
    return run


def _progress(lease: runner.Lease):
    """Each progress step also extends the run's lease (a worker that reports is alive); a runner whose lease was
    taken over stops at its next step (LeaseLost)."""
    def update(percent: int, message: str):
        lease.check(progress=min(percent, 99), progress_message=message[:200])
    return update


def _specs(monitor: Monitor, reference: ReferenceDataset) -> list[engine.ColumnSpec]:
    watched = set(monitor.features)
    specs = []
    for col in reference.schema:
        if col["role"] == ColumnRole.FEATURE and (not watched or col["name"] in watched):
            pass
        elif col["role"] == ColumnRole.PREDICTION and monitor.prediction_drift:
            pass
        else:
            continue
        numeric = col["kind"] == ColumnKind.NUMERIC
        specs.append(engine.ColumnSpec(
            name=col["name"], kind=col["kind"], role=col["role"],
            method=monitor.numeric_method if numeric else monitor.categorical_method,
            threshold=monitor.numeric_threshold if numeric else monitor.categorical_threshold))
    return specs


def _performance(monitor: Monitor, reference: ReferenceDataset, start, end) -> dict:
    pairs = logstore.labelled_pairs(model_version_id=monitor.model_version_id, start=start, end=end)
    if not pairs:
        return {}
    target = next((c for c in reference.schema if c["role"] == ColumnRole.TARGET), None)
    regression = target is not None and target["kind"] == ColumnKind.NUMERIC
    if regression:
        import numpy as np

        rows = [(p, l) for _, p, _, l in pairs if p is not None and l is not None]
        if not rows:
            return {"labelled_rows": len(pairs)}
        pred, truth = np.array(rows, dtype=float).T
        err = pred - truth
        return {"labelled_rows": len(rows), "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2)))}
    from sklearn.metrics import accuracy_score, f1_score

    def norm(text, num):
        if num is not None and float(num).is_integer():
            return str(int(num))
        return str(num) if num is not None else str(text)

    pred = [norm(p, pn) for p, pn, _, _ in pairs]
    truth = [norm(v, vn) for _, _, v, vn in pairs]
    return {"labelled_rows": len(pairs), "accuracy": float(accuracy_score(truth, pred)),
            "f1": float(f1_score(truth, pred, average="macro"))}


def run_performance_refresh(*, run: MonitorRun) -> MonitorRun:
    """Recompute a finished run's performance from the labels that have arrived since (labels come late)."""
    if run.monitor.reference_id is None:
        return run
    run.performance = _performance(run.monitor, run.monitor.reference, run.window_start, run.window_end)
    run.save(update_fields=["performance"])
    return run


def monitor_run_execute(*, run_id: int, report: bool = True) -> MonitorRun | None:
    """Claim one due run and do it now, through the runner (what a worker does for a hint; tests and the demo
    call it directly). None when the run is not due: another worker holds it, or it is finished."""
    lease = runner.claim(runner.kind_get(RUN_KIND), ids=[run_id])
    if lease is None:
        return None
    runner.run_lease(lease, handler=lambda lease: run_attempt(lease, report=report))
    return MonitorRun.objects.select_related("monitor").get(pk=run_id)


def run_attempt(lease: runner.Lease, *, report: bool = True) -> None:
    """The runner's handler for one attempt at a run: compute outside any transaction, record the result
    under the lease. A failure puts the run back in the queue (audited) and raises, so the runner backs off,
    and after MONITORING_RUN_MAX_ATTEMPTS moves it to needs_attention (run_needs_attention)."""
    with lease.holding() as run:
        if run.status == RunStatus.RUNNING:  # the previous attempt's worker died: say so in the run's history
            run_transition(run=run, from_=RunStatus.RUNNING, to=RunStatus.QUEUED, action="monitoring.run.reclaim",
                           changes={"attempts": [None, run.attempts - 1], "error": [None, run.last_error]},
                           progress=0, progress_message="Queued again after a lost worker")
        run_transition(run=run, from_=RunStatus.QUEUED, to=RunStatus.RUNNING, action="monitoring.run.start",
                       changes={"attempt": [None, lease.attempt]}, progress=1, progress_message="Reading the window")
    return _guarded(lease, lambda run: _compute(run, lease, report=report))


def run_resume(lease: runner.Lease):
    """Finish a sketch-mode attempt whose partitions the workers summarized (the fan-out's reduce, called by the
    last map task through runner.resume): merge and test; a partition still missing is summarized here."""
    return _guarded(lease, lambda run: _compute(run, lease, report=True, resumed=True))


def run_fanout_step(*, run_id: int, owner: str, attempt: int, key: str, keys: list[str], since: str):
    """One map task of a fan-out: summarize partition `key` for the run, extending its lease; the task that finds
    every partition of the fan-out (`keys`, dispatched at `since`) summarized finishes the run (runner.resume).
    A step whose run moved on (finished, reclaimed by another attempt) does nothing."""
    lease = runner.Lease(kind=runner.kind_get(RUN_KIND), pk=run_id, owner=owner, attempt=attempt)
    if not lease.extend():
        return "lease_lost"
    run = MonitorRun.objects.select_related("monitor__reference").get(pk=run_id)
    monitor = run.monitor
    part = next((p for p in columnar.partitions(model_version_id=monitor.model_version_id, start=run.window_start,
                                                end=run.window_end) if p.key == key), None)
    try:
        if part is not None:
            partition_summaries.partition_summary_build(model_version_id=monitor.model_version_id,
                                                        reference=monitor.reference, partition=part)
    except Exception as exc:  # the attempt fails now (recorded, backed off), not when its lease runs out
        def fail(_run):
            raise exc
        return runner.resume(RUN_KIND, pk=run_id, owner=owner, attempt=attempt,
                             handler=lambda lease: _guarded(lease, fail))
    done = PartitionSummary.objects.filter(reference=monitor.reference, key__in=keys,
                                           updated_at__gte=datetime.fromisoformat(since)).count()
    if not lease.extend(progress=10 + int(50 * done / len(keys)),
                        progress_message=f"{done} of {len(keys)} partitions summarized on the workers"):
        return "lease_lost"
    if done < len(keys):
        return "waiting"
    return runner.resume(RUN_KIND, pk=run_id, owner=owner, attempt=attempt, handler=run_resume)


def _guarded(lease: runner.Lease, work):
    run = MonitorRun.objects.select_related("monitor__reference", "monitor__team").get(pk=lease.pk)
    try:
        return work(run)
    except runner.LeaseLost:
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1900]
        with lease.holding():
            run_transition(run=run, from_=RunStatus.RUNNING, to=RunStatus.QUEUED, action="monitoring.run.attempt_failed",
                           changes={"attempt": [None, lease.attempt], "error": [None, error]},
                           message=f"Attempt {lease.attempt} of {lease.kind.max_attempts} failed: {error}",
                           progress=0, progress_message="Waiting to retry")
        raise


def _sketch_drift(run: MonitorRun, lease: runner.Lease, specs, progress, *, fan_out: bool):
    """Sketch mode: merge the window's partition summaries and test them. Missing summaries are built here, or,
    when there are MONITORING_FANOUT_MIN_PARTITIONS or more, by one bulk-queue task per partition: this attempt
    is then handed off under its lease and the last task finishes it (run_fanout_step)."""
    monitor, reference = run.monitor, run.monitor.reference
    plan = partition_summaries.window_plan(model_version_id=monitor.model_version_id, reference=reference,
                                           start=run.window_start, end=run.window_end)
    if fan_out and len(plan.missing) >= settings.MONITORING_FANOUT_MIN_PARTITIONS:
        from ..tasks import summarize_partition_task

        keys, since = [p.key for p in plan.missing], timezone.now().isoformat()
        progress(10, f"Summarizing {len(keys)} partitions on the workers")
        for key in keys:
            summarize_partition_task.apply_async(kwargs={"run_id": run.pk, "owner": lease.owner, "attempt": lease.attempt,
                                                         "key": key, "keys": keys, "since": since}, queue=runner.BULK)
        return runner.HANDED_OFF
    merged = partition_summaries.window_summary(model_version_id=monitor.model_version_id, reference=reference,
                                                start=run.window_start, end=run.window_end, progress=progress)
    progress(70, "Testing the merged summaries")
    return summaries.window_drift(merged, specs=specs, reference=engine.load_reference(reference))


# What an attempt measures of the window before testing it; an attempt that fans out saves them with the hand-off
# so that its reduce (run_resume) does not scan the window's rows again (minutes at 100M rows).
MEASURED = ("current_rows", "latency_p50", "latency_p95", "error_rate", "reference_rows", "performance",
            "feature_count", "drift_mode", "rank_error")


def _measure(run: MonitorRun, specs) -> bool:
    """Volume, latency, errors and performance of the window onto `run`; True when some of its days are only in
    archived summaries (retention dropped their rows)."""
    monitor, reference = run.monitor, run.monitor.reference
    summary = logstore.window_summary(model_version_id=monitor.model_version_id, start=run.window_start,
                                      end=run.window_end)
    # Days whose raw rows retention dropped still count through their summaries (tested in sketch mode).
    archived = partition_summaries.archived_rows(model_version_id=monitor.model_version_id, reference=reference,
                                                 start=run.window_start, end=run.window_end)
    run.current_rows = summary["rows"] + archived
    run.latency_p50, run.latency_p95, run.error_rate = summary["latency_p50"], summary["latency_p95"], summary["error_rate"]
    run.reference_rows = reference.row_count
    run.performance = _performance(monitor, reference, run.window_start, run.window_end)
    run.feature_count = sum(s.role == ColumnRole.FEATURE for s in specs)
    return bool(archived)


def _compute(run: MonitorRun, lease: runner.Lease, *, report: bool, resumed: bool = False):
    """One attempt's work. `resumed`: the reduce of this attempt's fan-out, which measured the window before it
    handed off (MEASURED, on the row)."""
    monitor, reference = run.monitor, run.monitor.reference
    started = time.perf_counter()
    progress = _progress(lease)
    specs = _specs(monitor, reference)
    # A hand-off always saves drift_mode "sketch"; one saved before MEASURED existed did not: measure again.
    archived = False if resumed and run.drift_mode == "sketch" else _measure(run, specs)
    if run.current_rows < max(monitor.min_rows, 1):
        run.state = MonitorState.NO_DATA
        run.message = (f"Not enough data: {run.current_rows} rows in this window, the monitor needs at least "
                       f"{monitor.min_rows}.")
        _finish(run, lease, started, [], outcome=RunStatus.NOT_ENOUGH_DATA)
        return
    if resumed or archived or run.current_rows > (monitor.exact_max_rows or settings.MONITORING_EXACT_MAX_ROWS):
        run.drift_mode, run.rank_error = "sketch", summaries.rank_error(summaries.kll_k())
        result = _sketch_drift(run, lease, specs, progress, fan_out=not resumed)
        if result == runner.HANDED_OFF:
            with lease.holding():
                MonitorRun.objects.filter(pk=run.pk).update(**{name: getattr(run, name) for name in MEASURED})
            return result
    else:
        run.drift_mode, run.rank_error = "exact", None
        result = engine.window_drift(model_version_id=monitor.model_version_id, start=run.window_start,
                                     end=run.window_end, specs=specs, reference=engine.load_reference(reference),
                                     progress=progress)
    rows = []
    for spec, res in result.results:
        key = engine.PREDICTION if spec.role == ColumnRole.PREDICTION else spec.name
        rows.append(FeatureDrift(run=run, column=spec.name, role=spec.role, kind=spec.kind, method=res.method,
                                 score=_finite(res.score), score_kind=res.score_kind, threshold=res.threshold,
                                 drifted=res.drifted, reference_count=res.reference_count,
                                 current_count=res.current_count, null_count=result.null_counts.get(key, 0),
                                 notes="; ".join(res.notes)[:1000], distribution=result.distributions.get(spec.name, {})))
    for spec in specs:
        if spec.name in result.failures:
            rows.append(FeatureDrift(run=run, column=spec.name, role=spec.role, kind=spec.kind, status="not_enough_data",
                                     notes=result.failures[spec.name][:1000]))
    tested = [r for r in rows if r.role == ColumnRole.FEATURE and r.status == "ok"]
    run.drifted_count = sum(r.drifted for r in tested)
    run.drift_share = run.drifted_count / len(tested) if tested else None
    run.dataset_drift = bool(tested) and run.drift_share >= monitor.drift_share
    pred = next((r for r in rows if r.role == ColumnRole.PREDICTION and r.status == "ok"), None)
    run.prediction_score = pred.score if pred else None
    run.prediction_drifted = pred.drifted if pred else None
    if not tested:
        outcome, run.state = RunStatus.NOT_ENOUGH_DATA, MonitorState.NO_DATA
        run.message = "Not enough data: every watched feature is empty or null in this window. " + \
            "; ".join(result.failures.values())[:1500]
    else:
        outcome = RunStatus.SUCCEEDED
        run.state = (MonitorState.DRIFTING if run.dataset_drift
                     else MonitorState.WARNING if run.drifted_count or run.prediction_drifted else MonitorState.OK)
        run.message = (f"{run.drifted_count} of {len(tested)} features drifted "
                       f"(dataset drift at {monitor.drift_share:.0%}).")
        if result.failures:
            run.message += " Not enough data for: " + ", ".join(result.failures) + "."
    if report and tested:
        progress(92, "Rendering the Evidently report")
        try:
            _store_report(run, reference, rows)
        except Exception as exc:  # the verdicts stand without the HTML
            # The page says what happened in words; the exception text is for operators (the server log).
            logger.exception("Evidently report failed for run %s: %s", run.pk, exc)
            run.message += (" The detailed Evidently report could not be built for this window; the drift results "
                            f"above stand (details in the server log, run {run.pk}).")
    _finish(run, lease, started, rows, outcome=outcome)


def run_needs_attention(run: MonitorRun, error: str) -> None:
    """The runner's on_exhausted: out of attempts (or its last attempt's worker died), the run waits, visible with
    its last error, for someone to retry it."""
    run_transition(run=run, from_=run.status, to=RunStatus.NEEDS_ATTENTION, action="monitoring.run.needs_attention",
                   changes={"attempts": [None, run.attempts], "error": [None, error]},
                   message=f"Needs attention after {run.attempts} attempt(s): {error}"[:2000],
                   progress=0, progress_message="Needs attention")


@transaction.atomic
def monitor_run_retry(*, actor, run: MonitorRun) -> MonitorRun:
    """Retry a run that needs attention: a fresh round of attempts (operators of its team; audited)."""
    require_capability(user=actor, team=run.monitor.team, capability=Capability.OPERATE)
    run = MonitorRun.objects.select_for_update(of=("self",)).select_related("monitor__team").get(pk=run.pk)
    if run.status != RunStatus.NEEDS_ATTENTION:
        raise Conflict(f"Run {run.pk} is {RunStatus(run.status).label.lower()}; only a run that needs attention "
                       f"can be retried.", extra={"status": run.status})
    run_transition(run=run, from_=RunStatus.NEEDS_ATTENTION, to=RunStatus.QUEUED, action="monitoring.run.retry",
                   actor=actor, changes={"error": [run.last_error, None]}, message="", progress=0,
                   progress_message="Queued again (retry)")
    runner.retry_now(row=run, fields={"last_error": ""})
    runner.wake(RUN_KIND, ids=[run.pk])
    run.refresh_from_db()
    return run


def _finite(value):
    return value if value is not None and math.isfinite(value) else (None if value is None or math.isnan(value) else
                                                                     (1e308 if value > 0 else -1e308))


def _finish(run: MonitorRun, lease: runner.Lease, started: float, rows: list[FeatureDrift], *, outcome: str) -> None:
    """Record the result, under the lease (a runner whose lease was taken over writes nothing)."""
    with lease.holding() as current:
        _record(run, current, started, rows, outcome=outcome)


def _record(run: MonitorRun, current: MonitorRun, started: float, rows: list[FeatureDrift], *, outcome: str) -> None:
    run.duration_s = time.perf_counter() - started
    run.finished_at = timezone.now()
    run.progress, run.progress_message = 100, "Done"
    # The lease fields are the runner's: keep the row's own (the runner releases the lease after this commits).
    for name in ("lease_owner", "lease_until", "attempts", "next_attempt_at", "last_error"):
        setattr(run, name, getattr(current, name))
    FeatureDrift.objects.filter(run=run).delete()
    FeatureDrift.objects.bulk_create(rows)
    run.save(update_fields=[f.name for f in MonitorRun._meta.concrete_fields if f.name not in ("id", "status")])
    # The status moves (running → succeeded | not enough data) only through the run's transition, audited.
    if not run_transition(run=run, from_=RunStatus.RUNNING, to=outcome, action="monitoring.run.finish",
                          changes={"state": [None, run.state], "drift_share": [None, run.drift_share]}):
        return
    run.refresh_from_db(fields=["status"])
    monitor = run.monitor
    latest = MonitorRun.objects.filter(monitor=monitor).exclude(status__in=[RunStatus.QUEUED, RunStatus.RUNNING,
                                                                            RunStatus.FAILED, RunStatus.NEEDS_ATTENTION]).order_by(
        "-window_end", "-id").first()
    if latest and latest.pk == run.pk:
        Monitor.objects.filter(pk=monitor.pk).update(state=run.state, last_run_at=run.finished_at)
    _evaluate_alerts(run)
