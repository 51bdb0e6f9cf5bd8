"""The registry's work for the runner (apps/core/runner.py): publishing approved promotions, on the control queue."""
from apps.core import runner

from .choices import PromotionStatus
from .models import PromotionRequest
from .services.promotions import PUBLISH_KIND, promotion_publish_attempt, promotion_publish_gave_up

runner.register(runner.WorkKind(
    name=PUBLISH_KIND, model=PromotionRequest, due=lambda: PromotionRequest.objects.filter(status=PromotionStatus.APPROVED),
    handler=promotion_publish_attempt, on_exhausted=promotion_publish_gave_up, queue=runner.CONTROL,
    max_attempts=10, lease_seconds=120))
