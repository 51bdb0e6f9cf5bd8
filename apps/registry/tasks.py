from celery import shared_task

from . import services


@shared_task(name=services.PUBLISH_TOPIC, acks_late=True)
def publish_promotion_task(*, request_id: int, dedup_key: str = ""):
    """Outbox topic of an approval: a wake-up hint for the runner (kind registry.publish). A lost or repeated
    message changes nothing: the approved request is what is due, and the runner's claim lets one worker do it."""
    from apps.core import runner

    return runner.tick(services.PUBLISH_KIND, ids=[request_id])


@shared_task(name=services.SYNC_TOPIC, acks_late=True)
def sync_task(*, run_id: int, dedup_key: str = ""):
    """Outbox topic of "Sync now": a wake-up hint for the runner (kind registry.sync), like the publish topic."""
    from apps.core import runner

    return runner.tick(services.SYNC_KIND, ids=[run_id])


@shared_task(name="registry.sync_scheduled", acks_late=True)
def sync_scheduled_task():
    """Beat job: queue the watermark pass (models whose MLflow timestamp moved), hourly a complete pass, for the
    runner; nothing new while a pass is pending."""
    run = services.sync_run_scheduled()
    return {"run": run.pk, "status": run.status}


@shared_task(name="registry.expire_requests", acks_late=True)
def expire_requests_task():
    return services.promotions_expire()
