"""Prediction-log ingest through the API vs a raw write of the same rows (not a test).

    .venv/bin/python bench/drift/ingest.py                      # 20 batches × 10,000 rows × 20 numeric features
    .venv/bin/python bench/drift/ingest.py --batches 3          # smoke run
    .venv/bin/python bench/drift/ingest.py --general            # also the API's general path, side by side
    .venv/bin/python bench/drift/ingest.py --stages             # where the API path's time goes, per stage

Scratch database `controlplane_bench_drift` (see run.py). Side by side, alternating batch by batch so load
on the machine hits both alike:
- API: `POST /api/v1/monitoring/predictions/` through Django's in-process test client (JSON body encoded
  beforehand): authentication, msgspec's decode of the body against the monitor schema's row type with the
  strict JSON parser's rules (services/ingest_columns.py: every row of these batches passes, so they take the
  column path), the idempotency row, COPY of the row fields into PostgreSQL, one Parquet file per batch and
  day with its manifest row, the summary-merge hint (outbox row; published to redis after commit), the audit
  event, commit. The merge itself runs in the background (a worker's `monitoring.summarize_log`): timed after
  the loop, over all the batches' files, so its rate can be set against the ingest rate it has to keep up with. The run fails if a batch
  did not take the column path.
- API general (--general): the same request with the column path switched off, as every batch went before
  it and as a batch with a row to reject still goes: the strict JSON parser, the serializer, validate_rows.
- raw: the same rows as the JSON parser hands them over (a list of dicts), written with no checks at all: COPY
  of the row fields into the same table and pyarrow's Parquet write of the features, in one transaction.
Prints rows/s for each and the ratios.
"""
import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/controlplane_bench_drift"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

START = datetime(2026, 2, 2, tzinfo=timezone.utc)


def _setup(features: list[str]):
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'controlplane_bench_drift'").fetchone():
            conn.execute("CREATE DATABASE controlplane_bench_drift")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.monitoring.models import Monitor, ReferenceDataset
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.teams.models import Membership, Team

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": "ml_engineer"})
    model, _ = RegisteredModel.objects.get_or_create(name=f"bench-ingest-{time.time_ns()}", team=team)
    version = ModelVersion.objects.create(model=model, version=1)
    schema = [{"name": f, "kind": "numeric", "role": "feature"} for f in features]
    schema.append({"name": "prediction", "kind": "numeric", "role": "prediction"})
    reference = ReferenceDataset.objects.create(team=team, model_version=version, name="bench", source="upload",
                                                row_count=0, schema=schema)
    Monitor.objects.create(team=team, name=model.name, model_version=version, reference=reference)
    return user, version


def _rows(batch: int, size: int, features: list[str]) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(batch + 1)
    values = rng.normal(size=(size, len(features))).round(6).tolist()
    t0 = START + timedelta(hours=batch + 1)
    return [{"timestamp": (t0 + timedelta(milliseconds=10 * i)).isoformat(), "request_id": f"b{batch}-{i}",
             "features": dict(zip(features, row)), "prediction": float(row[0] > 0), "latency_ms": 12.5}
            for i, row in enumerate(values)]


