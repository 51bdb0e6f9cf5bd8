"""Evidently reports of monitor runs: the sampled report stored with each run, and the full-data report
asked for from the UI/API, rendered by the runner (kind monitoring.report) outside any transaction."""
from __future__ import annotations

import gzip
import io

from django.conf import settings
from django.db import transaction

from apps.audit.services import audit_record
from apps.core import runner
from apps.core.errors import Conflict
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import columnar, engine
from ..choices import ColumnKind, ColumnRole, RenderStatus, RunStatus
from ..models import FeatureDrift, MonitorRun, ReferenceDataset, ReportRender, RunReport
from ..transitions import render_transition

REPORT_KIND = "monitoring.report"  # the runner's work kind (apps/monitoring/runner.py)


def _store_report(run: MonitorRun, reference: ReferenceDataset, rows: list[FeatureDrift], full: bool = False) -> None:
    RunReport.objects.update_or_create(run=run, defaults=_render_report(run, reference, rows, full=full))


def _render_report(run: MonitorRun, reference: ReferenceDataset, rows: list[FeatureDrift], full: bool = False) -> dict:
    """The Evidently HTML report of a run, with each column's method and threshold set to the ones the run
    used, so it shows the same tests.

    By default on samples (≤ MONITORING_REPORT_SAMPLE rows per side, fixed seed): Evidently on full
    windows costs minutes and GBs (see bench/drift) while the verdicts stored on the run always come
    from the full data. `full=True` (asked for from the UI/API) renders every row of both sides."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    limit = settings.MONITORING_FULL_REPORT_MAX_ROWS if full else settings.MONITORING_REPORT_SAMPLE
    ok = [r for r in rows if r.status == "ok"]
    stored = reference.full_parquet if full and reference.full_parquet else reference.sample_parquet
    ref = pd.read_parquet(io.BytesIO(bytes(stored)))
    rename = {r.column: engine.PREDICTION for r in ok if r.role == ColumnRole.PREDICTION}
    ref = ref.rename(columns=rename)
    names = [rename.get(r.column, r.column) for r in ok]
    numeric = [rename.get(r.column, r.column) for r in ok if r.kind == ColumnKind.NUMERIC]
    categorical = [rename.get(r.column, r.column) for r in ok if r.kind == ColumnKind.CATEGORICAL]
    cur = columnar.read_rows(model_version_id=run.monitor.model_version_id, start=run.window_start,
                             end=run.window_end, numeric=numeric, categorical=categorical, limit=limit).to_pandas()
    ref, cur = ref[names].copy(), cur[names].copy()
    for name in numeric:
        ref[name] = pd.to_numeric(ref[name], errors="coerce")
        cur[name] = pd.to_numeric(cur[name], errors="coerce")
    for name in categorical:
        ref[name] = ref[name].astype("string")
        cur[name] = cur[name].astype("string")
    preset = DataDriftPreset(per_column_method={rename.get(r.column, r.column): r.method for r in ok},
                             per_column_threshold={rename.get(r.column, r.column): r.threshold for r in ok},
                             drift_share=run.monitor.drift_share)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([preset]).run(Dataset.from_pandas(cur, data_definition=definition),
                                    Dataset.from_pandas(ref, data_definition=definition))
    html = snapshot.get_html_str(as_iframe=False)
    return {"html_gz": gzip.compress(html.encode(), 5),
            "sampled": len(ref) < reference.row_count or len(cur) < run.current_rows,
            "reference_rows": len(ref), "current_rows": len(cur)}


@transaction.atomic
def run_full_report_request(*, actor, run: MonitorRun) -> MonitorRun:
    """Queue a full-data Evidently report for a run (replaces its sampled report when done)."""
    monitor = run.monitor
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    limit = settings.MONITORING_FULL_REPORT_MAX_ROWS
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(f"Run {run.pk} is {run.status}; only a finished run with results has a report.")
    report = RunReport.objects.filter(run=run).only("sampled").first()
    if report is not None and not report.sampled:
        raise Conflict(f"The report of run {run.pk} already covers every row.")
    reference = monitor.reference
    if reference is None:
        raise Conflict(f"Monitor {monitor.name} has no reference dataset now, and a full report compares the run "
                       f"with one: set the monitor's reference (PATCH /api/v1/monitoring/monitors/{monitor.pk}/ "
                       f"{{\"reference\": <id>}}), then ask again.")
    if run.current_rows > limit or reference.row_count > limit or (
            reference.row_count > settings.MONITORING_REPORT_SAMPLE and not reference.full_parquet):
        raise Conflict(f"A full-data report is limited to {limit:,} rows per side (this run: {run.current_rows:,} "
                       f"current, {reference.row_count:,} reference rows): Evidently on a 1M-row window takes about "
                       f"100 s and 1.6 GB. The stored report uses a sample; the run's verdicts cover every row.")
    render = ReportRender.objects.select_for_update().filter(run=run).exclude(status=RenderStatus.DONE).first()
    if render is None:
        render = ReportRender.objects.create(run=run, requested_by=actor if getattr(actor, "is_authenticated", False)
                                             else None)
        outbox_enqueue(topic="monitoring.render_report", payload={"run_id": run.pk},
                       dedup_key=f"monitoring-full-report:{run.pk}:{render.pk}", team=monitor.team)
    elif render.status == RenderStatus.NEEDS_ATTENTION:  # asking again is the retry
        render_transition(render, to=RenderStatus.QUEUED, actor=actor, action="monitoring.report.retry",
                          changes={"error": [render.last_error, None]})
        runner.retry_now(row=render, fields={"last_error": ""})
        runner.wake(REPORT_KIND, ids=[render.pk])
    audit_record(actor=actor, action="monitoring.run.full_report", target=run, team=monitor.team,
                 changes={"report": ["sample", "full"]})
    return run


def report_render_attempt(lease: runner.Lease) -> None:
    """The runner's handler (kind monitoring.report): Evidently on every row, outside any transaction (it takes
    minutes on a large window), then the report replaces the sampled one under the lease."""
    render = ReportRender.objects.select_related("run__monitor__reference").get(pk=lease.pk)
    run = render.run
    if run.monitor.reference is None:
        raise runner.PermanentFailure(f"Monitor {run.monitor.name} has no reference dataset now; set one, then ask "
                                      f"for the full report again.")
    rendered = _render_report(run, run.monitor.reference, list(run.features.all()), full=True)
    with lease.holding() as current:
        RunReport.objects.update_or_create(run=run, defaults=rendered)
        render_transition(current, to=RenderStatus.DONE)


def report_render_gave_up(render: ReportRender, error: str) -> None:
    """The runner's on_exhausted: the full report could not be rendered; asking for it again retries."""
    render_transition(render, to=RenderStatus.NEEDS_ATTENTION, action="monitoring.report.needs_attention",
                      changes={"attempts": [None, render.attempts], "error": [None, error]})
