"""Drift computation for one window: read columns from the columnar prediction log, run the column tests in parallel.

Pure read + compute (no writes), shared by monitor runs (services.monitor_run_execute) and the
benchmark in bench/drift.
"""
from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from . import columnar, drift

PREDICTION = "__prediction"  # name of the prediction column in window reads and reports


# A prediction or target column of whole numbers with at most this many distinct values is a classifier's class
# label: categorical (chi²/Z tests, accuracy/F1), not a number to take a mean of. A schema given explicitly wins.
MAX_CLASS_LABELS = 50


def is_class_label(series) -> bool:
    """Whole numbers (int dtype, or floats that are all integral) with few distinct values."""
    import pandas as pd

    values = series.dropna()
    if values.empty or pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return False
    integral = pd.api.types.is_integer_dtype(values) or bool((values == values.round()).all())
    return integral and values.nunique() <= MAX_CLASS_LABELS


def infer_schema(frame, *, prediction: str | None = None, target: str | None = None) -> list[dict]:
    """Numeric dtype → numeric, anything else → categorical; role from the given column names. Predictions and
    targets that are integer class labels (is_class_label) are categorical."""
    import pandas as pd

    schema = []
    for name in frame.columns:
        kind = "numeric" if pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name]) \
            else "categorical"
        role = "prediction" if name == prediction else "target" if name == target else "feature"
        if role != "feature" and kind == "numeric" and is_class_label(frame[name]):
            kind = "categorical"
        schema.append({"name": str(name), "kind": kind, "role": role})
    return schema


