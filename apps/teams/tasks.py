from celery import shared_task

from apps.core import runner

from .choices import NotificationStatus
from .models import WebhookEndpoint, WebhookNotification
from .notifications import NOTIFY_KIND


@shared_task(name="teams.deliver_webhook", acks_late=True)
def deliver_webhook_task(*, dedup_key: str, endpoint_id: int | None = None, event: str = "", body: dict | None = None):
    """Outbox topic of a notification: a wake-up hint for the runner (kind teams.webhook). A repeated message finds
    the notification final and does nothing; a lost one is delivered by the runner's sweep.

    A message queued before notifications were rows carries its notification in its payload: it is written here."""
    notification = WebhookNotification.objects.filter(delivery_key=dedup_key).first()
    if notification is None:
        if not WebhookEndpoint.objects.filter(pk=endpoint_id).exists():
            return {"status": "done", "dedup_key": dedup_key, "result": "endpoint gone"}
        notification, _ = WebhookNotification.objects.get_or_create(
            delivery_key=dedup_key, defaults={"endpoint_id": endpoint_id, "event": event, "body": body or {}})
    if notification.status != NotificationStatus.PENDING:
        return {"status": "duplicate", "dedup_key": dedup_key, "result": notification.status}
    runner.tick(NOTIFY_KIND, ids=[notification.pk])
    notification.refresh_from_db()
    return {"status": "done", "dedup_key": dedup_key, "result": notification.status}
