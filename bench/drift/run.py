"""Drift per method vs a plain Evidently 0.7 Report with that method forced, on the same rows (not a test).

    .venv/bin/python bench/drift/run.py                  # 1M reference × 1M current rows, 20 columns per method
    .venv/bin/python bench/drift/run.py --rows 100000    # smoke run
    .venv/bin/python bench/drift/run.py --methods ks,chisquare --skip-read-compare

Data (scratch database `controlplane_bench_drift`, created and migrated on first use; loaded once): one week
of reference rows and the next week of current rows of one model version, written straight into the
columnar prediction log (columnar.write_table: one Parquet file per UTC day). 20 numeric features f00–f19
(f00–f07 shift 0.3–1.0 std, f08 0.11 std, f09 0.09 std, the rest don't move) and 20 categorical features
c00–c19 (8 categories; c00–c07 shift, c08/c09 barely, the rest don't).

Per method (wasserstein, ks, psi, jensenshannon on the numeric columns; chisquare on the categorical ones),
each side in its own process (peak RSS per side):
- ours: engine.window_drift with the method forced on every column, end to end: loading the stored prepared
  reference, reading the current window from the Parquet files (DuckDB), testing 20 columns on 2 threads.
- Evidently: `Report([DataDriftPreset(num_method=m | cat_method=m)], include_tests=True)` on pandas frames of
  the same rows (read from the same files, not timed); each column's verdict is the status of Evidently's own
  per-column "Value Drift" test (FAIL = drift), not recomputed from the score.
Library imports are outside the timing on both sides (reported apart): a worker process imports them once.

Read comparison (the storage choice in bench/README.md): the current window's 20 numeric columns read from
the Parquet files vs from a PostgreSQL table with one float8 column per feature (COPY binary → numpy), same rows.
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
NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensenshannon")
METHODS = NUMERIC_METHODS + ("chisquare",)
CATEGORIES = 8


def scratch_database() -> None:
    """The bench's scratch database, created when missing and migrated; Django set up on it."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def proc_status_mb(field: str, pid: int | str = "self") -> float:
    """A memory line of /proc/<pid>/status in MiB: VmRSS (now) or VmHWM (peak RSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _numeric(rows: int, nfeat: int, current: bool, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    shifts = {0: 0.3, 1: 0.5, 2: 0.3, 3: 1.0, 4: 0.4, 5: 0.3, 6: 0.6, 7: 0.35, 8: 0.11, 9: 0.09}
    cols = {}
    for i in range(nfeat):
        shift = shifts.get(i, 0.0) if current else 0.0
        kind = i % 4
        if kind == 0:
            col = rng.normal(0, 1, rows) + shift
        elif kind == 1:
            col = rng.lognormal(1, 0.5, rows) + shift * 1.5
        elif kind == 2:
            col = rng.uniform(0, 10, rows) + shift * 2.9
        else:
            col = np.round(rng.normal(50, 15, rows) + shift * 15)
        cols[f"f{i:02d}"] = col
    return cols


def _categorical(rows: int, nfeat: int, current: bool, seed: int):
    """Category shares ∝ 0.7^j; a shifted column mixes in the shares rolled by one category."""
    import numpy as np

    rng = np.random.default_rng(seed + 100)
    base = 0.7 ** np.arange(CATEGORIES)
    base /= base.sum()
    shifts = {0: 0.3, 1: 0.5, 2: 0.2, 3: 0.4, 4: 0.3, 5: 0.25, 6: 0.6, 7: 0.35, 8: 0.01, 9: 0.004}
    names = np.array([f"v{j}" for j in range(CATEGORIES)])
    cols = {}
    for i in range(nfeat):
        s = shifts.get(i, 0.0) if current else 0.0
        p = (1 - s) * base + s * np.roll(base, 1)
        cols[f"c{i:02d}"] = names[rng.choice(CATEGORIES, rows, p=p)]
    return cols


def _week(start: datetime, rows: int, nfeat: int, current: bool, seed: int):
    import numpy as np
    import pyarrow as pa

    step_us = int(SPAN.total_seconds() * 1_000_000) // rows
    ts = np.datetime64(start.replace(tzinfo=None), "us") + np.arange(rows) * np.timedelta64(step_us, "us")
    columns = {"ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC"))}
    columns.update({k: pa.array(v) for k, v in _numeric(rows, nfeat, current, seed).items()})
    columns.update({k: pa.array(v) for k, v in _categorical(rows, nfeat, current, seed).items()})
    return pa.table(columns)


def setup(rows: int, nfeat: int) -> dict:
    scratch_database()
    from django.db import transaction

    from apps.monitoring import columnar, engine
    from apps.monitoring.models import PredictionFile, ReferenceColumn, ReferenceDataset
    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.teams.models import Team

    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    model, _ = RegisteredModel.objects.get_or_create(name=f"bench-drift-pq-{rows}-{nfeat}", defaults={"team": team})
    version, _ = ModelVersion.objects.get_or_create(model=model, version=1)
    numeric = [f"f{i:02d}" for i in range(nfeat)]
    categorical = [f"c{i:02d}" for i in range(nfeat)]
    files = PredictionFile.objects.filter(model_version=version)
    if sum(files.values_list("rows", flat=True)) != 2 * rows:
        print(f"writing {2 * rows:,} rows × {2 * nfeat} features into the columnar log (once) ...", flush=True)
        files.delete()
        for batch, (start, current, seed) in enumerate(((REF_START, False, 1), (CUR_START, True, 2)), start=1):
            table = _week(start, rows, nfeat, current, seed)
            t = time.perf_counter()
            with transaction.atomic():
                columnar.write_table(model_version_id=version.pk, batch_pk=batch, table=table)
            print(f"  {rows:,} rows written in {time.perf_counter() - t:.1f} s", flush=True)
    # Reference preparation: what registering a reference dataset does, once.
    t = time.perf_counter()
    import pandas as pd

    with transaction.atomic():
        ReferenceDataset.objects.filter(model_version=version).delete()
        schema = ([{"name": c, "kind": "numeric", "role": "feature"} for c in numeric]
                  + [{"name": c, "kind": "categorical", "role": "feature"} for c in categorical])
        reference = ReferenceDataset.objects.create(team=team, model_version=version, name="bench reference",
                                                    source="logs", row_count=rows, schema=schema)
        frame = columnar.read_rows(model_version_id=version.pk, start=REF_START, end=REF_START + SPAN,
                                   numeric=numeric, categorical=categorical).to_pandas()
        for col in schema:
            prepared = engine.prepare_column(frame.pop(col["name"]), col["kind"])
            ReferenceColumn.objects.create(reference=reference, name=col["name"], kind=col["kind"], **prepared)
    return {"version_id": version.pk, "reference_id": reference.pk, "numeric": numeric, "categorical": categorical,
            "prepare_s": time.perf_counter() - t, "rows": rows}


def _columns_for(method: str, info: dict) -> tuple[list, list]:
    return (info["numeric"], []) if method in NUMERIC_METHODS else ([], info["categorical"])


def phase_ours(info: dict, method: str) -> dict:
    import django

    django.setup()
    from apps.monitoring import engine
    from apps.monitoring.models import ReferenceDataset

    numeric, categorical = _columns_for(method, info)
    # The libraries the run uses are imported before the clock starts, as Evidently's are in its phase (a worker
    # imports them once; scipy.stats alone takes ~1 s, more under load). Their import time is reported apart.
    t = time.perf_counter()
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import scipy.spatial.distance  # noqa: F401
    import scipy.stats  # noqa: F401
    imports = time.perf_counter() - t
    t = time.perf_counter()
    reference = engine.load_reference(ReferenceDataset.objects.get(pk=info["reference_id"]), numeric + categorical)
    loaded = time.perf_counter() - t
    specs = ([engine.ColumnSpec(name=c, kind="numeric", role="feature", method=method) for c in numeric]
             + [engine.ColumnSpec(name=c, kind="categorical", role="feature", method=method) for c in categorical])
    result = engine.window_drift(model_version_id=info["version_id"], start=CUR_START, end=CUR_START + SPAN,
                                 specs=specs, reference=reference, workers=2)
    elapsed = time.perf_counter() - t
    return {"seconds": elapsed, "timings": {**result.timings, "reference_s": loaded}, "imports_s": imports,
            "rows": result.current_rows,
            "columns": {r.column: [r.method, r.score, r.drifted] for _, r in result.results}}


def phase_evidently(info: dict, method: str) -> dict:
    import django

    django.setup()
    from apps.monitoring import columnar
    from apps.monitoring.drift import DISPLAY_NAMES

    numeric, categorical = _columns_for(method, info)
    t = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imports = time.perf_counter() - t
    frames = [columnar.read_rows(model_version_id=info["version_id"], start=start, end=start + SPAN,
                                 numeric=numeric, categorical=categorical).to_pandas() for start in (REF_START, CUR_START)]
    reference, current = frames
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(num_method=method) if numeric else DataDriftPreset(cat_method=method)
    t = time.perf_counter()
    snapshot = Report([preset], include_tests=True).run(Dataset.from_pandas(current, data_definition=definition),
                                                        Dataset.from_pandas(reference, data_definition=definition))
    elapsed = time.perf_counter() - t
    by_display = {v: k for k, v in DISPLAY_NAMES.items()}
    result = snapshot.dict()
    scores = {m["config"]["column"]: (by_display.get(m["config"]["method"], m["config"]["method"]), float(m["value"]))
              for m in result["metrics"] if m["config"]["type"].endswith("ValueDrift")}
    verdicts = {t["metric_config"]["params"]["column"]: str(getattr(t["status"], "value", t["status"])) == "FAIL"
                for t in result["tests"] if t["metric_config"]["params"]["type"].endswith(":ValueDrift")}
    return {"seconds": elapsed, "rows": len(current), "imports_s": imports,
            "columns": {c: [m, s, verdicts[c]] for c, (m, s) in scores.items()}}


def phase_read(info: dict) -> dict:
    """Current window's numeric columns: Parquet via DuckDB vs a typed float8 PostgreSQL table (COPY binary)."""
    import django

    django.setup()
    import numpy as np
    from django.db import connection, transaction

    from apps.monitoring import columnar

    table = f"bench_typed_{info['rows']}"
    cols = info["numeric"]
    with connection.cursor() as c:
        c.execute("SELECT to_regclass(%s)", [table])
        if c.fetchone()[0] is None:
            arrays = columnar.read_window(model_version_id=info["version_id"], start=CUR_START, end=CUR_START + SPAN,
                                          numeric=cols, categorical=[]).numeric
            with transaction.atomic():
                c.execute(f"CREATE TABLE {table} (ts timestamptz, {', '.join(f'{n} float8' for n in cols)})")
                _copy_binary(c.cursor, table, CUR_START, [arrays[n] for n in cols])
                c.execute(f"CREATE INDEX ON {table} (ts)")
                c.execute(f"ANALYZE {table}")
    out = {}
    for attempt in range(2):
        t = time.perf_counter()
        columnar.read_window(model_version_id=info["version_id"], start=CUR_START, end=CUR_START + SPAN,
                             numeric=cols, categorical=[])
        out["parquet_s"] = min(out.get("parquet_s", 1e9), time.perf_counter() - t)
        t = time.perf_counter()
        with connection.cursor() as c:
            query = c.cursor.mogrify(f"SELECT {', '.join(cols)} FROM {table} WHERE ts >= %s AND ts < %s",
                                     [CUR_START, CUR_START + SPAN])
            with c.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
                buffer = b"".join(bytes(chunk) for chunk in copy)
        fields = [("n", ">i2")] + [f for i in range(len(cols)) for f in ((f"l{i}", ">i4"), (f"v{i}", ">f8"))]
        decoded = np.frombuffer(memoryview(buffer)[19:len(buffer) - 2], dtype=np.dtype(fields))
        [decoded[f"v{i}"].astype(np.float64) for i in range(len(cols))]
        out["typed_pg_s"] = min(out.get("typed_pg_s", 1e9), time.perf_counter() - t)
    return out


