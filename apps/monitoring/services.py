"""Every write of the monitoring app: references, monitors, runs, alerts and prediction ingestion."""
from __future__ import annotations

import gzip
import io
import json
import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_record
from apps.core.errors import Conflict, DomainError, InvalidInput, NotFound
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability
from apps.teams.services import webhooks_notify

from . import drift, engine, logstore
from .choices import AlertKind, AlertStatus, ColumnKind, ColumnRole, MonitorState, ReferenceSource, RunStatus, Window
from .models import (Alert, FeatureDrift, Monitor, MonitorRun, PredictionBatch, PredictionLabel, ReferenceColumn,
                     ReferenceDataset, RunReport)
from .transitions import alert_transition

logger = logging.getLogger(__name__)

WINDOW_LENGTH = {Window.HOURLY: timedelta(hours=1), Window.DAILY: timedelta(days=1)}
RESERVED = {"timestamp", "request_id", "prediction", "score", "latency_ms", "error", "features"}


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


def _team_of(model_version):
    team = model_version.model.team
    if team is None:
        raise Conflict(f"{model_version} has no team yet; a team admin must assign the model to a team first.")
    return team


# ---------------------------------------------------------------------------------------------- references

def _validate_schema(schema: list[dict], *, columns: set[str] | None = None) -> list[dict]:
    if not isinstance(schema, list) or not schema:
        raise InvalidInput("The schema must be a non-empty list of {name, kind, role}.", fields={"schema": ["Empty."]})
    seen, cleaned = set(), []
    for i, col in enumerate(schema):
        if not isinstance(col, dict) or set(col) - {"name", "kind", "role"} or "name" not in col:
            raise InvalidInput(f"Schema entry {i} must be an object with name, kind and role.",
                               fields={"schema": [f"Entry {i} is malformed."]})
        name, kind, role = str(col["name"]), col.get("kind", ColumnKind.NUMERIC), col.get("role", ColumnRole.FEATURE)
        if not name or len(name) > 200 or "\x00" in name:
            raise InvalidInput(f"Schema entry {i}: a column name must have 1 to 200 characters and no NUL.",
                               fields={"schema": [f"Entry {i}: bad name."]})
        if kind not in ColumnKind.values:
            raise InvalidInput(f"Column '{name}': kind must be numeric or categorical, not '{kind}'.",
                               fields={"schema": [f"{name}: unknown kind '{kind}'."]})
        if role not in ColumnRole.values:
            raise InvalidInput(f"Column '{name}': role must be feature, prediction or target, not '{role}'.",
                               fields={"schema": [f"{name}: unknown role '{role}'."]})
        if name in seen:
            raise InvalidInput(f"Column '{name}' appears twice in the schema.", fields={"schema": [f"{name}: duplicate."]})
        if role == ColumnRole.FEATURE and name in RESERVED:
            raise InvalidInput(f"'{name}' is a reserved log field and cannot be a feature name.",
                               fields={"schema": [f"{name}: reserved."]})
        if columns is not None and name not in columns:
            raise InvalidInput(f"Column '{name}' is not in the reference data (it has: {', '.join(sorted(columns))}).",
                               fields={"schema": [f"{name}: not in the data."]})
        seen.add(name)
        cleaned.append({"name": name, "kind": kind, "role": role})
    if sum(c["role"] == ColumnRole.PREDICTION for c in cleaned) > 1:
        raise InvalidInput("At most one column may have the role 'prediction'.")
    if sum(c["role"] == ColumnRole.TARGET for c in cleaned) > 1:
        raise InvalidInput("At most one column may have the role 'target'.")
    if not any(c["role"] == ColumnRole.FEATURE for c in cleaned):
        raise InvalidInput("The schema needs at least one feature column.")
    return cleaned


def read_table(*, content: bytes, filename: str):
    """A DataFrame from CSV or Parquet bytes; a clear 400 for anything else."""
    import pandas as pd

    lower = filename.lower()
    try:
        if lower.endswith(".parquet") or content[:4] == b"PAR1":
            return pd.read_parquet(io.BytesIO(content))
        if lower.endswith(".csv") or lower.endswith(".txt") or not lower:
            return pd.read_csv(io.BytesIO(content))
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise InvalidInput(f"Could not read '{filename}': {str(exc).splitlines()[0][:300]}") from exc
    raise InvalidInput(f"Unsupported file type '{filename}': upload a .csv or .parquet file.")


def _store_reference(*, actor, model_version, name: str, source: str, source_detail: str, frame,
                     schema: list[dict] | None, prediction: str | None, target: str | None) -> ReferenceDataset:
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if frame is None or len(frame) == 0:
        raise InvalidInput("The reference data has no rows.")
    frame.columns = [str(c) for c in frame.columns]
    for role, col in (("prediction", prediction), ("target", target)):
        if col and col not in frame.columns:
            raise InvalidInput(f"The {role} column '{col}' is not in the reference data "
                               f"(columns: {', '.join(frame.columns)}).")
    schema = _validate_schema(schema or engine.infer_schema(frame, prediction=prediction, target=target),
                              columns=set(frame.columns))
    frame = frame[[c["name"] for c in schema]]
    reference = ReferenceDataset.objects.create(
        team=team, model_version=model_version, name=name[:200], source=source, source_detail=source_detail[:1000],
        schema=schema, row_count=len(frame),
        sample_parquet=engine.sample_parquet(frame, limit=settings.MONITORING_REPORT_SAMPLE),
        full_parquet=(engine.sample_parquet(frame, limit=len(frame))
                      if settings.MONITORING_REPORT_SAMPLE < len(frame) <= settings.MONITORING_FULL_REPORT_MAX_ROWS
                      else None),
        created_by=actor if getattr(actor, "is_authenticated", False) else None)
    _prepare_columns(reference, frame)
    audit_record(actor=actor, action="monitoring.reference.create", target=reference,
                 changes={"name": [None, reference.name], "source": [None, source], "rows": [None, len(frame)],
                          "schema": [None, schema]})
    return reference


