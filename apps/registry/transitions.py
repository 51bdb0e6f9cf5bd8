"""The registry's state machines: promotion requests and (at the end) the runner's sync runs.

The promotion request state machine: one table of allowed moves and one function that makes them.

    requested ──approve (final)──▶ approved ──publish task──▶ published
        │ ├──reject──▶ rejected    │ ▲   ("approved, publishing to MLflow" until MLflow took the alias)
        │ ├──expire──▶ expired     │ │ retry (team admin, audited)
        │ └──cancel──▶ cancelled   ▼ │
                                   needs_attention   (out of attempts, or MLflow can't take it: the last error is kept)
"""
from django.utils import timezone

from apps.audit.transitions import transition as shared_transition

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
    """Move the request from the status it was read in (another writer moved it first, or the table forbids
    it: 409), audited; in the caller's transaction, which also enqueues the side effects of the move."""
    stamp = _TIMESTAMP.get(to)
    fields = {**({stamp: timezone.now()} if stamp and getattr(request, stamp) is None else {}), **(fields or {})}
    shared_transition(row=request, to=to, allowed=ALLOWED, expected={request.status}, action=action, actor=actor,
                      team=request.team, fields=fields, changes=changes, conflict=f"Promotion request #{request.pk}")
    return request


# The sync run state machine of the runner's passes (apps/registry/services/sync_requests.py). `sync_run_now`
# runs one in process, outside it: created running, then → succeeded | failed.
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
    """Move a sync run from the status it was read in (else 409), in the caller's transaction. Moves into and out
    of needs_attention are audited (`action`); a pass starting or finishing is progress, recorded on the run."""
    shared_transition(row=run, to=to, allowed=SYNC_ALLOWED, expected={run.status}, action=action, actor=actor,
                      team=run.team, fields=fields, changes=changes, conflict=f"Sync run #{run.pk}")
    return run
