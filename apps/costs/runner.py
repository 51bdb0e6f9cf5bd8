"""The costs app's work for the runner (apps/core/runner.py): the cost rollup, on the bulk queue."""
from django.db.models import Q

from apps.core import runner

from .choices import RollupStatus
from .models import RollupRun
from .rollup import ROLLUP_KIND, rollup_attempt, rollup_gave_up

# A running rollup is due only once its lease expired (the runner adds that); one run in process
# (rollup_incremental) has no lease owner and is never the runner's. A rebuild of a long window after an
# outage takes a while and reports no progress: a generous lease.
runner.register(runner.WorkKind(
    name=ROLLUP_KIND, model=RollupRun,
    due=lambda: RollupRun.objects.filter(Q(status=RollupStatus.QUEUED)
                                         | (Q(status=RollupStatus.RUNNING) & ~Q(lease_owner=""))),
    handler=rollup_attempt, on_exhausted=rollup_gave_up, queue=runner.BULK, max_attempts=6, lease_seconds=600))