def _prepare_columns(reference: ReferenceDataset, frame) -> None:
    import pandas as pd

    reference.column_data.all().delete()
    for col in reference.schema:
        series = frame[col["name"]]
        if col["kind"] == ColumnKind.NUMERIC and not pd.api.types.is_numeric_dtype(series):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = int(coerced.isna().sum() - series.isna().sum())
            if bad:
                raise InvalidInput(f"Column '{col['name']}' is marked numeric but {bad} reference values are not "
                                   f"numbers; mark it categorical or fix the data.",
                                   fields={"schema": [f"{col['name']}: {bad} non-numeric values."]})
        ReferenceColumn.objects.create(reference=reference, name=col["name"], kind=col["kind"],
                                       **engine.prepare_column(series, col["kind"]))


@transaction.atomic
def reference_upload(*, actor, model_version, name: str, content: bytes, filename: str,
                     prediction: str | None = None, target: str | None = None,
                     schema: list[dict] | None = None) -> ReferenceDataset:
    """Register an uploaded CSV/Parquet file as reference data; its schema is inferred unless given."""
    _check_size(len(content))
    frame = read_table(content=content, filename=filename)
    return _store_reference(actor=actor, model_version=model_version, name=name or filename,
                            source=ReferenceSource.UPLOAD, source_detail=filename, frame=frame, schema=schema,
                            prediction=prediction, target=target)


@transaction.atomic
def reference_from_rows(*, actor, model_version, name: str, frame, schema: list[dict] | None = None,
                        prediction: str | None = None, target: str | None = None) -> ReferenceDataset:
    """Reference data given inline (a DataFrame built from JSON rows)."""
    return _store_reference(actor=actor, model_version=model_version, name=name, source=ReferenceSource.UPLOAD,
                            source_detail="inline rows", frame=frame, schema=schema, prediction=prediction,
                            target=target)


@transaction.atomic
def reference_from_mlflow(*, actor, model_version, artifact_path: str | None = None,
                          prediction: str | None = None, target: str | None = None) -> ReferenceDataset:
    """Reference data from the version's MLflow run: a logged CSV/Parquet artifact (the first one found, or
    `artifact_path`)."""
    if not model_version.run_id:
        raise Conflict(f"{model_version} has no MLflow run recorded; upload the reference data instead.")
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI)
    try:
        if not artifact_path:
            candidates = []
            pending = [""]
            while pending and len(candidates) < 1:
                for info in client.list_artifacts(model_version.run_id, pending.pop() or None):
                    if info.is_dir:
                        pending.append(info.path)
                    elif info.path.lower().endswith((".csv", ".parquet")):
                        candidates.append(info.path)
            if not candidates:
                raise Conflict(f"The MLflow run {model_version.run_id} of {model_version} has no CSV or Parquet "
                               f"artifact to use as reference data; log one or upload a file.")
            artifact_path = candidates[0]
        local = mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path=artifact_path,
                                                    tracking_uri=settings.MLFLOW_TRACKING_URI)
    except DomainError:
        raise
    except Exception as exc:
        raise Conflict(f"Could not fetch '{artifact_path or 'artifacts'}' from MLflow run {model_version.run_id}: "
                       f"{str(exc).splitlines()[0][:300]}") from exc
    with open(local, "rb") as fh:
        content = fh.read()
    frame = read_table(content=content, filename=artifact_path)
    return _store_reference(actor=actor, model_version=model_version, name=f"run {model_version.run_id[:8]}: {artifact_path}",
                            source=ReferenceSource.MLFLOW, source_detail=f"runs:/{model_version.run_id}/{artifact_path}",
                            frame=frame, schema=None, prediction=prediction, target=target)


@transaction.atomic
def reference_schema_update(*, actor, reference: ReferenceDataset, schema: list[dict]) -> ReferenceDataset:
    """Edit kinds and roles (columns can be dropped, not added); prepared columns are rebuilt from the sample
    only when a kind changes, so a kind change needs the full data again: refused if the sample is partial."""
    require_capability(user=actor, team=reference.team, capability=Capability.OPERATE)
    import pandas as pd

    before = reference.schema
    old = {c["name"]: c for c in before}
    schema = _validate_schema(schema, columns=set(old))
    kind_changed = [c["name"] for c in schema if c["kind"] != old[c["name"]]["kind"]]
    if kind_changed:
        frame = pd.read_parquet(io.BytesIO(bytes(reference.full_parquet or reference.sample_parquet)))
        if len(frame) < reference.row_count:
            raise Conflict(f"Changing the kind of {', '.join(kind_changed)} needs the full reference data; upload it "
                           f"again with the corrected schema.")
        reference.schema = schema
        _prepare_columns(reference, frame[[c["name"] for c in schema]])
    else:
        ReferenceColumn.objects.filter(reference=reference).exclude(name__in=[c["name"] for c in schema]).delete()
    reference.schema = schema
    reference.save(update_fields=["schema"])
    audit_record(actor=actor, action="monitoring.reference.schema_update", target=reference,
                 changes={"schema": [before, schema]})
    return reference


# ------------------------------------------------------------------------------------------------ monitors

RETRAIN_JOB_KEYS = ("cluster", "image", "command", "gpu_type", "gpu_count", "environment", "namespace")
MONITOR_FIELDS = ("window", "features", "numeric_method", "categorical_method", "numeric_threshold",
                  "categorical_threshold", "drift_share", "prediction_drift", "min_rows", "enabled", "retrain_job")


