"""Registry API benchmark (not a test): the control plane's version list next to MLflow's search.

    .venv/bin/python bench/registry_api/run.py [--versions 100000] [--models 1000] [--teams 10]
                                               [--clients 50] [--seconds 20] [--workers 2]
                                               [--changes 30] [--sync-only]

In one run:
1. a scratch MLflow backend database (`mlflow_registry_bench`) gets N model versions over M registered models
   (each model tagged `team=tNN`) written with COPY straight into MLflow's own tables, after `mlflow db upgrade`
   created them (the REST API needs ~3 calls per version: hours for 100k here). The versions carry no runs.
   A database already seeded with the same N is reused;
2. an MLflow server (`mlflow server --workers W`) is started on that database;
3. a scratch control-plane database (`<DATABASE_URL db>_registry_bench`) is migrated, the teams and a user
   with an API token in team t03 are created, and the control plane syncs from that MLflow server through
   its normal sync (apps.registry.sync, timed: the first sync writes every version), then, with nothing
   changed in MLflow, the complete pass (lists every model and version: the old incremental pass) next to the
   watermark pass (only models whose `last_updated_timestamp` moved), and a watermark pass after one new version;
4. the control plane is served by gunicorn (W workers × 4 threads, DEBUG off);
   its MLflow webhook is registered (`manage.py mlflow_webhook_register`) and --changes changes are made in MLflow
   (alias set, version tag set, version created, in turn); for each, the time from the MLflow call to the change
   being visible in the control plane's database is measured (webhook → gunicorn → sync of that one model);
5. 50 concurrent clients (aiohttp) hit, for S seconds each after a 3 s warm-up, one after the other:
   - MLflow: GET /api/2.0/mlflow/model-versions/search?filter=name LIKE 't03-%'&max_results=50
   - control plane: GET /api/v1/registry/versions/?team=t03&page_size=50 (Bearer token, team-scoped)
   and reports throughput and p50/p99 latency of each, and the ratio (skipped with --sync-only).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
MLFLOW_DB = "mlflow_registry_bench"
WARM_UP = 4  # webhook deliveries before the timed ones: each gunicorn worker's first one is cold


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_urls() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane")
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path="/postgres")), urlunparse(parsed._replace(path=f"/{MLFLOW_DB}"))


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def seed_mlflow(*, versions: int, models: int, teams: int) -> float:
    import psycopg

    admin, url = pg_urls()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [MLFLOW_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{MLFLOW_DB}"')
    parsed = urlparse(url)
    sqlalchemy_url = urlunparse(parsed._replace(scheme="postgresql+psycopg"))
    subprocess.run([str(BIN / "mlflow"), "db", "upgrade", sqlalchemy_url], check=True, capture_output=True)
    with psycopg.connect(url) as conn:
        # Webhooks of an earlier run carry secrets encrypted with that run's key, which MLflow can't read now.
        conn.execute("TRUNCATE webhook_events, webhooks CASCADE")
        conn.commit()
        have = conn.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        if have == versions:
            print(f"MLflow bench database already holds {have} versions; reusing it")
            conn.execute("ANALYZE")
            return 0.0
        started = time.perf_counter()
        conn.execute("TRUNCATE model_version_tags, model_versions, registered_model_aliases, registered_model_tags, "
                     "registered_models CASCADE")
        now = int(time.time() * 1000)
        per_model = versions // models
        names = [f"t{m % teams:02d}-model-{m:05d}" for m in range(models)]
        with conn.cursor() as cur:
            with cur.copy("COPY registered_models (name, creation_time, last_updated_time, description) "
                          "FROM STDIN") as copy:
                for name in names:
                    copy.write_row((name, now, now, "bench model"))
            with cur.copy("COPY registered_model_tags (key, value, name) FROM STDIN") as copy:
                for m, name in enumerate(names):
                    copy.write_row(("team", f"t{m % teams:02d}", name))
            with cur.copy("COPY model_versions (name, version, creation_time, last_updated_time, description, "
                          "user_id, current_stage, source, run_id, status, status_message, run_link, "
                          "storage_location) FROM STDIN") as copy:
                written = 0
                for m, name in enumerate(names):
                    count = per_model + (1 if m < versions - per_model * models else 0)
                    for v in range(1, count + 1):
                        copy.write_row((name, v, now + v, now + v, "", "bench", "None", "", "", "READY", "", "", ""))
                        written += 1
        conn.commit()
        # Fresh statistics, as autovacuum would have them on a registry that grew over time; without them
        # PostgreSQL picks a nested-loop plan for MLflow's latest-versions query that takes minutes.
        conn.autocommit = True
        conn.execute("ANALYZE")
        elapsed = time.perf_counter() - started
        print(f"Seeded {written} versions over {models} models into MLflow's tables in {elapsed:.1f}s")
        return elapsed


def setup_controlplane(*, mlflow_url: str, teams: int) -> tuple[str, float, str]:
    """Scratch database, migrate, teams + token, sync. Returns (database url, sync seconds, token)."""
    import psycopg

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane")
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") + "_registry_bench"
    with psycopg.connect(urlunparse(parsed._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = urlunparse(parsed._replace(path=f"/{name}"))
    os.environ["DATABASE_URL"] = db_url
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.registry.services import sync_run_now
    from apps.teams.models import Membership, Team
    from apps.teams.services import api_token_create

    for t in range(teams):
        Team.objects.get_or_create(slug=f"t{t:02d}", defaults={"name": f"Team {t:02d}"})
    user = get_user_model().objects.create_user("bench", "bench@example.test", "bench-pass")
    Membership.objects.create(team=Team.objects.get(slug="t03"), user=user, role="viewer")
    token = api_token_create(actor=user, name="bench")[1]
    started = time.perf_counter()
    run = sync_run_now(actor=None)
    elapsed = time.perf_counter() - started
    print(f"Control plane sync: {run.counts['versions']} versions, {run.counts['models']} models in {elapsed:.1f}s")
    timings = {"first sync (complete pass, every version written)": elapsed}
    started = time.perf_counter()
    run = sync_run_now(actor=None)
    timings["complete pass, nothing changed (the old incremental pass)"] = time.perf_counter() - started
    for attempt in range(3):
        started = time.perf_counter()
        run = sync_run_now(actor=None, changed_only=True)
        timings[f"watermark pass, nothing changed (#{attempt + 1})"] = time.perf_counter() - started
        assert run.since_watermark is not None and run.counts["models"] == 0, run.counts
    from apps.registry import mlflow_api

    client = mlflow_api.client()
    client.create_model_version("t03-model-00003", source="s3://bench/new", run_id=None)
    started = time.perf_counter()
    run = sync_run_now(actor=None, changed_only=True)
    timings["watermark pass, one model with a new version"] = time.perf_counter() - started
    assert run.counts["models"] == 1 and run.counts["versions_fetched"] == 1, run.counts
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f}s")
    from django.db import connections
    connections.close_all()
    return db_url, timings, token


def webhook_latencies(*, cp_url: str, changes: int) -> list[tuple[str, float]]:
    """Register the webhook, then time each MLflow change until it is visible in the control plane's database."""
    from django.core.management import call_command

    from apps.registry import mlflow_api
    from apps.registry.models import AliasHolding, ModelVersion

    call_command("mlflow_webhook_register", url=f"{cp_url}/api/v1/registry/mlflow-webhook/")
    time.sleep(1.5)  # MLflow caches its webhook list (MLFLOW_WEBHOOK_CACHE_TTL=1 here)
    client = mlflow_api.client()
    results = []
    for index in range(changes):
        model = (index * 7 + 11) % 1000
        name = f"t{model % 10:02d}-model-{model:05d}"
        kind = ("alias set", "version tag set", "version created")[index % 3]
        if index < WARM_UP:
            kind = "warm-up"  # a web worker's first delivery imports mlflow (lazily, by the house rule): ~1-3 s
        started = time.perf_counter()
        if kind in ("alias set", "warm-up"):
            client.set_registered_model_alias(name, f"bench{index}", "1")
            visible = AliasHolding.objects.filter(model__name=name, alias=f"bench{index}", until__isnull=True).exists
        elif kind == "version tag set":
            client.set_model_version_tag(name, "2", "bench", str(index))
            visible = ModelVersion.objects.filter(model__name=name, version=2, tags__bench=str(index)).exists
        else:
            number = int(client.create_model_version(name, source="s3://bench/new", run_id=None).version)
            visible = ModelVersion.objects.filter(model__name=name, version=number).exists
        while not visible():
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"{kind} on {name} not visible after 30 s")
            time.sleep(0.01)
        results.append((kind, time.perf_counter() - started))
    return results


