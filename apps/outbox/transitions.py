"""The outbox message state machine (messages only wake workers; apps/outbox/services.py publishes them).

    pending ──▶ published
       │ ▲
       ▼ │ requeue (platform admin, audited)
      dead   (out of publish attempts: the broker kept refusing)

A failed publish that still has attempts stays pending, with its error and a backoff: not a move.
"""
from apps.audit.transitions import transition

from .choices import OutboxStatus as S
from .models import OutboxMessage

ALLOWED: dict[str, set[str]] = {
    S.PENDING: {S.PUBLISHED, S.DEAD},
    S.DEAD: {S.PENDING},
    S.PUBLISHED: set(),
}


def message_transition(message: OutboxMessage, *, to: str, actor=None, action: str = "",
                       fields: dict | None = None) -> OutboxMessage:
    """Move a message from the status it was read in (else 409), in the caller's transaction; a requeue is audited
    (`action`), publishing is not (every message would go through the audit chain lock)."""
    transition(row=message, to=to, allowed=ALLOWED, expected={message.status}, action=action, actor=actor,
               team=message.team, fields=fields, conflict=f"Outbox message {message.pk}")
    return message