def _validate_monitor(monitor: Monitor) -> None:
    if monitor.numeric_method not in drift.NUMERIC_METHODS:
        raise InvalidInput(f"numeric_method must be one of {', '.join(drift.NUMERIC_METHODS)}.",
                           fields={"numeric_method": ["Unknown method."]})
    if monitor.categorical_method not in drift.CATEGORICAL_METHODS:
        raise InvalidInput(f"categorical_method must be one of {', '.join(drift.CATEGORICAL_METHODS)}.",
                           fields={"categorical_method": ["Unknown method."]})
    if not 0 < monitor.drift_share <= 1:
        raise InvalidInput("drift_share must be in (0, 1].", fields={"drift_share": ["Out of range."]})
    if monitor.reference_id:
        if monitor.reference.model_version_id != monitor.model_version_id:
            raise InvalidInput("The reference data belongs to another model version.", fields={"reference": ["Wrong version."]})
        names = {c["name"] for c in monitor.reference.columns(ColumnRole.FEATURE)}
        unknown = sorted(set(monitor.features) - names)
        if unknown:
            raise InvalidInput(f"Unknown features: {', '.join(unknown)}; the reference has {', '.join(sorted(names))}.",
                               fields={"features": [f"Unknown: {', '.join(unknown)}."]})
    unknown_job = set(monitor.retrain_job or {}) - set(RETRAIN_JOB_KEYS)
    if unknown_job:
        raise InvalidInput(f"retrain_job has unknown keys {', '.join(sorted(unknown_job))}; allowed: "
                           f"{', '.join(RETRAIN_JOB_KEYS)}.", fields={"retrain_job": ["Unknown keys."]})
    if monitor.deployment_id and monitor.deployment.team_id != monitor.team_id:
        raise NotFound(f"Deployment {monitor.deployment_id} not found.")
    _validate_retrain_namespace(monitor)


def _validate_retrain_namespace(monitor: Monitor) -> None:
    """A retraining Job runs in one of the team's namespaces on its cluster; refused at save as at dispatch."""
    job = monitor.retrain_job or {}
    if not job.get("namespace"):
        return
    from apps.deployments.models import Cluster
    from apps.deployments.services import job_namespace

    cluster = Cluster.objects.filter(name=str(job.get("cluster") or "")).first()
    if cluster is None:
        raise InvalidInput(f"retrain_job names namespace {job['namespace']} on cluster '{job.get('cluster', '')}', "
                           f"which does not exist; name the cluster the job runs on.",
                           fields={"retrain_job": ["Unknown cluster."]})
    job_namespace(cluster=cluster, team=monitor.team, environment=job.get("environment"), namespace=job["namespace"])


