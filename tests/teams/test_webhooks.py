"""Webhook endpoints: who may manage them, which events they receive, URL validation."""
import pytest
from django.db import transaction

from apps.outbox.models import OutboxMessage
from apps.teams.services import webhooks_notify
from tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


def test_only_endpoints_wanting_the_event_get_a_message(team):
    everything = WebhookEndpointFactory(team=team, events=[])
    registry_only = WebhookEndpointFactory(team=team, events=["registry."])
    WebhookEndpointFactory(team=team, events=["deployment.rollback"])
    WebhookEndpointFactory(team=team, events=[], active=False)
    with transaction.atomic():
        queued = webhooks_notify(team=team, event="registry.approve", text="approved", data={"id": 1}, key="r1")
    assert queued == 2
    payloads = {m.payload["endpoint_id"]: m.payload["body"] for m in OutboxMessage.objects.all()}
    assert set(payloads) == {everything.pk, registry_only.pk}
    assert payloads[everything.pk] == {"text": "approved", "event": "registry.approve", "id": 1}


def test_retried_notification_is_queued_once(team):
    WebhookEndpointFactory(team=team)
    for _ in range(2):
        with transaction.atomic():
            webhooks_notify(team=team, event="registry.approve", text="approved", data={}, key="same-change")
    assert OutboxMessage.objects.count() == 1


def test_non_http_url_is_refused(client_for, team, team_admin):
    response = client_for(team_admin).post("/api/v1/webhooks/", {"team": team.slug, "name": "x",
                                                                 "url": "ftp://example.test/x"}, format="json")
    assert response.status_code == 400
    assert "url" in response.json()["error"]["fields"]
