from celery import shared_task

from apps.outbox.tasks import idempotent_task

from . import services
from .models import SyncRun


@idempotent_task(services.PUBLISH_TOPIC, on_exhausted=services.promotion_publish_gave_up)
def publish_promotion_task(*, request_id: int):
    return services.promotion_publish(request_id=request_id)


@shared_task(name=services.SYNC_TOPIC, acks_late=True)
def sync_task(*, run_id: int, dedup_key: str = ""):
    # Not an idempotent_task: that would hold the whole pass in one transaction and hide its progress.
    # A redelivered message finds the run finished and stops.
    from .sync import sync_registry

    run = SyncRun.objects.filter(pk=run_id, finished_at__isnull=True).first()
    if run is None:
        return {"status": "duplicate"}
    return sync_registry(run=run).counts


@shared_task(name="registry.sync_scheduled", acks_late=True)
def sync_scheduled_task():
    """Beat job: the watermark pass (models whose MLflow timestamp moved), hourly a complete pass."""
    return services.sync_run_scheduled().counts


@shared_task(name="registry.expire_requests", acks_late=True)
def expire_requests_task():
    return services.promotions_expire()