def _sync_schedule(monitor: Monitor) -> None:
    """One django-celery-beat PeriodicTask per monitor, enabled with it."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    minute_hour = ("5", "*") if monitor.window == Window.HOURLY else ("15", "0")
    crontab, _ = CrontabSchedule.objects.get_or_create(minute=minute_hour[0], hour=minute_hour[1], day_of_week="*",
                                                       day_of_month="*", month_of_year="*", timezone="UTC")
    task = monitor.schedule or PeriodicTask(name=f"monitoring: monitor {monitor.pk}")
    task.task = "monitoring.schedule_monitor"
    task.crontab = crontab
    task.kwargs = json.dumps({"monitor_id": monitor.pk})
    task.enabled = monitor.enabled
    task.save()
    if monitor.schedule_id != task.pk:
        Monitor.objects.filter(pk=monitor.pk).update(schedule=task)
        monitor.schedule = task


@transaction.atomic
def monitor_create(*, actor, team, name: str, model_version, reference=None, deployment=None, **options) -> Monitor:
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if model_version.model.team_id != team.pk:
        raise NotFound(f"Model version {model_version.pk} not found in team '{team.slug}'.")
    unknown = set(options) - set(MONITOR_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown monitor options: {', '.join(sorted(unknown))}.")
    import re

    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,60}", name or ""):
        raise InvalidInput("Name the monitor with letters, digits, '-' or '_' (at most 60).", fields={"name": ["Not a slug."]})
    if Monitor.objects.filter(team=team, name=name).exists():
        raise Conflict(f"Team '{team.slug}' already has a monitor named '{name}'.")
    monitor = Monitor(team=team, name=name, model_version=model_version, reference=reference, deployment=deployment,
                      created_by=actor if getattr(actor, "is_authenticated", False) else None, **options)
    _validate_monitor(monitor)
    monitor.save()
    _sync_schedule(monitor)
    audit_record(actor=actor, action="monitoring.monitor.create", target=monitor,
                 changes={"name": [None, name], "model_version": [None, str(model_version)],
                          "deployment": [None, deployment.pk if deployment else None],
                          **{k: [None, getattr(monitor, k)] for k in MONITOR_FIELDS}})
    return monitor


@transaction.atomic
def monitor_update(*, actor, monitor: Monitor, **changes) -> Monitor:
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    allowed = set(MONITOR_FIELDS) | {"reference", "deployment"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"Unknown monitor options: {', '.join(sorted(unknown))}.")
    before = {k: getattr(monitor, k) for k in changes}
    for key, value in changes.items():
        setattr(monitor, key, value)
    _validate_monitor(monitor)
    monitor.save()
    _sync_schedule(monitor)
    diff = {k: [_plain(before[k]), _plain(getattr(monitor, k))] for k in changes if before[k] != getattr(monitor, k)}
    audit_record(actor=actor, action="monitoring.monitor.update", target=monitor, changes=diff)
    return monitor


@transaction.atomic
def monitor_set_auto_rollback(*, actor, monitor: Monitor, enabled: bool, drift_share: float | None = None,
                              windows: int | None = None, error_rate: float | None = None) -> Monitor:
    """The auto-rollback policy is a team-admin decision (it acts on production without a human)."""
    require_capability(user=actor, team=monitor.team, capability=Capability.ADMINISTER)
    if enabled and not monitor.deployment_id:
        raise Conflict(f"Monitor '{monitor.name}' has no deployment linked; link one before enabling auto-rollback.")
    before = {"auto_rollback": monitor.auto_rollback, "auto_rollback_drift_share": monitor.auto_rollback_drift_share,
              "auto_rollback_windows": monitor.auto_rollback_windows,
              "auto_rollback_error_rate": monitor.auto_rollback_error_rate}
    monitor.auto_rollback = enabled
    if drift_share is not None:
        if not 0 < drift_share <= 1:
            raise InvalidInput("drift_share must be in (0, 1].", fields={"drift_share": ["Out of range."]})
        monitor.auto_rollback_drift_share = drift_share
    if windows is not None:
        if windows < 1:
            raise InvalidInput("windows must be at least 1.", fields={"windows": ["Too small."]})
        monitor.auto_rollback_windows = windows
    if error_rate is not None:
        monitor.auto_rollback_error_rate = error_rate
    monitor.save(update_fields=list(before))
    after = {k: getattr(monitor, k) for k in before}
    audit_record(actor=actor, action="monitoring.monitor.auto_rollback_policy", target=monitor,
                 changes={k: [before[k], after[k]] for k in before if before[k] != after[k]})
    return monitor


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    return value


# -------------------------------------------------------------------------------------------------- runs

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


def _progress(run_id: int):
    def update(percent: int, message: str):
        MonitorRun.objects.filter(pk=run_id).update(progress=min(percent, 99), progress_message=message[:200])
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
    """The work of a run (called by the task; not in one transaction, so progress is visible).

    Compare-and-set queued → running first: a redelivered task finds the run already taken and stops."""
    if MonitorRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, progress=1, progress_message="Reading the window") == 0:
        return None
    run = MonitorRun.objects.select_related("monitor__reference", "monitor__team").get(pk=run_id)
    monitor, reference = run.monitor, run.monitor.reference
    started = time.perf_counter()
    progress = _progress(run.pk)
    try:
        specs = _specs(monitor, reference)
        summary = logstore.window_summary(model_version_id=monitor.model_version_id, start=run.window_start,
                                          end=run.window_end)
        run.current_rows = summary["rows"]
        run.latency_p50, run.latency_p95, run.error_rate = summary["latency_p50"], summary["latency_p95"], summary["error_rate"]
        run.reference_rows = reference.row_count
        run.performance = _performance(monitor, reference, run.window_start, run.window_end)
        features = [s for s in specs if s.role == ColumnRole.FEATURE]
        run.feature_count = len(features)
        if summary["rows"] < max(monitor.min_rows, 1):
            run.status = RunStatus.NOT_ENOUGH_DATA
            run.state = MonitorState.NO_DATA
            run.message = (f"Not enough data: {summary['rows']} rows in this window, the monitor needs at least "
                           f"{monitor.min_rows}.")
            _finish(run, started, [])
            return run
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
            run.status, run.state = RunStatus.NOT_ENOUGH_DATA, MonitorState.NO_DATA
            run.message = "Not enough data: every watched feature is empty or null in this window. " + \
                "; ".join(result.failures.values())[:1500]
        else:
            run.status = RunStatus.SUCCEEDED
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
                logger.exception("Evidently report failed for run %s", run.pk)
                run.message += f" (The Evidently report could not be rendered: {str(exc)[:200]})"
        _finish(run, started, rows)
        return run
    except Exception as exc:
        logger.exception("Monitor run %s failed", run.pk)
        MonitorRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, message=f"Run failed: {str(exc)[:1900]}",
                                                    finished_at=timezone.now(), progress=100)
        raise


def _finite(value):
    return value if value is not None and math.isfinite(value) else (None if value is None or math.isnan(value) else
                                                                     (1e308 if value > 0 else -1e308))


@transaction.atomic
def _finish(run: MonitorRun, started: float, rows: list[FeatureDrift]) -> None:
    run.duration_s = time.perf_counter() - started
    run.finished_at = timezone.now()
    run.progress, run.progress_message = 100, "Done"
    FeatureDrift.objects.filter(run=run).delete()
    FeatureDrift.objects.bulk_create(rows)
    run.save()
    monitor = run.monitor
    latest = MonitorRun.objects.filter(monitor=monitor).exclude(status__in=[RunStatus.QUEUED, RunStatus.RUNNING,
                                                                            RunStatus.FAILED]).order_by(
        "-window_end", "-id").first()
    if latest and latest.pk == run.pk:
        Monitor.objects.filter(pk=monitor.pk).update(state=run.state, last_run_at=run.finished_at)
    audit_record(actor=None, action="monitoring.run.finish", target=run, team=monitor.team,
                 changes={"status": [RunStatus.RUNNING, run.status], "state": [None, run.state],
                          "drift_share": [None, run.drift_share]})
    _evaluate_alerts(run)


def _store_report(run: MonitorRun, reference: ReferenceDataset, rows: list[FeatureDrift], full: bool = False) -> None:
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
    cur = logstore.sample_frame(model_version_id=run.monitor.model_version_id, start=run.window_start,
                                end=run.window_end, limit=limit)
    rename = {r.column: engine.PREDICTION for r in ok if r.role == ColumnRole.PREDICTION}
    ref = ref.rename(columns=rename)
    names = [rename.get(r.column, r.column) for r in ok]
    for name in names:
        if name not in cur.columns:
            cur[name] = None
    ref, cur = ref[names].copy(), cur[names].copy()
    numeric = [rename.get(r.column, r.column) for r in ok if r.kind == ColumnKind.NUMERIC]
    categorical = [rename.get(r.column, r.column) for r in ok if r.kind == ColumnKind.CATEGORICAL]
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
    RunReport.objects.update_or_create(run=run, defaults={
        "html_gz": gzip.compress(html.encode(), 5), "sampled": len(ref) < reference.row_count or len(cur) < run.current_rows,
        "reference_rows": len(ref), "current_rows": len(cur)})


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
    if run.current_rows > limit or reference.row_count > limit or (
            reference.row_count > settings.MONITORING_REPORT_SAMPLE and not reference.full_parquet):
        raise Conflict(f"A full-data report is limited to {limit:,} rows per side (this run: {run.current_rows:,} "
                       f"current, {reference.row_count:,} reference rows): Evidently on a 1M-row window takes about "
                       f"100 s and 1.6 GB. The stored report uses a sample; the run's verdicts cover every row.")
    outbox_enqueue(topic="monitoring.render_report", payload={"run_id": run.pk},
                   dedup_key=f"monitoring-full-report:{run.pk}", team=monitor.team)
    audit_record(actor=actor, action="monitoring.run.full_report", target=run, team=monitor.team,
                 changes={"report": ["sample", "full"]})
    return run


def run_full_report_render(*, run_id: int) -> bool:
    run = MonitorRun.objects.select_related("monitor__reference").get(pk=run_id)
    _store_report(run, run.monitor.reference, list(run.features.all()), full=True)
    return True


# ------------------------------------------------------------------------------------------------ alerts

def _evaluate_alerts(run: MonitorRun) -> None:
    monitor = run.monitor
    if run.status != RunStatus.SUCCEEDED:
        return
    crossings = []
    if run.dataset_drift:
        drifted = list(run.features.filter(drifted=True, role=ColumnRole.FEATURE).values_list("column", flat=True)[:10])
        crossings.append((AlertKind.DATASET_DRIFT,
                          f"Dataset drift on '{monitor.name}': {run.drifted_count}/{run.feature_count} features drifted",
                          f"Drift share {run.drift_share:.0%} ≥ {monitor.drift_share:.0%} in the window "
                          f"{run.window_start:%Y-%m-%d %H:%M} – {run.window_end:%Y-%m-%d %H:%M} UTC. "
                          f"Drifted: {', '.join(drifted)}."))
    if run.prediction_drifted:
        crossings.append((AlertKind.PREDICTION_DRIFT, f"Prediction drift on '{monitor.name}'",
                          f"The prediction distribution moved (score {run.prediction_score:.4g})."))
    limit = monitor.auto_rollback_error_rate
    if limit is not None and run.error_rate is not None and run.error_rate > limit:
        crossings.append((AlertKind.ERROR_RATE, f"Error rate {run.error_rate:.1%} on '{monitor.name}'",
                          f"Above the policy limit of {limit:.1%}."))
    for kind, title, message in crossings:
        alert = Alert.objects.select_for_update().filter(monitor=monitor, kind=kind).exclude(
            status=AlertStatus.RESOLVED).first()
        if alert:
            # Dedup: the same unresolved condition bumps the open alert instead of opening another.
            if alert.last_run_id != run.pk:
                alert.occurrences += 1
                alert.last_run = run
                alert.last_seen_at = timezone.now()
                alert.message = message
                alert.save(update_fields=["occurrences", "last_run", "last_seen_at", "message"])
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(team=monitor.team, monitor=monitor, kind=kind, title=title[:300],
                                             message=message, first_run=run, last_run=run)
        except IntegrityError:
            continue  # a concurrent run opened it first
        audit_record(actor=None, action="monitoring.alert.open", target=alert,
                     changes={"kind": [None, kind], "run": [None, run.pk], "title": [None, title]})
        webhooks_notify(team=monitor.team, event="monitoring.alert", text=f":warning: {title}. {message}",
                        data={"alert_id": alert.pk, "monitor": monitor.name, "kind": kind, "run_id": run.pk,
                              "report": f"/monitoring/runs/{run.pk}/report/"},
                        key=f"alert:{alert.pk}:open")
    _maybe_auto_rollback(run)


def _maybe_auto_rollback(run: MonitorRun) -> None:
    """Policy: drift share ≥ X for K consecutive windows, or error rate above Y. Off by default."""
    monitor = run.monitor
    if not monitor.auto_rollback or not monitor.deployment_id:
        return
    recent = list(MonitorRun.objects.filter(monitor=monitor, status=RunStatus.SUCCEEDED, trigger=run.trigger)
                  .order_by("-window_end", "-id")[:monitor.auto_rollback_windows])
    reason = None
    if len(recent) == monitor.auto_rollback_windows and all(
            r.drift_share is not None and r.drift_share >= monitor.auto_rollback_drift_share for r in recent):
        reason = (f"drift share ≥ {monitor.auto_rollback_drift_share:.0%} for {monitor.auto_rollback_windows} "
                  f"consecutive windows")
    elif monitor.auto_rollback_error_rate is not None and (run.error_rate or 0) > monitor.auto_rollback_error_rate:
        reason = f"error rate {run.error_rate:.1%} above {monitor.auto_rollback_error_rate:.1%}"
    if not reason:
        return
    if Monitor.objects.filter(pk=monitor.pk, auto_rollback=True).update(auto_rollback=False) == 0:
        return  # fired already; the policy disarms itself until someone re-enables it
    audit_record(actor=None, action="monitoring.monitor.auto_rollback_fired", target=monitor,
                 changes={"reason": [None, reason], "run": [None, run.pk], "auto_rollback": [True, False]})
    alert = Alert.objects.filter(monitor=monitor).exclude(status=AlertStatus.RESOLVED).order_by("-opened_at").first()
    try:
        with transaction.atomic():
            _rollback(actor=None, monitor=monitor, alert=alert, reason=f"Auto-rollback by monitor '{monitor.name}': {reason}")
    except DomainError as exc:
        audit_record(actor=None, action="monitoring.monitor.auto_rollback_failed", target=monitor,
                     changes={"error": [None, exc.message]})


@transaction.atomic
def alert_acknowledge(*, actor, alert: Alert, comment: str = "") -> Alert:
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    return alert_transition(alert=alert, to=AlertStatus.ACKNOWLEDGED, actor=actor, comment=comment)


@transaction.atomic
def alert_resolve(*, actor, alert: Alert, comment: str) -> Alert:
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    if not comment.strip():
        raise InvalidInput("Say how the alert was resolved (a comment is required).", fields={"comment": ["Required."]})
    return alert_transition(alert=alert, to=AlertStatus.RESOLVED, actor=actor, comment=comment)


def _deployments_service(name: str):
    try:
        from apps.deployments import services as deployment_services
    except ImportError:
        deployment_services = None
    fn = getattr(deployment_services, name, None)
    if fn is None:
        raise Conflict(f"This action needs the deployments service ({name}), which is not installed yet.")
    return fn


def _rollback(*, actor, monitor: Monitor, alert: Alert | None, reason: str):
    if monitor.deployment_id is None:
        raise Conflict(f"No deployment linked to monitor '{monitor.name}'; link its deployment to roll back from here.")
    rollback = _deployments_service("deployment_rollback")
    # Only while the deployment still serves the version this monitor watches: once rolled back, the same
    # alert (or a second click) is a 409 instead of a rollback to the drifted version.
    result = rollback(actor=actor, deployment=monitor.deployment, reason=reason,
                      only_while_serving=monitor.model_version)
    record = {"action": "rollback", "at": timezone.now().isoformat(), "by": getattr(actor, "username", "system"),
              "deployment": monitor.deployment_id, "revision": getattr(result, "pk", None),
              "revision_number": getattr(result, "number", None)}
    if alert is not None:
        Alert.objects.filter(pk=alert.pk).update(actions=alert.actions + [record])
        alert.actions = alert.actions + [record]
    audit_record(actor=actor, action="monitoring.alert.rollback" if alert else "monitoring.monitor.rollback",
                 target=alert or monitor, team=monitor.team,
                 changes={"deployment": [None, monitor.deployment_id], "reason": [None, reason],
                          "revision": [None, record["revision"]]})
    return result


@transaction.atomic
def alert_rollback(*, actor, alert: Alert):
    """"Roll back" from an alert: the deployments rollback service, with the alert as the reason."""
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    if alert.status == AlertStatus.RESOLVED:
        raise Conflict(f"Alert {alert.pk} is resolved; open the dashboard to roll back for another reason.")
    return _rollback(actor=actor, monitor=alert.monitor, alert=alert, reason=f"Monitoring alert #{alert.pk}: {alert.title}")


@transaction.atomic
def monitor_rollback(*, actor, monitor: Monitor, reason: str = ""):
    """"Roll back" from the dashboard."""
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    return _rollback(actor=actor, monitor=monitor, alert=None,
                     reason=reason or f"Rolled back from the '{monitor.name}' drift dashboard")


@transaction.atomic
def alert_retrain(*, actor, alert: Alert | None = None, monitor: Monitor | None = None):
    """"Retrain": dispatch the monitor's configured training Job through the deployments service."""
    monitor = monitor or alert.monitor
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    if not monitor.retrain_job:
        raise Conflict(f"Monitor '{monitor.name}' has no retraining Job configured; set retrain_job "
                       f"(cluster, image, command) on the monitor first.")
    dispatch = _deployments_service("job_dispatch")
    from apps.deployments.models import Cluster

    reason = f"Monitoring alert #{alert.pk}: {alert.title}" if alert else f"Retrain from monitor '{monitor.name}'"
    options = {k: v for k, v in monitor.retrain_job.items() if k in RETRAIN_JOB_KEYS}
    cluster = Cluster.objects.filter(name=options.pop("cluster", "")).first()
    if cluster is None:
        raise Conflict(f"The retraining Job of monitor '{monitor.name}' names cluster "
                       f"'{monitor.retrain_job.get('cluster', '')}', which does not exist; fix retrain_job.")
    job = dispatch(actor=actor, team=monitor.team, cluster=cluster, **options)
    record = {"action": "retrain", "at": timezone.now().isoformat(), "by": getattr(actor, "username", "system"),
              "job": getattr(job, "pk", None)}
    if alert is not None:
        Alert.objects.filter(pk=alert.pk).update(actions=alert.actions + [record])
    audit_record(actor=actor, action="monitoring.retrain", target=alert or monitor, team=monitor.team,
                 changes={"job": [None, record["job"]], "reason": [None, reason]})
    return job


