"""Chaos: thirty-odd entities of every kind of background work, driven through two real Celery workers (both
queues) and the product's own beat, while workers are SIGKILLed and restarted, Redis is stopped and restarted
empty, and MLflow and the Kubernetes API answer 5xx or time out, all at seeded random moments.

Everything is checked from the outside: statuses through the ORM as a page would show them, effects where
they land (MLflow's alias calls through a fault-injecting proxy, applies on the Kubernetes API emulator, POSTs
at the webhook receiver), `audit_verify`. The seed is printed on failure; CHAOS_SEED=<seed> replays a run.
`make test` runs this directory alone, after the rest (scripts/devstack.py): its time bounds assume a machine it
does not share.
"""
import json
import os
import random
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count

from apps.core.errors import DomainError
from apps.deployments.models import Deployment, DeploymentRevision, Job
from apps.deployments.services import deployment_create, deployment_deploy, deployment_promote, deployment_rollback
from apps.deployments.services.jobs import job_dispatch
from apps.monitoring.models import MonitorRun
from apps.monitoring.services import monitor_run_request
from apps.outbox.models import OutboxMessage
from apps.registry import services as registry
from apps.registry.models import ModelVersion, PromotionRequest, RegisteredModel
from apps.teams.services import webhooks_notify
from tests.deployments.factories import environment, kube_cluster, model_version
from tests.factories import TeamFactory, WebhookEndpointFactory, member
from tests.harness.fault_proxy import FaultProxy
from tests.harness.kube_server import kube_server  # noqa: F401
from tests.monitoring import factories as mf

from . import processes

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
FAULT_WINDOW = (3.0, 30.0)  # seconds after the start: when faults strike
CONVERGE_S = 120.0  # every entity terminal within this many seconds of the start
CANARY = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 50, "pause": True},
                                      {"weight": 100, "pause": False}]}
ALIAS_PATH = "/registered-models/alias"
# The product's own knobs, turned down so recovery fits the test's bound (a killed worker's leases expire in
# seconds; a live drive heartbeats its lease while it waits).
WORKER_ENV = {
    "DEPLOYMENTS_READY_TIMEOUT_SECONDS": "10", "DEPLOYMENTS_KUBE_READ_TIMEOUT": "2",
    "DEPLOYMENTS_DRIVE_LEASE_SECONDS": "8", "REGISTRY_PUBLISH_LEASE_SECONDS": "10", "DEPLOYMENTS_JOB_LEASE_SECONDS": "10",
    "TEAMS_WEBHOOK_LEASE_SECONDS": "15",
    "DEPLOYMENTS_RECONCILE_SECONDS": "10", "OUTBOX_SWEEP_SECONDS": "2", "MONITORING_RECOVER_SECONDS": "3",
    "MONITORING_RUN_LEASE_SECONDS": "15", "RUNNER_SWEEP_SECONDS": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
}


class Entity:
    """One thing a user starts; `step` clicks what a user would click next, `problem` judges the end state."""
    start_at = 0.0
    done = False

    def step(self) -> None:
        raise NotImplementedError

    def problem(self) -> str | None:
        raise NotImplementedError


