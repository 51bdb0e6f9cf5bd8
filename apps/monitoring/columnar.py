"""The prediction log's features, columnar: Parquet files per (model version, UTC day, ingest batch), read by DuckDB.

Features used to sit in a JSONB document per row of `monitoring_prediction_log`, and a drift run spent most
of its time extracting them (bench/README.md → Drift). Now each ingest batch writes, per UTC day its rows
fall in, one Parquet file

    <MONITORING_LOG_ROOT>/<database>/v<model version id>/<YYYY-MM-DD>/b<batch pk>-<token>.parquet

with columns ts (timestamp[us, UTC]), request_id, prediction (string), prediction_num (float64) and one
column per feature: float64 for numeric features, string (engine.canonical_category) for categorical ones.
The root is a local directory or s3://bucket/prefix (logstorage.py: pyarrow's S3 filesystem; any S3-compatible
store). Compaction of a day's many small files into one: compaction.py.
The database name in the path keeps several control planes (and test runs) sharing a root apart.

A `PredictionFile` row per file is the manifest, written in the ingest's transaction: a reader lists files
from it, never from the directory, so it only sees committed batches (a rolled-back ingest leaves a file no
row names) and needs no object-store listing. The row also records each feature's type, so a window whose
files disagree (a column that changed kind) is read as the common type without opening footers first.
Reads register the files as one pyarrow dataset in an in-process DuckDB, which pushes the time filter down
and returns float64 arrays (numeric) or value counts (categorical) without any per-row Python work.
"""
from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.db import connection

from .logstorage import store

FLOAT, STRING = "float64", "string"
# Where the prediction is read from when a caller asks for engine.PREDICTION as a numeric or categorical column.
PREDICTION_SOURCE = {FLOAT: "prediction_num", STRING: "prediction"}
BASE_COLUMNS = ("ts", "request_id", "prediction", "prediction_num")


# --- writing ----------------------------------------------------------------------------------------------

