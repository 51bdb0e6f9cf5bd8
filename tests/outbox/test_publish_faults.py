"""The outbox never loses or duplicates a dispatch: rollback, broker outage, redelivery."""
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.outbox.choices import OutboxStatus
from apps.outbox.models import OutboxMessage
from apps.outbox.services import outbox_enqueue, outbox_publish_due

pytestmark = pytest.mark.django_db


def queued_messages(broker) -> list[dict]:
    """Messages waiting in the broker's `control` queue, where webhook deliveries go (kombu's Redis transport
    keeps a list per queue)."""
    return [json.loads(raw) for raw in broker.client().lrange("control", 0, -1)]


def test_rolled_back_transaction_leaves_no_message(private_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                outbox_enqueue(topic="teams.deliver_webhook", payload={"endpoint_id": 1}, dedup_key="rollback-1")
                raise RuntimeError("the business change failed")
    assert callbacks == []
    assert not OutboxMessage.objects.filter(dedup_key="rollback-1").exists()
    assert queued_messages(private_broker) == []


def test_committed_message_is_published_after_commit(private_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            outbox_enqueue(topic="teams.deliver_webhook", payload={"endpoint_id": 1}, dedup_key="commit-1")
            assert queued_messages(private_broker) == []  # nothing leaves before commit
    message = OutboxMessage.objects.get(dedup_key="commit-1")
    assert message.status == OutboxStatus.PUBLISHED
    [queued] = queued_messages(private_broker)
    assert queued["headers"]["task"] == "teams.deliver_webhook"
    assert queued["headers"]["id"] == str(message.pk)


def test_message_committed_while_redis_is_down_is_published_once_redis_is_back(
    private_broker, django_capture_on_commit_callbacks
):
    private_broker.stop()
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            outbox_enqueue(topic="teams.deliver_webhook", payload={"endpoint_id": 7}, dedup_key="outage-1")
    message = OutboxMessage.objects.get(dedup_key="outage-1")
    assert message.status == OutboxStatus.PENDING
    assert message.attempts == 1
    assert "Error" in message.last_error
    assert message.next_attempt_at > timezone.now()

    # The sweep before the backoff has passed does nothing; after Redis is back and the backoff passed, it publishes.
    assert outbox_publish_due()["published"] == 0
    private_broker.start()
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outbox_publish_due() == {"published": 1, "failed": 0, "dead": 0}
    message.refresh_from_db()
    assert message.status == OutboxStatus.PUBLISHED
    assert len(queued_messages(private_broker)) == 1

    # Further sweeps don't publish it again.
    assert outbox_publish_due()["published"] == 0
    assert len(queued_messages(private_broker)) == 1


def test_message_is_dead_lettered_after_max_attempts(private_broker, settings, django_capture_on_commit_callbacks):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    private_broker.stop()
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            outbox_enqueue(topic="teams.deliver_webhook", payload={}, dedup_key="dead-1")
    OutboxMessage.objects.filter(dedup_key="dead-1").update(next_attempt_at=timezone.now())
    assert outbox_publish_due()["dead"] == 1
    assert OutboxMessage.objects.get(dedup_key="dead-1").status == OutboxStatus.DEAD


def test_same_dedup_key_is_enqueued_once(private_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            first = outbox_enqueue(topic="teams.deliver_webhook", payload={"n": 1}, dedup_key="same")
            second = outbox_enqueue(topic="teams.deliver_webhook", payload={"n": 2}, dedup_key="same")
    assert first.pk == second.pk
    assert OutboxMessage.objects.filter(dedup_key="same").count() == 1
    assert len(queued_messages(private_broker)) == 1
