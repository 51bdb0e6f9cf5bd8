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


def job_submit(*, job_id: int) -> str:
    job = Job.objects.select_related("cluster", "team").get(pk=job_id)
    if job.status != JobStatus.PENDING:
        return f"job is {job.status}"
    driver = driver_for(job.cluster)
    try:
        manifest = driver.job_apply(job=job)
    except ApplyFailed as exc:
        _finish(job, JobStatus.FAILED, str(exc))
        return "failed"
    except DriverUnavailable as exc:
        Job.objects.filter(pk=job.pk).update(message=f"Retrying: {exc}"[:2000])
        return "retry later"  # the reconcile beat resubmits pending jobs
    logs = driver.job_logs_url(job=job)
    with transaction.atomic():
        if job_transition(job=job, to=JobStatus.RUNNING, fields={"manifest": manifest, "logs_url": logs,
                                                                   "started_at": timezone.now(), "message": ""}):
            capacity.job_running(job=job, manifest=manifest)  # its reservation becomes usage
    return "running"


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