def canonical_category(value) -> str:
    """One spelling per category on both sides: 1, 1.0 and "1" from a CSV, a JSON number or a string
    are the same category; booleans are true/false."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def prepare_column(series, kind: str) -> dict:
    """What a ReferenceColumn stores for one column of a reference frame."""
    import pandas as pd

    if kind == "numeric":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        cleaned = drift.clean_numeric(values)
        return {"sorted_values": cleaned.tobytes(), "counts": None, "null_count": int(values.size - cleaned.size)}
    non_null = series.dropna()
    counts = non_null.map(canonical_category).value_counts().to_dict()
    return {"sorted_values": None, "counts": {str(k): int(v) for k, v in counts.items()},
            "null_count": int(series.size - non_null.size)}


def sample_parquet(frame, limit: int = 5000) -> bytes:
    sample = frame.sample(n=min(limit, len(frame)), random_state=0) if len(frame) > limit else frame
    buffer = io.BytesIO()
    sample.to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass
class ColumnSpec:
    name: str          # name in the schema (and in features JSON)
    kind: str          # numeric | categorical
    role: str          # feature | prediction
    method: str = "auto"
    threshold: float | None = None


@dataclass
class WindowResult:
    current_rows: int
    results: list = field(default_factory=list)          # drift.ColumnResult
    failures: dict = field(default_factory=dict)         # column -> reason (not enough data)
    null_counts: dict = field(default_factory=dict)
    distributions: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def load_reference(reference, names: list[str] | None = None) -> dict[str, dict]:
    """name → {"kind", "sorted" (np.ndarray) or "counts" (dict)} for a ReferenceDataset (only `names`, if given:
    a numeric column's sorted values are 8 bytes a reference row).

    Read with COPY … TO STDOUT (FORMAT binary) on the psycopg connection: each bytea arrives as its raw bytes
    (a query's text results spell it in hex, twice the bytes, decoded by the client) and each row as one
    buffer that the arrays view without a copy (a query's result would be copied twice more). 20 columns ×
    1M values: ~0.5 s, was ~3 s through the ORM."""
    import json

    import psycopg
    from django.db import connections
    from psycopg import sql

    from .models import ReferenceColumn

    meta = ReferenceColumn._meta
    # The 6-byte first field puts each row's values 16 bytes into its buffer (count, length, 6, length), so the
    # float64 arrays are aligned (numpy copies unaligned arrays inside many operations); the first row follows
    # the stream's 19-byte header and is copied once instead.
    query = sql.SQL("SELECT '\\x000000000000'::bytea, sorted_values, name, kind, counts::text FROM {} "
                    "WHERE {} = {}").format(sql.Identifier(meta.db_table),
                                            sql.Identifier(meta.get_field("reference").column), sql.Literal(reference.pk))
    if names is not None:
        query = sql.SQL("{} AND name = ANY({})").format(query, sql.Literal(list(names)))
    connection = connections[reference._state.db or "default"]
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        with cursor.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)) as copy:
            rows = _binary_copy_rows(list(copy), fields=5)
    out = {}
    for _, values, name, kind, counts in rows:
        name = bytes(name).decode()
        if bytes(kind) == b"numeric":
            values = np.frombuffer(values if values is not None else b"", dtype=np.float64)
            out[name] = {"kind": "numeric", "sorted": values if values.flags.aligned else values.copy()}
        else:
            out[name] = {"kind": "categorical", "counts": json.loads(bytes(counts)) if counts else {}}
    return out


def _binary_copy_rows(chunks: list, *, fields: int) -> list[list]:
    """Rows of a COPY (FORMAT binary) stream as lists of memoryviews (None for NULL): an 11-byte signature,
    flags and extension length, then per row a field count (int16, -1 ends the data) and per field a length
    (int32, -1 for NULL) and its bytes. PostgreSQL sends a row per message, so a field lies inside one chunk and
    is viewed in place; one that spans chunks is joined."""
    chunks = [memoryview(c).cast("B") for c in chunks]
    position = [0, 0]  # chunk, offset

    def take(size: int) -> memoryview:
        index, offset = position
        while index < len(chunks) and offset == len(chunks[index]):
            index, offset = index + 1, 0
        if index < len(chunks) and offset + size <= len(chunks[index]):
            position[:] = [index, offset + size]
            return chunks[index][offset:offset + size]
        parts, need = [], size
        while need:
            if index >= len(chunks):
                raise ValueError("COPY data ended inside a field")
            piece = chunks[index][offset:offset + need]
            parts.append(bytes(piece))
            need -= len(piece)
            offset += len(piece)
            if offset == len(chunks[index]):
                index, offset = index + 1, 0
        position[:] = [index, offset]
        return memoryview(b"".join(parts))

    if bytes(take(11)) != b"PGCOPY\n\xff\r\n\x00":
        raise ValueError("not a binary COPY stream")
    take(4)
    take(int.from_bytes(take(4), "big"))
    rows = []
    while (count := int.from_bytes(take(2), "big", signed=True)) != -1:
        if count != fields:
            raise ValueError(f"expected {fields} fields a row, got {count}")
        row = []
        for _ in range(fields):
            length = int.from_bytes(take(4), "big", signed=True)
            row.append(None if length < 0 else take(length))
        rows.append(row)
    return rows


def window_drift(*, model_version_id: int, start: datetime, end: datetime, specs: list[ColumnSpec],
                 reference: dict[str, dict], workers: int = 2, distributions: bool = True,
                 progress=None, read_threads: int = 2) -> WindowResult:
    """Compute every column's drift for [start, end) of a model version's prediction log."""
    timings = {}
    t0 = time.perf_counter()
    numeric = [s for s in specs if s.kind == "numeric"]
    categorical = [s for s in specs if s.kind == "categorical"]

    def key(spec):
        return PREDICTION if spec.role == "prediction" else spec.name

    window = columnar.read_window(model_version_id=model_version_id, start=start, end=end,
                                  numeric=[key(s) for s in numeric], categorical=[key(s) for s in categorical],
                                  threads=read_threads)
    cur_numeric, cur_counts, cat_nulls = window.numeric, window.counts, window.nulls
    timings["read_s"] = time.perf_counter() - t0
    if progress:
        progress(30, "Window read from the prediction log")
    current_rows = window.rows
    result = WindowResult(current_rows=current_rows, timings=timings)

    def check_prepared(spec):
        prepared = reference.get(spec.name)
        if prepared is None or prepared["kind"] != spec.kind:
            raise drift.NotEnoughData(f"Column '{spec.name}' has no {spec.kind} reference data prepared; save the "
                                      f"reference schema again to prepare it.")

    def run_numeric(spec):
        raw = cur_numeric.pop(key(spec))
        check_prepared(spec)
        size = raw.size
        cur = drift.clean_numeric(raw, overwrite=True)  # the window's own array: sorted in place if writable
        nulls = int(size - cur.size)
        del raw
        ref = reference[spec.name]["sorted"]
        res = drift.numeric_drift(spec.name, ref, cur, method=spec.method, threshold=spec.threshold)
        dist = drift.histogram(ref, cur) if distributions else {}
        return spec, res, nulls, dist

    def run_categorical(spec):
        check_prepared(spec)
        cur = cur_counts.get(key(spec), {})
        ref = reference[spec.name]["counts"]
        res = drift.categorical_drift(spec.name, ref, cur, method=spec.method, threshold=spec.threshold)
        dist = drift.category_shares(ref, cur) if distributions else {}
        return spec, res, cat_nulls.get(key(spec), 0), dist

    t1 = time.perf_counter()
    jobs = [(run_numeric, s) for s in numeric] + [(run_categorical, s) for s in categorical]
    done = 0
    # numpy's sort/searchsorted release the GIL, so threads run columns on separate cores.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [(spec, pool.submit(fn, spec)) for fn, spec in jobs]
        for spec, future in futures:
            try:
                spec, res, nulls, dist = future.result()
                result.results.append((spec, res))
                result.null_counts[spec.name if spec.role == "feature" else PREDICTION] = nulls
                result.distributions[spec.name] = dist
            except drift.NotEnoughData as exc:
                result.failures[spec.name] = str(exc)
            done += 1
            if progress:
                progress(30 + int(60 * done / max(len(jobs), 1)), f"{done} of {len(jobs)} columns tested")
    timings["compute_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    return result
