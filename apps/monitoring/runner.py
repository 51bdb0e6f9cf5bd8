"""The monitoring app's work for the runner (apps/core/runner.py): monitor runs, on the bulk queue."""
from django.conf import settings

from apps.core import runner

from .choices import RunStatus
from .models import MonitorRun
from .services.runs import RUN_KIND, run_attempt, run_needs_attention

runner.register(runner.WorkKind(
    name=RUN_KIND, model=MonitorRun,
    # A running run is due only once its lease expired (its worker died): the runner adds the lease condition.
    due=lambda: MonitorRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]),
    handler=run_attempt, on_exhausted=run_needs_attention, queue=runner.BULK,
    max_attempts=settings.MONITORING_RUN_MAX_ATTEMPTS, lease_seconds=settings.MONITORING_RUN_LEASE_SECONDS))
