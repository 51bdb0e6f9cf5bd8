"""A message delivered twice has one effect; a webhook goes out through the outbox and a real worker."""
import time

import pytest
from django.db import transaction

from apps.outbox.models import OutboxMessage
from apps.outbox.services import _publish
from apps.teams.models import WebhookDelivery, WebhookNotification
from apps.teams.services import webhooks_notify
from apps.teams.tasks import deliver_webhook_task
from tests.factories import TeamFactory, WebhookEndpointFactory


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.django_db
def test_task_run_twice_with_the_same_key_posts_once(http_receiver):
    endpoint = WebhookEndpointFactory(url=http_receiver.url)
    kwargs = {"endpoint_id": endpoint.pk, "event": "demo.event", "body": {"text": "hi"}, "dedup_key": "k-1"}
    first = deliver_webhook_task.apply(kwargs=kwargs).get()
    second = deliver_webhook_task.apply(kwargs=kwargs).get()
    assert first["status"] == "done" and second["status"] == "duplicate"
    assert len(http_receiver.requests) == 1
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1


@pytest.mark.django_db
def test_a_failed_delivery_stays_due_so_the_retry_runs(http_receiver):
    # Deliveries are the runner's (kind teams.webhook): a failure keeps the notification pending with its error
    # and a backoff; before the runner, the task raised and Celery retried it.
    endpoint = WebhookEndpointFactory(url=http_receiver.url)
    http_receiver.status = 503
    kwargs = {"endpoint_id": endpoint.pk, "event": "demo.event", "body": {"text": "hi"}, "dedup_key": "k-2"}
    assert deliver_webhook_task.apply(kwargs=kwargs).get()["result"] == "pending"
    notification = WebhookNotification.objects.get(delivery_key="k-2")
    assert notification.attempts == 1 and "503" in notification.last_error and notification.next_attempt_at
    http_receiver.status = 200
    WebhookNotification.objects.filter(pk=notification.pk).update(next_attempt_at=None)  # the backoff passed
    assert deliver_webhook_task.apply(kwargs=kwargs).get() == {"status": "done", "dedup_key": "k-2",
                                                                "result": "delivered"}
    assert WebhookDelivery.objects.filter(endpoint=endpoint, outcome="delivered").count() == 1
    assert list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("attempt")
                .values_list("attempt", "outcome")) == [(1, "failed"), (2, "delivered")]


def test_redelivered_message_has_one_effect_through_a_real_worker(celery_worker_process, http_receiver, private_broker):
    team = TeamFactory(slug="hooks")
    WebhookEndpointFactory(team=team, url=http_receiver.url)
    with transaction.atomic():
        webhooks_notify(team=team, event="demo.first", text="first", data={}, key="1")
    wait_for(lambda: len(http_receiver.requests) == 1)
    assert http_receiver.requests[0]["json"]["text"] == "first"

    # The broker hands the same message out again (a worker died before acking, a sweep raced a kick).
    _publish(OutboxMessage.objects.get(dedup_key__endswith=":demo.first:1"))
    # A later message proves the worker got past the duplicate (solo pool: one at a time, in order).
    with transaction.atomic():
        webhooks_notify(team=team, event="demo.second", text="second", data={}, key="2")
    wait_for(lambda: len(http_receiver.requests) >= 2)
    time.sleep(0.5)
    assert [r["json"]["text"] for r in http_receiver.requests] == ["first", "second"]
    assert WebhookDelivery.objects.filter(endpoint__team=team).count() == 2