async def load(url: str, *, headers: dict, clients: int, seconds: float, warmup: float = 3.0) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def worker(until: float, record: bool):
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                if record:
                    latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker(time.perf_counter() + warmup, False) for _ in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds, True) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--changes", type=int, default=30, help="MLflow changes timed through the webhook")
    parser.add_argument("--sync-only", action="store_true", help="Skip the API load test")
    args = parser.parse_args()
    # MLflow delivers webhooks to https on public addresses only, unless told otherwise; its secrets are
    # encrypted with this key, which every server worker must share. The control plane gets the signing secret.
    webhook_env = {"MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                   "MLFLOW_WEBHOOK_CACHE_TTL": "1",
                   "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    os.environ["MLFLOW_WEBHOOK_SECRET"] = secrets.token_urlsafe(32)

    seed_mlflow(versions=args.versions, models=args.models, teams=args.teams)
    _, mlflow_db = pg_urls()
    mlflow_port, cp_port = free_port(), free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    procs = []
    try:
        mlflow_proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri",
             urlunparse(urlparse(mlflow_db)._replace(scheme="postgresql+psycopg")),
             "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", str(args.workers)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": "", **webhook_env})
        procs.append(mlflow_proc)
        wait_http(f"{mlflow_url}/health", mlflow_proc)
        db_url, timings, token = setup_controlplane(mlflow_url=mlflow_url, teams=args.teams)
        cp_proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "controlplane.wsgi", "-b", f"127.0.0.1:{cp_port}", "-w", str(args.workers),
             "-k", "gthread", "--threads", "4"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "DATABASE_URL": db_url, "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING",
                 "MLFLOW_TRACKING_URI": mlflow_url})
        procs.append(cp_proc)
        wait_http(f"http://127.0.0.1:{cp_port}/healthz", cp_proc)
        latencies = webhook_latencies(cp_url=f"http://127.0.0.1:{cp_port}", changes=args.changes)
        results = {} if args.sync_only else api_load(args, mlflow_url=mlflow_url, cp_port=cp_port, token=token)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)

    report(args, timings, latencies, results)