class Rollout(Entity):
    """A deployment: rolling r1, then a canary of r2 promoted step by step, then (some) a rollback to r1."""

    def __init__(self, ctx, name: str, rollback: bool, start_at: float):
        self.ctx, self.name, self.rollback, self.start_at = ctx, name, rollback, start_at
        self.deployment = None
        self.phase = "create"

    def step(self):
        c = self.ctx
        if self.deployment is None:
            self.deployment = deployment_create(actor=c.engineer, team=c.team, name=self.name, model_version=c.v1,
                                                environment=c.staging, cluster=c.cluster)
            return
        d = Deployment.objects.select_related("current_revision").get(pk=self.deployment.pk)
        number = d.current_revision.number
        if self.phase == "create" and d.status == "healthy" and number == 1:
            deployment_deploy(actor=c.engineer, deployment=d, model_version=c.v2, strategy=CANARY)
            self.phase = "canary"
        elif self.phase == "canary" and d.status == "awaiting_promotion" and number == 2:
            deployment_promote(actor=c.engineer, deployment=d)
        elif self.phase == "canary" and d.status == "healthy" and number == 2:
            if self.rollback:
                deployment_rollback(actor=c.engineer, deployment=d, reason="chaos: rolled back")
                self.phase = "rollback"
            else:
                self.done = True
        elif self.phase == "rollback" and d.status == "healthy" and number == 3:
            self.done = True

    def problem(self):
        if self.deployment is None:
            return f"deployment {self.name} was never created"
        d = Deployment.objects.select_related("current_revision__rollback_of").get(pk=self.deployment.pk)
        # Traffic names revisions by their own number: after the rollback r3 (running r1's workload) serves.
        want_revision, want_traffic = (3, {"3": 100}) if self.rollback else (2, {"2": 100})
        revisions = dict(DeploymentRevision.objects.filter(deployment=d).values_list("number", "status"))
        if (d.status, d.current_revision.number, d.traffic) != ("healthy", want_revision, want_traffic):
            return (f"deployment {self.name}: {d.status}, revision {d.current_revision.number}, traffic {d.traffic} "
                    f"(want healthy, revision {want_revision}, {want_traffic}); {d.status_message}")
        if self.rollback and d.current_revision.rollback_of.number != 1:
            return f"deployment {self.name}: rolled back to revision {d.current_revision.rollback_of.number}, not 1"
        if set(revisions) != set(range(1, want_revision + 1)) or {"pending", "applying"} & set(revisions.values()):
            return f"deployment {self.name}: revisions {revisions}"
        if d.lease_owner or d.lease_until:
            return f"deployment {self.name} still leased by {d.lease_owner!r} until {d.lease_until}"
        for number in (1, 2):
            if self.ctx.kube.kmock.get("apps/v1/deployments", d.namespace, f"{self.name}-r{number}") is None:
                return f"deployment {self.name}: revision {number}'s workload is not on the cluster"
        return None


class Publish(Entity):
    """A promotion to staging (no policy there: approved at once) whose publish sets the MLflow alias."""

    def __init__(self, ctx, version: ModelVersion, start_at: float):
        self.ctx, self.version, self.start_at = ctx, version, start_at
        self.request = None

    def step(self):
        if self.request is None:
            self.request = registry.promotion_request(actor=self.ctx.engineer, version=self.version,
                                                      environment="staging")
        self.done = PromotionRequest.objects.get(pk=self.request.pk).status == "published"

    def problem(self):
        name = self.version.model.name
        if self.request is None:
            return f"promotion of {name} was never requested"
        request = PromotionRequest.objects.get(pk=self.request.pk)
        if request.status != "published":
            return f"promotion of {name}: {request.status} (attempts {request.attempts}: {request.last_error})"
        sets = [r for r in self.ctx.mlflow.succeeded("POST", ALIAS_PATH) if json.loads(r["body"])["name"] == name]
        if len(sets) != 1:
            return f"promotion of {name}: MLflow took {len(sets)} alias sets, want exactly 1"
        holder = self.ctx.mlflow_client.get_model_version_by_alias(name, "staging").version
        return None if holder == "1" else f"promotion of {name}: MLflow's staging alias is on version {holder}"


