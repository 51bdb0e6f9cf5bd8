"""Server time of every UI page (not a test): the demo seed next to a large seed, as a platform admin and as a
team member.

    .venv/bin/python bench/pages/run.py                        # N=30 requests per page, the full large seed
    .venv/bin/python bench/pages/run.py --requests 10 --reuse  # keep the seeded databases of an earlier run

In one run:
1. demo database `test_bench_pages_demo`: migrated, then `manage.py seed_demo` against a scratch MLflow server
   (tests/harness/mlflow_server.py), exactly what `make run` seeds. (The `test_` prefix keeps the demo seed from
   starting local model servers: apps/deployments/demo.py drives rollouts only outside test databases.)
2. large database `test_bench_pages_large`: a copy of the demo database (`CREATE DATABASE … TEMPLATE`), then
   `largeseed.py` writes 100k model versions, 1,000 deployments, 10M GPU cost samples and 10M prediction log rows
   straight into PostgreSQL (INSERT … SELECT generate_series), half of everything in the demo team `fraud`, and
   runs the daily cost rollup over the samples (what the scheduled rollup keeps up to date). Timed per table.
3. every page of `pages.py` (each UI route a browser GETs) is requested through Django's test client in this
   process (server time only: URL routing, middleware, view, template; no network, no browser), once to warm
   up, then N times, as `admin` (platform admin) and `dave` (ML engineer in team fraud). p50/p95 per page and
   database, the number of SQL queries per request, and the ratio large / demo.

--reuse keeps both databases if they exist (seeding is skipped; the demo's MLflow server is gone then, which no
page needs). Goals (issue 13): p95 < 100 ms per page on the demo, < 300 ms on the large seed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
DEMO_DB = "test_bench_pages_demo"
LARGE_DB = "test_bench_pages_large"
USERS = ("admin", "dave")
BROWSER_HEADERS = {"accept-encoding": "gzip, deflate, br", "accept": "text/html,*/*"}
ADMIN_URL = urlunparse(urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane"))
                       ._replace(path="/postgres"))


def db_url(name: str) -> str:
    return urlunparse(urlparse(ADMIN_URL)._replace(path=f"/{name}"))


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


def recreate_database(name: str, template: str | None = None) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def child(*args: str, database: str) -> str:
    """Runs this script again against another database (Django's settings are fixed per process)."""
    env = {**os.environ, "DATABASE_URL": db_url(database)}
    done = subprocess.run([sys.executable, __file__, *args], env=env, check=True, stdout=subprocess.PIPE, text=True)
    return done.stdout


def seed_demo() -> None:
    """In a child on the demo database: migrate and seed against a scratch MLflow server."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tests.harness.mlflow_server import MlflowServer

    call_command("migrate", verbosity=0)
    mlflow = MlflowServer()
    mlflow.start()
    try:
        settings.MLFLOW_TRACKING_URI = mlflow.url
        os.environ["MLFLOW_TRACKING_URI"] = mlflow.url
        call_command("seed_demo", stdout=sys.stderr)
    finally:
        mlflow.stop()


def object_ids() -> dict:
    """The objects the detail pages show: the demo's (the large seed adds around them)."""
    from apps.deployments.models import Deployment, DeploymentDraft
    from apps.monitoring.models import Alert, Monitor, RunReport
    from apps.registry.models import ModelVersion, PromotionRequest
    from apps.demo.seed import MODEL_NAME

    version = ModelVersion.objects.filter(model__name=MODEL_NAME).order_by("-version").first()
    deployment = Deployment.objects.filter(current_revision__model_version__model__name=MODEL_NAME).first()
    monitor = Monitor.objects.filter(model_version__model__name=MODEL_NAME).first()
    draft = DeploymentDraft.objects.filter(team=deployment.team).first() or _draft(deployment)
    from django.utils import timezone

    this_month = timezone.now().date().replace(day=1)
    return {
        "last_month": f"{(this_month - timedelta(days=1)):%Y-%m}",
        "model": version.model_id, "version": version.pk, "deployment": deployment.pk, "draft": draft.pk,
        "promotion": PromotionRequest.objects.filter(version__model__name=MODEL_NAME).latest("pk").pk,
        "monitor": monitor.pk, "alert": Alert.objects.filter(monitor=monitor).latest("pk").pk,
        "run": RunReport.objects.filter(run__monitor=monitor).latest("pk").run_id,
    }


def _draft(deployment):
    from django.contrib.auth import get_user_model

    from apps.deployments.models import DeploymentDraft

    return DeploymentDraft.objects.create(team=deployment.team, created_by=get_user_model().objects.get(
        username="dave"), data={})


def fetch(client, path: str):
    """GET as a browser does: a streamed body (the CSV exports) is read to its end, so its time counts and its
    server-side cursor is closed before the next request."""
    response = client.get(path)
    if response.streaming:
        for _ in response.streaming_content:
            pass
    response.close()
    return response


def measure(requests: int) -> dict:
    """In a child on one database: time every page for each user. Returns {user: {path: stats}}."""
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment(debug=False)
    import controlplane.wsgi  # noqa: F401  the app loaded as gunicorn loads it (wsgi.py freezes it out of the GC)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from pages import PAGES

    call_command("migrate", verbosity=0)  # a reused database: migrations added since it was seeded
    from apps.core import runner
    from apps.monitoring.services import REPORT_KIND

    runner.tick(REPORT_KIND)  # the bulk worker's part: the demo seed queues its two Evidently reports
    ids = object_ids()
    results = {}
    for username in USERS:
        # Headers a browser sends that change the response (the Evidently report is sent gzipped to gzip clients).
        signed_in, anonymous = Client(headers=BROWSER_HEADERS), Client(headers=BROWSER_HEADERS)
        signed_in.force_login(get_user_model().objects.get(username=username))
        rows = {}
        for name, template, _ in PAGES:
            path = template.format_map(ids)
            client = anonymous if name == "login" else signed_in
            response = fetch(client, path)  # warm-up: first use of templates, plans, caches
            connection.queries_log.clear()  # a full log (maxlen) would count no new query
            with CaptureQueriesContext(connection) as queries:
                fetch(client, path)
            query_count = len(queries)  # now: the next request clears the connection's query log
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = fetch(client, path)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code >= 500:
                    raise RuntimeError(f"{path} as {username}: {response.status_code}")
            times.sort()
            rows[path] = {"status": response.status_code, "queries": query_count,
                          "p50": statistics.median(times), "p95": times[max(0, round(0.95 * len(times)) - 1)]}
            print(f"  {username:6} {path:55} {rows[path]['status']} p50 {rows[path]['p50']:7.1f} ms  "
                  f"p95 {rows[path]['p95']:7.1f} ms  {rows[path]['queries']} queries", file=sys.stderr, flush=True)
        results[username] = rows
    return results


def report(demo: dict, large: dict, requests: int) -> None:
    from pages import PAGES

    print(f"\nserver time per page, ms (Django test client in-process, {requests} requests after a warm-up; "
          "q = SQL queries per request)")
    for username in USERS:
        print(f"\n{username}:\n| page | path | demo p50 | demo p95 | q | large p50 | large p95 | q | p95 ratio |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for _, template, what in PAGES:
            path = next(p for p in demo[username] if _matches(template, p))
            d, g = demo[username][path], large[username][path]
            status = "" if d["status"] == g["status"] == 200 else f" ({d['status']}/{g['status']})"
            print(f"| {what}{status} | `{template.split('?')[0]}{'?' + template.split('?')[1] if '?' in template else ''}` "
                  f"| {d['p50']:.1f} | {d['p95']:.1f} | {d['queries']} | {g['p50']:.1f} | {g['p95']:.1f} "
                  f"| {g['queries']} | {g['p95'] / d['p95']:.1f}× |")
        demo_worst = max(demo[username].values(), key=lambda r: r["p95"])["p95"]
        large_worst = max(large[username].values(), key=lambda r: r["p95"])["p95"]
        print(f"\nworst p95 as {username}: demo {demo_worst:.1f} ms (goal < 100: "
              f"{'met' if demo_worst < 100 else 'NOT met'}), large {large_worst:.1f} ms (goal < 300: "
              f"{'met' if large_worst < 300 else 'NOT met'})")


def _matches(template: str, path: str) -> bool:
    import re

    return re.fullmatch(re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
                        .format_map(_AnyId()), path) is not None


class _AnyId(dict):
    def __missing__(self, key):
        return r"[\d-]+"  # object ids, and the month (2026-11)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep both databases of an earlier run")
    parser.add_argument("--predictions", type=int, default=10_000_000, help="prediction log rows of the large seed")
    parser.add_argument("--samples", type=int, default=10_000_000, help="GPU samples of the large seed")
    parser.add_argument("--phase", choices=["seed-demo", "large-seed", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.phase and urlparse(os.environ.get("DATABASE_URL", "")).path.lstrip("/") not in (DEMO_DB, LARGE_DB):
        parser.error("--phase runs only against the bench databases (DATABASE_URL is set by the parent run)")
    if args.phase == "seed-demo":
        return seed_demo()
    if args.phase == "large-seed":
        import django

        django.setup()
        import largeseed

        largeseed.generate(predictions=args.predictions, samples=args.samples)
        return
    if args.phase == "measure":
        print(json.dumps(measure(args.requests)))
        return

    reuse = args.reuse and database_exists(DEMO_DB) and database_exists(LARGE_DB)
    if not reuse:
        started = time.perf_counter()
        recreate_database(DEMO_DB)
        child("--phase", "seed-demo", database=DEMO_DB)
        print(f"demo seed (migrate + seed_demo, MLflow training included): {time.perf_counter() - started:.0f} s",
              flush=True)
        started = time.perf_counter()
        recreate_database(LARGE_DB, template=DEMO_DB)
        print("large seed:", flush=True)
        sys.stdout.write(child("--phase", "large-seed", "--predictions", str(args.predictions),
                               "--samples", str(args.samples), database=LARGE_DB))
        print(f"large seed, total: {time.perf_counter() - started:.0f} s", flush=True)
    print("timing the demo database ...", flush=True)
    demo = json.loads(child("--phase", "measure", "--requests", str(args.requests), database=DEMO_DB))
    print("timing the large database ...", flush=True)
    large = json.loads(child("--phase", "measure", "--requests", str(args.requests), database=LARGE_DB))
    report(demo, large, args.requests)


if __name__ == "__main__":
    main()
