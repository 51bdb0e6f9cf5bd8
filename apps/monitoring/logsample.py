"""Log rows read in bounded memory: a uniform sample of a window (columnar.read_rows with a limit: the Evidently
report's current side), and a partition streamed in batches (columnar.read_partition_batches: a sketch-mode map
task's summary).

DuckDB scanning the window's pyarrow dataset reads ahead (pyarrow's defaults: 4 files, 16 batches each, whole row
groups pre-buffered): a 5,000-row sample of 8M rows × 20 features took 1.5 GB more RSS, enough to push the worker
that ran a sketch-mode reduce past 1 GB (bench/README.md → Sketch mode at scale). Here the files are read one at a
time, 64k rows a batch, without pre-buffering (a 1 MB buffered stream per column), and only the needed columns;
the batches stream into DuckDB on one thread, where the same expressions as the full read turn them into float64 /
text columns: into its reservoir sample (repeatable with a fixed seed), or back out a batch at a time. Measured on
8M rows: +177 MB, 11 s for the sample (was +1,540 MB, 15 s).
"""
from __future__ import annotations

from datetime import datetime

from . import columnar
from .logstorage import store

BATCH_ROWS = 65_536
READ_BUFFER = 1 << 20


def sample_rows(files, start: datetime, end: datetime, numeric: list[str], categorical: list[str], *, limit: int,
                seed: int):
    """At most `limit` rows of [start, end) from `files` (manifest rows), a uniform reservoir sample fixed by
    `seed`, as a pyarrow Table: numeric columns float64 (NaN where missing), categorical ones string."""
    scan = columnar._Scan(files, start, end, threads=1)  # its column types and expressions; its dataset is not read
    try:
        if scan.empty:
            return _empty(numeric, categorical)
        select = _streamed(scan, files, start, end, numeric, categorical)
        table = scan.db.sql(f"SELECT {select} FROM streamed "
                            f"USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE ({int(seed)})").to_arrow_table()
        return _named(table, numeric, categorical)
    finally:
        scan.close()


def stream_rows(files, start: datetime | None, end: datetime | None, numeric: list[str], categorical: list[str], *,
                batch_rows: int):
    """The rows of [start, end) (or all) from `files` as pyarrow Tables of at most about `batch_rows` rows each,
    typed as sample_rows' (a generator; at least one table, empty when there are no rows)."""
    scan = columnar._Scan(files, start, end, threads=1)
    try:
        if scan.empty:
            yield _empty(numeric, categorical)
            return
        select = _streamed(scan, files, start, end, numeric, categorical)
        reader = scan.db.sql(f"SELECT {select} FROM streamed").fetch_record_batch(batch_rows)
        import pyarrow as pa

        empty = True
        for batch in reader:
            empty = False
            yield _named(pa.Table.from_batches([batch]), numeric, categorical)
        if empty:
            yield _empty(numeric, categorical)
    finally:
        scan.close()


def _empty(numeric, categorical):
    import pyarrow as pa

    return pa.table({n: pa.array([], pa.float64() if n in numeric else pa.string())
                     for n in list(numeric) + list(categorical)})


def _named(table, numeric, categorical):
    names = list(numeric) + list(categorical)
    return table.rename_columns(names) if names else table.select([])


def _streamed(scan, files, start, end, numeric, categorical) -> str:
    """Register the files' needed columns, streamed batch by batch, as DuckDB table `streamed`; returns the SELECT
    list that reads them as the full read does."""
    import pyarrow as pa

    sources = [scan.source(n, columnar.FLOAT) for n in numeric] + [scan.source(n, columnar.STRING) for n in categorical]
    needed = list(dict.fromkeys(s for s in sources if s)) or ["ts"]
    schema = columnar.stored_schema(scan.types)
    schema = pa.schema([schema.field(name) for name in needed])
    scan.db.register("streamed", pa.RecordBatchReader.from_batches(schema, _batches(files, start, end, schema)))
    exprs = [f"{scan.numeric_expr(n)} AS c{i}" for i, n in enumerate(numeric)]
    for i, source in enumerate(sources[len(numeric):], start=len(numeric)):
        exprs.append(f"CAST({columnar._quote(source) if source else 'NULL'} AS VARCHAR) AS c{i}")
    return ", ".join(exprs) or "NULL"


def _batches(files, start: datetime | None, end: datetime | None, schema):
    """The files' rows in [start, end) (a side left open when None), `schema`'s columns (cast to its types; null
    where a file lacks one), a batch of at most BATCH_ROWS rows at a time, in manifest order."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    target = store()
    ts_type = pa.timestamp("us", tz="UTC")
    bounds = [(compare, pa.scalar(at, ts_type)) for compare, at in ((pc.greater_equal, start), (pc.less, end))
              if at is not None]
    for f in files:
        inside = (start is None or f.ts_min >= start) and (end is None or f.ts_max < end)
        with target.filesystem.open_input_file(target.path(f.path)) as stream:
            parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=READ_BUFFER)
            present = set(parquet.schema_arrow.names)
            columns = [name for name in schema.names if name in present]
            read = list(dict.fromkeys(columns + ([] if inside else ["ts"])))
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=read, use_threads=False):
                if not inside:
                    ts = batch.column("ts")
                    masks = [compare(ts, at) for compare, at in bounds]
                    batch = batch.filter(masks[0] if len(masks) == 1 else pc.and_(*masks))
                yield pa.record_batch([batch.column(field.name).cast(field.type) if field.name in present
                                       else pa.nulls(batch.num_rows, field.type) for field in schema], schema=schema)
