"""The rollout engine, run by workers: converge what the cluster serves to what the database wants.

Services write the desired state (current revision, traffic split, status) and enqueue a drive; the
drive applies, waits for ready, advances automatic steps and routes. Every state write is a
compare-and-set, so a drive that was overtaken (a rollback clicked meanwhile, a second worker) stops
without undoing anything, and re-running a drive (redelivery, reconcile) is harmless.
"""
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict
from workers.drivers import ApplyFailed, DriverUnavailable

from . import artifact_check, capacity, traffic as traffic_split
from .choices import DeploymentStatus as S
from .choices import RevisionStatus, StrategyKind
from .drivers import driver_for, workload_numbers
from .models import Deployment, DeploymentRevision
from .transitions import deployment_transition, revision_transition, revisions_supersede

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


def _lease_seconds() -> int:
    """Long enough for one apply plus the full readiness wait, so a live drive never loses its lease."""
    return settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS + 60


def lease_claim(*, deployment_id: int, only_if_expired: bool) -> str | None:
    """Take the drive lease (compare-and-set); returns the owner token, or None when another drive holds it.

    Drives the outbox delivers (deploy, rollback, promote) take it over unconditionally: they carry new
    desired state and must not wait behind a drive that is stuck waiting for readiness. The reconcile
    beat claims only an expired lease."""
    owner = uuid.uuid4().hex
    now = timezone.now()
    rows = Deployment.objects.filter(pk=deployment_id)
    if only_if_expired:
        rows = rows.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    # A queryset update: the lease does not move updated_at, so it never hides a stuck rollout.
    claimed = rows.update(lease_owner=owner, lease_until=now + timedelta(seconds=_lease_seconds()))
    return owner if claimed else None


def lease_extend(*, deployment_id: int, owner: str) -> None:
    """Extend our lease, or take it back when a drive that took it over has finished and released it."""
    now = timezone.now()
    Deployment.objects.filter(Q(lease_owner=owner) | Q(lease_until__isnull=True) | Q(lease_until__lt=now),
                              pk=deployment_id).update(lease_owner=owner,
                                                       lease_until=now + timedelta(seconds=_lease_seconds()))


def lease_release(*, deployment_id: int, owner: str) -> None:
    Deployment.objects.filter(pk=deployment_id, lease_owner=owner).update(lease_owner="", lease_until=None)


def rollout_drive(*, deployment_id: int, reclaim: bool = False) -> str:
    """Converge one deployment under its drive lease. Returns what happened (for task results and logs).

    `reclaim` (the reconcile beat) drives only when no live drive holds the lease."""
    owner = lease_claim(deployment_id=deployment_id, only_if_expired=reclaim)
    if owner is None:
        return "driven elsewhere"
    try:
        return _drive(deployment_id=deployment_id, owner=owner)
    finally:
        lease_release(deployment_id=deployment_id, owner=owner)


def _drive(*, deployment_id: int, owner: str) -> str:
    deployment = _fresh(deployment_id)
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
            lease_extend(deployment_id=deployment_id, owner=owner)  # the readiness wait gets a full lease
            driver.wait_ready(deployment=deployment, revision=target,
                              timeout=settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS)
        except ApplyFailed as exc:
            return _fail(deployment, revision, str(exc))
        revision_transition(revision=revision, to=RevisionStatus.READY, fields={"ready_at": timezone.now(), "message": ""})
        capacity.revision_running(revision=revision)
        deployment = _fresh(deployment_id)
        if deployment.current_revision_id != revision.pk or deployment.status != S.PROGRESSING:
            return "overtaken"
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
    return route(deployment_id=deployment_id)


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
            retire_unused(deployment=deployment, revisions=revisions, driver=driver)
            return f"routed {traffic}"
    return "routing kept changing; the reconcile beat will finish it"


TORN_DOWN_MESSAGE = "Torn down: nothing serves; revisions and history are kept."


def teardown_drive(deployment: Deployment) -> str:
    """Remove a torn-down deployment's route and every workload from the cluster (the service already moved it
    to torn_down and gave back its GPUs). Re-run by the reconcile beat until it has finished once; a cluster
    that refuses is named in the status message meanwhile."""
    driver = driver_for(deployment.cluster)
    workloads = [r for r in deployment.revisions.all() if r.rollback_of_id is None]
    try:
        driver.teardown(deployment=deployment, revisions=workloads)
    except ApplyFailed as exc:
        Deployment.objects.filter(pk=deployment.pk, status=S.TORN_DOWN).update(
            status_message=f"Torn down, but the cluster refused removing its objects: {exc}"[:1900])
        return f"teardown refused: {exc}"
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


def retire_unused(*, deployment, revisions: dict, driver) -> None:
    keep = needed_workloads(deployment)
    for number, revision in revisions.items():
        if number not in keep and revision.rollback_of_id is None:
            driver.retire(deployment=deployment, revision=revision)
            capacity.release(reason=f"revision {number} torn down", revision=revision)


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


def rollout_stuck(*, older_than_seconds: int = 120):
    """Deployments a dead worker left mid-rollout: the reconcile beat drives them again.

    A rollout is stuck when its drive lease has expired (a live drive keeps it, however long the model
    server takes to become ready); one never leased counts once updated_at is older than the cutoff. A
    pending deployment is normally still in the queue (the outbox sweep owns its delivery); only one
    pending for ten minutes is treated as lost."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than_seconds)
    lost = now - timedelta(seconds=max(600, older_than_seconds))
    unleased = Q(lease_until__isnull=True, updated_at__lt=cutoff) | Q(lease_until__lt=now)
    return Deployment.objects.filter((Q(status=S.PROGRESSING) & unleased)
                                     | Q(status=S.PENDING, updated_at__lt=lost))


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
