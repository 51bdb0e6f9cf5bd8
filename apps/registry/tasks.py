from celery import shared_task

from . import services
from .models import SyncRun


@shared_task(name=services.PUBLISH_TOPIC, acks_late=True)
def publish_promotion_task(*, request_id: int, dedup_key: str = ""):
    """Outbox topic of an approval: a wake-up hint for the runner (kind registry.publish). A lost or repeated
    message changes nothing: the approved request is what is due, and the runner's claim lets one worker do it."""
    from apps.core import runner

    return runner.tick(services.PUBLISH_KIND, ids=[request_id])


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
