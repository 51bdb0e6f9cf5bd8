"""The webhook notification state machine (the runner delivers notifications; apps/teams/notifications.py).

    pending ──▶ delivered | rejected | refused | skipped
       │ ▲
       ▼ │ retry (team admin, audited)
    needs_attention   (out of attempts: the receiver kept failing; the last error is kept)

Every attempt is in the delivery log (WebhookDelivery); the audit log records the moves a person must know
about — giving up and retrying — not each delivery, which would put every notification through the chain lock.
"""
from django.utils import timezone

from apps.audit.transitions import transition

from .choices import NotificationStatus as S
from .models import WebhookNotification

ALLOWED: dict[str, set[str]] = {
    S.PENDING: {S.DELIVERED, S.REJECTED, S.REFUSED, S.SKIPPED, S.NEEDS_ATTENTION},
    S.NEEDS_ATTENTION: {S.PENDING},
}
AUDITED = {S.NEEDS_ATTENTION, S.PENDING}
FINAL = {S.DELIVERED, S.REJECTED, S.REFUSED, S.SKIPPED}


def notification_transition(notification: WebhookNotification, *, to: str, actor=None, action: str = "",
                            changes: dict | None = None, fields: dict | None = None) -> WebhookNotification:
    """Move a notification from the status it was read in (else 409), in the caller's transaction; the moves
    into AUDITED are audited (`action`)."""
    transition(row=notification, to=to, allowed=ALLOWED, expected={notification.status},
               action=action if to in AUDITED else "", actor=actor, team=notification.endpoint.team,
               fields={**({"finished_at": timezone.now()} if to in FINAL else {}), **(fields or {})},
               changes=changes, conflict=f"Webhook notification #{notification.pk}")
    return notification
