"""Raw access to the partitioned prediction log table: COPY in, window aggregates and label joins out.

The table (monthly partitions) keeps what SQL over rows needs: time, request id (labels join on it),
prediction, score, latency, error, deployment (costs). Features are written to the columnar store
(apps/monitoring/columnar.py) and drift reads them from there; the table's `features` JSONB column is
NULL for rows written since (it held them before; bench/README.md → Drift has the numbers that moved them).
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import connection

from . import columnar

TABLE = "monitoring_prediction_log"
COUNTS = "monitoring_prediction_day_count"  # kept by a trigger (migration 0009)
COLUMNS = ("model_version_id", "deployment_id", "batch_pk", "ts", "request_id", "features", "prediction",
           "prediction_num", "score", "latency_ms", "error")
ROW_FIELDS = tuple(c for c in COLUMNS if c != "features")  # what the table gets by COPY (features: Parquet)
_PARTITION_LOCK = 7_405_001


def _month_start(ts: datetime) -> datetime:
    ts = ts.astimezone(dt_timezone.utc)
    return datetime(ts.year, ts.month, 1, tzinfo=dt_timezone.utc)


def _next_month(ts: datetime) -> datetime:
    return datetime(ts.year + (ts.month == 12), ts.month % 12 + 1, 1, tzinfo=dt_timezone.utc)


def ensure_partitions(start: datetime, end: datetime) -> list[str]:
    """Create the monthly partitions covering [start, end] (idempotent; serialised by an advisory lock)."""
    wanted = []
    month = _month_start(start)
    while month <= end:
        wanted.append((f"{TABLE}_y{month.year:04d}m{month.month:02d}", month, _next_month(month)))
        month = _next_month(month)
    with connection.cursor() as cursor:
        # The usual case (partitions exist) runs no DDL: creating a partition locks the parent table.
        cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", [[w[0] for w in wanted]])
        existing = {row[0] for row in cursor.fetchall()}
        missing = [w for w in wanted if w[0] not in existing]
        if missing:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PARTITION_LOCK])
            for name, lower, upper in missing:
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} "
                               f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')")
    return [w[0] for w in missing]


@contextmanager
def row_copy():
    """A COPY into the log table: yields `write_row` for tuples in ROW_FIELDS order; the COPY ends (and
    PostgreSQL has every row) when the block does, so work done inside the block overlaps the server's."""
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {TABLE} ({', '.join(ROW_FIELDS)}) FROM STDIN") as copy:
            yield copy.write_row


def copy_rows(rows, *, kinds: dict[str, str] | None = None) -> int:
    """Write already-validated rows (tuples in COLUMNS order; features as a dict): the row without its features
    by COPY into the log table, the features (with ts, request id and prediction) as Parquet files, one per
    batch and UTC day (columnar.write_batch; `kinds` maps feature names to numeric/categorical)."""
    rows = list(rows)
    batches = defaultdict(list)
    with row_copy() as write_row:
        for row in rows:
            write_row(row[:5] + row[6:])
            batches[(row[0], row[2])].append((row[3], row[4], row[5], row[6], row[7]))
    for (model_version_id, batch_pk), batch_rows in batches.items():
        columnar.write_batch(model_version_id=model_version_id, batch_pk=batch_pk, rows=batch_rows, kinds=kinds)
    return len(rows)


def _where(model_version_id: int, start: datetime, end: datetime) -> tuple[str, list]:
    return "model_version_id = %s AND ts >= %s AND ts < %s", [model_version_id, start, end]


def window_summary(*, model_version_id: int, start: datetime, end: datetime) -> dict:
    """Volume, latency percentiles and error rate of one window."""
    where, params = _where(model_version_id, start, end)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), "
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), "
            f"count(*) FILTER (WHERE error IS NOT NULL AND error <> '') FROM {TABLE} WHERE {where}",
            params,
        )
        rows, p50, p95, errors = cursor.fetchone()
    return {"rows": rows, "latency_p50": p50, "latency_p95": p95, "error_rate": (errors / rows) if rows else None}


def labelled_pairs(*, model_version_id: int, start: datetime, end: datetime) -> list[tuple]:
    """(prediction, prediction_num, label, label_num) for the window's rows that have a label."""
    where, params = _where(model_version_id, start, end)
    where = where.replace("model_version_id", "p.model_version_id").replace("ts ", "p.ts ")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.prediction, p.prediction_num, l.value, l.value_num FROM {TABLE} p "
            f"JOIN monitoring_predictionlabel l ON l.model_version_id = p.model_version_id "
            f"AND l.request_id = p.request_id WHERE {where}",
            params,
        )
        return cursor.fetchall()


def delete_rows(*, model_version_id: int, start: datetime, end: datetime) -> int:
    where, params = _where(model_version_id, start, end)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE {where}", params)
        return cursor.rowcount


def count_by_deployment(*, model_version_ids: list[int], start: datetime, end: datetime) -> dict:
    """{(version, deployment): predictions} in [start, end). Whole UTC days come from the per-day counts the
    database keeps at every insert (migration 0009: they outlive retention and cost one row per day to read); the
    part of a day at either edge of the range, if any, is counted from the rows."""
    ids = list(model_version_ids)
    first_day, last_day = _day_ceiling(start), _day_floor(end)
    totals: dict[tuple[int, int | None], int] = defaultdict(int)
    edges = [(start, end)]
    with connection.cursor() as cursor:
        if first_day < last_day:
            cursor.execute(
                f"SELECT model_version_id, deployment_id, sum(predictions)::bigint FROM {COUNTS} "
                f"WHERE model_version_id = ANY(%s) AND day >= %s AND day < %s GROUP BY 1, 2",
                [ids, first_day.date(), last_day.date()],
            )
            for version, deployment, n in cursor.fetchall():
                totals[(version, deployment)] += n
            edges = [(start, first_day), (last_day, end)]
        for lo, hi in edges:
            if lo < hi:
                cursor.execute(f"SELECT model_version_id, deployment_id, count(*) FROM {TABLE} "
                               f"WHERE model_version_id = ANY(%s) AND ts >= %s AND ts < %s GROUP BY 1, 2", [ids, lo, hi])
                for version, deployment, n in cursor.fetchall():
                    totals[(version, deployment)] += n
    return dict(totals)


def _day_floor(ts: datetime) -> datetime:
    ts = ts.astimezone(dt_timezone.utc)
    return datetime(ts.year, ts.month, ts.day, tzinfo=dt_timezone.utc)


def _day_ceiling(ts: datetime) -> datetime:
    floor = _day_floor(ts)
    return floor if floor == ts else floor + timedelta(days=1)
