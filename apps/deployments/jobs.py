"""Training / batch Jobs: submit through the driver, then track to completion (reconcile beat)."""
import logging

from django.db import transaction
from django.utils import timezone

from workers.drivers import ApplyFailed, DriverUnavailable

from . import capacity
from .drivers import driver_for
from .choices import JobStatus
from .models import Job
from .transitions import job_transition

logger = logging.getLogger(__name__)


JOB_KIND = "deployments.job_dispatch"  # the runner's work kind (apps/deployments/runner.py)


def job_submit(*, job_id: int) -> str:
    """Claim the job's dispatch and do it now, through the runner (what a worker does for a hint, and what the
    reconcile beat does for a pending job). Returns the job's status after it, or why nothing was done."""
    from apps.core import runner

    lease = runner.claim(runner.kind_get(JOB_KIND), ids=[job_id])
    if lease is None:
        status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        return f"job is {status}" if status != JobStatus.PENDING else "retry later"
    runner.run_lease(lease)
    status = Job.objects.values_list("status", flat=True).get(pk=job_id)
    return "retry later" if status == JobStatus.PENDING else status


def job_submit_attempt(lease) -> str:
    """The runner's handler: apply the job on its cluster outside any transaction (server-side apply under a
    deterministic name: an attempt repeated after a lost worker applies the same object), then record it under
    the lease. An unreachable cluster raises: the runner keeps the error and retries after a backoff."""
    job = Job.objects.select_related("cluster", "team").get(pk=lease.pk)
    driver = driver_for(job.cluster)
    try:
        manifest = driver.job_apply(job=job)
    except ApplyFailed as exc:  # the cluster refused the manifest: retrying the same one can't help
        with lease.holding():
            _finish(job, JobStatus.FAILED, str(exc))
        return JobStatus.FAILED
    except DriverUnavailable as exc:
        with lease.holding():
            Job.objects.filter(pk=job.pk).update(message=f"Retrying: {exc}"[:2000])
        raise
    logs = driver.job_logs_url(job=job)
    with lease.holding():
        if job_transition(job=job, to=JobStatus.RUNNING, fields={"manifest": manifest, "logs_url": logs,
                                                                   "started_at": timezone.now(), "message": ""}):
            capacity.job_running(job=job, manifest=manifest)  # its reservation becomes usage
    return JobStatus.RUNNING


def job_dispatch_gave_up(job: Job, error: str) -> None:
    """The runner's on_exhausted: the cluster never took the job. It needs attention (its GPUs are released)
    until someone retries it."""
    if job_transition(job=job, to=JobStatus.NEEDS_ATTENTION, action="job.needs_attention",
                      fields={"message": f"Not submitted after {job.attempts} attempt(s): {error}"[:2000]},
                      changes={"attempts": [None, job.attempts], "error": [None, error[:500]]}):
        job.refresh_from_db()
        capacity.job_finished(job=job)


def job_poll(*, job: Job) -> str:
    if job.status == JobStatus.PENDING:
        return job_submit(job_id=job.pk)
    try:
        status, message = driver_for(job.cluster).job_status(job=job)
    except (DriverUnavailable, ApplyFailed) as exc:
        return f"unavailable: {exc}"
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        _finish(job, status, message)
    return status


def _finish(job: Job, status: str, message: str) -> None:
    with transaction.atomic():
        if job_transition(job=job, to=status, fields={"message": message[:2000], "finished_at": timezone.now()},
                          changes={"message": [None, message[:300]]}):
            capacity.job_finished(job=job)


def job_poll_all(*, statuses) -> int:
    count = 0
    for job in Job.objects.filter(status__in=statuses).select_related("cluster", "team"):
        job_poll(job=job)
        count += 1
    return count
