"""The deployments app's state machines: a table of allowed moves each, and the only functions that write a
status (deployment, revision, job).

Deployment (compare-and-set on status and lock_version):

pending ──► progressing ──► healthy
   │             │  ▲  └──► awaiting_promotion ◄──► paused
   ▼             ▼  │            │
 failed ◄────────┴──┴────────────┘           healthy/failed/degraded ──► pending (a new revision)

any of these ──► torn_down (teardown; terminal: nothing serves, no new revision, history kept)

any of these ──► needs_attention (the drive ran out of attempts, e.g. the cluster stayed down; audited, the
status it left is kept as resume_status) ──► resume_status (Retry, audited), pending (a rollback) or torn_down

Revision: pending ──► applying ──► ready ──► superseded; pending/applying ──► failed | aborted |
artifact_changed (ready too, when a promotion finds the artifacts changed); ready/superseded ──► pending
when a re-apply runs its manifests again.

Job: pending ──► running ──► succeeded | failed; pending ──► failed (the cluster refused it); failed ──►
pending (retry, a new attempt).
"""
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.audit.transitions import transition
from apps.core.errors import Conflict

from .choices import DeploymentStatus as S
from .choices import JobStatus as J
from .choices import RevisionStatus as R
from .models import Deployment, DeploymentRevision, Job

ALLOWED: dict[str, set[str]] = {
    S.PENDING: {S.PROGRESSING, S.FAILED, S.TORN_DOWN},
    S.PROGRESSING: {S.PROGRESSING, S.AWAITING_PROMOTION, S.HEALTHY, S.FAILED, S.PAUSED, S.TORN_DOWN},
    S.AWAITING_PROMOTION: {S.AWAITING_PROMOTION, S.PROGRESSING, S.PAUSED, S.HEALTHY, S.FAILED, S.TORN_DOWN},
    S.PAUSED: {S.AWAITING_PROMOTION, S.HEALTHY, S.FAILED, S.TORN_DOWN},
    S.HEALTHY: {S.PENDING, S.DEGRADED, S.TORN_DOWN},
    S.FAILED: {S.PENDING, S.TORN_DOWN},
    S.DEGRADED: {S.PENDING, S.HEALTHY, S.TORN_DOWN},
    S.TORN_DOWN: set(),
}
for _status in list(ALLOWED):
    ALLOWED[_status].add(S.NEEDS_ATTENTION)
ALLOWED[S.NEEDS_ATTENTION] = set(ALLOWED) - {S.NEEDS_ATTENTION}
# A teardown may start from any status but its own.
TEARDOWN_FROM = set(ALLOWED) - {S.TORN_DOWN}

# From which statuses an operator may start a new revision (deploy, rollback, re-apply).
ACCEPTS_NEW_REVISION = {S.HEALTHY, S.FAILED, S.DEGRADED}
# While a rollout is running a rollback also may start: it supersedes the rollout.
ROLLBACK_FROM = ACCEPTS_NEW_REVISION | {S.PROGRESSING, S.AWAITING_PROMOTION, S.PAUSED, S.NEEDS_ATTENTION}


def deployment_transition(*, deployment: Deployment, to: str, actor=None, action: str | None = None,
                          expected: set[str] | None = None, fields: dict | None = None,
                          audit_changes: dict | None = None) -> Deployment:
    """Move `deployment` to status `to` if it is still in the status the caller read (compare-and-set on
    status and lock_version). Zero rows updated means somebody else moved it first: 409, nothing changed.

    `expected` widens the allowed source statuses (e.g. rollback supersedes a running rollout); `fields`
    are written in the same UPDATE. With `action` the change is audited in the caller's transaction.
    """
    from_ = deployment.status
    allowed_from = expected if expected is not None else {from_}
    if from_ not in allowed_from or (to not in ALLOWED.get(from_, set()) and not (expected and to == S.PENDING)):
        raise Conflict(f"Deployment {deployment.name} is {from_}; it cannot move to {to}.",
                       extra={"status": from_})
    fields = dict(fields or {})
    updated = Deployment.objects.filter(pk=deployment.pk, status=from_, lock_version=deployment.lock_version).update(
        status=to, lock_version=F("lock_version") + 1, updated_at=timezone.now(), **fields)
    if updated == 0:
        current = Deployment.objects.filter(pk=deployment.pk).values_list("status", flat=True).first()
        raise Conflict(f"Deployment {deployment.name} was changed by someone else meanwhile (it is now {current}); "
                       f"reload and try again.", extra={"status": current})
    before = {"status": from_, **{k: _plain(getattr(deployment, k, None)) for k in fields}}
    deployment.refresh_from_db()
    if action:
        after = {"status": to, **{k: _plain(getattr(deployment, k, None)) for k in fields}}
        changes = {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}
        changes.update(audit_changes or {})
        audit_record(actor=actor, action=action, target=deployment, team=deployment.team, changes=changes)
    return deployment


