"""The registry's state machines: promotion requests and (at the end) the runner's sync runs.

The promotion request state machine: one table of allowed moves and one function that makes them.

    requested ──approve (final)──▶ approved ──publish task──▶ published
        │ ├──reject──▶ rejected    │ ▲   ("approved, publishing to MLflow" until MLflow took the alias)
        │ ├──expire──▶ expired     │ │ retry (team admin, audited)
        │ └──cancel──▶ cancelled   ▼ │
                                   needs_attention   (out of attempts, or MLflow can't take it: the last error is kept)
"""
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict

from .choices import PromotionStatus as S
from .choices import SyncStatus
from .models import PromotionRequest, SyncRun

ALLOWED: dict[str, set[str]] = {
    S.REQUESTED: {S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED},
    S.APPROVED: {S.PUBLISHED, S.NEEDS_ATTENTION},
    S.NEEDS_ATTENTION: {S.APPROVED},
    S.PUBLISHED: set(),
    S.REJECTED: set(),
    S.EXPIRED: set(),
    S.CANCELLED: set(),
}

# Set by the first move into the state only: a retried publish keeps the time the request was decided.
_TIMESTAMP = {S.APPROVED: "decided_at", S.REJECTED: "decided_at", S.EXPIRED: "decided_at",
              S.CANCELLED: "decided_at", S.PUBLISHED: "published_at"}


def transition(request: PromotionRequest, *, to: str, actor, action: str, changes: dict | None = None,
               fields: dict | None = None) -> PromotionRequest:
    """Compare-and-set the status (zero rows updated → 409), audit the move, return the fresh row.

    Must run inside the caller's transaction, which also enqueues the side effects of the move.
    """
    from_ = request.status
    if to not in ALLOWED.get(from_, set()):
        raise Conflict(f"Promotion request #{request.pk} is {S(from_).label.lower()}; it can't become "
                       f"{S(to).label.lower()}.")
    stamp = _TIMESTAMP.get(to)
    values = {"status": to, **({stamp: timezone.now()} if stamp and getattr(request, stamp) is None else {}),
              **(fields or {})}
    updated = PromotionRequest.objects.filter(pk=request.pk, status=from_).update(**values)
    if not updated:
        current = PromotionRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first()
        raise Conflict(f"Promotion request #{request.pk} changed meanwhile; it is now "
                       f"{S(current).label.lower() if current else 'gone'}.")
    request.refresh_from_db()
    audit_record(actor=actor, action=action, target=request, team=request.team,
                 changes={"status": [from_, to], **(changes or {})})
    return request


# The sync run state machine of the runner's passes (apps/registry/sync_runner.py). `sync_run_now` runs one in
# process, outside it: running → succeeded | failed, written by sync.py itself.
#
#     queued ──claim──▶ running ──▶ succeeded
#       ▲ │               │ an attempt failed: queued again, its error kept, due after a backoff
#       │ └───────┬───────┘
#  retry│         ▼ out of attempts
#       └── needs_attention (audited both ways)
SYNC_ALLOWED: dict[str, set[str]] = {
    SyncStatus.QUEUED: {SyncStatus.RUNNING, SyncStatus.NEEDS_ATTENTION},
    SyncStatus.RUNNING: {SyncStatus.RUNNING, SyncStatus.QUEUED, SyncStatus.SUCCEEDED, SyncStatus.FAILED,
                         SyncStatus.NEEDS_ATTENTION},
    SyncStatus.NEEDS_ATTENTION: {SyncStatus.QUEUED},
}


def sync_run_transition(run: SyncRun, *, to: str, actor=None, action: str = "", changes: dict | None = None,
                        fields: dict | None = None) -> SyncRun:
    """Compare-and-set a sync run's status (zero rows → 409), in the caller's transaction. Moves into and out of
    needs_attention are audited; a pass starting or finishing is progress, recorded on the run only."""
    from_ = run.status
    if to not in SYNC_ALLOWED.get(from_, set()):
        raise Conflict(f"Sync run #{run.pk} is {SyncStatus(from_).label.lower()}; it can't become "
                       f"{SyncStatus(to).label.lower()}.")
    if not SyncRun.objects.filter(pk=run.pk, status=from_).update(status=to, **(fields or {})):
        raise Conflict(f"Sync run #{run.pk} changed meanwhile; reload and try again.")
    run.refresh_from_db()
    if SyncStatus.NEEDS_ATTENTION in (from_, to):
        audit_record(actor=actor, action=action, target=run, team=run.team,
                     changes={"status": [from_, to], **(changes or {})})
    return run
