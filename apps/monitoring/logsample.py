"""A uniform sample of a window's log rows (columnar.read_rows with a limit: the Evidently report's current side),
read in bounded memory.

DuckDB scanning the window's pyarrow dataset reads ahead (pyarrow's defaults: 4 files, 16 batches each, whole row
groups pre-buffered): a 5,000-row sample of 8M rows × 20 features took 1.5 GB more RSS, enough to push the worker
that ran a sketch-mode reduce past 1 GB (bench/README.md → Sketch mode at scale). Here the files are read one at a
time, 64k rows a batch, without pre-buffering (a 1 MB buffered stream per column), and only the needed columns;
the batches stream into the same DuckDB reservoir sample on one thread (repeatable with a fixed seed), and the same
expressions as the full read turn them into float64 / text columns. Measured on 8M rows: +177 MB, 11 s (was
+1,540 MB, 15 s).
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
    import pyarrow as pa

    scan = columnar._Scan(files, start, end, threads=1)  # its column types and expressions; its dataset is not read
    try:
        names = list(numeric) + list(categorical)
        if scan.empty:
            return pa.table({n: pa.array([], pa.float64() if n in numeric else pa.string()) for n in names})
        sources = [scan.source(n, columnar.FLOAT) for n in numeric] + [
            scan.source(n, columnar.STRING) for n in categorical]
        needed = list(dict.fromkeys(s for s in sources if s)) or ["ts"]
        schema = columnar.stored_schema(scan.types)
        schema = pa.schema([schema.field(name) for name in needed])
        scan.db.register("sample_rows", pa.RecordBatchReader.from_batches(schema, _batches(files, start, end, schema)))
        exprs = [f"{scan.numeric_expr(n)} AS c{i}" for i, n in enumerate(numeric)]
        for i, source in enumerate(sources[len(numeric):], start=len(numeric)):
            exprs.append(f"CAST({columnar._quote(source) if source else 'NULL'} AS VARCHAR) AS c{i}")
        table = scan.db.sql(f"SELECT {', '.join(exprs) or 'NULL'} FROM sample_rows "
                            f"USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE ({int(seed)})").to_arrow_table()
        return table.rename_columns(names) if names else table.select([])
    finally:
        scan.close()


def _batches(files, start: datetime, end: datetime, schema):
    """The files' rows in [start, end), `schema`'s columns (cast to its types; null where a file lacks one), a
    batch of at most BATCH_ROWS rows at a time, in manifest order."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    target = store()
    ts_type = pa.timestamp("us", tz="UTC")
    lo, hi = pa.scalar(start, ts_type), pa.scalar(end, ts_type)
    for f in files:
        inside = f.ts_min >= start and f.ts_max < end
        with target.filesystem.open_input_file(target.path(f.path)) as stream:
            parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=READ_BUFFER)
            present = set(parquet.schema_arrow.names)
            columns = [name for name in schema.names if name in present]
            read = list(dict.fromkeys(columns + ([] if inside else ["ts"])))
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=read, use_threads=False):
                if not inside:
                    ts = batch.column("ts")
                    batch = batch.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
                yield pa.record_batch([batch.column(field.name).cast(field.type) if field.name in present
                                       else pa.nulls(batch.num_rows, field.type) for field in schema], schema=schema)
