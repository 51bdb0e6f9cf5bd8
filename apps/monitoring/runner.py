"""The monitoring app's work for the runner (apps/core/runner.py): monitor runs and full reports, on the bulk queue."""
from django.conf import settings

from apps.core import runner

from .choices import RenderStatus, RunStatus
from .models import MonitorRun, ReportRender
from .services.reports import REPORT_KIND, report_render_attempt, report_render_gave_up
from .services.runs import RUN_KIND, run_attempt, run_needs_attention

runner.register(runner.WorkKind(
    name=RUN_KIND, model=MonitorRun,
    # A running run is due only once its lease expired (its worker died): the runner adds the lease condition.
    due=lambda: MonitorRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]),
    handler=run_attempt, on_exhausted=run_needs_attention, queue=runner.BULK,
    max_attempts=settings.MONITORING_RUN_MAX_ATTEMPTS, lease_seconds=settings.MONITORING_RUN_LEASE_SECONDS))
# Evidently on a full window takes up to ~100 s at the row limit and reports no progress: a generous lease.
runner.register(runner.WorkKind(
    name=REPORT_KIND, model=ReportRender, due=lambda: ReportRender.objects.filter(status=RenderStatus.QUEUED),
    handler=report_render_attempt, on_exhausted=report_render_gave_up, queue=runner.BULK,
    max_attempts=3, lease_seconds=900))
