"""The webhook notification state machine (the runner delivers notifications; apps/teams/notifications.py).

    pending ──▶ delivered | rejected | refused | skipped
       │ ▲
       ▼ │ retry (team admin, audited)
    needs_attention   (out of attempts: the receiver kept failing; the last error is kept)

Every attempt is in the delivery log (WebhookDelivery); the audit log records the moves a person must know
about — giving up and retrying — not each delivery, which would put every notification through the chain lock.
"""
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict

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
    """Compare-and-set the status (zero rows → 409), audit the moves in AUDITED; in the caller's transaction."""
    from_ = notification.status
    if to not in ALLOWED.get(from_, set()):
        raise Conflict(f"Webhook notification #{notification.pk} is {S(from_).label.lower()}; it can't become "
                       f"{S(to).label.lower()}.")
    values = {"status": to, **({"finished_at": timezone.now()} if to in FINAL else {}), **(fields or {})}
    if not WebhookNotification.objects.filter(pk=notification.pk, status=from_).update(**values):
        raise Conflict(f"Webhook notification #{notification.pk} changed meanwhile; reload and try again.")
    notification.refresh_from_db()
    if to in AUDITED:
        audit_record(actor=actor, action=action, target=notification, team=notification.endpoint.team,
                     changes={"status": [from_, to], **(changes or {})})
    return notification
