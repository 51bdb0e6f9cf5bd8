"""Sketch mode at scale: a large current window written straight into the columnar log, then one monitor run in
sketch mode, fanned out over real Celery workers, end to end (not a test).

    .venv/bin/python bench/drift/sketch_scale.py --rows 10000000 --workers 2

1. In the bench's scratch database (bench/drift/run.py's), `--rows` rows × 20 numeric features (run.py's
   generator, current side: 8 shifted features) spread over 7 days are written with `columnar.write_table` in
   1M-row batches, and their log-table rows (ts, request id) by one server-side INSERT per batch: timed. Written
   once per row count; no monitor watches the version yet, so no summary is built at ingest.
2. A 1M-row reference (the generator's reference side) is prepared and a monitor created with exact_max_rows=1000
   (sketch mode). No summary exists, so the run fans out: one `monitoring.summarize_partition` task per day.
3. `--workers` Celery worker processes (solo pool, bulk queue, a private redis-server as broker) run it; the run is
   queued like "Run now" and woken on the bulk queue. Every worker's peak RSS (VmHWM) is read from /proc.
4. Exact mode on the same window (engine.window_drift, the rows read in full) in this process, for the verdict
   agreement, unless --no-exact (at 100M rows exact mode would need ~40 GB).

The write resumes: batches already written (each commits whole) are reused, so a failed run or a second one on
the same `--rows` writes nothing; `--write-only` just writes, in `--write-processes` forked writers. With
`--window-rows N` the run (and exact mode) covers the window's first N rows only: exact-mode agreement on a
subset of a window too large for exact mode, e.g.

    .venv/bin/python bench/drift/sketch_scale.py --rows 100000000 --write-only
    .venv/bin/python bench/drift/sketch_scale.py --rows 100000000 --no-exact
    .venv/bin/python bench/drift/sketch_scale.py --rows 100000000 --window-rows 10000000
"""
import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "drift"))
import run as bench  # noqa: E402  (sets DATABASE_URL to the scratch database)

BATCH = 1_000_000
FEATURES = 20


def _write_batch(version_pk: int, rows: int, batch: int) -> float:
    """Write batch `batch` (1-based) of the `rows`-row window: its Parquet files and log-table rows, in one
    transaction (so a batch is either wholly there or not at all). Returns the seconds it took."""
    import numpy as np
    import pyarrow as pa
    from django.db import connection, transaction

    from apps.monitoring import columnar

    t = time.perf_counter()
    lo = (batch - 1) * BATCH
    n = min(BATCH, rows - lo)
    step_us = int(bench.SPAN.total_seconds() * 1_000_000) // rows
    start = np.datetime64(bench.CUR_START.replace(tzinfo=None), "us")
    ts = start + (lo + np.arange(n)) * np.timedelta64(step_us, "us")
    table = pa.table({"ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
                      **{k: pa.array(v) for k, v in bench._numeric(n, FEATURES, True, 1000 + batch).items()}})
    with transaction.atomic():
        columnar.write_table(model_version_id=version_pk, batch_pk=batch, table=table)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO monitoring_prediction_log (model_version_id, batch_pk, ts, request_id, latency_ms) "
                "SELECT %s, %s, %s + (i * %s) * interval '1 microsecond', 'r' || i, 20 "
                "FROM generate_series(%s::bigint, %s::bigint) AS i",
                [version_pk, batch, bench.CUR_START, step_us, lo, lo + n - 1])
    return time.perf_counter() - t


def _write(version, rows: int, processes: int, needed: int | None = None) -> None:
    """Write the batches not written yet (a batch commits whole, so an interrupted write resumes where it
    stopped, and a second run on the same row count reuses the data), `processes` batches at a time; only those
    holding the first `needed` rows, if given."""
    import multiprocessing

    from django.db import connections
    from django.db.models import Sum

    from apps.monitoring import logstore
    from apps.monitoring.models import PredictionFile

    done = dict(PredictionFile.objects.filter(model_version=version).values_list("batch_pk")
                .annotate(n=Sum("rows")).values_list("batch_pk", "n"))
    todo = [b for b, lo in enumerate(range(0, needed or rows, BATCH), start=1) if done.get(b) != min(BATCH, rows - lo)]
    if not todo:
        print(f"{needed or rows:,} rows already written: reused")
        return
    logstore.ensure_partitions(bench.CUR_START, bench.CUR_START + bench.SPAN)
    connections.close_all()  # each forked writer opens its own connection
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        jobs = [(version.pk, rows, b) for b in todo]
        for i, seconds in enumerate(pool.imap_unordered(_star_write, jobs), start=1):
            print(f"  {i}/{len(todo)} batches written ({seconds:.0f} s for the last; "
                  f"{time.perf_counter() - started:.0f} s so far)", flush=True)
    print(f"wrote {len(todo) * BATCH:,} rows × {FEATURES} features straight into the log in "
          f"{time.perf_counter() - started:.0f} s ({processes} processes)")