class DriftRun(Entity):
    def __init__(self, ctx, start_at: float):
        self.ctx, self.start_at = ctx, start_at
        self.run = None

    def step(self):
        if self.run is None:
            self.run = monitor_run_request(actor=self.ctx.engineer, monitor=self.ctx.monitor, window_start=mf.T0,
                                           window_end=mf.T0 + timedelta(days=1))
        self.done = MonitorRun.objects.get(pk=self.run.pk).status == "succeeded"

    def problem(self):
        if self.run is None:
            return "a drift run was never requested"
        run = MonitorRun.objects.get(pk=self.run.pk)
        if run.status != "succeeded" or run.state != "drifting":
            return f"drift run {run.pk}: {run.status}/{run.state} after {run.attempts} attempts: {run.message}"
        if run.lease_until is not None:
            return f"drift run {run.pk} still leased until {run.lease_until}"
        return None


class ClusterJob(Entity):
    def __init__(self, ctx, start_at: float):
        self.ctx, self.start_at = ctx, start_at
        self.job = None

    def step(self):
        c = self.ctx
        if self.job is None:
            self.job = job_dispatch(actor=c.engineer, team=c.team, cluster=c.cluster, image="busybox:1.36",
                                    command=["true"])
        self.done = Job.objects.get(pk=self.job.pk).status == "succeeded"

    def problem(self):
        if self.job is None:
            return "a job was never dispatched"
        job = Job.objects.get(pk=self.job.pk)
        return None if job.status == "succeeded" else f"job {job.name}: {job.status} ({job.message})"


class Webhook(Entity):
    def __init__(self, ctx, number: int, start_at: float):
        self.ctx, self.number, self.start_at = ctx, number, start_at
        self.text = f"chaos webhook {number}"
        self.sent = False

    def received(self) -> int:
        return sum(1 for r in list(self.ctx.receiver.requests) if (r["json"] or {}).get("text") == self.text)

    def step(self):
        if not self.sent:
            with transaction.atomic():
                webhooks_notify(team=self.ctx.team, event="chaos.ping", text=self.text, data={"n": self.number},
                                key=str(self.number))
            self.sent = True
        self.done = self.received() >= 1

    def problem(self):
        count = self.received()
        return None if count == 1 else f"{self.text}: the receiver got it {count} times, want exactly 1"


class Faults:
    """The seeded schedule of faults, run from a thread while the operator clicks."""

    def __init__(self, ctx, rng: random.Random):
        self.ctx = ctx
        low, high = FAULT_WINDOW
        plan = [("kill_worker", rng.choice([0, 1]), rng.uniform(0.5, 3)) for _ in range(2)]
        plan += [("restart_redis", rng.uniform(1, 4))]
        # Every kind of fault in every run; the seed picks when, where and how many.
        plan += [("mlflow_5xx", rng.randint(1, 3)), ("mlflow_5xx_after_effect", 1), ("mlflow_timeout", 4.0)]
        plan += [("kube_5xx", rng.randint(1, 4)), ("kube_timeout", rng.randint(1, 2))]
        self.schedule = sorted((round(rng.uniform(low, high), 1), *fault) for fault in plan)
        self.done: list[str] = []
        self.errors: list[str] = []

    def run(self, t0: float) -> None:
        try:
            for at, kind, *args in self.schedule:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                getattr(self, kind)(*args)
                self.done.append(f"{time.monotonic() - t0:5.1f}s {kind} {args}")
            time.sleep(max(0.0, t0 + FAULT_WINDOW[1] + 5 - time.monotonic()))
            self.ctx.mlflow.faults.clear()  # what no request took by now would strike after the window
            self.ctx.kube.call(lambda kmock: kmock.faults.clear())
        except Exception as exc:  # reported by the test, never swallowed
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def kill_worker(self, index: int, down_s: float) -> None:
        worker = self.ctx.workers[index]
        worker.kill()
        time.sleep(down_s)
        worker.start(wait=False)  # it comes back in its own time, like a restarted pod; the schedule goes on

    def restart_redis(self, down_s: float) -> None:
        self.ctx.broker.stop()  # no persistence: the queues come back empty
        time.sleep(down_s)
        self.ctx.broker.start()

    def mlflow_5xx(self, count: int) -> None:
        self.ctx.mlflow.fail_next(503, count, path="/api/2.0/mlflow/")

    def mlflow_5xx_after_effect(self, count: int) -> None:
        self.ctx.mlflow.fail_after_next(503, count, path=ALIAS_PATH)

    def mlflow_timeout(self, seconds: float) -> None:
        self.ctx.mlflow.drop_next(seconds, 1, path="/api/2.0/mlflow/")

    def kube_5xx(self, count: int) -> None:
        self.ctx.kube.call(lambda kmock: kmock.fail_next(503, count))

    def kube_timeout(self, count: int) -> None:
        self.ctx.kube.call(lambda kmock: kmock.delay_next(4.0, count))


