"""Every read of the monitoring app; always given the user (or, for prediction_counts_by_deployment, ids the caller scoped)."""
from __future__ import annotations

import gzip
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from apps.core.errors import NotFound
from apps.teams.selectors import scope_to_teams

from . import logstore
from .choices import AlertStatus, MonitorState
from .models import Alert, Monitor, MonitorRun, PredictionBatch, ReferenceDataset, RunReport


def _get(queryset, pk, label):
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"{label} {pk} not found.")


def monitor_list(*, user) -> QuerySet[Monitor]:
    return scope_to_teams(Monitor.objects.select_related("team", "model_version__model", "reference", "deployment"),
                          user=user).annotate(
        open_alerts=Count("alerts", filter=~Q(alerts__status=AlertStatus.RESOLVED), distinct=True)).order_by(
        "team__slug", "name")


def monitor_get(*, user, monitor_id) -> Monitor:
    return _get(monitor_list(user=user), monitor_id, "Monitor")


def overview(*, user) -> list[dict]:
    """Every monitor the user sees with its state, worst first."""
    order = {MonitorState.DRIFTING: 0, MonitorState.WARNING: 1, MonitorState.NO_DATA: 2, MonitorState.OK: 3}
    rows = []
    for monitor in monitor_list(user=user):
        last = monitor.runs.exclude(status__in=["queued", "running"]).order_by("-window_end", "-id").first()
        rows.append({"monitor": monitor, "last_run": last, "state": monitor.state})
    rows.sort(key=lambda r: (order.get(r["state"], 9), r["monitor"].name))
    return rows


def run_list(*, user, monitor_id=None) -> QuerySet[MonitorRun]:
    qs = scope_to_teams(MonitorRun.objects.select_related("monitor__team"), user=user, field="monitor__team")
    if monitor_id is not None:
        qs = qs.filter(monitor_id=monitor_id)
    return qs


def run_get(*, user, run_id) -> MonitorRun:
    return _get(run_list(user=user), run_id, "Run")


def run_report_gz(*, user, run_id) -> bytes:
    """The run's Evidently report as stored: gzipped HTML."""
    run = run_get(user=user, run_id=run_id)
    report = getattr(run, "report", None) if hasattr(run, "report") else None
    if report is None:
        raise NotFound(f"Run {run_id} has no Evidently report (it had not enough data, or is still running).")
    return bytes(report.html_gz)


def run_report_html(*, user, run_id) -> str:
    return gzip.decompress(run_report_gz(user=user, run_id=run_id)).decode()


def run_summary(*, user, run_id) -> dict:
    """The lightweight report of a run: how it was tested (exact or sketch, with the bound), every column's
    verdict and its reference-vs-current distribution (in sketch mode drawn from the partition summaries)."""
    run = run_get(user=user, run_id=run_id)
    features = list(run.features.order_by("-drifted", "role", "column"))
    for f in features:
        f.score_text = score_text(f.score, f.score_kind)
    report = RunReport.objects.filter(run=run).only("sampled", "reference_rows", "current_rows").first()
    return {"run": run, "monitor": run.monitor, "features": features, "report": report,
            "chart": [{"column": f.column, "drifted": f.drifted, "distribution": f.distribution} for f in features
                      if f.status == "ok" and f.distribution]}


def alert_list(*, user, status: str | None = None) -> QuerySet[Alert]:
    qs = scope_to_teams(Alert.objects.select_related("team", "monitor", "first_run", "last_run"), user=user)
    if status:
        qs = qs.filter(status=status)
    return qs


def alert_get(*, user, alert_id) -> Alert:
    return _get(alert_list(user=user), alert_id, "Alert")


def reference_list(*, user) -> QuerySet[ReferenceDataset]:
    return scope_to_teams(ReferenceDataset.objects.select_related("team", "model_version__model"),
                          user=user).defer("sample_parquet")


def reference_get(*, user, reference_id) -> ReferenceDataset:
    return _get(reference_list(user=user), reference_id, "Reference dataset")


def batch_list(*, user) -> QuerySet[PredictionBatch]:
    return scope_to_teams(PredictionBatch.objects.select_related("team", "model_version__model"), user=user)


