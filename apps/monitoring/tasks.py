from celery import shared_task

from apps.core.errors import DomainError


@shared_task(name="monitoring.run_monitor", acks_late=True)
def run_monitor_task(*, run_id: int, dedup_key: str = ""):
    """Outbox topic for a queued run: a wake-up hint for the runner (kind monitoring.run). A lost or repeated
    message changes nothing: the run row says what is due, and the runner's claim lets one worker do it."""
    from apps.core import runner

    from .services import RUN_KIND

    return runner.tick(RUN_KIND, ids=[run_id])


@shared_task(name="monitoring.schedule_monitor", acks_late=True)
def schedule_monitor_task(*, monitor_id: int):
    """django-celery-beat entry (one PeriodicTask per monitor): queue the last complete window once."""
    from .models import Monitor
    from .services import monitor_run_request

    monitor = Monitor.objects.filter(pk=monitor_id, enabled=True).select_related("team").first()
    if monitor is None:
        return {"monitor_id": monitor_id, "status": "disabled or gone"}
    try:
        run = monitor_run_request(actor=None, monitor=monitor, trigger="schedule")
    except DomainError as exc:
        return {"monitor_id": monitor_id, "status": exc.message}
    return {"monitor_id": monitor_id, "run_id": run.pk}


@shared_task(name="monitoring.render_report", acks_late=True)
def render_report_task(*, run_id: int, dedup_key: str = ""):
    """Outbox topic of a full-report request: a wake-up hint for the runner (kind monitoring.report)."""
    from apps.core import runner

    from .models import ReportRender
    from .services import REPORT_KIND

    return runner.tick(REPORT_KIND, ids=list(ReportRender.objects.filter(run_id=run_id).values_list("pk", flat=True)))


@shared_task(name="monitoring.summarize_partition", acks_late=True)
def summarize_partition_task(*, run_id: int, owner: str, attempt: int, key: str, keys: list, since: str):
    """A sketch-mode run's map step (services.runs.run_fanout_step): summarize one partition; the last step
    finishes the run. A lost message leaves the run's lease to expire, and the runner reclaims the run."""
    from .services.runs import run_fanout_step

    return run_fanout_step(run_id=run_id, owner=owner, attempt=attempt, key=key, keys=keys, since=since)


@shared_task(name="monitoring.summarize_log", acks_late=True)
def summarize_log_task(*, model_version_id: int, dedup_key: str = ""):
    """Outbox topic of an ingest batch: merge the version's unsummarized log files into their days' summaries. A
    lost or repeated message changes nothing: each file's `summarized` flag says what is due (and the hourly
    compaction beat merges what a lost message left)."""
    from .services.partition_summaries import files_summarize

    return {"files_summarized": files_summarize(model_version_id=model_version_id)}


@shared_task(name="monitoring.retention", acks_late=True)
def retention_task():
    """Beat: drop log partitions past their raw retention and summaries past theirs (services.retention)."""
    from .services.retention import retention_apply

    return retention_apply()


@shared_task(name="monitoring.log_compact", acks_late=True)
def log_compact_task():
    """Beat: rewrite each closed day's many small Parquet files as one, then delete files no manifest row names
    (compaction.compact_closed_days)."""
    from django.utils import timezone

    from .compaction import compact_closed_days

    return compact_closed_days(now=timezone.now())
