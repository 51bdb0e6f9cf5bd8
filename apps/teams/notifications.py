"""Webhook notifications on the runner (apps/core/runner.py, kind teams.webhook, control queue).

`webhooks_notify` writes a WebhookNotification row per endpoint in the transaction of the change it reports; the
outbox message it also writes only wakes the runner. The runner posts outside any transaction, logs each attempt
in the delivery log, retries 5xx/429/timeouts with backoff, and after WEBHOOK_MAX_ATTEMPTS leaves the
notification in needs attention (dashboard, team settings) until a team admin retries it."""
import logging

from django.db import transaction

from apps.core import runner
from apps.teams.choices import Capability, DeliveryOutcome, NotificationStatus
from apps.teams.models import WebhookEndpoint, WebhookNotification

from .selectors import require_capability
from .services import webhook_delivery_record
from .transitions import notification_transition
from .webhooks import post_signed

logger = logging.getLogger(__name__)

NOTIFY_KIND = "teams.webhook"
MAX_ATTEMPTS = 10


class DeliveryFailed(Exception):
    """5xx, 429, timeout or connection error: the runner keeps the error and tries again after a backoff."""


def notification_deliver(lease: runner.Lease) -> str:
    """The runner's handler: one POST, outside any transaction; a final answer is recorded under the lease."""
    notification = WebhookNotification.objects.select_related("endpoint").get(pk=lease.pk)
    endpoint = notification.endpoint
    if not endpoint.active:
        with lease.holding() as current:
            notification_transition(current, to=NotificationStatus.SKIPPED)
        return NotificationStatus.SKIPPED
    result = post_signed(url=endpoint.url, secret=endpoint.signing_secret, event=notification.event,
                         body=notification.body)
    if result.outcome == DeliveryOutcome.FAILED:
        with lease.holding():
            webhook_delivery_record(endpoint_id=endpoint.pk, event=notification.event,
                                    delivery_key=notification.delivery_key, attempt=lease.attempt, result=result)
        logger.warning("Webhook delivery failed; the runner retries it", extra={
            "endpoint": endpoint.pk, "attempt": lease.attempt, "error": result.error})
        raise DeliveryFailed(result.error)
    # Delivered, rejected (4xx) or refused (SSRF guard, redirect): final. A crash between the POST and this
    # commit leaves the lease to expire and the POST is sent again: receivers see at-least-once.
    with lease.holding() as current:
        webhook_delivery_record(endpoint_id=endpoint.pk, event=notification.event,
                                delivery_key=notification.delivery_key, attempt=lease.attempt, result=result)
        notification_transition(current, to=result.outcome)
    return result.outcome


def notification_gave_up(notification: WebhookNotification, error: str) -> None:
    """The runner's on_exhausted: the receiver kept failing; the notification waits for a team admin's retry."""
    notification_transition(notification, to=NotificationStatus.NEEDS_ATTENTION,
                            action="webhook.notification.needs_attention",
                            changes={"attempts": [None, notification.attempts], "error": [None, error]})


@transaction.atomic
def notifications_retry(*, actor, endpoint: WebhookEndpoint) -> int:
    """Send again every notification of the endpoint that needs attention (team admins; audited each)."""
    require_capability(user=actor, team=endpoint.team, capability=Capability.ADMINISTER)
    retried = []
    for notification in (WebhookNotification.objects.select_for_update()
                         .filter(endpoint=endpoint, status=NotificationStatus.NEEDS_ATTENTION)):
        notification_transition(notification, to=NotificationStatus.PENDING, actor=actor,
                                action="webhook.notification.retry",
                                changes={"error": [notification.last_error, None]})
        runner.retry_now(row=notification, fields={"last_error": ""})
        retried.append(notification.pk)
    if retried:
        runner.wake(NOTIFY_KIND, ids=retried)
    return len(retried)
