"""The rollout engine, run by the runner (kind deployments.rollout): converge what the cluster serves to what
the database wants.

Services write the desired state (current revision, traffic split, status), bump `desired_generation` and
wake the runner; a deployment whose desired generation is ahead of its observed one is due. The drive claims
it (lease, attempts, backoff: apps/core/runner.py), applies, waits for ready (interruptibly: newer desired
state stops the wait), advances automatic steps, routes, and records the generation it converged on. Every
state write is a compare-and-set, so a drive that was overtaken stops without undoing anything, and
re-running a drive (a reclaimed lease, a duplicate wake-up) is harmless.
"""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict
from workers.drivers import ApplyFailed, DriverUnavailable, WaitInterrupted

from . import artifact_check, capacity, traffic as traffic_split
from .choices import DeploymentStatus as S
from .choices import ClusterKind, RevisionStatus, StrategyKind
from .drivers import driver_for, workload_numbers
from .models import Deployment, DeploymentRevision
from .transitions import deployment_observed, deployment_transition, revision_transition, revisions_supersede

logger = logging.getLogger(__name__)


def workload(revision: DeploymentRevision) -> DeploymentRevision:
    """The revision whose workload serves this one: a rollback runs the manifests of an earlier revision."""
    return revision.rollback_of or revision


def initial_split(*, deployment: Deployment, revision: DeploymentRevision) -> tuple[dict, dict, str, int]:
    """(traffic, shadow, next status, rollout step) right after the new revision is ready, keyed by the
    deployment's revision numbers (the drivers' boundary translates them to workloads: drivers.py)."""
    new = revision.number
    stable = deployment.stable_revision
    strategy = revision.strategy or {"kind": StrategyKind.ROLLING}
    kind = strategy.get("kind")
    if stable is None or workload(stable).pk == workload(revision).pk or kind == StrategyKind.ROLLING:
        return {new: 100}, {}, S.HEALTHY, -1
    old = stable.number
    if kind == StrategyKind.CANARY:
        for index, step in enumerate(strategy["steps"]):
            if step["weight"] >= 100:
                return {new: 100}, {}, S.HEALTHY, -1
            if step["pause"]:
                return {old: 100 - step["weight"], new: step["weight"]}, {}, S.AWAITING_PROMOTION, index
        return {new: 100}, {}, S.HEALTHY, -1
    if kind == StrategyKind.BLUE_GREEN:
        if strategy.get("auto_switch"):
            return {new: 100}, {}, S.HEALTHY, -1
        return {old: 100}, {}, S.AWAITING_PROMOTION, 0
    if kind == StrategyKind.SHADOW:
        return {old: 100}, {"revision": new, "percent": strategy["percent"]}, S.AWAITING_PROMOTION, 0
    if kind == StrategyKind.AB:
        split = {}
        for variant in strategy["variants"]:
            key = new if variant["revision"] == "new" else int(variant["revision"])
            split[key] = split.get(key, 0) + variant["weight"]
        return {k: v for k, v in split.items() if v > 0}, {}, S.HEALTHY, -1
    return {new: 100}, {}, S.HEALTHY, -1


def initial_weight(*, deployment, revision) -> int:
    traffic, shadow, _, _ = initial_split(deployment=deployment, revision=revision)
    return traffic.get(revision.number, 0)


def completion_fields(*, deployment: Deployment, revision: DeploymentRevision) -> dict:
    """Fields of a finished rollout: the revision takes all traffic, the previous stable stays warm."""
    previous = deployment.stable_revision
    fields = {"traffic": {str(revision.number): 100}, "shadow": {}, "stable_revision": revision,
              "rollout_step": -1, "status_message": f"Revision {revision.number} serves 100 %."}
    if previous is not None and workload(previous).pk != workload(revision).pk:
        fields["warm_revision"] = previous
        fields["warm_until"] = timezone.now() + timedelta(seconds=settings.DEPLOYMENTS_ROLLBACK_WINDOW_SECONDS)
    return fields


def _fresh(deployment_id) -> Deployment:
    return (Deployment.objects.select_related("cluster", "current_revision__model_version__model",
                                              "current_revision__rollback_of__model_version__model",
                                              "stable_revision__rollback_of", "team")
            .get(pk=deployment_id))


ROLLOUT_KIND = "deployments.rollout"  # the runner's work kind (apps/deployments/runner.py)
# A drive follows desired state that keeps moving under it (clicks during a wait) for this many rounds, then
# leaves the rest to the next claim.
MAX_ROUNDS = 20
INTERRUPTED = "interrupted: the desired state moved on"


