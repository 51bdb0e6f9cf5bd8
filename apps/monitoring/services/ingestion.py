"""Prediction logs and ground-truth labels: validate, COPY, and refresh runs when labels arrive."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_record
from apps.core.api.fields import DATETIME_RANGE
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import engine, logstore
from ..choices import ColumnKind, ColumnRole, RunStatus
from ..models import MonitorRun, PredictionBatch, PredictionLabel, ReferenceDataset
from ._shared import RESERVED, PayloadTooLarge, _team_of
from .ingest_columns import Columns
from .runs import run_performance_refresh


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
    """An aware UTC datetime, or None (the row is rejected)."""
    try:
        if isinstance(value, datetime):
            ts = value
        elif isinstance(value, str):
            ts = parse_datetime(value.strip())
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            ts = datetime.fromtimestamp(value, tz=dt_timezone.utc)
        else:
            ts = None
        if ts is None:
            return None
        if timezone.is_naive(ts):
            ts = ts.replace(tzinfo=dt_timezone.utc)
        ts = ts.astimezone(dt_timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return ts


def _num(value):
    if value is None or isinstance(value, bool):
        return None, value is None
    if isinstance(value, (int, float)):
        try:
            return (float(value), True) if math.isfinite(float(value)) else (None, True)
        except OverflowError:  # an integer past float range
            return None, False
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
    kinds = {n: c["kind"] for n, c in schema.items() if c["role"] == ColumnRole.FEATURE}

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
        if not DATETIME_RANGE[0] <= ts < DATETIME_RANGE[1]:
            # Partitions are monthly: year 9999 needs one ending in year 10000, which no datetime can say.
            reject(i, "timestamp", f"outside {DATETIME_RANGE[0]:%Y-%m-%d} to {DATETIME_RANGE[1]:%Y-%m-%d}")
            continue
        features = row.get("features")
        if not isinstance(features, dict):
            reject(i, "features", "missing" if features is None else "not an object")
            continue
        bad = nul_feature = None
        clean = {}
        for name, value in features.items():
            kind = kinds.get(name)
            if kind is None:
                bad = (name, "unknown column (not in the monitor schema)")
                break
            if kind == ColumnKind.NUMERIC:
                if type(value) is float and math.isfinite(value):  # the common case, without _num's checks
                    clean[name] = value
                    continue
                number, ok = _num(value)
                if not ok:
                    bad = (name, "wrong type: expected a number")
                    break
                clean[name] = number
            else:
                if isinstance(value, (dict, list)):
                    bad = (name, "wrong type: expected a category (string or number)")
                    break
                text = None if value is None else engine.canonical_category(value)
                if nul_feature is None and text is not None and "\x00" in text:
                    nul_feature = name
                clean[name] = text
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
        # Files are not parsed by the API's JSON parser, which refuses NUL; PostgreSQL text and JSONB refuse it too.
        nul = next((name for name, value in (("request_id", request_id), ("error", error), ("prediction", prediction))
                    if isinstance(value, str) and "\x00" in value), nul_feature)
        if nul:
            reject(i, nul, "contains the NUL character")
            continue
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
def predictions_ingest(*, actor, model_version, batch_id: str, rows: list | Columns, source: str = "json",
                       deployment=None) -> tuple[PredictionBatch, bool]:
    """Validate and COPY a batch of prediction logs. Returns (batch, created).

    A batch id seen before for this version returns the stored result and writes nothing (a retried
    upload is idempotent). Rejected rows are counted per column and reason; if every row is rejected the
    batch is refused (400) so the caller sees the schema mismatch instead of an empty success.
    `rows` is a list of row dicts, or Columns (ingest_columns.py) already checked against the schema."""
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
    if isinstance(rows, Columns):
        schema, good, rejections, examples = None, rows, {}, []
    else:
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
    if isinstance(good, Columns):
        logstore.ensure_partitions(good.ts_min, good.ts_max)
        good.write(model_version_id=model_version.pk, deployment_id=deployment.pk if deployment else None,
                   batch_pk=batch.pk)
    else:
        logstore.ensure_partitions(min(r[0] for r in good), max(r[0] for r in good))
        logstore.copy_rows(((model_version.pk, deployment.pk if deployment else None, batch.pk, *r) for r in good),
                           kinds={name: col["kind"] for name, col in schema.items()
                                  if col["role"] == ColumnRole.FEATURE})
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
