"""The deployment state machine: one table of allowed moves and one compare-and-set transition function.

pending ──► progressing ──► healthy
   │             │  ▲  └──► awaiting_promotion ◄──► paused
   ▼             ▼  │            │
 failed ◄────────┴──┴────────────┘           healthy/failed/degraded ──► pending (a new revision)
"""
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict

from .choices import DeploymentStatus as S
from .models import Deployment

ALLOWED: dict[str, set[str]] = {
    S.PENDING: {S.PROGRESSING, S.FAILED},
    S.PROGRESSING: {S.PROGRESSING, S.AWAITING_PROMOTION, S.HEALTHY, S.FAILED, S.PAUSED},
    S.AWAITING_PROMOTION: {S.AWAITING_PROMOTION, S.PROGRESSING, S.PAUSED, S.HEALTHY, S.FAILED},
    S.PAUSED: {S.AWAITING_PROMOTION, S.HEALTHY, S.FAILED},
    S.HEALTHY: {S.PENDING, S.DEGRADED},
    S.FAILED: {S.PENDING},
    S.DEGRADED: {S.PENDING, S.HEALTHY},
}

# From which statuses an operator may start a new revision (deploy, rollback, re-apply).
ACCEPTS_NEW_REVISION = {S.HEALTHY, S.FAILED, S.DEGRADED}
# While a rollout is running a rollback also may start: it supersedes the rollout.
ROLLBACK_FROM = ACCEPTS_NEW_REVISION | {S.PROGRESSING, S.AWAITING_PROMOTION, S.PAUSED}


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


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    return value