def rollout_attempt(lease) -> str:
    """The runner's handler: converge the deployment on its desired generation, outside any transaction, and
    record that generation as observed under the lease. A click that changes desired state meanwhile (a
    rollback during a slow readiness wait) interrupts the wait, and this drive goes on with the new generation
    under the same lease. A cluster that is down raises: the runner keeps the error and retries after a backoff;
    out of attempts, the deployment needs attention (rollout_gave_up)."""
    for _ in range(MAX_ROUNDS):
        deployment = _fresh(lease.pk)
        generation = deployment.desired_generation
        try:
            result = _drive(deployment, should_stop=_stop_check(lease, generation))
        except DriverUnavailable as exc:
            with lease.holding() as row:
                if row.status in (S.PENDING, S.PROGRESSING):  # the rollout's own message until it moves on
                    Deployment.objects.filter(pk=row.pk).update(status_message=(
                        f"Cluster unavailable; retrying (attempt {lease.attempt} of {lease.kind.max_attempts}): "
                        f"{exc}")[:2000])
            raise
        with lease.holding() as row:
            if row.desired_generation == generation:
                deployment_observed(deployment_id=row.pk, generation=generation)
                logger.info("Rollout drive", extra={"deployment": row.pk, "generation": generation, "result": result})
                return result
        lease.check()
    return "desired state still moving; the next claim goes on"


def _stop_check(lease, generation: int):
    """`should_stop` for the readiness wait: heartbeat the lease (LeaseLost, which stops the drive, when another
    runner took it over) and say stop once the desired state moved past the generation being driven."""
    beat = {"at": time.monotonic()}

    def should_stop() -> bool:
        if time.monotonic() - beat["at"] >= lease.kind.lease_seconds / 4:
            lease.check()
            beat["at"] = time.monotonic()
        return Deployment.objects.filter(pk=lease.pk, desired_generation__gt=generation).exists()

    return should_stop


def rollout_gave_up(deployment: Deployment, error: str) -> None:
    """The runner's on_exhausted: the drive ran out of attempts. The deployment needs attention, with its last
    error, until someone retries it (services.deployment_retry) or rolls it back."""
    deployment_transition(deployment=deployment, to=S.NEEDS_ATTENTION, action="deployment.needs_attention",
                          fields={"resume_status": deployment.status,
                                  "status_message": f"Gave up after {deployment.attempts} attempt(s): {error}"[:1900]},
                          audit_changes={"attempts": [None, deployment.attempts], "error": [None, error[:500]]})


def rollout_drive(*, deployment_id: int) -> str:
    """Claim the deployment's drive and run it now, as a worker's runner.tick would (the demo seed and tests).
    Returns what the drive did; the runner's outcome (retry, needs_attention, lease_lost) when it raised; "not
    due" when there is nothing to converge or another runner holds it."""
    from apps.core import runner

    lease = runner.claim(runner.kind_get(ROLLOUT_KIND), ids=[deployment_id])
    if lease is None:
        return "not due"
    results = []
    outcome = runner.run_lease(lease, handler=lambda held: results.append(rollout_attempt(held)))
    return results[-1] if results else outcome


def _drive(deployment: Deployment, *, should_stop) -> str:
    deployment_id = deployment.pk
    if deployment.status == S.TORN_DOWN:
        return teardown_drive(deployment)
    revision = deployment.current_revision
    if revision is None:
        return "nothing to do"
    driver = driver_for(deployment.cluster)
    if deployment.status in (S.PENDING, S.PROGRESSING) and revision.status in (RevisionStatus.PENDING,
                                                                                RevisionStatus.APPLYING):
        # Deploy, rollback and re-apply all pass here: only the approved bytes reach the cluster.
        refusal = artifact_check.artifact_refusal(deployment=deployment, revision=revision)
        if refusal:
            return f"refused: {refusal}"
        if deployment.status == S.PENDING:
            try:
                with transaction.atomic():
                    deployment = deployment_transition(deployment=deployment, to=S.PROGRESSING,
                                                       fields={"status_message": f"Applying revision {revision.number}"})
            except Conflict:
                return "overtaken"
        revision_transition(revision=revision, to=RevisionStatus.APPLYING, expected={RevisionStatus.PENDING})
        target = workload(revision)

        def reached_cluster():
            DeploymentRevision.objects.filter(pk=revision.pk, apply_requested_at__isnull=True).update(
                apply_requested_at=timezone.now())

        try:
            driver.apply(deployment=deployment, revision=target,
                         weight=initial_weight(deployment=deployment, revision=revision), on_request=reached_cluster)
            driver.wait_ready(deployment=deployment, revision=target,
                              timeout=settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS, should_stop=should_stop)
        except WaitInterrupted:
            return INTERRUPTED
        except ApplyFailed as exc:
            return _fail(deployment, revision, str(exc))
        revision_transition(revision=revision, to=RevisionStatus.READY, fields={"ready_at": timezone.now(), "message": ""})
        deployment = _fresh(deployment_id)
        if deployment.current_revision_id != revision.pk or deployment.status != S.PROGRESSING:
            return "overtaken"
    if deployment.status == S.PROGRESSING and deployment.current_revision.status == RevisionStatus.READY:
        # The step after the wait; also where a drive that died between "revision ready" and this split resumes
        # (nothing else moves a progressing deployment on).
        result = _split_after_ready(deployment)
        if result:
            return result
    return route(deployment_id=deployment_id)