# ------------------------------------------------------------------------------------------------ ingestion

def _check_size(size: int) -> None:
    limit = settings.MONITORING_MAX_UPLOAD_BYTES
    if size > limit:
        raise PayloadTooLarge(f"The upload is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB. Split it into "
                              f"smaller batches (each with its own batch_id).",
                              extra={"limit_bytes": limit})


def _schema_for(model_version) -> dict[str, dict]:
    columns = {}
    for reference in ReferenceDataset.objects.filter(monitors__model_version=model_version).distinct():
        for col in reference.schema:
            columns.setdefault(col["name"], col)
    if not columns:
        raise Conflict(f"No monitor with reference data watches {model_version}; create one first so incoming "
                       f"rows can be checked against its schema.")
    return columns


def _parse_ts(value):
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = parse_datetime(value.strip())
        except ValueError:
            ts = None
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        ts = datetime.fromtimestamp(value, tz=dt_timezone.utc)
    else:
        ts = None
    if ts is None:
        return None
    if timezone.is_naive(ts):
        ts = ts.replace(tzinfo=dt_timezone.utc)
    return ts


def _num(value):
    if value is None or isinstance(value, bool):
        return None, value is None
    if isinstance(value, (int, float)):
        return (float(value), True) if math.isfinite(float(value)) else (None, True)
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None, False
        return (f if math.isfinite(f) else None), True
    return None, False


