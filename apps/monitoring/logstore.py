"""Raw access to the partitioned prediction log: COPY in, columnar arrays out.

Rows are written with COPY FROM STDIN; drift runs read each window with
`COPY (SELECT ...) TO STDOUT (FORMAT binary)`: every numeric feature is selected as a float8 with
NULL/non-numbers mapped to NaN, so each binary tuple has a fixed width and the whole stream is
decoded by numpy in one `frombuffer` (no per-value Python work). Categorical columns are counted
in PostgreSQL (GROUP BY), since categorical tests only need counts.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone as dt_timezone

import numpy as np
from django.db import connection

TABLE = "monitoring_prediction_log"
COLUMNS = ("model_version_id", "deployment_id", "batch_pk", "ts", "request_id", "features", "prediction",
           "prediction_num", "score", "latency_ms", "error")
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


def copy_rows(rows) -> int:
    """COPY already-validated rows (tuples in COLUMNS order; features as a dict) into the log."""
    n = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                row = list(row)
                row[5] = json.dumps(row[5], allow_nan=False)
                copy.write_row(row)
                n += 1
    return n


def _where(model_version_id: int, start: datetime, end: datetime) -> tuple[str, list]:
    return "model_version_id = %s AND ts >= %s AND ts < %s", [model_version_id, start, end]


def _literal(name: str) -> str:
    """A column name as an SQL string literal, safe inside a query that also takes %s parameters."""
    return "'" + name.replace("'", "''").replace("%", "%%") + "'"


def _numeric_expr(column: str) -> str:
    key = _literal(column)
    return (f"CASE WHEN jsonb_typeof(features->{key}) = 'number' THEN (features->>{key})::float8 "
            f"ELSE 'NaN'::float8 END")


_BINARY_HEADER = 19  # signature (11) + flags (4) + header extension length (4, always 0 here)


def _decode_fixed_float8(buffer: bytes, ncols: int) -> list[np.ndarray]:
    body = memoryview(buffer)[_BINARY_HEADER:len(buffer) - 2]  # strip header and the -1 trailer
    fields = [("n", ">i2")]
    for i in range(ncols):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    return [rows[f"v{i}"].astype(np.float64) for i in range(ncols)]


def read_numeric(*, model_version_id: int, start: datetime, end: datetime, columns: list[str],
                 expressions: dict[str, str] | None = None, parallel: int = 1) -> dict[str, np.ndarray]:
    """Numeric columns of one window as float64 arrays (NaN where missing), in one pass over the rows.

    `expressions` maps extra names to SQL float8 expressions (e.g. prediction_num). With `parallel` > 1
    and committed data (not inside a transaction), the window is split in time slices read on that
    many connections at once, so PostgreSQL decodes JSON on several cores."""
    exprs = [_numeric_expr(c) for c in columns]
    names = list(columns)
    for name, expr in (expressions or {}).items():
        names.append(name)
        exprs.append(f"COALESCE(({expr})::float8, 'NaN'::float8)")
    if not names:
        return {}
    select = f"SELECT {', '.join(exprs)} FROM {TABLE} WHERE model_version_id = %s AND ts >= %s AND ts < %s"
    if parallel > 1 and not connection.in_atomic_block:
        from concurrent.futures import ThreadPoolExecutor

        import psycopg

        db = connection.settings_dict
        conninfo = dict(dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"] or None,
                        port=db["PORT"] or None)
        step = (end - start) / parallel
        slices = [(start + i * step, end if i == parallel - 1 else start + (i + 1) * step) for i in range(parallel)]

        def read_slice(bounds):
            with psycopg.connect(**{k: v for k, v in conninfo.items() if v}) as conn:
                with psycopg.ClientCursor(conn) as cur:
                    return _copy_decode(cur, select, [model_version_id, *bounds], len(names))

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            parts = list(pool.map(read_slice, slices))
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}
    with connection.cursor() as cursor:
        arrays = _copy_decode(cursor.cursor, select, [model_version_id, start, end], len(names))
    return dict(zip(names, arrays))


def _copy_decode(raw_cursor, select: str, params: list, ncols: int) -> list[np.ndarray]:
    query = raw_cursor.mogrify(select, params)
    chunks = []
    with raw_cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
    buffer = b"".join(chunks)
    del chunks
    if len(buffer) <= _BINARY_HEADER + 2:
        return [np.empty(0) for _ in range(ncols)]
    return _decode_fixed_float8(buffer, ncols)


def read_category_counts(*, model_version_id: int, start: datetime, end: datetime, columns: list[str],
                         expressions: dict[str, str] | None = None) -> tuple[dict[str, dict], dict[str, int]]:
    """Value counts of categorical columns of one window (one scan), and each column's null count."""
    selects = [(c, f"features->>{_literal(c)}") for c in columns]
    selects += list((expressions or {}).items())
    counts = {name: {} for name, _ in selects}
    nulls = {name: 0 for name, _ in selects}
    if not selects:
        return counts, nulls
    values = ", ".join(f"(%s, ({expr})::text)" for _, expr in selects)
    where, params = _where(model_version_id, start, end)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT x.k, x.v, count(*) FROM {TABLE}, LATERAL (VALUES {values}) AS x(k, v) "
            f"WHERE {where} GROUP BY x.k, x.v",
            [name for name, _ in selects] + params,
        )
        for key, value, count in cursor.fetchall():
            if value is None:
                nulls[key] += count
            else:
                counts[key][value] = count
    return counts, nulls


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


def sample_frame(*, model_version_id: int, start: datetime, end: datetime, limit: int, seed: float = 0.42):
    """A reproducible random sample of the window as a DataFrame (for the Evidently HTML report)."""
    import pandas as pd

    where, params = _where(model_version_id, start, end)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute(
            f"SELECT features, prediction, prediction_num FROM {TABLE} WHERE {where} ORDER BY random() LIMIT %s",
            params + [limit],
        )
        rows = cursor.fetchall()
    records = []
    for features, prediction, prediction_num in rows:
        features = features if isinstance(features, dict) else json.loads(features)
        records.append({**features, "__prediction": prediction_num if prediction_num is not None else prediction})
    return pd.DataFrame.from_records(records)


def count_by_deployment(*, model_version_ids: list[int], start: datetime, end: datetime) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT model_version_id, deployment_id, count(*) FROM {TABLE} "
            f"WHERE model_version_id = ANY(%s) AND ts >= %s AND ts < %s GROUP BY 1, 2",
            [list(model_version_ids), start, end],
        )
        return {(v, deployment): n for v, deployment, n in cursor.fetchall()}
