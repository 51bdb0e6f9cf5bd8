import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.context import current_request_id

from .choices import OutboxStatus
from .models import OutboxMessage
from .transitions import message_transition

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "cp_request_id"


def outbox_enqueue(*, topic: str, payload: dict, dedup_key: str, team=None) -> OutboxMessage:
    """Write a message in the caller's transaction; it is published only if that transaction commits.

    The dedup key is unique: enqueueing the same key twice keeps the first message (the caller's
    intent was already recorded), which makes retried requests safe.
    """
    message, created = OutboxMessage.objects.get_or_create(
        dedup_key=dedup_key,
        defaults={
            "topic": topic,
            "payload": payload,
            "team": team,
            "request_id": current_request_id(),
            "next_attempt_at": timezone.now(),
        },
    )
    if created:
        transaction.on_commit(lambda: outbox_publish_due(ids=[message.pk]), robust=True)
    return message


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** attempts, 600))


def _publish(message: OutboxMessage) -> None:
    from controlplane.celery import app

    app.send_task(
        message.topic,
        kwargs={**message.payload, "dedup_key": message.dedup_key},
        task_id=str(message.pk),
        headers={REQUEST_ID_HEADER: message.request_id},
        retry=False,
    )


def outbox_publish_due(*, ids=None, limit: int = 200) -> dict:
    """Publish due pending messages. Rows are locked with SKIP LOCKED, so the on-commit kick and the
    periodic sweep never publish the same row at the same time."""
    counts = {"published": 0, "failed": 0, "dead": 0}
    now = timezone.now()
    with transaction.atomic():
        due = OutboxMessage.objects.select_for_update(skip_locked=True).filter(
            status=OutboxStatus.PENDING, next_attempt_at__lte=now
        )
        if ids is not None:
            due = due.filter(pk__in=ids)
        for message in due.order_by("created_at")[:limit]:
            message.attempts += 1
            try:
                _publish(message)
            except Exception as exc:  # broker down or refusing: keep the row, try again later
                message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                if message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
                    message_transition(message, to=OutboxStatus.DEAD,
                                       fields={"attempts": message.attempts, "last_error": message.last_error})
                    counts["dead"] += 1
                    logger.error("Outbox message dead-lettered", extra={"dedup_key": message.dedup_key})
                else:
                    message.next_attempt_at = timezone.now() + _backoff(message.attempts)
                    message.save(update_fields=["attempts", "last_error", "next_attempt_at"])
                    counts["failed"] += 1
                    logger.warning("Outbox publish failed; will retry", extra={"dedup_key": message.dedup_key,
                                                                             "error": message.last_error})
            else:
                message_transition(message, to=OutboxStatus.PUBLISHED, fields={
                    "attempts": message.attempts, "published_at": timezone.now(), "last_error": ""})
                counts["published"] += 1
    return counts


@transaction.atomic
def outbox_requeue(*, actor, message_id) -> OutboxMessage:
    """Give a dead-lettered message a fresh set of attempts (platform admins, from the UI or API)."""
    from apps.core.errors import Conflict, NotFound
    from apps.teams.selectors import require_platform_admin

    require_platform_admin(user=actor)
    try:
        message = OutboxMessage.objects.select_for_update().get(pk=message_id)
    except (OutboxMessage.DoesNotExist, ValueError):
        raise NotFound(f"Outbox message {message_id} not found.")
    if message.status != OutboxStatus.DEAD:
        raise Conflict(f"Only dead-lettered messages can be requeued; this one is {message.status}.")
    message_transition(message, to=OutboxStatus.PENDING, actor=actor, action="outbox.requeue",
                       fields={"attempts": 0, "next_attempt_at": timezone.now()})
    transaction.on_commit(lambda: outbox_publish_due(ids=[message.pk]), robust=True)
    return message
