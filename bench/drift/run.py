"""Drift run vs a plain Evidently 0.7 DataDriftPreset Report on the same rows (not a test).

    .venv/bin/python bench/drift/run.py                 # 1M reference rows, 1M current rows, 20 numeric features
    .venv/bin/python bench/drift/run.py --rows 100000   # quicker

Both sides read the same two windows of the partitioned prediction log in a scratch database
(`controlplane_bench_drift`, created and migrated on first use, data loaded once):

- ours: `apps.monitoring.engine.window_drift` — reads the current window straight from PostgreSQL
  (COPY binary → numpy), loads the stored prepared reference, tests the 20 columns on 2 threads.
  Timed end to end, reads included. Preparing the reference (once per reference dataset, when it
  is registered) is timed and printed separately.
- Evidently: `Report([DataDriftPreset()]).run(current, reference)` on pandas DataFrames of the
  same rows; only the Report is timed (loading the frames is not counted against it).

Each side runs in its own process so peak RSS is per side. Prints timings, ratio, peak memory and
the per-column method / score / verdict side by side.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = "controlplane_bench_drift"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

REF_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
CUR_START = datetime(2026, 1, 12, tzinfo=timezone.utc)
SPAN = timedelta(days=7)
MV_BASE = 990_000  # model version id used for the bench rows (id + rows, so sizes don't mix)


def _features(n: int):
    return [f"f{i:02d}" for i in range(n)]


def _make_columns(rows: int, nfeat: int, current: bool, seed: int):
    """Reference: assorted distributions. Current: the first 8 features shift (0.3 std and more),
    f08 shifts 0.11 std and f09 0.09 std (either side of the 0.1 threshold), the rest don't move."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shifts = {0: 0.3, 1: 0.5, 2: 0.3, 3: 1.0, 4: 0.4, 5: 0.3, 6: 0.6, 7: 0.35, 8: 0.11, 9: 0.09}
    cols = []
    for i in range(nfeat):
        kind = i % 4
        shift = shifts.get(i, 0.0) if current else 0.0
        if kind == 0:
            col = rng.normal(0, 1, rows) + shift
        elif kind == 1:
            col = (rng.lognormal(1, 0.5, rows) + shift * 1.5)
        elif kind == 2:
            col = rng.uniform(0, 10, rows) + shift * 2.9
        else:
            col = np.round(rng.normal(50, 15, rows) + shift * 15)
        cols.append(col.astype(np.float64))
    return cols


def _copy_binary(cursor, table: str, cols):
    import numpy as np

    n = len(cols[0])
    fields = [("n", ">i2")]
    for i in range(len(cols)):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    arr = np.empty(n, dtype=np.dtype(fields))
    arr["n"] = len(cols)
    for i, col in enumerate(cols):
        arr[f"l{i}"] = 8
        arr[f"v{i}"] = col
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    with cursor.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
        copy.write(header)
        step = 100_000
        for i in range(0, n, step):
            copy.write(arr[i:i + step].tobytes())
        copy.write((-1).to_bytes(2, "big", signed=True))


def setup(rows: int, nfeat: int) -> dict:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    from apps.monitoring import engine, logstore
    from apps.monitoring.models import ReferenceColumn, ReferenceDataset
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.teams.models import Team

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    model, _ = RegisteredModel.objects.get_or_create(name=f"bench-drift-{rows}-{nfeat}", defaults={"team": team})
    version, _ = ModelVersion.objects.get_or_create(model=model, version=1)
    features = _features(nfeat)
    with connection.cursor() as c:
        c.execute(f"SELECT count(*) FROM {logstore.TABLE} WHERE model_version_id = %s", [version.pk])
        have = c.fetchone()[0]
    if have != 2 * rows:
        print(f"loading {2 * rows:,} rows × {nfeat} features into {DB_NAME} (once) ...", flush=True)
        t = time.perf_counter()
        with transaction.atomic(), connection.cursor() as c:
            c.execute(f"DELETE FROM {logstore.TABLE} WHERE model_version_id = %s", [version.pk])
            logstore.ensure_partitions(REF_START, CUR_START + SPAN)
            colsql = ", ".join(f"{f} float8" for f in features)
            for label, start, seed in (("reference", REF_START, 1), ("current", CUR_START, 2)):
                c.execute(f"CREATE TEMP TABLE bench_stage ({colsql}) ON COMMIT DROP")
                _copy_binary(c.cursor, "bench_stage", _make_columns(rows, nfeat, label == "current", seed))
                pairs = ", ".join(f"'{f}', {f}" for f in features)
                c.execute(
                    f"INSERT INTO {logstore.TABLE} (model_version_id, batch_pk, ts, request_id, features) "
                    f"SELECT %s, 0, %s + (row_number() OVER () - 1) * (%s::interval / %s), "
                    f"%s || '-' || row_number() OVER (), jsonb_build_object({pairs}) FROM bench_stage",
                    [version.pk, start, SPAN, rows, label],
                )
                c.execute("DROP TABLE bench_stage")
            c.execute(f"ANALYZE {logstore.TABLE}")
        print(f"  loaded in {time.perf_counter() - t:.1f} s", flush=True)
    # Reference preparation: what registering a reference dataset does, once.
    t = time.perf_counter()
    with transaction.atomic():
        ReferenceDataset.objects.filter(model_version=version).delete()
        reference = ReferenceDataset.objects.create(
            team=team, model_version=version, name="bench reference", source="logs", row_count=rows,
            schema=[{"name": f, "kind": "numeric", "role": "feature"} for f in features])
        arrays = logstore.read_numeric(model_version_id=version.pk, start=REF_START, end=REF_START + SPAN,
                                       columns=features)
        import pandas as pd

        for f in features:
            prepared = engine.prepare_column(pd.Series(arrays.pop(f)), "numeric")
            ReferenceColumn.objects.create(reference=reference, name=f, kind="numeric", **prepared)
    prep_s = time.perf_counter() - t
    return {"version_id": version.pk, "reference_id": reference.pk, "features": features, "prepare_s": prep_s}


