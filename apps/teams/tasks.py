import requests

from apps.outbox.tasks import idempotent_task

from .models import WebhookDelivery, WebhookEndpoint

WEBHOOK_TIMEOUT_SECONDS = 10


class WebhookRejected(Exception):
    pass


@idempotent_task("teams.deliver_webhook")
def deliver_webhook_task(*, endpoint_id: int, event: str, body: dict):
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True).first()
    if endpoint is None:
        return "endpoint gone"
    response = requests.post(endpoint.url, json=body, timeout=WEBHOOK_TIMEOUT_SECONDS)
    if response.status_code >= 500 or response.status_code == 429:
        # Raising rolls back the receipt, so Celery's retry with backoff delivers it again.
        raise WebhookRejected(f"{endpoint.url} answered {response.status_code}")
    # A crash between the POST and this commit redelivers once more: receivers see at-least-once.
    WebhookDelivery.objects.create(endpoint=endpoint, event=event, status_code=response.status_code)
    return response.status_code
