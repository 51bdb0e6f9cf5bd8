"""The promotion request state machine: one table of allowed moves and one function that makes them.

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
from .models import PromotionRequest

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
