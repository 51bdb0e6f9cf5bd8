"""A window's numeric columns read straight from the prediction log's Parquet files by pyarrow's dataset scanner
(columnar.read_window's path when every requested column is stored as float64).

DuckDB's scan of the same files (columnar._Scan) hands the columns back through its own vectors and an Arrow
conversion: at 1M rows × 20 columns that took 2-3x the time of this read (bench/README.md → Drift per method).
DuckDB stays the path for value counts (GROUP BY) and for a column stored as text in some file (TRY_CAST).
"""
from __future__ import annotations

from datetime import datetime

import numpy as np

from . import columnar


def read_float_columns(files, scan, names: list[str], start: datetime, end: datetime):
    """(name → float64 array with NaN where missing, rows) read by pyarrow's dataset scanner straight from the
    Parquet files, when every requested column is float64 wherever stored; (None, None) otherwise (a column that
    changed kind is read by DuckDB's TRY_CAST). Only those columns are read; files whose rows all lie inside
    [start, end) (the manifest's bounds say which: every file of a window of whole days) are read without the
    time filter, so `ts` is read only from files at the window's edges. No round trip through DuckDB's own
    vectors: 2x faster at 1M rows × 20 columns (bench/README.md → Drift)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    sources = [scan.source(name, columnar.FLOAT) for name in names]
    if any(source is not None and scan.types[source] != columnar.FLOAT for source in sources):
        return None, None
    needed = list(dict.fromkeys(source for source in sources if source))
    ts_type = pa.timestamp("us", tz="UTC")
    target = columnar.store()
    tables, rows = [], 0
    for inside in (True, False):
        paths = [target.path(f.path) for f in files if (f.ts_min >= start and f.ts_max < end) == inside]
        if not paths:
            continue
        schema = pa.schema([pa.field(name, pa.float64()) for name in needed] + ([] if inside else [("ts", ts_type)]))
        dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=target.filesystem)
        condition = None if inside else \
            (ds.field("ts") >= pa.scalar(start, ts_type)) & (ds.field("ts") < pa.scalar(end, ts_type))
        if needed:
            tables.append(dataset.to_table(columns=needed, filter=condition))
            rows += tables[-1].num_rows
        else:
            rows += dataset.count_rows(filter=condition)
    table = pa.concat_tables(tables) if tables else None
    # Nulls come out as NaN (what the DuckDB path's COALESCE gives); clean_numeric drops both.
    arrays = {name: table.column(source).to_numpy() if source else np.full(rows, np.nan)
              for name, source in zip(names, sources)}
    return arrays, rows
