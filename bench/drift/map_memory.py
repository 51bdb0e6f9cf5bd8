"""Memory of a sketch-mode map task against the size of its day partition (not a test).

    .venv/bin/python bench/drift/map_memory.py --rows 2000000 6000000

For each row count, a model version gets that many rows × 20 numeric features (run.py's generator) in one UTC
day of the columnar log (`columnar.write_table`, 1M-row files; written once per row count, reused after), and a
monitor with a 100,000-row reference. Then, each in a fresh process so peaks don't mix, the day is summarized:
- streamed: `partition_summaries.partition_summarize`, what a map task runs (batches of READ_BYTES, merged);
- whole day: the day's columns read in one piece (`columnar.read_partition`), then summarized once — what a map
  task held before it streamed (it went a column or a few at a time, so this is the upper end of that).
Prints the peak RSS growth (VmHWM after − RSS before, MiB) and the time of each; the summaries' counts must agree.
"""
import argparse
import multiprocessing
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "drift"))
import run as bench  # noqa: E402  (sets DATABASE_URL to the scratch database)

FEATURES = 20
BATCH = 1_000_000


def _setup(rows: int):
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from django.db.models import Sum

    from apps.monitoring import columnar, engine
    from apps.monitoring.models import Monitor, PredictionFile, ReferenceColumn, ReferenceDataset
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.teams.models import Team

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    model, _ = RegisteredModel.objects.get_or_create(name=f"bench-map-{rows}", defaults={"team": team})
    version, _ = ModelVersion.objects.get_or_create(model=model, version=1)
    Monitor.objects.filter(model_version=version).delete()  # no monitor while writing: no merge hints
    written = PredictionFile.objects.filter(model_version=version).aggregate(n=Sum("rows"))["n"] or 0
    if written != rows:
        PredictionFile.objects.filter(model_version=version).delete()
        started = time.perf_counter()
        step_us = 86_400_000_000 // rows
        day = np.datetime64(bench.CUR_START.replace(tzinfo=None), "us")
        for batch, lo in enumerate(range(0, rows, BATCH), start=1):
            n = min(BATCH, rows - lo)
            table = pa.table({"ts": pa.array(day + (lo + np.arange(n)) * np.timedelta64(step_us, "us"))
                             .cast(pa.timestamp("us", tz="UTC")),
                              **{k: pa.array(v) for k, v in bench._numeric(n, FEATURES, True, 2000 + batch).items()}})
            columnar.write_table(model_version_id=version.pk, batch_pk=batch, table=table)
        print(f"wrote {rows:,} rows × {FEATURES} features into one day in {time.perf_counter() - started:.0f} s")
    ReferenceDataset.objects.filter(model_version=version).delete()
    schema = [{"name": f"f{i:02d}", "kind": "numeric", "role": "feature"} for i in range(FEATURES)]
    frame = pd.DataFrame(bench._numeric(100_000, FEATURES, False, 1))
    reference = ReferenceDataset.objects.create(team=team, model_version=version, name="bench", source="logs",
                                                row_count=len(frame), schema=schema)
    for name in frame.columns:
        ReferenceColumn.objects.create(reference=reference, name=name, kind="numeric",
                                       **engine.prepare_column(frame.pop(name), "numeric"))
    Monitor.objects.create(team=team, name=f"bench-map-{rows}", model_version=version, reference=reference)
    return version.pk, reference.pk


def _child(way: str, version_pk: int, reference_pk: int, out):
    import django

    django.setup()
    from apps.monitoring import columnar, summaries
    from apps.monitoring.choices import ColumnKind
    from apps.monitoring.models import ReferenceDataset
    from apps.monitoring.services import partition_summaries

    reference = ReferenceDataset.objects.get(pk=reference_pk)
    [part] = columnar.partitions(model_version_id=version_pk, start=bench.CUR_START,
                                 end=bench.CUR_START + timedelta(days=1))
    kinds = partition_summaries.summarized_columns(reference)
    edges = partition_summaries._edges_for(reference, kinds)  # loaded before the baseline: not the map's own cost
    import datasketches  # noqa: F401  (imports before the baseline too)
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    before = bench.proc_status_mb("VmRSS")
    t = time.perf_counter()
    if way == "streamed":
        summary = partition_summaries.partition_summarize(model_version_id=version_pk, reference=reference,
                                                          partition=part)
    else:
        table = columnar.read_partition(model_version_id=version_pk, key=part.key, categorical=[],
                                        numeric=[n for n, k in kinds.items() if k == ColumnKind.NUMERIC])
        summary = summaries.summarize(table, kinds=kinds, edges=edges, k=summaries.kll_k())
    out.put({"way": way, "seconds": time.perf_counter() - t, "growth": bench.proc_status_mb("VmHWM") - before,
             "rows": summary.rows, "hist": {n: c.hist.tolist() for n, c in summary.columns.items()}})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 6_000_000])
    args = parser.parse_args()
    bench.scratch_database()
    from django.db import connections

    print(f"| day rows | way | peak RSS growth (MiB) | time (s) |\n|---:|---|---:|---:|")
    for rows in args.rows:
        version_pk, reference_pk = _setup(rows)
        connections.close_all()
        results = []
        for way in ("streamed", "whole day"):
            queue = multiprocessing.get_context("spawn").Queue()
            child = multiprocessing.get_context("spawn").Process(target=_child,
                                                                 args=(way, version_pk, reference_pk, queue))
            child.start()
            results.append(queue.get())
            child.join()
            r = results[-1]
            print(f"| {rows:,} | {way} | {r['growth']:,.0f} | {r['seconds']:.1f} |", flush=True)
        assert results[0]["rows"] == results[1]["rows"] == rows and results[0]["hist"] == results[1]["hist"]


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    main()