def _split_after_ready(deployment: Deployment) -> str | None:
    """The current revision is ready: give it its first traffic step (or all of it). "overtaken" when a click
    moved the deployment first; None when the split is written."""
    revision = deployment.current_revision
    capacity.revision_running(revision=revision)  # idempotent: a resumed drive may have done it already
    traffic, shadow, status, step = initial_split(deployment=deployment, revision=revision)
    fields = {"traffic": {str(k): v for k, v in traffic.items()}, "shadow": shadow, "rollout_step": step,
              "status_message": _describe(status, traffic, shadow)}
    if status == S.HEALTHY:
        fields.update(completion_fields(deployment=deployment, revision=revision))
        if (revision.strategy or {}).get("kind") == StrategyKind.AB:
            # An A/B/n split is a steady state, not a step towards 100 %.
            fields["traffic"] = {str(k): v for k, v in traffic.items()}
            fields["status_message"] = _describe(status, traffic, shadow)
    try:
        with transaction.atomic():
            deployment = deployment_transition(deployment=deployment, to=status, action="deployment.rollout_ready",
                                               fields=fields, audit_changes={"revision": [None, revision.number]})
            if status == S.HEALTHY:
                _supersede(deployment, revision)
    except Conflict:
        return "overtaken"
    if status == S.HEALTHY:
        capacity.allocation_start(deployment=deployment, revision=revision)
    return None


def route(*, deployment_id: int) -> str:
    """Make the cluster route what the database says, until the database stops changing under us."""
    for _ in range(5):
        deployment = _fresh(deployment_id)
        driver = driver_for(deployment.cluster)
        revisions = {r.number: r for r in deployment.revisions.all()}
        traffic = {int(k): v for k, v in (deployment.traffic or {}).items()}
        if not traffic:
            return "no traffic to route"
        endpoint = driver.route(deployment=deployment, traffic=traffic, shadow=deployment.shadow or {},
                                revisions=revisions)
        updated = Deployment.objects.filter(pk=deployment.pk, lock_version=deployment.lock_version).update(
            endpoint_url=endpoint)
        if updated:
            # What the cluster now serves, read back from the applied objects (shown beside the request).
            traffic_split.served_record(deployment=deployment, driver=driver, timeout=traffic_split.READ_BACK_TIMEOUT)
            converge_workloads(deployment=deployment, revisions=revisions, traffic=traffic, driver=driver)
            return f"routed {traffic}"
    return "routing kept changing; the reconcile beat will finish it"


TORN_DOWN_MESSAGE = "Torn down: nothing serves; revisions and history are kept."


def teardown_drive(deployment: Deployment) -> str:
    """Remove a torn-down deployment's route and every workload from the cluster (the service already moved it
    to torn_down and gave back its GPUs). A cluster that refuses is named in the status message and the runner
    tries again after a backoff, until it has finished once (or the deployment needs attention)."""
    driver = driver_for(deployment.cluster)
    workloads = [r for r in deployment.revisions.all() if r.rollback_of_id is None]
    try:
        driver.teardown(deployment=deployment, revisions=workloads)
    except ApplyFailed as exc:
        Deployment.objects.filter(pk=deployment.pk, status=S.TORN_DOWN).update(
            status_message=f"Torn down, but the cluster refused removing its objects: {exc}"[:1900])
        raise
    finished = (Deployment.objects.filter(pk=deployment.pk, status=S.TORN_DOWN).exclude(status_message=TORN_DOWN_MESSAGE)
                .update(status_message=TORN_DOWN_MESSAGE, endpoint_url="", served_traffic={}))
    if finished:
        audit_record(actor=None, action="deployment.torn_down", target=deployment, team=deployment.team,
                     changes={"workloads_removed": [None, [f"r{r.number}" for r in workloads]],
                              "endpoint_url": [deployment.endpoint_url, ""]})
    return "torn down"