def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _feature_array(values: list, kind: str | None):
    """A feature's values as a typed Arrow array. `kind` comes from the monitor schema at ingest (values already
    validated); without it (rows written directly, e.g. by the benchmark) all-number columns are float64."""
    import pyarrow as pa

    from .engine import canonical_category

    if kind is None:
        kind = "numeric" if all(v is None or _is_number(v) for v in values) else "categorical"
    if kind == "numeric":
        try:  # validated at ingest: floats and None only
            return pa.array(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([None if v is None or not _is_number(v) else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else canonical_category(v) for v in values], pa.string())


def write_batch(*, model_version_id: int, batch_pk: int, rows: list[tuple], kinds: dict[str, str] | None = None):
    """Write one batch's rows — (ts, request_id, features dict, prediction, prediction_num) each, ts aware — with
    write_table. `kinds` maps feature names to numeric/categorical (the monitor schema)."""
    import pyarrow as pa

    arrays = {
        "ts": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([r[1] for r in rows], pa.string()),
        "prediction": pa.array([r[3] for r in rows], pa.string()),
        "prediction_num": pa.array([r[4] for r in rows], pa.float64()),
    }
    for name in dict.fromkeys(name for row in rows for name in row[2]):
        arrays[name] = _feature_array([r[2].get(name) for r in rows], (kinds or {}).get(name))
    return write_table(model_version_id=model_version_id, batch_pk=batch_pk, table=pa.table(arrays))


def write_table(*, model_version_id: int, batch_pk: int, table):
    """Write an Arrow table of log rows (a `ts` column; request_id / prediction / prediction_num optional; every
    other column a feature, numbers or strings) as one Parquet file per UTC day, with its manifest rows in the
    caller's transaction. Returns the PredictionFile rows created. Bulk loaders (bench/drift) call this directly."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .models import PredictionFile
    from .services import partition_summaries

    table = _normalise(table)
    watched = partition_summaries.summaries_kept(model_version_id)
    types = {name: FLOAT if table.schema.field(name).type == pa.float64() else STRING
             for name in table.column_names if name not in BASE_COLUMNS}
    days = table.column("ts").cast(pa.date32())
    target = store()
    database = connection.settings_dict["NAME"]
    files = []
    for day in sorted(pc.unique(days).to_pylist()):
        part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        relative = f"{database}/v{model_version_id}/{day.isoformat()}/b{batch_pk}-{secrets.token_hex(4)}.parquet"
        target.filesystem.create_dir(target.path(relative).rsplit("/", 1)[0], recursive=True)
        pq.write_table(part, target.path(relative), filesystem=target.filesystem)
        bounds = pc.min_max(part.column("ts")).as_py()
        files.append(PredictionFile(model_version_id=model_version_id, day=day, batch_pk=batch_pk, path=relative,
                                    rows=part.num_rows, ts_min=bounds["min"], ts_max=bounds["max"], columns=types,
                                    summarized=not watched))
    created = PredictionFile.objects.bulk_create(files)
    if watched:  # summaries at ingest (sketch mode): merged in the background once this transaction commits
        partition_summaries.files_summarize_request(model_version_id=model_version_id, batch_pk=batch_pk)
    return created


def _normalise(table):
    """ts as timestamp[us, UTC]; the base columns present; features float64 (any number type) or string."""
    import pyarrow as pa

    columns = {"ts": table.column("ts").cast(pa.timestamp("us", tz="UTC"))}
    for name, kind in (("request_id", pa.string()), ("prediction", pa.string()), ("prediction_num", pa.float64())):
        columns[name] = table.column(name).cast(kind) if name in table.column_names else pa.nulls(len(table), kind)
    for name in table.column_names:
        if name in BASE_COLUMNS:
            continue
        kind = table.schema.field(name).type
        numeric = pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind)
        columns[name] = table.column(name).cast(pa.float64() if numeric else pa.string())
    return pa.table(columns)


# --- reading ----------------------------------------------------------------------------------------------

@dataclass
class Partition:
    key: str          # the UTC day, "2026-01-12"
    start: datetime
    end: datetime
    rows: int         # rows in the partition's files (the whole day, not only the part inside a window)
    paths: list


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=1)


def _files(*, model_version_id: int, start: datetime | None = None, end: datetime | None = None, day: date | None = None):
    from .models import PredictionFile

    files = PredictionFile.objects.filter(model_version_id=model_version_id)
    if day is not None:
        files = files.filter(day=day)
    if start is not None:
        files = files.filter(ts_max__gte=start)
    if end is not None:
        files = files.filter(ts_min__lt=end)
    return list(files.order_by("day", "pk"))


def partitions(*, model_version_id: int, start: datetime, end: datetime) -> list[Partition]:
    """The day partitions holding rows of [start, end), oldest first."""
    grouped = defaultdict(list)
    for f in _files(model_version_id=model_version_id, start=start, end=end):
        grouped[f.day].append(f)
    out = []
    for day, files in grouped.items():
        lo, hi = day_bounds(day)
        out.append(Partition(key=day.isoformat(), start=lo, end=hi, rows=sum(f.rows for f in files),
                             paths=[f.path for f in files]))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unified_types(files) -> dict[str, str]:
    """Each column's type over the files (from their manifest rows); the prediction columns last."""
    types: dict[str, str] = {}
    for f in files:
        for name, kind in f.columns.items():
            # A column that changed kind between files is read as text (numbers keep their spelling).
            types[name] = kind if types.get(name, kind) == kind else STRING
    types.update({"prediction": STRING, "prediction_num": FLOAT})
    return types


def stored_schema(types: dict, dictionary: list[str] = ()):
    import pyarrow as pa

    def arrow_type(name, kind):
        if kind == FLOAT:
            return pa.float64()
        return pa.dictionary(pa.int32(), pa.string()) if name in dictionary else pa.string()

    return pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("request_id", pa.string())]
                     + [(n, arrow_type(n, t)) for n, t in types.items()])


