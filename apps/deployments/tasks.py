"""Celery entry points. The outbox feeds `deployments.drive`; the beat runs reconcile and adoption."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction

from apps.outbox.tasks import idempotent_task

from .choices import ClusterKind, DeploymentStatus, JobStatus

logger = logging.getLogger(__name__)


@idempotent_task("deployments.drive")
def drive_task(*, deployment_id: int, attempt: int = 0):
    """Runs the rollout engine after the receipt commits: the engine's waits (model server start, cluster
    watch) must not hold a transaction, and its progress must be visible to the UI while it runs.

    A cluster that is down or answering 5xx/timeouts gets the drive back through the outbox with
    exponential backoff (durable: it survives this worker). If the worker dies after the receipt, the
    reconcile beat finds the deployment stuck and drives it again."""
    from workers.drivers import DriverUnavailable

    from .rollout import rollout_drive

    def run():
        try:
            logger.info("Rollout drive", extra={"deployment": deployment_id,
                                                "result": rollout_drive(deployment_id=deployment_id)})
        except DriverUnavailable as exc:
            retry_drive_later(deployment_id=deployment_id, attempt=attempt + 1, error=str(exc))
        except Exception:
            logger.exception("Rollout drive failed; reconcile will retry", extra={"deployment": deployment_id})

    transaction.on_commit(run)
    return {"deployment_id": deployment_id}


def retry_drive_later(*, deployment_id: int, attempt: int, error: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.outbox.models import OutboxMessage

    from .models import Deployment

    delay = min(2 ** attempt, 300)
    with transaction.atomic():
        deployment = Deployment.objects.filter(pk=deployment_id).first()
        if deployment is None:
            return
        Deployment.objects.filter(pk=deployment_id).update(
            updated_at=timezone.now(), status_message=f"Cluster unavailable, retrying in {delay}s (attempt {attempt}): {error}"[:2000])
        # Written directly with a future due time; the outbox sweep publishes it when due.
        OutboxMessage.objects.get_or_create(
            dedup_key=f"deployments.retry:{deployment_id}:{deployment.lock_version}:{attempt}",
            defaults={"topic": "deployments.drive", "payload": {"deployment_id": deployment_id, "attempt": attempt},
                      "team": deployment.team, "next_attempt_at": timezone.now() + timedelta(seconds=delay)})
    logger.warning("Cluster unavailable; drive retried later", extra={"deployment": deployment_id,
                                                                       "attempt": attempt, "delay_s": delay})


@shared_task(name="deployments.dispatch_job", acks_late=True)
def dispatch_job_task(*, job_id: int, dedup_key: str = ""):
    """Outbox topic of a dispatch: a wake-up hint for the runner (kind deployments.job_dispatch). A lost
    or repeated message changes nothing: the pending job is what is due, and the runner's claim lets one do it."""
    from apps.core import runner

    from .jobs import JOB_KIND

    return runner.tick(JOB_KIND, ids=[job_id])


@shared_task(name="deployments.reconcile", acks_late=True)
def reconcile_task():
    """Beat: re-drive stuck rollouts, compare every deployment with its cluster, track jobs, adopt local processes."""
    from .drivers import local_adopt
    from .jobs import job_poll_all
    from .models import Deployment
    from .rollout import reconcile_one, rollout_drive, rollout_stuck, route

    result = {"adopted": local_adopt(), "redriven": 0, "reconciled": 0}
    for deployment in rollout_stuck(older_than_seconds=60):
        try:
            if rollout_drive(deployment_id=deployment.pk, reclaim=True) != "driven elsewhere":
                result["redriven"] += 1
        except Exception:
            logger.exception("Re-drive failed", extra={"deployment": deployment.pk})
    from .rollout import TORN_DOWN_MESSAGE

    for deployment in (Deployment.objects.filter(status=DeploymentStatus.TORN_DOWN)
                       .exclude(status_message=TORN_DOWN_MESSAGE)):
        try:  # a teardown the cluster refused or could not be reached for, tried again
            rollout_drive(deployment_id=deployment.pk, reclaim=True)
        except Exception:
            logger.exception("Teardown re-drive failed", extra={"deployment": deployment.pk})
    for deployment in Deployment.objects.exclude(status__in=[DeploymentStatus.PENDING, DeploymentStatus.TORN_DOWN]):
        try:
            if deployment.cluster.kind == ClusterKind.LOCAL and deployment.traffic:
                route(deployment_id=deployment.pk)  # restarts what died, stops what left the warm window
            reconcile_one(deployment_id=deployment.pk)
            result["reconciled"] += 1
        except Exception:
            logger.exception("Reconcile failed", extra={"deployment": deployment.pk})
    result["jobs"] = job_poll_all(statuses=[JobStatus.PENDING, JobStatus.RUNNING])
    return result


@worker_ready.connect
def _adopt_on_start(**kwargs):
    try:
        from .drivers import local_adopt

        logger.info("Local processes adopted", extra=local_adopt())
    except Exception:
        logger.exception("Adopting local processes failed")
