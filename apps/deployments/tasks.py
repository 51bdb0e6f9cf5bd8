"""Celery entry points: job dispatch hints, and the beat's reconcile and adoption. Rollout drives are the runner's
(kind deployments.rollout, ticked by runner.tick on the control queue)."""
import logging

from celery import shared_task
from celery.signals import worker_ready

from .choices import ClusterKind, DeploymentStatus, JobStatus

logger = logging.getLogger(__name__)


@shared_task(name="deployments.dispatch_job", acks_late=True)
def dispatch_job_task(*, job_id: int, dedup_key: str = ""):
    """Outbox topic of a dispatch: a wake-up hint for the runner (kind deployments.job_dispatch). A lost
    or repeated message changes nothing: the pending job is what is due, and the runner's claim lets one do it."""
    from apps.core import runner

    from .jobs import JOB_KIND

    return runner.tick(JOB_KIND, ids=[job_id])


@shared_task(name="deployments.reconcile", acks_late=True)
def reconcile_task():
    """Beat: compare every deployment with its cluster, track jobs, adopt local processes. (Stuck rollouts need
    no re-drive here: a drive whose worker died leaves an expired lease, which the runner reclaims.)"""
    from .drivers import local_adopt
    from .jobs import job_poll_all
    from .models import Deployment
    from .rollout import reconcile_one, route

    result = {"adopted": local_adopt(), "reconciled": 0}
    for deployment in Deployment.objects.exclude(status__in=[DeploymentStatus.PENDING, DeploymentStatus.TORN_DOWN,
                                                             DeploymentStatus.NEEDS_ATTENTION]):
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
