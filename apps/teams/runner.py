"""The teams app's work for the runner (apps/core/runner.py): webhook notifications, on the control queue."""
from django.conf import settings

from apps.core import runner

from .choices import NotificationStatus
from .models import WebhookNotification
from .notifications import MAX_ATTEMPTS, NOTIFY_KIND, notification_deliver, notification_gave_up

runner.register(runner.WorkKind(
    name=NOTIFY_KIND, model=WebhookNotification,
    due=lambda: WebhookNotification.objects.filter(status=NotificationStatus.PENDING),
    handler=notification_deliver, on_exhausted=notification_gave_up, queue=runner.CONTROL,
    max_attempts=MAX_ATTEMPTS, lease_seconds=settings.TEAMS_WEBHOOK_LEASE_SECONDS))
