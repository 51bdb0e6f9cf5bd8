import logging

from django.db import transaction

from apps.outbox.tasks import idempotent_task

from .choices import DeliveryOutcome
from .models import WebhookEndpoint
from .services import webhook_delivery_record
from .webhooks import AttemptResult, post_signed

logger = logging.getLogger(__name__)


class WebhookAttemptFailed(Exception):
    """A retryable failure (5xx, 429, timeout, connection): raising rolls back the receipt, so Celery's retry
    with backoff delivers it again; the handlers below log the attempt after that rollback."""

    def __init__(self, result: AttemptResult):
        super().__init__(result)  # the args must rebuild it: Celery pickles the exception into the result
        self.result = result

    def __str__(self) -> str:
        return self.result.error


def _log_failed_attempt(task, exc, task_id, args, kwargs, einfo):
    result = exc.result if isinstance(exc, WebhookAttemptFailed) else AttemptResult(
        DeliveryOutcome.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
    try:
        with transaction.atomic():
            webhook_delivery_record(endpoint_id=kwargs.get("endpoint_id"), event=kwargs.get("event", ""),
                                    delivery_key=kwargs.get("dedup_key", ""), attempt=task.request.retries + 1,
                                    result=result)
    except Exception:  # the delivery log must never turn a retry into a crash loop
        logger.exception("Could not log a failed webhook attempt", extra={"dedup_key": kwargs.get("dedup_key")})


@idempotent_task("teams.deliver_webhook", on_retry=_log_failed_attempt, on_failure=_log_failed_attempt)
def deliver_webhook_task(*, endpoint_id: int, event: str, body: dict):
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True).first()
    if endpoint is None:
        return "endpoint gone"
    result = post_signed(url=endpoint.url, secret=endpoint.signing_secret, event=event, body=body)
    if result.outcome == DeliveryOutcome.FAILED:
        raise WebhookAttemptFailed(result)
    # Delivered, rejected (4xx) or refused (SSRF guard, redirect): final, logged with the receipt. A crash
    # between the POST and this commit redelivers once more: receivers see at-least-once.
    request = deliver_webhook_task.request
    webhook_delivery_record(endpoint_id=endpoint.pk, event=event, delivery_key=request.kwargs.get("dedup_key", ""),
                            attempt=request.retries + 1, result=result)
    return result.outcome
