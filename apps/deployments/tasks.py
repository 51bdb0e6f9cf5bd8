"""Celery entry points. The outbox feeds `deployments.drive`; the beat runs reconcile and adoption."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction

from apps.outbox.tasks import idempotent_task

from .choices import ClusterKind, DeploymentStatus, JobStatus

logger = logging.getLogger(__name__)


@idempotent_task("deployments.drive")
def drive_task(*, deployment_id: int):
    """Runs the rollout engine after the receipt commits: the engine's waits (model server start, cluster
    watch) must not hold a transaction, and its progress must be visible to the UI while it runs. If the
    worker dies after the receipt, the reconcile beat finds the deployment stuck and drives it again."""
    from .rollout import rollout_drive

    def run():
        try:
            logger.info("Rollout drive", extra={"deployment": deployment_id,
                                                "result": rollout_drive(deployment_id=deployment_id)})
        except Exception:
            # Transient cluster errors: the reconcile beat retries stuck rollouts with its own cadence.
            logger.exception("Rollout drive failed; reconcile will retry", extra={"deployment": deployment_id})

    transaction.on_commit(run)
    return {"deployment_id": deployment_id}


@idempotent_task("deployments.dispatch_job")
def dispatch_job_task(*, job_id: int):
    from .jobs import job_submit

    transaction.on_commit(lambda: job_submit(job_id=job_id))
    return {"job_id": job_id}


@shared_task(name="deployments.reconcile", acks_late=True)
def reconcile_task():
    """Beat: re-drive stuck rollouts, compare every deployment with its cluster, track jobs, adopt local processes."""
    from workers.drivers.local import local_adopt

    from .jobs import job_poll_all
    from .models import Deployment
    from .rollout import reconcile_one, rollout_drive, rollout_stuck, route

    result = {"adopted": local_adopt(), "redriven": 0, "reconciled": 0}
    for deployment in rollout_stuck(older_than_seconds=60):
        try:
            rollout_drive(deployment_id=deployment.pk)
            result["redriven"] += 1
        except Exception:
            logger.exception("Re-drive failed", extra={"deployment": deployment.pk})
    for deployment in Deployment.objects.exclude(status=DeploymentStatus.PENDING):
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
        from workers.drivers.local import local_adopt

        logger.info("Local processes adopted", extra=local_adopt())
    except Exception:
        logger.exception("Adopting local processes failed")