class Context:
    pass


def mlflow_versions(client, count: int) -> list[str]:
    """Registered models of one version each, with a tiny artifact (what the approval's digest covers)."""
    experiment = client.create_experiment(f"chaos-{uuid.uuid4().hex[:8]}")
    names = []
    for index in range(count):
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, f"model {index}", "model/MLmodel")
        name = f"chaos-{uuid.uuid4().hex[:8]}"
        client.create_registered_model(name)
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
        names.append(name)
    return names


@pytest.mark.django_db(transaction=True)
def test_every_entity_converges_once_through_kills_restarts_and_faults(
        private_broker, kube_server, mlflow_server, http_receiver, settings, tmp_path):  # noqa: F811
    from mlflow import MlflowClient

    rng = random.Random(SEED)
    print(f"chaos seed {SEED} (replay with CHAOS_SEED={SEED})")
    setup_started = time.monotonic()
    c = Context()
    c.kube, c.receiver, c.broker = kube_server, http_receiver, private_broker
    c.mlflow = FaultProxy(mlflow_server.url).__enter__()
    c.mlflow_client = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)
    settings.MLFLOW_TRACKING_URI = c.mlflow.url
    settings.DEPLOYMENTS_KUBE_READ_TIMEOUT = 2.0
    c.team = TeamFactory(slug="chaos")
    c.engineer = member(c.team, "ml_engineer", "chaos-eng")
    c.cluster = kube_cluster(url=kube_server.url, team=c.team)
    c.staging = environment("staging")
    c.v1, c.v2 = model_version(c.team, version=1), model_version(c.team, version=2)
    WebhookEndpointFactory(team=c.team, url=http_receiver.url, events=["chaos."])
    c.monitor = mf.monitor(c.team)
    mf.logs(c.monitor.model_version, mf.frame(400, drift=True))
    versions = []
    for name in mlflow_versions(c.mlflow_client, 6):
        source = c.mlflow_client.get_model_version(name, "1").source
        model = RegisteredModel.objects.create(name=name, team=c.team)
        versions.append(ModelVersion.objects.create(model=model, version=1, source=source, artifact_uri=source))

    entities: list[Entity] = []
    rollbacks = set(rng.sample(range(8), 4))
    entities += [Rollout(c, f"chaos-{i}", i in rollbacks, rng.uniform(0, 12)) for i in range(8)]
    # Publishes are spread over the fault window, so MLflow's faults find requests to strike.
    entities += [Publish(c, version, rng.uniform(*FAULT_WINDOW)) for version in versions]
    entities += [DriftRun(c, rng.uniform(0, 20)) for _ in range(3)]
    entities += [ClusterJob(c, rng.uniform(0, 20)) for _ in range(5)]
    entities += [Webhook(c, n, rng.uniform(0, 20)) for n in range(8)]
    faults = Faults(c, rng)

    env = processes.celery_env(broker_url=private_broker.url, mlflow_url=c.mlflow.url, extra=WORKER_ENV)
    c.workers = [processes.worker(f"chaos{n}", env=env, logs=tmp_path) for n in range(2)]
    beat = processes.beat(env=env, logs=tmp_path)
    everything = [*c.workers, beat]
    clicks_refused: list[str] = []
    try:
        setup_s = time.monotonic() - setup_started
        for proc in everything:
            proc.start(wait=False)
        for proc in everything:
            proc.wait_ready()
        t0 = time.monotonic()
        workers_s = t0 - setup_started - setup_s
        chaos = threading.Thread(target=faults.run, args=(t0,), daemon=True)
        chaos.start()
        while time.monotonic() - t0 < CONVERGE_S and not all(e.done for e in entities):
            for entity in entities:
                if not entity.done and time.monotonic() - t0 >= entity.start_at:
                    try:
                        entity.step()
                    except DomainError as exc:  # e.g. the cluster answered 503 to the click: click again
                        clicks_refused.append(f"{type(entity).__name__}: {exc.message[:120]}")
            time.sleep(0.5)
        converged_s = time.monotonic() - t0
        chaos.join(max(0.0, t0 + FAULT_WINDOW[1] + 30 - time.monotonic()))
        if chaos.is_alive():
            faults.errors.append("the fault schedule did not finish")
        time.sleep(3)  # a duplicate effect still in flight shows up now
    finally:
        for proc in everything:
            proc.stop()
        c.mlflow.__exit__()
        connection.close()

    problems = [p for p in (e.problem() for e in entities) if p]
    problems += faults.errors
    problems += [f"monitor run {pk} left {status}" for pk, status in
                 MonitorRun.objects.filter(status__in=["queued", "running"]).values_list("pk", "status")]
    problems += [f"promotion {pk} left approved (publishing)" for pk in
                 PromotionRequest.objects.filter(status="approved").values_list("pk", flat=True)]
    problems += [f"job {name} left {status}" for name, status in
                 Job.objects.filter(status__in=["pending", "running"]).values_list("name", "status")]
    for model in (Deployment, PromotionRequest, MonitorRun, Job):  # whichever carry a lease today
        if any(f.name == "lease_owner" for f in model._meta.get_fields()):
            problems += [f"{model.__name__} {pk} still leased" for pk in
                         model.objects.exclude(lease_owner="").values_list("pk", flat=True)]
    # One apply of each revision's manifests per drive that applied it: a NetworkPolicy is applied only by a
    # revision's apply (never by routing), so its count is the number of revision applies. Retries after an
    # injected fault or a killed worker may re-apply (server-side apply is idempotent); nothing else may.
    policy_applies = sum(1 for _, obj, _ in kube_server.kmock.applied if obj.startswith("NetworkPolicy/"))
    revision_applies = sum(3 if e.rollback else 2 for e in entities if isinstance(e, Rollout))
    retries_allowed = sum(1 for f in faults.done if "kube_" in f or "kill_worker" in f or "redis" in f) * 2
    if policy_applies > revision_applies + retries_allowed:
        problems.append(f"{policy_applies} revision applies for {revision_applies} revisions "
                        f"(at most {retries_allowed} retries expected)")
    try:
        call_command("audit_verify")
    except Exception as exc:
        problems.append(f"audit_verify: {exc}")

    outbox = sorted(OutboxMessage.objects.values_list("topic", "status").annotate(n=Count("id")))
    summary = (f"seed {SEED}: {len(entities)} entities, converged in {converged_s:.1f}s (setup {setup_s:.1f}s, "
               f"workers up in {workers_s:.1f}s); faults:\n  "
               + "\n  ".join(faults.done) + f"\nrevision applies {policy_applies} for {revision_applies} revisions; "
               f"MLflow faults taken {c.mlflow.injected} ({len(c.mlflow.forwarded)} requests forwarded); clicks refused {len(clicks_refused)}; outbox {outbox}")
    print(summary)
    if problems:
        logs = "\n".join(proc.tails() for proc in everything)
        pytest.fail(f"CHAOS_SEED={SEED}\n{summary}\n" + "\n".join(problems) + f"\n{logs[-12000:]}", pytrace=False)
