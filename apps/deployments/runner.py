"""The deployments app's work for the runner (apps/core/runner.py), both on the control queue: rollout drives
and job dispatch.

A deployment is due while its desired generation is ahead of the one its last drive converged on (every
service that changes desired state bumps it; a teardown too), unless it needs attention."""
from django.conf import settings
from django.db.models import F

from apps.core import runner

from .choices import DeploymentStatus, JobStatus
from .jobs import JOB_KIND, job_dispatch_gave_up, job_submit_attempt
from .models import Deployment, Job
from .rollout import ROLLOUT_KIND, rollout_attempt, rollout_gave_up

runner.register(runner.WorkKind(
    name=ROLLOUT_KIND, model=Deployment,
    due=lambda: Deployment.objects.filter(desired_generation__gt=F("observed_generation"))
    .exclude(status=DeploymentStatus.NEEDS_ATTENTION),
    handler=rollout_attempt, on_exhausted=rollout_gave_up, queue=runner.CONTROL,
    max_attempts=settings.DEPLOYMENTS_DRIVE_MAX_ATTEMPTS, lease_seconds=settings.DEPLOYMENTS_DRIVE_LEASE_SECONDS))

runner.register(runner.WorkKind(
    name=JOB_KIND, model=Job, due=lambda: Job.objects.filter(status=JobStatus.PENDING),
    handler=job_submit_attempt, on_exhausted=job_dispatch_gave_up, queue=runner.CONTROL,
    max_attempts=10, lease_seconds=settings.DEPLOYMENTS_JOB_LEASE_SECONDS))
