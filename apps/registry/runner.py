"""The registry's work for the runner (apps/core/runner.py): publishing approved promotions, on the control queue;
registry sync passes (scheduled and "Sync now"), on the bulk queue."""
from django.conf import settings
from django.db.models import Q

from apps.core import runner

from .choices import PromotionStatus, SyncStatus
from .models import PromotionRequest, SyncRun
from .services.promotions import PUBLISH_KIND, promotion_publish_attempt, promotion_publish_gave_up
from .services.sync_requests import SYNC_KIND, sync_attempt, sync_gave_up

runner.register(runner.WorkKind(
    name=PUBLISH_KIND, model=PromotionRequest, due=lambda: PromotionRequest.objects.filter(status=PromotionStatus.APPROVED),
    handler=promotion_publish_attempt, on_exhausted=promotion_publish_gave_up, queue=runner.CONTROL,
    max_attempts=10, lease_seconds=settings.REGISTRY_PUBLISH_LEASE_SECONDS))
# A running pass is due only once its lease expired (the runner adds that); one run in process (sync_run_now)
# has no lease owner and is never the runner's. The pass heartbeats with its progress, once per model.
runner.register(runner.WorkKind(
    name=SYNC_KIND, model=SyncRun,
    due=lambda: SyncRun.objects.filter(Q(status=SyncStatus.QUEUED) | (Q(status=SyncStatus.RUNNING) & ~Q(lease_owner=""))),
    handler=sync_attempt, on_exhausted=sync_gave_up, queue=runner.BULK, max_attempts=6, lease_seconds=300))
