"""Costs benchmark (not a test): NVML sample ingest and the monthly per-team report.

    .venv/bin/python bench/costs/bench_costs.py [--samples 10000000] [--gpus 500] [--days 30]

In one run, on a scratch database (`<DATABASE_URL db>_bench`, created and migrated here):
1. writes N synthetic samples (GPUs × days at the resolution that gives N) to a COPY text file;
2. raw COPY of that file into the partitioned sample table (the baseline);
3. the same samples through the ingest path: each 10,000-sample batch is serialised to the JSON body an
   agent posts (not timed), then what the API view does with it is timed: apps.costs.ingest.batch_decode
   (JSON decode + validation, msgspec) and samples_ingest (counted rejections, batch idempotency row,
   partition check, device upsert, binary COPY built with numpy);
4. builds the hourly/daily rollups for the month (timed) from the samples and ~2,000 allocations;
5. the monthly per-team report: from the daily rollups (apps.costs.selectors.cost_report, what the UI and API
   run) next to a naive query that computes the same per-team cost and idle cost from the raw samples and the
   allocation ledger with GROUP BY. Each is run 5 times; the median is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BATCH = 10_000


def setup_database() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane")
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") + "_bench"
    import psycopg

    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunparse(parsed._replace(path=f"/{name}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return name


def generate(path: Path, *, samples: int, gpus: int, days: int, end: datetime, cluster_id: int) -> dict:
    """COPY text rows, time-major: every GPU reports at each tick."""
    ticks = max(samples // gpus, 1)
    step = timedelta(days=days) / ticks
    start = end - timedelta(days=days)
    rng = random.Random(1)
    nodes = [(f"node-{g // 8:03d}", g % 8) for g in range(gpus)]
    batch_id = str(uuid.uuid4())  # the raw file is one "batch" for the baseline
    written = 0
    with path.open("w") as out:
        for tick in range(ticks):
            ts = (start + step * tick).isoformat()
            lines = []
            for node, gpu in nodes:
                util = rng.random() * 100
                lines.append(f"{ts}\t{cluster_id}\t{node}\t{gpu}\t{util:.1f}\t{util * 800:.0f}\t81920\t"
                             f"{100 + util * 3:.1f}\t{batch_id}\n")
            out.write("".join(lines))
            written += len(lines)
    return {"rows": written, "start": start, "end": end, "step_seconds": step.total_seconds(), "nodes": nodes}


def reset_samples():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE costs_gpusample, costs_samplebatch, costs_usagehourly, costs_usagedaily, "
                       "costs_utilizationhourly, costs_utilizationdaily")


def raw_copy(path: Path, start: datetime, end: datetime) -> float:
    from django.db import connection, transaction

    from apps.costs.ingest import SAMPLE_COLUMNS, ensure_partitions

    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        ensure_partitions(start, end)
        with cursor.cursor.copy(f"COPY costs_gpusample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy, \
                path.open("rb") as source:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
    return time.perf_counter() - began


def _batches(path: Path):
    """The agent's JSON bodies, built from the same file (node per batch: agents post per node)."""
    pending: dict[str, list] = {}
    with path.open() as source:
        for line in source:
            ts, _, node, gpu, util, used, total, power, _ = line.rstrip("\n").split("\t")
            rows = pending.setdefault(node, [])
            # Agents send epoch seconds (workers/nvml_agent.py); converting the file's text is not timed.
            rows.append({"ts": datetime.fromisoformat(ts).timestamp(), "gpu_index": int(gpu), "gpu_uuid": f"GPU-{node}-{gpu}",
                         "gpu_name": "NVIDIA A100-SXM4-80GB",
                         "util": float(util), "mem_used_mb": float(used), "mem_total_mb": float(total),
                         "power_w": float(power)})
            if len(rows) >= BATCH:
                yield node, json.dumps({"batch_id": str(uuid.uuid4()), "samples": rows}).encode()
                pending[node] = []
    for node, rows in pending.items():
        if rows:
            yield node, json.dumps({"batch_id": str(uuid.uuid4()), "samples": rows}).encode()


def ingest_path(path: Path, cluster, now: datetime) -> tuple[float, int]:
    from apps.costs.ingest import batch_decode, samples_ingest

    timed, accepted = 0.0, 0
    for node, body in _batches(path):
        began = time.perf_counter()
        batch = batch_decode(body)  # what POST /api/v1/costs/samples/ does with the body
        result = samples_ingest(cluster=cluster, node=node, batch_id=batch.batch_id, samples=batch.samples, now=now)
        timed += time.perf_counter() - began
        accepted += result.accepted
    return timed, accepted


def seed_allocations(*, cluster, gtype, nodes, start: datetime, end: datetime, teams: int = 10, count: int = 2000):
    from apps.costs.models import GpuAllocation
    from apps.teams.models import Team

    team_rows = [Team.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})[0]
                 for i in range(teams)]
    GpuAllocation.objects.filter(cluster=cluster).delete()
    rng = random.Random(2)
    node_names = sorted({n for n, _ in nodes})
    span = (end - start).total_seconds()
    rows = []
    for i in range(count):
        began = start + timedelta(seconds=rng.random() * span * 0.9)
        rows.append(GpuAllocation(team=rng.choice(team_rows), cluster=cluster, gpu_type=gtype,
                                  gpu_count=rng.choice([1, 2, 4, 8]), node=rng.choice(node_names),
                                  started_at=began, stopped_at=min(began + timedelta(hours=rng.expovariate(1 / 30)), end),
                                  external_uid=f"bench-{i}"))
    GpuAllocation.objects.bulk_create(rows)