class _Scan:
    """The given files as one table `log` in an in-process DuckDB, filtered to [start, end)."""

    def __init__(self, files, start: datetime | None, end: datetime | None, threads: int):
        import duckdb
        import pyarrow.dataset as ds

        self.types = unified_types(files)
        # Text columns stored as text in every file are read dictionary-encoded, as Parquet stores them: grouping
        # and counting then work on small integer codes, not on a million strings (2-3x faster for chi-square).
        dictionary = [name for name, kind in self.types.items() if kind == STRING and name != "request_id"
                      and all(f.columns.get(name, STRING) == STRING for f in files)]
        schema = stored_schema(self.types, dictionary=dictionary)
        target = store()
        self.db = duckdb.connect(config={"threads": max(1, threads)})
        self.empty = not files
        if files:
            parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=dictionary))
            self.db.register("log", ds.dataset([target.path(f.path) for f in files], schema=schema, format=parquet,
                                               filesystem=target.filesystem))
        conditions, self.params = [], []
        if start is not None:
            conditions.append("ts >= ?")
            self.params.append(start)
        if end is not None:
            conditions.append("ts < ?")
            self.params.append(end)
        self.where = (" WHERE " + " AND ".join(conditions)) if conditions else ""

    def source(self, name: str, kind: str) -> str | None:
        """The stored column a requested (name, kind) is read from; engine.PREDICTION maps to the prediction."""
        from .engine import PREDICTION

        column = PREDICTION_SOURCE[kind] if name == PREDICTION else name
        return column if column in self.types else None

    def numeric_expr(self, name: str) -> str:
        column = self.source(name, FLOAT)
        if column is None:
            return "CAST('NaN' AS DOUBLE)"
        value = _quote(column) if self.types[column] == FLOAT else f"TRY_CAST({_quote(column)} AS DOUBLE)"
        return f"COALESCE({value}, CAST('NaN' AS DOUBLE))"

    def query(self, sql: str):
        return self.db.sql(sql, params=self.params)

    def close(self):
        self.db.close()


@dataclass
class WindowData:
    rows: int
    numeric: dict     # name -> float64 array, NaN where missing
    counts: dict      # name -> {category: count} (nulls left out)
    nulls: dict       # name -> null count, for categorical columns


def read_window(*, model_version_id: int, start: datetime, end: datetime, numeric: list[str],
                categorical: list[str], threads: int = 2) -> WindowData:
    """One window's numeric columns as float64 arrays and its categorical columns as value counts."""
    files = _files(model_version_id=model_version_id, start=start, end=end)
    scan = _Scan(files, start, end, threads)
    try:
        if scan.empty:
            return WindowData(rows=0, numeric={n: np.empty(0) for n in numeric}, counts={n: {} for n in categorical},
                              nulls={n: 0 for n in categorical})
        arrays, rows = {}, None
        if numeric:
            from .floatcolumns import read_float_columns  # pyarrow's scanner, no DuckDB round trip

            arrays, rows = read_float_columns(files, scan, numeric, start, end)
        if numeric and arrays is None:
            exprs = ", ".join(f"{scan.numeric_expr(n)} AS c{i}" for i, n in enumerate(numeric))
            table = scan.query(f"SELECT {exprs} FROM log{scan.where}").to_arrow_table()
            arrays = {n: table.column(f"c{i}").to_numpy() for i, n in enumerate(numeric)}
            rows = table.num_rows
            del table
        elif rows is None:
            rows = scan.query(f"SELECT count(*) FROM log{scan.where}").fetchall()[0][0]
        counts, nulls = _value_counts(scan, categorical, rows)
        return WindowData(rows=rows, numeric=arrays, counts=counts, nulls=nulls)
    finally:
        scan.close()