def phase_ours(info: dict) -> dict:
    import django

    django.setup()
    from apps.monitoring import engine
    from apps.monitoring.models import ReferenceDataset

    t = time.perf_counter()
    reference = engine.load_reference(ReferenceDataset.objects.get(pk=info["reference_id"]))
    specs = [engine.ColumnSpec(name=f, kind="numeric", role="feature") for f in info["features"]]
    result = engine.window_drift(model_version_id=info["version_id"], start=CUR_START, end=CUR_START + SPAN,
                                 specs=specs, reference=reference, workers=2)
    elapsed = time.perf_counter() - t
    return {"seconds": elapsed, "timings": result.timings, "rows": result.current_rows,
            "columns": {r.column: [r.method, r.score, r.drifted] for _, r in result.results}}


def phase_evidently(info: dict) -> dict:
    import django

    django.setup()
    import pandas as pd

    from apps.monitoring import logstore

    frames = []
    for start in (REF_START, CUR_START):
        arrays = logstore.read_numeric(model_version_id=info["version_id"], start=start, end=start + SPAN,
                                       columns=info["features"])
        frames.append(pd.DataFrame(arrays))
        del arrays
    reference, current = frames
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    sys.path.insert(0, str(ROOT))
    from tests.monitoring.evidently_ref import _BY_DISPLAY

    definition = DataDefinition(numerical_columns=info["features"])
    t = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition))
    elapsed = time.perf_counter() - t
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            score = float(metric["value"])
            columns[config["column"]] = [_BY_DISPLAY.get(config["method"], config["method"]), score,
                                         score >= config["threshold"]]
    return {"seconds": elapsed, "columns": columns, "rows": len(current)}


def _child(phase: str, info: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--info", json.dumps(info)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{phase} phase failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--phase")
    parser.add_argument("--info")
    args = parser.parse_args()
    if args.phase:
        info = json.loads(args.info)
        result = (phase_ours if args.phase == "ours" else phase_evidently)(info)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    info = setup(args.rows, args.features)
    print(f"reference preparation (once per reference dataset): {info['prepare_s']:.1f} s", flush=True)
    ours = _child("ours", info)
    print(f"ours done: {ours['seconds']:.1f} s", flush=True)
    theirs = _child("evidently", info)
    print(f"evidently done: {theirs['seconds']:.1f} s", flush=True)

    print()
    print(f"rows: reference {args.rows:,} / current {ours['rows']:,}, {args.features} numeric features, 2 threads")
    print(f"{'':28}{'ours':>12}{'Evidently':>12}")
    print(f"{'drift time (s)':28}{ours['seconds']:>12.2f}{theirs['seconds']:>12.2f}")
    print(f"{'  of which PG read (s)':28}{ours['timings']['read_s']:>12.2f}{'-':>12}")
    print(f"{'peak RSS (MB)':28}{ours['peak_rss_mb']:>12.0f}{theirs['peak_rss_mb']:>12.0f}")
    print(f"ratio Evidently / ours: {theirs['seconds'] / ours['seconds']:.1f}x "
          f"(with reference preparation counted too: {theirs['seconds'] / (ours['seconds'] + info['prepare_s']):.1f}x)")
    print()
    print(f"{'column':8}{'method':>14}{'ours score':>22}{'Evidently score':>22}{'ours':>7}{'Evid.':>7}")
    agree = 0
    for col in info["features"]:
        m, s, d = ours["columns"][col]
        em, es, ed = theirs["columns"][col]
        same = m == em and d == ed
        agree += same
        print(f"{col:8}{m:>14}{s:>22.15f}{es:>22.15f}{'drift' if d else 'ok':>7}{'drift' if ed else 'ok':>7}"
              f"{'' if same else '  DIFFERENT'}")
    max_rel = max(abs(ours["columns"][c][1] - theirs["columns"][c][1]) / max(abs(theirs["columns"][c][1]), 1e-300)
                  for c in info["features"])
    print(f"verdict agreement: {agree}/{len(info['features'])} columns; max relative score difference {max_rel:.1e}")


if __name__ == "__main__":
    main()
