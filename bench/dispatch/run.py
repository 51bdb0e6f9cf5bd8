"""Deployments benchmark (not a test): dispatch throughput and rollback latency against the Kubernetes
test API server (kmock, extended in tests/harness/kube_server.py, run in its own process by
bench/dispatch/emulator.py), through the real path: services → outbox → Redis → Celery worker → rollout
engine → official kubernetes client → HTTP.

    .venv/bin/python bench/dispatch/run.py        # 1000 with the worker, 20 sequential, 20 + 20 rollbacks
    .venv/bin/python bench/dispatch/run.py --deployments 200 --sequential 10 --rollbacks 20 --shared-rollbacks 5

1. Dispatch: N deployments submitted at once and driven by one worker (`--pool threads`, concurrency C)
   next to a sequential loop over S deployments (each apply + watch until ready, one after the other)
   in the same run. The fake controller takes `--ready-delay` seconds to report a Deployment ready,
   like a real cluster starting pods; throughput per second is compared. The emulator runs in
   `--emulators` processes of its own (one cluster each, deployments spread over them), so the
   product, not the emulator, is what is measured.
2. Rollback under bulk load: R healthy deployments (r1 → r2) are rolled back with POST …/rollback/, one
   after the other, each clicked while `--drift-runs` real drift runs wait in the queue (topped up
   before every click). Latency: from the click to the deployment's Service on the API server selecting
   revision 1 again (the endpoint serves the previous revision). Measured twice:
   - queues as shipped: a `-Q control` worker and a `-Q bulk` worker (prefork, concurrency 2 each, as
     `make run` starts them); rollbacks travel on control, drift runs on bulk;
   - one shared queue: every task routed to one queue consumed by one worker (prefork, concurrency 2):
     the layout before issue 10, where a rollback waits behind whatever was queued first.

Scratch database `controlplane_bench_deployments` (dropped and migrated each run), Redis db 7.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = "controlplane_bench_deployments"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/7"
os.environ.update({"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, "CELERY_BROKER_URL": REDIS_URL,
                   "DJANGO_SETTINGS_MODULE": "controlplane.settings", "LOG_LEVEL": "WARNING"})
SHARED_QUEUE = "shared"


def reset_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)


class Emulator:
    """One emulator process (bench/dispatch/emulator.py); its applies are collected as it reports them."""

    def __init__(self, ready_delay: float):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("emulator.py")),
                                      "--ready-delay", str(ready_delay)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("URL "):
            raise SystemExit(f"the emulator did not start: {line!r}")
        self.url = line.split()[1]
        self.applied: list[tuple[float, str, str | None]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("APPLY "):
                self.applied.append(tuple(json.loads(line[6:])))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def start_worker(*, queues: str, pool: str, concurrency: int, log: Path, nice: int = 0) -> subprocess.Popen:
    out = open(log, "w")
    proc = subprocess.Popen([*(["nice", "-n", str(nice)] if nice else []),
                             str(Path(sys.executable).with_name("celery")), "-A", "controlplane", "worker",
                             "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO",
                             "--without-mingle", "--without-gossip", "-n", f"{queues}@%h", "-Q", queues],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {queues} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


_SHIPPED_KIND_QUEUES: dict[str, str] = {}


def route_everything_to(queue: str | None) -> None:
    """Publishing side of the one-queue layout: every task of ours, and the runner's wake-ups of every work kind,
    to `queue` (None: the shipped routes and kinds)."""
    from django.conf import settings

    from apps.core import runner
    from controlplane.celery import app

    app.conf.task_routes = ({name: {"queue": queue} for name in settings.CELERY_TASK_ROUTES} if queue
                            else settings.CELERY_TASK_ROUTES)
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)
    for kind in runner.kinds():
        shipped = _SHIPPED_KIND_QUEUES.setdefault(kind.name, kind.queue)
        runner._KINDS[kind.name] = dataclasses.replace(kind, queue=queue or shipped)  # register() allows 2 queues


def queue_of(task_name: str) -> str:
    from controlplane.celery import app

    return app.amqp.router.route({}, task_name)["queue"].name


def control_log_times(log: Path, since: float) -> tuple[float | None, float | None]:
    """When the control worker received its first runner.tick after `since`, and when that tick finished (from
    the worker's INFO log: `[YYYY-mm-dd HH:MM:SS,mmm: INFO/…] Task runner.tick[…] received|succeeded`)."""
    received = finished = None
    for line in log.read_text(errors="replace").splitlines():
        if "Task runner.tick[" not in line or not line.startswith("["):
            continue
        stamp = time.mktime(time.strptime(line[1:20], "%Y-%m-%d %H:%M:%S")) + int(line[21:24]) / 1000
        if stamp < since - 0.001:
            continue
        if received is None and line.rstrip().endswith("received"):
            received = stamp
        elif received is not None and " succeeded in " in line:
            finished = stamp
            break
    return received, finished


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def describe(ms: list[float]) -> str:
    return (f"p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, max {max(ms):.0f} ms, "
            f"mean {statistics.mean(ms):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ready-delay", type=float, default=3.0)
    parser.add_argument("--emulators", type=int, default=1, help="emulator processes (one cluster each)")
    parser.add_argument("--rollbacks", type=int, default=20, help="rollbacks timed with the shipped queues")
    parser.add_argument("--shared-rollbacks", type=int, default=20, help="rollbacks timed with one shared queue")
    parser.add_argument("--drift-runs", type=int, default=20, help="drift runs kept queued at each click")
    parser.add_argument("--drift-rows", type=int, default=2000, help="prediction rows in each drift run's window")
    parser.add_argument("--bulk-nice", type=int, default=10,
                        help="CPU niceness of the bulk worker (shipped queues; make run uses 10)")
    parser.add_argument("--bulk-concurrency", type=int, default=max(1, min((os.cpu_count() or 2) - 1, 4)),
                        help="bulk worker processes (make run: cores - 1, 1 to 4)")
    parser.add_argument("--skip-dispatch", action="store_true")
    args = parser.parse_args()

    reset_database()
    import django

    django.setup()
    import redis
    from django.db import transaction

    from apps.deployments.services import cluster_create, cluster_namespace_create, deployment_create
    from apps.registry.models import Environment, ModelVersion, RegisteredModel
    from apps.teams.models import Membership, Team
    from django.contrib.auth import get_user_model

    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    emulators = [Emulator(args.ready_delay) for _ in range(args.emulators)]
    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", "a@example.test", "x")
    engineer = User.objects.create_user("bench-eng", "e@example.test", "x")
    team = Team.objects.create(slug="bench", name="Bench")
    Membership.objects.create(team=team, user=engineer, role="ml_engineer")
    env = Environment.objects.get(name="staging")
    model = RegisteredModel.objects.create(name="bench-model", team=team)
    v1 = ModelVersion.objects.create(model=model, version=1, artifact_uri="s3://bench/1")
    v2 = ModelVersion.objects.create(model=model, version=2, artifact_uri="s3://bench/2")
    clusters = []
    for index, emulator in enumerate(emulators):
        cluster = cluster_create(actor=admin, name=f"kmock{index}", kind="kubernetes", api_url=emulator.url,
                                 token="bench-token")
        cluster_namespace_create(actor=admin, cluster=cluster, team=team, environment=env, namespace="bench")
        clusters.append(cluster)

    def create(name, version=v1, cluster=clusters[0]):
        with transaction.atomic():
            return deployment_create(actor=engineer, team=team, name=name, model_version=version, environment=env,
                                     cluster=cluster)

    report = []
    try:
        if not args.skip_dispatch:
            report += dispatch(args, create, clusters, emulators)
        if args.rollbacks:
            report += rollbacks_under_bulk_load(args, create, team, engineer, v1, v2, emulators[0], broker)
    finally:
        for emulator in emulators:
            emulator.stop()
    print("\n".join(report))


def dispatch(args, create, clusters, emulators) -> list[str]:
    from django.db import transaction

    from apps.core import runner
    from apps.core.tasks import sweep_task
    from apps.deployments.models import Deployment
    from apps.deployments.rollout import ROLLOUT_KIND, rollout_drive

    # ---- sequential loop, in this process (the runner's wake-ups are held back: no worker may take them)
    wake = runner.wake
    runner.wake = lambda *a, **kw: None
    sequential = [create(f"seq-{i}", cluster=clusters[i % len(clusters)]) for i in range(args.sequential)]
    started = time.monotonic()
    for d in sequential:
        rollout_drive(deployment_id=d.pk)
    seq_time = time.monotonic() - started
    assert Deployment.objects.filter(name__startswith="seq-", status="healthy").count() == args.sequential

    # ---- the same dispatch work for N deployments, driven by the worker's concurrency: all are created
    # first (wake-ups held back, as for the loop), then each one's wake-up is sent at once, as on commit.
    created = [create(f"con-{i}", cluster=clusters[i % len(clusters)]) for i in range(args.deployments)]
    runner.wake = wake
    worker = start_worker(queues="control,bulk", pool="threads", concurrency=args.concurrency,
                          log=Path("/tmp/bench-deployments-worker.log"))
    try:
        started = time.monotonic()
        with transaction.atomic():
            for d in created:
                runner.wake(ROLLOUT_KIND, ids=[d.pk])
        deadline, swept = time.monotonic() + 1800, time.monotonic()
        while Deployment.objects.filter(name__startswith="con-", status="healthy").count() < args.deployments:
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the worker")
            time.sleep(1)
            if time.monotonic() - swept > 10:  # what the runner.sweep beat does: drives due after a backoff
                sweep_task()
                swept = time.monotonic()
        con_time = time.monotonic() - started
        failed = Deployment.objects.filter(name__startswith="con-").exclude(status="healthy").count()
    finally:
        stop_worker(worker)
    seq_rate, con_rate = args.sequential / seq_time, args.deployments / con_time
    retries = Deployment.objects.filter(name__startswith="con-", attempts__gt=1).count()
    applies = sum(len(e.applied) for e in emulators)
    return [
        f"dispatch: emulator in {len(emulators)} process(es) of its own; {applies} applies served",
        f"dispatch: sequential loop  {args.sequential:5d} deployments in {seq_time:7.1f} s = {seq_rate:6.1f}/s",
        f"dispatch: worker x{args.concurrency:<4d}   {args.deployments:5d} deployments in {con_time:7.1f} s = "
        f"{con_rate:6.1f}/s ({failed} not healthy)",
        f"dispatch: {retries} deployments needed more than one drive attempt (5xx, timeouts, expired leases)",
        f"dispatch: speed-up {con_rate / seq_rate:.1f}x ({args.deployments} sequential would take "
        f"~{args.deployments / seq_rate:.0f} s)",
    ]


def rollbacks_under_bulk_load(args, create, team, engineer, v1, v2, emulator, broker) -> list[str]:
    from rest_framework.test import APIClient

    from apps.core import runner
    from apps.deployments.rollout import ROLLOUT_KIND
    from apps.monitoring.services import monitor_run_request
    from tests.monitoring import factories as mf

    monitor = mf.monitor(team, version=v1)
    mf.logs(v1, mf.frame(args.drift_rows, drift=True))
    client = APIClient()
    client.force_authenticate(engineer)

    def top_up(queue: str) -> int:
        """Queue drift runs until `--drift-runs` wait in `queue` (those a worker holds don't count)."""
        while broker.llen(queue) < args.drift_runs:
            monitor_run_request(actor=engineer, monitor=monitor, window_start=mf.T0,
                                window_end=mf.T0 + timedelta(days=1))
        return broker.llen(queue)

    def measure(label: str, count: int, rollback_queue: str, drift_queue: str,
                worker_log: Path) -> tuple[list[float], list[str]]:
        assert runner.kind_get(ROLLOUT_KIND).queue == rollback_queue
        assert queue_of("monitoring.run_monitor") == drift_queue
        deployments = [create(f"rb-{label}-{i}") for i in range(count)]
        for d in deployments:
            wait_for(d.pk, "healthy", timeout=120)
            response = client.post(f"/api/v1/deployments/deployments/{d.pk}/deploy/", {"model_version": v2.pk},
                                   format="json")
            assert response.status_code == 201, response.content
        for d in deployments:
            wait_for(d.pk, "healthy", revision=2, timeout=120)
        latencies, waiting_after, phases = [], [], []
        for d in deployments:
            queued = top_up(drift_queue)
            mark = len(emulator.applied)
            click = time.time()
            response = client.post(f"/api/v1/deployments/deployments/{d.pk}/rollback/", {"reason": "bench"},
                                   format="json")
            answered = time.time()
            assert response.status_code == 201, response.content
            service = f"Service/bench/{d.name}"
            while True:
                hits = [t for t, key, pinned in emulator.applied[mark:] if key == service and pinned == "1"]
                if hits:
                    latencies.append((hits[0] - click) * 1000)
                    first_apply = next(t for t, key, _ in emulator.applied[mark:] if key.endswith(f"/{d.name}")
                                       or f"/{d.name}-" in key)
                    received, _ = control_log_times(worker_log, click)
                    phases.append({"api": answered - click, "picked up": (received or answered) - answered,
                                   "claim to 1st apply": first_apply - (received or answered),
                                   "1st apply to route": hits[0] - first_apply})
                    break
                if time.time() - click > 600:
                    raise SystemExit(f"rollback of {d.name} never reached the API server")
                time.sleep(0.005)
            waiting_after.append(broker.llen(drift_queue))
            assert queued >= args.drift_runs
            wait_for(d.pk, "healthy", revision=3, timeout=600)
        where = ", ".join(f"{name} p50 {percentile([p[name] * 1000 for p in phases], 50):.0f} / p95 "
                          f"{percentile([p[name] * 1000 for p in phases], 95):.0f} ms" for name in phases[0])
        return latencies, [f"{label}: drift runs still queued when each rollback was served: "
                           f"min {min(waiting_after)}, max {max(waiting_after)}",
                           f"{label}: where the time goes (click → API answer → control worker received the "
                           f"tick → first apply of the drive → Service on r1): {where}"]

    lines = []
    # Queues as shipped: rollbacks on control, drift runs on bulk, a worker each.
    route_everything_to(None)
    control = start_worker(queues="control", pool="prefork", concurrency=2, log=Path("/tmp/bench-control.log"))
    bulk = start_worker(queues="bulk", pool="prefork", concurrency=args.bulk_concurrency,
                        log=Path("/tmp/bench-bulk.log"), nice=args.bulk_nice)
    try:
        split, notes = measure("split", args.rollbacks, "control", "bulk", Path("/tmp/bench-control.log"))
        lines += notes
    finally:
        stop_worker(control)
        stop_worker(bulk)
    broker.delete("bulk", "control")
    lines += [
        f"rollback click→endpoint on r1, {args.drift_runs} drift runs queued, control + bulk queues "
        f"(bulk worker nice {args.bulk_nice}, concurrency {args.bulk_concurrency}) ({len(split)}): {describe(split)}",
        f"  each, ms: {' '.join(f'{x:.0f}' for x in split)}",
    ]
    if not args.shared_rollbacks:
        return lines
    # One queue for everything, one worker: the layout before issue 10.
    route_everything_to(SHARED_QUEUE)
    # (It also consumes control and bulk, where tasks sent from inside the worker go: its kinds are the shipped ones.)
    shared_worker = start_worker(queues=f"{SHARED_QUEUE},control,bulk", pool="prefork", concurrency=2,
                                 log=Path("/tmp/bench-shared.log"))
    try:
        shared, notes = measure("shared", args.shared_rollbacks, SHARED_QUEUE, SHARED_QUEUE,
                                Path("/tmp/bench-shared.log"))
        lines += notes
    finally:
        stop_worker(shared_worker)
        route_everything_to(None)
    broker.delete(SHARED_QUEUE)
    lines += [
        f"rollback click→endpoint on r1, {args.drift_runs} drift runs queued, one shared queue "
        f"({len(shared)}): {describe(shared)}",
        f"rollback p95 ratio shared / split: {percentile(shared, 95) / percentile(split, 95):.1f}x; "
        f"p50 ratio {percentile(shared, 50) / percentile(split, 50):.1f}x",
    ]
    return lines


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
