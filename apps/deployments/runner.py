"""The deployments app's work for the runner (apps/core/runner.py): job dispatch, on the control queue.

Rollout drives keep their own lease (rollout.py): a drive carrying new desired state takes over a running one,
which the runner's claim (only a free or expired lease) would not allow."""
from apps.core import runner

from .choices import JobStatus
from .jobs import JOB_KIND, job_dispatch_gave_up, job_submit_attempt
from .models import Job

runner.register(runner.WorkKind(
    name=JOB_KIND, model=Job, due=lambda: Job.objects.filter(status=JobStatus.PENDING),
    handler=job_submit_attempt, on_exhausted=job_dispatch_gave_up, queue=runner.CONTROL,
    max_attempts=10, lease_seconds=120))
