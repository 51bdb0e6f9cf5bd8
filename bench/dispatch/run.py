"""Deployments benchmark (not a test): dispatch throughput and rollback latency against the Kubernetes
test API server (kmock, extended in tests/harness/kube_server.py), through the real path: services →
outbox → Redis → Celery worker → rollout engine → official kubernetes client → HTTP.

    .venv/bin/python bench/dispatch/run.py                     # 1000 with the worker, 20 sequential, 50 rollbacks
    .venv/bin/python bench/dispatch/run.py --deployments 200 --sequential 20 --rollbacks 20

1. Dispatch: N deployments submitted at once and driven by one worker (`--pool threads`, concurrency C)
   next to a sequential loop over S deployments (each apply + watch until ready, one after the other)
   in the same run. The fake controller takes `--ready-delay` seconds to report a Deployment ready,
   like a real cluster starting pods; throughput per second is compared.
2. Rollback latency: R times, a healthy deployment (r1 → r2) is rolled back with POST …/rollback/; we
   time from the click to the server-side-apply PATCH of the warm revision reaching the API server.

Scratch database `controlplane_bench_deployments` (dropped and migrated each run), Redis db 7.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = "controlplane_bench_deployments"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/7"
os.environ.update({"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, "CELERY_BROKER_URL": REDIS_URL,
                   "DJANGO_SETTINGS_MODULE": "controlplane.settings", "LOG_LEVEL": "WARNING"})


def reset_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)


def start_worker(concurrency: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("celery")), "-A", "controlplane", "worker",
                             "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "WARNING",
                             "--without-mingle", "--without-gossip", "-Q", "control,bulk"],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(6)  # the worker imports Django and connects; the first messages simply wait in Redis
    return proc


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--rollbacks", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ready-delay", type=float, default=3.0)
    args = parser.parse_args()

    reset_database()
    import django

    django.setup()
    import redis
    from django.db import transaction
    from rest_framework.test import APIClient

    from apps.deployments.models import Deployment
    from apps.deployments.rollout import rollout_drive
    from apps.deployments.services import cluster_create, cluster_namespace_create, deployment_create
    from apps.registry.models import Environment, ModelVersion, RegisteredModel
    from apps.teams.models import Membership, Team
    from django.contrib.auth import get_user_model
    from tests.harness.kube_server import KubeServer

    redis.Redis.from_url(REDIS_URL).flushdb()
    server = KubeServer().start()
    server.kmock.controller_delay = args.ready_delay
    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", "a@example.test", "x")
    engineer = User.objects.create_user("bench-eng", "e@example.test", "x")
    team = Team.objects.create(slug="bench", name="Bench")
    Membership.objects.create(team=team, user=engineer, role="ml_engineer")
    env = Environment.objects.get(name="staging")
    model = RegisteredModel.objects.create(name="bench-model", team=team)
    v1 = ModelVersion.objects.create(model=model, version=1, artifact_uri="s3://bench/1")
    v2 = ModelVersion.objects.create(model=model, version=2, artifact_uri="s3://bench/2")
    cluster = cluster_create(actor=admin, name="kmock", kind="kubernetes", api_url=server.url, token="bench-token")
    cluster_namespace_create(actor=admin, cluster=cluster, team=team, environment=env, namespace="bench")

    def create(name, version=v1):
        with transaction.atomic():
            return deployment_create(actor=engineer, team=team, name=name, model_version=version, environment=env,
                                     cluster=cluster)

    # ---- 1. sequential loop, in this process (outbox rows are left unpublished: Redis db 7 has no worker yet)
    import apps.outbox.services as outbox_services

    publish = outbox_services.outbox_publish_due
    outbox_services.outbox_publish_due = lambda **kw: {}
    sequential = [create(f"seq-{i}") for i in range(args.sequential)]
    outbox_services.outbox_publish_due = publish
    from apps.outbox.models import OutboxMessage

    OutboxMessage.objects.all().delete()
    started = time.monotonic()
    for d in sequential:
        rollout_drive(deployment_id=d.pk)
    seq_time = time.monotonic() - started
    assert Deployment.objects.filter(name__startswith="seq-", status="healthy").count() == args.sequential

    # ---- 1b. the same dispatch work for N deployments, driven by the worker's concurrency: all are
    # created first (publishing held back, as for the loop), then released to the queue at once.
    outbox_services.outbox_publish_due = lambda **kw: {}
    for i in range(args.deployments):
        create(f"con-{i}")
    outbox_services.outbox_publish_due = publish
    worker = start_worker(args.concurrency, Path("/tmp/bench-deployments-worker.log"))
    try:
        started = time.monotonic()
        while publish(limit=500)["published"]:
            pass
        deadline = time.monotonic() + 1800
        while Deployment.objects.filter(name__startswith="con-", status="healthy").count() < args.deployments:
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the worker")
            time.sleep(1)
            publish()  # what the outbox sweep beat does: drives retried with backoff become due
            beat_redrive()
        con_time = time.monotonic() - started
        failed = Deployment.objects.filter(name__startswith="con-").exclude(status="healthy").count()

        # ---- 2. rollback latency: click (API) → SSA PATCH of the warm revision at the API server
        client = APIClient()
        client.force_authenticate(engineer)
        latencies = []
        for i in range(args.rollbacks):
            d = create(f"rb-{i}")
            wait_for(d.pk, "healthy")
            client.post(f"/api/v1/deployments/deployments/{d.pk}/deploy/", {"model_version": v2.pk}, format="json")
            wait_for(d.pk, "healthy", revision=2)
            mark = len(server.kmock.applied)
            click = time.monotonic()
            response = client.post(f"/api/v1/deployments/deployments/{d.pk}/rollback/", {"reason": "bench"},
                                   format="json")
            assert response.status_code == 201, response.content
            target = f"Deployment/bench/rb-{i}-r1"
            while True:
                hits = [t for t, key, _ in server.kmock.applied[mark:] if key == target]
                if hits:
                    latencies.append(hits[0] - click)
                    break
                if time.monotonic() - click > 30:
                    raise SystemExit(f"rollback {i} never reached the API server")
                time.sleep(0.002)
            wait_for(d.pk, "healthy", revision=3)
    finally:
        worker.terminate()
        worker.wait(30)
        server.stop()

    seq_rate, con_rate = args.sequential / seq_time, args.deployments / con_time
    print(f"dispatch: sequential loop  {args.sequential:5d} deployments in {seq_time:7.1f} s = {seq_rate:6.1f}/s")
    print(f"dispatch: worker x{args.concurrency:<4d}   {args.deployments:5d} deployments in {con_time:7.1f} s = "
          f"{con_rate:6.1f}/s ({failed} not healthy)")
    from apps.outbox.models import OutboxMessage

    retries = OutboxMessage.objects.filter(dedup_key__startswith="deployments.retry:").count()
    redrives = OutboxMessage.objects.filter(dedup_key__startswith="bench.redrive:").count()
    print(f"dispatch: {retries} drives retried through the outbox after 5xx/timeouts, {redrives} re-driven as stuck")
    print(f"dispatch: speed-up {con_rate / seq_rate:.1f}x (1000 sequential would take ~{1000 / seq_rate:.0f} s)")
    ms = [x * 1000 for x in latencies]
    print(f"rollback click→apply ({len(ms)}): p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, "
          f"p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms")


_last_redrive = [0.0]


def beat_redrive() -> None:
    """What the reconcile beat does for rollouts a failed drive left behind: drive them again."""
    from django.db import transaction

    from apps.deployments.rollout import rollout_stuck
    from apps.outbox.services import outbox_enqueue

    if time.monotonic() - _last_redrive[0] < 15:
        return
    _last_redrive[0] = time.monotonic()
    with transaction.atomic():
        for d in rollout_stuck(older_than_seconds=30):
            outbox_enqueue(topic="deployments.drive", payload={"deployment_id": d.pk},
                           dedup_key=f"bench.redrive:{d.pk}:{int(time.time())}", team=d.team)


def wait_for(deployment_id, status, revision=None, timeout=60):
    from apps.deployments.models import Deployment

    deadline = time.monotonic() + timeout
    while True:
        d = Deployment.objects.select_related("current_revision").get(pk=deployment_id)
        if d.status == status and (revision is None or (d.current_revision and d.current_revision.number == revision)):
            return d
        if time.monotonic() > deadline:
            raise SystemExit(f"deployment {deployment_id} stuck in {d.status}: {d.status_message}")
        time.sleep(0.02)


if __name__ == "__main__":
    main()