def _value_counts(scan: _Scan, names: list[str], rows: int) -> tuple[dict, dict]:
    """Every categorical column's value counts in one scan (GROUPING SETS, one set per column)."""
    from .engine import canonical_category

    counts, nulls = {name: {} for name in names}, {name: 0 for name in names}
    sources = {}
    for name in names:
        column = scan.source(name, STRING)
        if column is None:
            nulls[name] = rows
        else:
            sources.setdefault(column, []).append(name)
    if not sources:
        return counts, nulls
    columns = list(sources)
    quoted = [_quote(c) for c in columns]
    flags = ", ".join(f"grouping({q})" for q in quoted)
    sets = ", ".join(f"({q})" for q in quoted)
    result = scan.query(f"SELECT {', '.join(quoted)}, {flags}, count(*) FROM log{scan.where} "
                        f"GROUP BY GROUPING SETS ({sets})").fetchall()
    width = len(columns)
    for row in result:
        i = row[width:2 * width].index(0)  # grouping() is 0 for the column this row's set groups by
        column, value, count = columns[i], row[i], row[-1]
        for name in sources[column]:
            if value is None or (scan.types[column] == FLOAT and not np.isfinite(value)):
                nulls[name] += count
            else:
                # A float64-stored column read as categorical: 1.0 and "1" are one category (canonical spelling).
                key = value if isinstance(value, str) else canonical_category(value)
                counts[name][key] = counts[name].get(key, 0) + count
    return counts, nulls


def read_partition(*, model_version_id: int, key: str, numeric: list[str], categorical: list[str],
                   start: datetime | None = None, end: datetime | None = None):
    """One day partition's rows as a pyarrow Table: numeric columns float64 (NaN where missing), categorical
    columns string (null where missing), optionally cut to [start, end)."""
    return _read_table(_files(model_version_id=model_version_id, day=date.fromisoformat(key)), start, end,
                       numeric, categorical)


def read_partition_batches(*, model_version_id: int, key: str, numeric: list[str], categorical: list[str],
                           batch_rows: int, start: datetime | None = None, end: datetime | None = None):
    """read_partition's rows as tables of about `batch_rows` rows each, streamed (logsample.stream_rows): memory
    bounded by a batch, not by the day."""
    from .logsample import stream_rows

    return stream_rows(_files(model_version_id=model_version_id, day=date.fromisoformat(key)), start, end, numeric,
                       categorical, batch_rows=batch_rows)


def read_rows(*, model_version_id: int, start: datetime, end: datetime, numeric: list[str], categorical: list[str],
              limit: int | None = None, seed: int = 42):
    """A window's rows as a pyarrow Table (numeric float64, categorical string); with `limit`, a reproducible
    uniform sample of at most that many rows (reservoir sampling, fixed seed), read in bounded memory (logsample)."""
    files = _files(model_version_id=model_version_id, start=start, end=end)
    if limit is None:
        return _read_table(files, start, end, numeric, categorical)
    from .logsample import sample_rows

    return sample_rows(files, start, end, numeric, categorical, limit=limit, seed=seed)


def _read_table(files, start, end, numeric, categorical):
    import pyarrow as pa

    scan = _Scan(files, start, end, threads=2)
    try:
        names = list(numeric) + list(categorical)
        if scan.empty:
            return pa.table({n: pa.array([], pa.float64() if n in numeric else pa.string()) for n in names})
        exprs = [f"{scan.numeric_expr(n)} AS c{i}" for i, n in enumerate(numeric)]
        for i, name in enumerate(categorical, start=len(numeric)):
            column = scan.source(name, STRING)
            exprs.append(f"CAST({_quote(column) if column else 'NULL'} AS VARCHAR) AS c{i}")
        table = scan.query(f"SELECT {', '.join(exprs) or 'ts'} FROM log{scan.where}").to_arrow_table()
        return table.rename_columns(names) if names else table.select([])
    finally:
        scan.close()


def drop_partition(*, model_version_id: int, key: str) -> int:
    """Delete one day partition's files, manifest rows and log rows (retention); returns the rows dropped.
    Files go after the rows' transaction commits, so a rollback never leaves rows pointing at no file."""
    from django.db import transaction

    from . import logstore
    from .models import PredictionFile

    day = date.fromisoformat(key)
    files = _files(model_version_id=model_version_id, day=day)
    lo, hi = day_bounds(day)
    with transaction.atomic():
        PredictionFile.objects.filter(pk__in=[f.pk for f in files]).delete()
        logstore.delete_rows(model_version_id=model_version_id, start=lo, end=hi)
    target = store()
    paths = [target.path(f.path) for f in files]

    def remove():
        for path in paths:
            try:
                target.filesystem.delete_file(path)
            except FileNotFoundError:
                pass

    transaction.on_commit(remove)
    return sum(f.rows for f in files)