def validate_rows(rows, schema: dict[str, dict]) -> tuple[list[tuple], dict, list]:
    """Check each log row against the schema; returns (good rows as (ts, request_id, features, prediction,
    prediction_num, score, latency_ms, error), {column: {reason: count}}, first examples)."""
    good, rejections, examples = [], defaultdict(lambda: defaultdict(int)), []
    pred_col = next((c for c in schema.values() if c["role"] == ColumnRole.PREDICTION), None)
    feature_cols = {n: c for n, c in schema.items() if c["role"] == ColumnRole.FEATURE}

    def reject(i, column, reason):
        rejections[column][reason] += 1
        if len(examples) < 20:
            examples.append({"row": i, "column": column, "reason": reason})

    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            reject(i, "(row)", "not an object")
            continue
        unknown_top = set(row) - RESERVED
        if unknown_top:
            reject(i, sorted(unknown_top)[0], "unknown field (put features under 'features')")
            continue
        ts = _parse_ts(row.get("timestamp"))
        if ts is None:
            reject(i, "timestamp", "missing" if row.get("timestamp") in (None, "") else "not an ISO 8601 timestamp")
            continue
        features = row.get("features")
        if not isinstance(features, dict):
            reject(i, "features", "missing" if features is None else "not an object")
            continue
        bad = None
        clean = {}
        for name, value in features.items():
            col = feature_cols.get(name)
            if col is None:
                bad = (name, "unknown column (not in the monitor schema)")
                break
            if col["kind"] == ColumnKind.NUMERIC:
                number, ok = _num(value)
                if not ok:
                    bad = (name, "wrong type: expected a number")
                    break
                clean[name] = number
            else:
                if isinstance(value, (dict, list)):
                    bad = (name, "wrong type: expected a category (string or number)")
                    break
                clean[name] = None if value is None else engine.canonical_category(value)
        if bad:
            reject(i, *bad)
            continue
        prediction = row.get("prediction")
        prediction_num = None
        if isinstance(prediction, (dict, list)):
            reject(i, "prediction", "wrong type: expected a number or a label")
            continue
        if pred_col is not None and pred_col["kind"] == ColumnKind.NUMERIC and prediction is not None:
            prediction_num, ok = _num(prediction)
            if not ok:
                reject(i, "prediction", "wrong type: expected a number")
                continue
        elif isinstance(prediction, (int, float)) and not isinstance(prediction, bool):
            prediction_num = float(prediction) if math.isfinite(float(prediction)) else None
        numbers = {}
        for field in ("score", "latency_ms"):
            numbers[field], ok = _num(row.get(field))
            if not ok:
                bad = (field, "wrong type: expected a number")
                break
        if bad:
            reject(i, *bad)
            continue
        if numbers["latency_ms"] is not None and numbers["latency_ms"] < 0:
            reject(i, "latency_ms", "negative")
            continue
        request_id = row.get("request_id")
        if request_id is not None and not isinstance(request_id, (str, int)):
            reject(i, "request_id", "wrong type: expected a string")
            continue
        error = row.get("error")
        good.append((ts, "" if request_id is None else str(request_id)[:200], clean,
                     None if prediction is None else engine.canonical_category(prediction),
                     prediction_num, numbers["score"], numbers["latency_ms"],
                     None if error in (None, "", False) else str(error)[:2000]))
    return good, {k: dict(v) for k, v in rejections.items()}, examples