def _copy_binary(cursor, table: str, start: datetime, cols):
    """COPY (FORMAT binary) built by numpy: ts (µs since 2000-01-01) and float8 columns, fixed width."""
    import numpy as np

    n = len(cols[0])
    fields = [("n", ">i2"), ("lt", ">i4"), ("t", ">i8")]
    fields += [f for i in range(len(cols)) for f in ((f"l{i}", ">i4"), (f"v{i}", ">f8"))]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["n"], rows["lt"] = len(cols) + 1, 8
    epoch = int((start - datetime(2000, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1_000_000)
    rows["t"] = epoch + np.arange(n) * (int(SPAN.total_seconds() * 1_000_000) // n)
    for i, col in enumerate(cols):
        rows[f"l{i}"], rows[f"v{i}"] = 8, col
    with cursor.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
        for i in range(0, n, 100_000):
            copy.write(rows[i:i + 100_000].tobytes())
        copy.write((-1).to_bytes(2, "big", signed=True))


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM belongs to the address space exec created, where getrusage's ru_maxrss
    keeps the parent's peak across fork + exec (the loader's 1M-row frames showed as every child's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(phase: str, info: dict, method: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--method", method, "--info", json.dumps(info)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{phase} {method} phase failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(method: str, ours: dict, theirs: dict) -> tuple[int, int, float]:
    agree, max_rel = 0, 0.0
    for col, (m, s, d) in ours["columns"].items():
        em, es, ed = theirs["columns"][col]
        agree += (m == em and d == ed)
        max_rel = max(max_rel, abs(s - es) / max(abs(es), 1e-300))
        if m != em or d != ed:
            print(f"    {col}: ours {m} {s!r} {'drift' if d else 'ok'} / Evidently {em} {es!r} {'drift' if ed else 'ok'}")
    return agree, len(ours["columns"]), max_rel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--skip-read-compare", action="store_true")
    parser.add_argument("--phase")
    parser.add_argument("--method", default="")
    parser.add_argument("--info")
    args = parser.parse_args()
    if args.phase:
        info = json.loads(args.info)
        phase = {"ours": phase_ours, "evidently": phase_evidently}.get(args.phase)
        result = phase(info, args.method) if phase else phase_read(info)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return

    info = setup(args.rows, args.features)
    print(f"reference preparation (once per reference dataset, 40 columns): {info['prepare_s']:.1f} s", flush=True)
    if not args.skip_read_compare:
        read = _child("read", info)
        print(f"read {args.rows:,} rows × {args.features} numeric columns: Parquet (read_window) {read['parquet_s']:.2f} s, "
              f"typed PostgreSQL float8 columns (COPY binary) {read['typed_pg_s']:.2f} s", flush=True)
    table = []
    for method in args.methods.split(","):
        ours = _child("ours", info, method)
        theirs = _child("evidently", info, method)
        agree, total, max_rel = _compare(method, ours, theirs)
        table.append((method, ours, theirs, agree, total, max_rel))
        timings = ours["timings"]
        print(f"{method}: ours {ours['seconds']:.2f} s (reference {timings['reference_s']:.2f} s, read "
              f"{timings['read_s']:.2f} s, tests {timings['compute_s']:.2f} s), Evidently {theirs['seconds']:.2f} s, "
              f"{theirs['seconds'] / ours['seconds']:.1f}x, verdicts {agree}/{total}; imports (not timed) ours "
              f"{ours['imports_s']:.1f} s, Evidently {theirs['imports_s']:.1f} s; load {os.getloadavg()[0]:.1f}",
              flush=True)
    print()
    print(f"rows: reference {args.rows:,} / current {args.rows:,}, {args.features} columns per method, 2 threads; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| method | columns | ours s (read s) | Evidently s | Evidently / ours | verdicts equal | max rel. score diff "
          "| peak RSS ours / Evidently MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for method, ours, theirs, agree, total, max_rel in table:
        kind = "numeric" if method in NUMERIC_METHODS else "categorical"
        print(f"| {method} | {total} {kind} | {ours['seconds']:.2f} ({ours['timings']['read_s']:.2f}) "
              f"| {theirs['seconds']:.1f} | {theirs['seconds'] / ours['seconds']:.1f}× | {agree}/{total} "
              f"| {max_rel:.1e} | {ours['peak_rss_mb']:.0f} / {theirs['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