def batch_get(*, user, batch_pk) -> PredictionBatch:
    return _get(batch_list(user=user), batch_pk, "Prediction batch")


def score_text(score: float | None, score_kind: str = "") -> str:
    """A drift score as people read it: a p-value below 0.001 is "< 0.001" (2.42e-122 says no more than that),
    anything else 3 significant digits."""
    if score is None:
        return "—"
    if score_kind == "p_value" and score < 0.001:
        return "< 0.001"
    return f"{score:.3g}"


def dashboard(*, user, monitor_id, limit: int = 60) -> dict:
    """Data for the drift dashboard: runs oldest → newest, heatmap matrix, latest run's features."""
    monitor = monitor_get(user=user, monitor_id=monitor_id)
    runs = list(monitor.runs.exclude(status__in=["queued", "running"]).select_related("report")
                .defer("report__html_gz").prefetch_related("features").order_by("-window_end", "-id")[:limit])[::-1]
    features = sorted({f.column for r in runs for f in r.features.all() if f.role == "feature"})
    scores = {(f.run_id, f.column): f for r in runs for f in r.features.all()}
    labels = [r.window_start.strftime("%m-%d %H:%M") for r in runs]
    heat = []
    for col in features:
        row = []
        for r in runs:
            f = scores.get((r.pk, col))
            # 1 = drifted, 0 = tested and fine, None = not enough data; hover shows the score
            row.append(None if f is None or f.status != "ok" else (1 if f.drifted else 0))
        heat.append(row)
    hover = [[(f"{scores[(r.pk, c)].method} {score_text(scores[(r.pk, c)].score, scores[(r.pk, c)].score_kind)}"
               if (r.pk, c) in scores and scores[(r.pk, c)].score is not None else "no data") for r in runs]
             for c in features]
    latest = next((r for r in reversed(runs) if r.status == "succeeded"), None)
    top = list(latest.features.filter(status="ok").order_by("-drifted", "column")) if latest else []
    for f in top:
        f.score_text = score_text(f.score, f.score_kind)
    predictions = [f for r in runs for f in r.features.all() if f.role == "prediction"]
    return {
        "monitor": monitor,
        "runs": runs,
        "latest": latest,
        "top": top,
        "chart": {
            "labels": labels,
            "run_ids": [r.pk for r in runs],
            "features": features,
            "heat": heat,
            "hover": hover,
            "drift_share": [r.drift_share for r in runs],
            "threshold": monitor.drift_share,
            "volume": [r.current_rows for r in runs],
            "p50": [r.latency_p50 for r in runs],
            "p95": [r.latency_p95 for r in runs],
            "error_rate": [r.error_rate for r in runs],
            "prediction_score": [r.prediction_score for r in runs],
            # What the prediction score is (a p-value or a distance), for the chart's axis title.
            "prediction_score_kind": next((f"{p.method} {'p-value' if p.score_kind == 'p_value' else 'distance'}"
                                           for p in reversed(predictions) if p), "score"),
            "performance": {name: [r.performance.get(name) for r in runs] for name in ("accuracy", "f1", "mae", "rmse")
                            if any(name in r.performance for r in runs)},
            "top": [{"column": f.column, "kind": f.kind, "drifted": f.drifted, "method": f.method, "score": f.score,
                     "score_text": f.score_text, "distribution": f.distribution} for f in top[:6]],
            "prediction": next(({"column": f.column, "distribution": f.distribution, "kind": f.kind}
                                for f in top if f.role == "prediction"), None),
        },
        "alerts": list(monitor.alerts.exclude(status=AlertStatus.RESOLVED)),
    }


def prediction_counts_by_deployment(*, model_version_ids, start: datetime,
                                    end: datetime) -> dict[tuple[int, int | None], int]:
    """Predictions logged per (model version, deployment) in [start, end); deployment None for logs sent without one.

    For other apps (costs: cost per prediction). The caller decides which versions it may look at."""
    ids = [int(i) for i in model_version_ids]
    if not ids:
        return {}
    return logstore.count_by_deployment(model_version_ids=ids, start=start, end=end)