def frame_to_rows(frame) -> list[dict]:
    """Flat CSV/Parquet columns → log rows: reserved names are log fields, every other column a feature."""
    import pandas as pd

    frame.columns = [str(c) for c in frame.columns]
    if "timestamp" not in frame.columns:
        raise InvalidInput(f"The file has no 'timestamp' column (columns: {', '.join(frame.columns)}).",
                           fields={"file": ["Missing 'timestamp' column."]})
    reserved = [c for c in frame.columns if c in RESERVED]
    features = [c for c in frame.columns if c not in RESERVED]
    rows = []
    records = frame.astype(object).where(pd.notna(frame), None).to_dict("records")
    for record in records:
        row = {c: record[c] for c in reserved}
        if isinstance(row.get("timestamp"), pd.Timestamp):
            row["timestamp"] = row["timestamp"].to_pydatetime()
        row["features"] = {c: record[c] for c in features}
        rows.append(row)
    return rows


@transaction.atomic
def predictions_ingest(*, actor, model_version, batch_id: str, rows: list, source: str = "json",
                       deployment=None) -> tuple[PredictionBatch, bool]:
    """Validate and COPY a batch of prediction logs. Returns (batch, created).

    A batch id seen before for this version returns the stored result and writes nothing (a retried
    upload is idempotent). Rejected rows are counted per column and reason; if every row is rejected the
    batch is refused (400) so the caller sees the schema mismatch instead of an empty success."""
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if not batch_id or len(batch_id) > 200:
        raise InvalidInput("batch_id is required (at most 200 characters); reuse it when retrying the same batch.",
                           fields={"batch_id": ["Required."]})
    existing = PredictionBatch.objects.filter(model_version=model_version, batch_id=batch_id).first()
    if existing:
        return existing, False
    if deployment is not None and deployment.team_id != team.pk:
        raise NotFound(f"Deployment {deployment.pk} not found.")
    if len(rows) > settings.MONITORING_MAX_BATCH_ROWS:
        raise PayloadTooLarge(f"The batch has {len(rows):,} rows; the limit is {settings.MONITORING_MAX_BATCH_ROWS:,} "
                              f"rows per batch. Split it into smaller batches.")
    if not rows:
        raise InvalidInput("The batch has no rows.", fields={"rows": ["Empty."]})
    schema = _schema_for(model_version)
    good, rejections, examples = validate_rows(rows, schema)
    if not good:
        summary = "; ".join(f"{col}: {reason} ({n})" for col, reasons in rejections.items() for reason, n in reasons.items())
        raise InvalidInput(f"All {len(rows)} rows were rejected: {summary}.",
                           fields={col: [f"{reason} ({n} rows)" for reason, n in reasons.items()]
                                   for col, reasons in rejections.items()},
                           extra={"rejected": len(rows), "examples": examples})
    try:
        with transaction.atomic():
            batch = PredictionBatch.objects.create(
                team=team, model_version=model_version, deployment=deployment, batch_id=batch_id, source=source,
                received=len(rows), accepted=len(good), rejected=len(rows) - len(good), rejections=rejections,
                examples=examples, created_by=actor if getattr(actor, "is_authenticated", False) else None)
    except IntegrityError:
        # The same batch id committed concurrently: the other request stored it.
        return PredictionBatch.objects.get(model_version=model_version, batch_id=batch_id), False
    logstore.ensure_partitions(min(r[0] for r in good), max(r[0] for r in good))
    logstore.copy_rows((model_version.pk, deployment.pk if deployment else None, batch.pk, *r) for r in good)
    audit_record(actor=actor, action="monitoring.predictions.ingest", target=batch, team=team,
                 changes={"batch_id": [None, batch_id], "accepted": [None, batch.accepted],
                          "rejected": [None, batch.rejected], "source": [None, source]})
    return batch, True