NAIVE_REPORT = """
WITH util AS (
    SELECT date_trunc('hour', ts) AS hour, node, AVG(util_gpu) AS util
    FROM costs_gpusample WHERE ts >= %(start)s AND ts < %(end)s GROUP BY 1, 2
), hours AS (
    SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour') AS h
), segs AS (
    SELECT a.team_id, a.node, a.gpu_count, hours.h,
           EXTRACT(EPOCH FROM LEAST(COALESCE(a.stopped_at, %(end)s), hours.h + interval '1 hour')
                              - GREATEST(a.started_at, hours.h)) / 3600.0 AS frac,
           (SELECT p.hourly_price FROM costs_gpuprice p WHERE p.gpu_type_id = a.gpu_type_id
              AND p.effective_from <= hours.h AND COALESCE(p.effective_to, 'infinity') > hours.h LIMIT 1) AS price
    FROM costs_gpuallocation a JOIN hours ON a.started_at < hours.h + interval '1 hour'
                                         AND COALESCE(a.stopped_at, %(end)s) > hours.h
)
SELECT t.slug, SUM(s.gpu_count * s.frac), SUM(s.gpu_count * s.frac * s.price),
       SUM(s.gpu_count * s.frac * s.price * (1 - u.util / 100.0))
FROM segs s JOIN teams_team t ON t.id = s.team_id LEFT JOIN util u ON u.hour = s.h AND u.node = s.node
GROUP BY t.slug ORDER BY t.slug
"""


def median_ms(fn, repeats: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--gpus", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()

    db = setup_database()
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.costs.models import GpuPrice, GpuType
    from apps.costs.rollup import rollup_window
    from apps.costs.selectors import cost_report
    from apps.deployments.models import Cluster

    cluster = Cluster.objects.get_or_create(name="bench", defaults={"kind": "local"})[0]
    now = datetime.now(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    # In service (and priced) well before the month, so every hour has its unallocated-capacity line.
    gtype = GpuType.objects.update_or_create(cluster=cluster, name="A100-80GB", defaults={
        "capacity": args.gpus, "capacity_from": now - timedelta(days=90)})[0]
    if not gtype.prices.exists():
        GpuPrice.objects.create(gpu_type=gtype, hourly_price=Decimal("3.40"), effective_from=now - timedelta(days=90))
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg_version = cursor.fetchone()[0].split(",")[0]
    print(f"database {db} ({pg_version}), {os.cpu_count()} CPUs", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.tsv"
        began = time.perf_counter()
        info = generate(path, samples=args.samples, gpus=args.gpus, days=args.days, end=now, cluster_id=cluster.pk)
        print(f"generated {info['rows']:,} samples ({args.gpus} GPUs × {args.days} days every "
              f"{info['step_seconds']:.0f} s), {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - began:.0f} s",
              flush=True)

        reset_samples()
        copy_s = raw_copy(path, info["start"], info["end"])
        print(f"raw COPY:     {copy_s:7.1f} s  {info['rows'] / copy_s:>10,.0f} samples/s", flush=True)

        reset_samples()
        ingest_s, accepted = ingest_path(path, cluster, now)
        assert accepted == info["rows"], (accepted, info["rows"])
        print(f"ingest path:  {ingest_s:7.1f} s  {accepted / ingest_s:>10,.0f} samples/s "
              f"({copy_s / ingest_s * 100:.0f} % of raw COPY)", flush=True)

    seed_allocations(cluster=cluster, gtype=gtype, nodes=info["nodes"], start=info["start"], end=info["end"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    began = time.perf_counter()
    rollup_window(start=info["start"], end=info["end"], now=now)
    rollup_s = time.perf_counter() - began
    print(f"rollup build (whole month): {rollup_s:.1f} s", flush=True)

    admin = get_user_model().objects.filter(is_superuser=True).first() or get_user_model().objects.create_superuser(
        "bench-admin", "bench@example.test", "bench-pass")
    start_day, end_day = info["start"].date(), info["end"].date()
    rollup_ms, rows = median_ms(lambda: cost_report(user=admin, start=start_day, end=end_day, group_by="team"))
    params = {"start": info["start"], "end": info["end"]}

    def naive():
        with connection.cursor() as cursor:
            cursor.execute(NAIVE_REPORT, params)
            return cursor.fetchall()

    naive_ms, naive_rows = median_ms(naive, repeats=3)
    by_team = {r["key"]: r["gpu_cost"] for r in rows}
    worst = max(abs(float(by_team[slug]) - float(cost)) for slug, _, cost, _ in naive_rows)
    print(f"monthly per-team report from rollups: {rollup_ms:8.1f} ms (median of 5)")
    print(f"same report, naive GROUP BY on raw:   {naive_ms:8.1f} ms (median of 3)")
    print(f"teams {len(naive_rows)}; largest per-team GPU-cost difference rollup vs naive: {worst:.4f}")


if __name__ == "__main__":
    main()