def api_load(args, *, mlflow_url: str, cp_port: int, token: str) -> dict:
    """The version-list load test: MLflow's search next to the control plane's list, same page."""
    mlflow_query = ("/api/2.0/mlflow/model-versions/search?filter=name%20LIKE%20%27t03-%25%27&max_results=50")
    cp_query = "/api/v1/registry/versions/?team=t03&page_size=50"
    import requests
    check = requests.get(mlflow_url + mlflow_query, timeout=30).json()
    assert len(check["model_versions"]) == 50, check
    check = requests.get(f"http://127.0.0.1:{cp_port}{cp_query}", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).json()
    assert len(check["results"]) == 50, check
    return {
        "MLflow search_model_versions (REST)": asyncio.run(load(mlflow_url + mlflow_query, headers={},
                                                              clients=args.clients, seconds=args.seconds)),
        "control plane /api/v1/registry/versions/": asyncio.run(load(
            f"http://127.0.0.1:{cp_port}{cp_query}", headers={"Authorization": f"Bearer {token}"},
            clients=args.clients, seconds=args.seconds)),
    }


def report(args, timings: dict, latencies: list, results: dict) -> None:
    out = io.StringIO()
    out.write(f"\n{args.versions} versions, {args.models} models, {args.teams} teams; page of 50 for team t03 "
              f"({args.versions // args.teams} versions); {args.clients} concurrent clients, {args.seconds:g} s each; "
              f"{args.workers} server workers each; {os.cpu_count()} CPUs\n\n")
    out.write("| sync pass | seconds |\n|---|---:|\n")
    for name, seconds in timings.items():
        out.write(f"| {name} | {seconds:.2f} |\n")
    old_pass = timings["complete pass, nothing changed (the old incremental pass)"]
    watermark = statistics.median(v for k, v in timings.items() if k.startswith("watermark pass, nothing"))
    out.write(f"\nNo-change pass: complete {old_pass:.2f} s vs watermark {watermark:.2f} s (median of 3): "
              f"{old_pass / watermark:.0f}× faster\n\n")
    out.write("| MLflow change → visible in the control plane (webhook) | n | p50 ms | p95 ms | max ms |\n"
              "|---|---:|---:|---:|---:|\n")
    for kind in ("warm-up", "alias set", "version tag set", "version created", "all after warm-up"):
        times = sorted(ms * 1000 for k, ms in latencies if kind == k or (kind.startswith("all") and k != "warm-up"))
        if times:
            out.write(f"| {kind} | {len(times)} | {statistics.median(times):.0f} | "
                      f"{times[max(0, int(len(times) * 0.95) - 1)]:.0f} | {times[-1]:.0f} |\n")
    everything = [seconds for kind, seconds in latencies if kind != "warm-up"]
    if everything:
        out.write(f"\nWebhook → visible, worst {max(everything):.2f} s, against waiting for the old pass "
                  f"({old_pass:.0f} s per pass, a change waits up to one interval plus one pass)\n\n")
    if results:
        out.write("| endpoint | requests | errors | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n")
        for name, r in results.items():
            out.write(f"| {name} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | {r['p50']:.1f} | "
                      f"{r['p99']:.1f} |\n")
        mlflow_r, cp_r = results.values()
        out.write(f"\nThroughput ratio (control plane / MLflow): {cp_r['rps'] / mlflow_r['rps']:.2f}×\n")
    print(out.getvalue())


if __name__ == "__main__":
    main()