@transaction.atomic
def labels_ingest(*, actor, model_version, labels: list) -> dict:
    """Ground truth by request id (upsert: a corrected label replaces the earlier one)."""
    team = _team_of(model_version)
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if not labels:
        raise InvalidInput("No labels given.", fields={"labels": ["Empty."]})
    if len(labels) > settings.MONITORING_MAX_BATCH_ROWS:
        raise PayloadTooLarge(f"{len(labels):,} labels; the limit is {settings.MONITORING_MAX_BATCH_ROWS:,} per request.")
    rejected, clean = defaultdict(int), {}
    for item in labels:
        if not isinstance(item, dict) or set(item) - {"request_id", "label"}:
            rejected["each label must be {request_id, label}"] += 1
            continue
        rid, value = item.get("request_id"), item.get("label")
        if rid in (None, "") or not isinstance(rid, (str, int)):
            rejected["request_id missing"] += 1
            continue
        if value is None or isinstance(value, (dict, list)):
            rejected["label missing or not a number/string"] += 1
            continue
        number, ok = _num(value)
        clean[str(rid)[:200]] = (value if isinstance(value, str) else json.dumps(value), number if ok else None)
    if not clean:
        raise InvalidInput("No valid labels: " + "; ".join(f"{k} ({v})" for k, v in rejected.items()),
                           fields={"labels": list(rejected)})
    existing = dict(PredictionLabel.objects.filter(model_version=model_version, request_id__in=list(clean))
                    .values_list("request_id", "pk"))
    PredictionLabel.objects.bulk_create(
        [PredictionLabel(model_version=model_version, request_id=rid, value=v[:200], value_num=n)
         for rid, (v, n) in clean.items() if rid not in existing])
    for rid, pk in existing.items():
        PredictionLabel.objects.filter(pk=pk).update(value=clean[rid][0][:200], value_num=clean[rid][1])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT request_id) FROM {logstore.TABLE} WHERE model_version_id = %s "
                       f"AND request_id = ANY(%s)", [model_version.pk, list(clean)])
        matched = cursor.fetchone()[0]
    audit_record(actor=actor, action="monitoring.labels.ingest", object_type="registry.modelversion",
                 object_id=model_version.pk, team=team,
                 changes={"stored": [None, len(clean)], "matched": [None, matched]})
    # Finished runs whose windows hold these predictions get their performance refreshed.
    transaction.on_commit(lambda: _refresh_after_labels(model_version.pk, list(clean)))
    return {"received": len(labels), "stored": len(clean), "updated": len(existing), "matched_predictions": matched,
            "rejected": sum(rejected.values()), "rejections": dict(rejected)}


def _refresh_after_labels(model_version_id: int, request_ids: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(ts), max(ts) FROM {logstore.TABLE} WHERE model_version_id = %s "
                       f"AND request_id = ANY(%s)", [model_version_id, request_ids])
        lo, hi = cursor.fetchone()
    if lo is None:
        return
    for run in MonitorRun.objects.filter(monitor__model_version_id=model_version_id, status=RunStatus.SUCCEEDED,
                                         window_start__lte=hi, window_end__gt=lo).select_related("monitor__reference"):
        run_performance_refresh(run=run)