def _raw_write(version_id: int, batch_pk: int, rows: list[dict], features: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from django.db import connection, transaction

    from apps.monitoring import logstorage, logstore

    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {logstore.TABLE} (model_version_id, batch_pk, ts, request_id, prediction, "
                                f"latency_ms) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((version_id, batch_pk, r["timestamp"], r["request_id"], r["prediction"], r["latency_ms"]))
        table = pa.table({"ts": pa.array([r["timestamp"] for r in rows]).cast(pa.timestamp("us", tz="UTC")),
                          **{f: pa.array([r["features"][f] for r in rows], pa.float64()) for f in features}})
        target = logstorage.store()
        path = target.path(f"bench-raw/v{version_id}/b{batch_pk}.parquet")
        target.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=target.filesystem)


def _time_stages() -> dict:
    """Wrap the column path's stages to time them. Returns {stage: [seconds per batch]}; the "current" entry
    holds the batch in flight ({stage: seconds}), which the caller keeps or drops."""
    from collections import defaultdict

    from apps.monitoring import columnar
    from apps.monitoring.services import ingest_columns, partition_summaries

    times = defaultdict(list)
    current = times["current"] = defaultdict(float)

    def wrap(owner, name, stage):
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                current[stage] += time.perf_counter() - t

        setattr(owner, name, timed)

    wrap(ingest_columns, "decode_header", "1 header decode (msgspec, rows skipped)")
    wrap(ingest_columns, "decode_rows", "2 rows: decode + column checks")
    wrap(ingest_columns.Columns, "write", "3 write: COPY + Parquet + manifest")
    wrap(columnar, "write_table", "3a  of which Parquet + manifest + merge hint")
    wrap(partition_summaries, "files_summarize_request", "3b  of which the merge hint (outbox row)")
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--general", action="store_true", help="also time the API's general path")
    parser.add_argument("--stages", action="store_true", help="where the API path's time goes, per stage")
    args = parser.parse_args()
    features = [f"f{i:02d}" for i in range(args.features)]
    user, version = _setup(features)
    from django.test import Client

    from apps.monitoring import logstore
    from apps.monitoring.services import ingest_columns

    client = Client()
    client.force_login(user)
    logstore.ensure_partitions(START, START + timedelta(hours=args.batches + 2))
    stages = _time_stages() if args.stages else None
    batch_columns, decode_header, taken = ingest_columns.batch_columns, ingest_columns.decode_header, []

    def column_path(header, **kwargs):  # counts the batches that took the column path
        columns = batch_columns(header, **kwargs)
        taken.append(columns is not None)
        return columns

    ingest_columns.batch_columns = column_path
    api_s = general_s = raw_s = 0.0
    for batch in range(-1, args.batches):  # batch -1 warms up (imports, first connection), not counted
        rows = _rows(batch, args.batch_rows, features)
        warm_up = batch < 0
        for general in (False, True) if args.general else (False,):
            body = json.dumps({"model_version": version.pk, "batch_id": f"b{batch}{'g' * general}", "rows": rows})
            ingest_columns.decode_header = (lambda request: None) if general else decode_header
            t = time.perf_counter()
            response = client.post("/api/v1/monitoring/predictions/", body, content_type="application/json")
            elapsed = 0 if warm_up else time.perf_counter() - t
            assert response.status_code == 201 and response.json()["accepted"] == len(rows), response.content[:500]
            if general:
                general_s += elapsed
            else:
                api_s += elapsed
                assert taken.pop(), "the batch did not take the column path"
                if stages is not None and not warm_up:
                    stages["API request"].append(elapsed)
                    for stage, seconds in stages["current"].items():
                        stages[stage].append(seconds)
            if stages is not None:
                stages["current"].clear()
        parsed = json.loads(body)["rows"]  # what the API's JSON parser hands over
        t = time.perf_counter()
        _raw_write(version.pk, 1_000_000 + batch, parsed, features)
        raw_s += 0 if warm_up else time.perf_counter() - t
    total = args.batches * args.batch_rows
    from apps.monitoring.services.partition_summaries import files_summarize

    from django.db.models import Sum

    from apps.monitoring.models import PredictionFile

    t = time.perf_counter()
    merged = files_summarize(model_version_id=version.pk)
    merge_s = time.perf_counter() - t
    merge_rate = PredictionFile.objects.filter(model_version=version).aggregate(rows=Sum("rows"))["rows"] / merge_s
    print(f"{args.batches} batches × {args.batch_rows:,} rows × {args.features} numeric features")
    print(f"API path: {total / api_s:,.0f} rows/s ({api_s:.1f} s); raw COPY + Parquet write: {total / raw_s:,.0f} "
          f"rows/s ({raw_s:.1f} s); API / raw = {raw_s / api_s:.0%}")
    print(f"background summary merge (one worker): {merged} files, {merge_rate:,.0f} rows/s ({merge_s:.1f} s); at "
          f"the API's rate it keeps one worker {total / api_s / merge_rate:.0%} busy")
    if stages is not None:
        stages.pop("current")
        total_ms = statistics.median(stages.pop("API request")) * 1000
        print(f"API request, median of {args.batches}: {total_ms:.0f} ms; stages (median ms, share):")
        for name, times in sorted(stages.items()):
            if times:
                ms = statistics.median(times) * 1000
                print(f"  {name:44s} {ms:7.1f} ms {ms / total_ms:5.0%}")
    if args.general:
        print(f"API general path: {total / general_s:,.0f} rows/s ({general_s:.1f} s); general / raw = "
              f"{raw_s / general_s:.0%}; API / general = {general_s / api_s:.1f}x")


if __name__ == "__main__":
    main()