def _star_write(job) -> float:
    return _write_batch(*job)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-exact", action="store_true")
    parser.add_argument("--write-processes", type=int, default=2)
    parser.add_argument("--write-only", action="store_true", help="write (or finish writing) the rows, then stop")
    parser.add_argument("--window-rows", type=int, default=None,
                        help="run on the window's first N rows only (a sub-window of the written data)")
    args = parser.parse_args()
    bench.scratch_database()
    from django.utils import timezone

    from apps.core.tasks import tick_task
    from apps.monitoring import engine
    from apps.monitoring.models import Monitor, MonitorRun, ReferenceColumn, ReferenceDataset
    from apps.monitoring.services import RUN_KIND
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.teams.models import Team
    from controlplane.celery import app
    from tests.harness.celery_worker import celery_worker
    from tests.harness.redis_server import RedisServer

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    model, _ = RegisteredModel.objects.get_or_create(name=f"bench-sketch-{args.rows}", defaults={"team": team})
    version, _ = ModelVersion.objects.get_or_create(model=model, version=1)
    Monitor.objects.filter(model_version=version).delete()
    _write(version, args.rows, args.write_processes, None if args.write_only else args.window_rows)
    if args.write_only:
        return

    import pandas as pd

    ReferenceDataset.objects.filter(model_version=version).delete()
    schema = [{"name": f"f{i:02d}", "kind": "numeric", "role": "feature"} for i in range(FEATURES)]
    frame = pd.DataFrame(bench._numeric(1_000_000, FEATURES, False, 1))
    reference = ReferenceDataset.objects.create(team=team, model_version=version, name="bench", source="logs",
                                                row_count=len(frame), schema=schema,
                                                sample_parquet=engine.sample_parquet(frame))
    for name in frame.columns:
        ReferenceColumn.objects.create(reference=reference, name=name, kind="numeric",
                                       **engine.prepare_column(frame.pop(name), "numeric"))
    monitor = Monitor.objects.create(team=team, name=f"bench-sketch-{args.rows}", model_version=version,
                                     reference=reference, exact_max_rows=1000, min_rows=1)
    window = (bench.CUR_START, bench.CUR_START + bench.SPAN)
    if args.window_rows:
        window = (window[0], window[0] + bench.SPAN * args.window_rows / args.rows)

    broker = RedisServer()
    broker.start()
    app.conf.broker_url = broker.url
    os.environ["MONITORING_FANOUT_MIN_PARTITIONS"] = "2"
    logs = Path("/tmp") / f"bench-sketch-{os.getpid()}"
    logs.mkdir(exist_ok=True)
    from contextlib import ExitStack

    with ExitStack() as stack:
        workers = [stack.enter_context(celery_worker(broker.url, logs / f"worker{i}.log", queues="bulk"))
                   for i in range(args.workers)]
        run = MonitorRun.objects.create(monitor=monitor, window_start=window[0], window_end=window[1], trigger="bench")
        started = time.perf_counter()
        tick_task.apply_async(kwargs={"kind": RUN_KIND, "ids": [run.pk]}, queue="bulk")
        peaks = [0.0] * len(workers)
        while True:
            run.refresh_from_db()
            peaks = [max(p, bench.proc_status_mb("VmHWM", w.pid)) for p, w in zip(peaks, workers)]
            if run.status not in ("queued", "running") or time.perf_counter() - started > 3600:
                break
            time.sleep(1)
        elapsed = time.perf_counter() - started
    broker.stop()
    print(f"\nsketch-mode run #{run.pk}: {run.status}, {run.current_rows:,} rows, {elapsed:.0f} s end to end on "
          f"{args.workers} workers ({run.message})")
    print("peak RSS per worker process: " + ", ".join(f"{p:.0f} MiB" for p in peaks))
    import re

    for i in range(len(workers)):  # the map tasks as each worker's log has them; the one not "waiting" reduced
        steps = re.findall(r"monitoring\.summarize_partition\[[^\]]+\] succeeded in ([\d.]+)s: (.*)",
                           (logs / f"worker{i}.log").read_text())
        done = ", ".join(f"{float(t):.0f} s ({r.strip(chr(39))})" for t, r in steps)
        print(f"  worker {i}: {done or 'no map task'}")
    sketch = {f.column: f for f in run.features.all()}
    if args.no_exact:
        print("sketch verdicts: " + ", ".join(f"{n} {f.score:.4g} {'drift' if f.drifted else 'ok'}"
                                              for n, f in sorted(sketch.items())))
        return
    specs = [engine.ColumnSpec(name=c["name"], kind="numeric", role="feature") for c in schema]
    t = time.perf_counter()
    exact = engine.window_drift(model_version_id=version.pk, start=window[0], end=window[1], specs=specs,
                                reference=engine.load_reference(reference), workers=2)
    print(f"exact mode on the same {exact.current_rows:,} rows: {time.perf_counter() - t:.0f} s in this process")
    same = 0
    for spec, res in exact.results:
        other = sketch[spec.name]
        same += other.drifted == res.drifted
        print(f"  {spec.name}  {res.method}  exact {res.score:.4g} {'drift' if res.drifted else 'ok   '}  "
              f"sketch {other.score:.4g} {'drift' if other.drifted else 'ok'}")
    print(f"verdicts agree: {same}/{len(exact.results)}; this process's peak RSS "
          f"{bench.proc_status_mb('VmHWM'):.0f} MB; finished {timezone.now():%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