def needed_workloads(deployment: Deployment) -> set[int]:
    """The workload numbers that must keep running: routed, mirrored, rolling out or warm."""
    runs = workload_numbers(deployment.revisions.all())
    numbers = {runs.get(int(k), int(k)) for k in (deployment.traffic or {})}
    if deployment.shadow:
        numbers.add(runs.get(int(deployment.shadow["revision"]), int(deployment.shadow["revision"])))
    if deployment.current_revision_id and deployment.status not in (S.HEALTHY, S.FAILED, S.DEGRADED):
        numbers.add(workload(deployment.current_revision).number)
    if deployment.warm_revision_id and deployment.warm_until and deployment.warm_until > timezone.now():
        numbers.add(workload(deployment.warm_revision).number)
    return numbers


def converge_workloads(*, deployment, revisions: dict, traffic: dict, driver) -> None:
    """After routing: stop the workloads nothing needs any more and, on the local target, start again a needed
    one that isn't routed (the warm standby a rollback switches to) if its process died: after `make run`
    stopped every model server, the next start brought back the routed ones only, and the missing standby
    read as drift ("degraded") until its warm window ended. (On Kubernetes a missing object is drift to show.)"""
    keep = needed_workloads(deployment)
    for number, revision in revisions.items():
        if number not in keep and revision.rollback_of_id is None:
            driver.retire(deployment=deployment, revision=revision)
            capacity.release(reason=f"revision {number} torn down", revision=revision)
    if deployment.cluster.kind == ClusterKind.LOCAL:
        routed = {workload(revisions[n]).number for n in traffic if n in revisions}
        for number in sorted(keep - routed):
            if number not in revisions:
                continue
            try:  # starts its process unless it runs
                driver.apply(deployment=deployment, revision=revisions[number], weight=0)
            except (ApplyFailed, DriverUnavailable) as exc:  # routing stands; the reconcile shows it missing
                logger.warning("Could not start a needed workload", extra={"deployment": deployment.pk,
                                                                           "revision": number, "error": str(exc)})


def _supersede(deployment, revision) -> None:
    revisions_supersede(deployment=deployment, keep=revision)


def _describe(status, traffic, shadow) -> str:
    split = ", ".join(f"r{k}: {v} %" for k, v in traffic.items())
    text = f"Traffic {split}."
    if shadow:
        text += f" Shadowing {shadow['percent']} % to r{shadow['revision']}."
    if status == S.AWAITING_PROMOTION:
        text += " Waiting for promotion."
    return text


def _fail(deployment, revision, message: str) -> str:
    revision_transition(revision=revision, to=RevisionStatus.FAILED, fields={"message": message[:2000]})
    capacity.release(reason=f"revision {revision.number} failed", revision=revision)
    deployment = _fresh(deployment.pk)
    if deployment.current_revision_id != revision.pk:
        return "overtaken"
    stable = deployment.stable_revision
    note = f" Revision {stable.number} keeps serving." if stable else ""
    try:
        with transaction.atomic():
            deployment_transition(deployment=deployment, to=S.FAILED, action="deployment.rollout_failed",
                                  fields={"status_message": f"Revision {revision.number} failed: {message}"[:1900] + note},
                                  audit_changes={"revision": [revision.number, revision.number], "error": [None, message[:500]]})
    except Conflict:
        return "overtaken"
    if stable is not None:
        route(deployment_id=deployment.pk)
    return f"failed: {message}"


def reconcile_one(*, deployment_id: int) -> dict:
    """Compare what the cluster reports with the desired state; record drift and missing objects."""
    deployment = _fresh(deployment_id)
    driver = driver_for(deployment.cluster)
    revisions = {r.number: r for r in deployment.revisions.all()}
    wanted = [revisions[n] for n in needed_workloads(deployment) if n in revisions]
    try:
        observed = driver.observe(deployment=deployment, revisions=wanted)
    except DriverUnavailable as exc:
        return {"error": str(exc)}
    traffic_split.served_record(deployment=deployment, driver=driver)  # a weight edited on the cluster shows
    drift = {"missing": observed.missing, "changed": observed.drift, "checked_at": timezone.now().isoformat()}
    fields = {"drift": drift if (observed.missing or observed.drift) else {}, "last_reconciled_at": timezone.now()}
    if (observed.missing or observed.drift) and deployment.status == S.HEALTHY:
        try:
            with transaction.atomic():
                deployment_transition(deployment=deployment, to=S.DEGRADED, action="deployment.drift_detected",
                                      fields={**fields, "status_message": "Objects missing or changed on the cluster: "
                                              + ", ".join(observed.missing + list(observed.drift))[:1500]})
        except Conflict:
            pass
    elif not observed.missing and not observed.drift and deployment.status == S.DEGRADED:
        try:
            with transaction.atomic():
                deployment_transition(deployment=deployment, to=S.HEALTHY, action="deployment.drift_cleared",
                                      fields={**fields, "status_message": "Cluster matches the desired state."})
        except Conflict:
            pass
    else:
        Deployment.objects.filter(pk=deployment.pk).update(**fields)
    return drift