def deployment_want(*, deployment: Deployment) -> None:
    """Desired state changed (in the caller's transaction): a new generation for the drive to converge on, with
    a fresh round of attempts and no backoff left over from the previous one."""
    Deployment.objects.filter(pk=deployment.pk).update(desired_generation=F("desired_generation") + 1, attempts=0,
                                                       next_attempt_at=None)
    deployment.refresh_from_db(fields=["desired_generation", "attempts", "next_attempt_at"])


def deployment_observed(*, deployment_id: int, generation: int) -> bool:
    """The drive converged on `generation` (called inside the drive's lease.holding()). Not a status move; a
    generation bumped meanwhile stays due."""
    return bool(Deployment.objects.filter(pk=deployment_id, observed_generation__lt=generation).update(
        observed_generation=generation, attempts=0))


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    return value


REVISION_ALLOWED: dict[str, set[str]] = {
    R.PENDING: {R.APPLYING, R.READY, R.FAILED, R.ABORTED, R.ARTIFACT_CHANGED},
    R.APPLYING: {R.READY, R.FAILED, R.ABORTED, R.ARTIFACT_CHANGED},
    R.READY: {R.SUPERSEDED, R.PENDING, R.ARTIFACT_CHANGED},
    R.SUPERSEDED: {R.PENDING},
    R.FAILED: set(),
    R.ABORTED: set(),
    R.ARTIFACT_CHANGED: set(),
}


def revision_transition(*, revision: DeploymentRevision, to: str, actor=None, expected: set[str] | None = None,
                        fields: dict | None = None) -> bool:
    """Move a revision to `to` when its current status allows it (and is in `expected`, when given), audited
    as `revision.<to>` in the same transaction. False, nothing written, when it had moved elsewhere first."""
    return transition(row=revision, to=to, allowed=REVISION_ALLOWED, action=f"revision.{to}", actor=actor,
                      team=revision.deployment.team, expected=expected, fields=fields,
                      changes={"revision": [None, revision.number]}) is not None


def revisions_supersede(*, deployment: Deployment, keep: DeploymentRevision) -> None:
    """The ready revisions other than `keep` (the one now serving everything) are superseded."""
    for revision in DeploymentRevision.objects.filter(deployment=deployment, status=R.READY).exclude(pk=keep.pk):
        revision_transition(revision=revision, to=R.SUPERSEDED)


JOB_ALLOWED: dict[str, set[str]] = {
    J.PENDING: {J.RUNNING, J.FAILED, J.NEEDS_ATTENTION},  # needs attention: the runner ran out of attempts
    J.RUNNING: {J.SUCCEEDED, J.FAILED},
    J.FAILED: {J.PENDING},
    J.NEEDS_ATTENTION: {J.PENDING},
    J.SUCCEEDED: set(),
}


def job_transition(*, job: Job, to: str, action: str | None = None, actor=None, fields: dict | None = None,
                   changes: dict | None = None) -> str | None:
    """Move a job to `to` when its current status allows it, audited (`job.<to>` unless `action` says otherwise)
    in the same transaction. Returns the status it left; None, nothing written, when another writer moved it."""
    return transition(row=job, to=to, allowed=JOB_ALLOWED, action=action or f"job.{to}", actor=actor, team=job.team,
                      fields=fields, changes=changes)
