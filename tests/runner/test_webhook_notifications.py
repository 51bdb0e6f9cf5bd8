"""Webhook notifications on the runner (kind teams.webhook): a receiver that keeps failing leaves the notification
in needs attention with its last error — on the team settings page, the dashboard and the API — until a team
admin retries it; the retry is audited and delivers it once."""
from django.db import transaction
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.teams.models import WebhookDelivery, WebhookNotification
from apps.teams.notifications import NOTIFY_KIND
from apps.teams.services import webhooks_notify
from tests.factories import TeamFactory, WebhookEndpointFactory, member


def test_a_failing_receiver_needs_attention_until_an_admin_retries(db, http_receiver, client_for):
    team = TeamFactory(slug="hooks")
    admin, engineer = member(team, "team_admin", "admin"), member(team, "ml_engineer", "eng")
    endpoint = WebhookEndpointFactory(team=team, url=http_receiver.url)
    with transaction.atomic():
        webhooks_notify(team=team, event="demo.event", text="hello", data={}, key="1")
    notification = WebhookNotification.objects.get()
    assert (notification.status, notification.endpoint, notification.body["text"]) == ("pending", endpoint, "hello")

    http_receiver.status = 503
    assert runner.tick(NOTIFY_KIND) == {"retry": 1}
    WebhookNotification.objects.filter(pk=notification.pk).update(attempts=9, next_attempt_at=timezone.now())
    assert runner.tick(NOTIFY_KIND) == {"needs_attention": 1}  # the tenth attempt fails too
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("needs_attention", 10)
    assert notification.last_error == "DeliveryFailed: The receiver answered 503."
    event = AuditEvent.objects.get(action="webhook.notification.needs_attention")
    assert event.changes["status"] == ["pending", "needs_attention"] and event.team == team
    assert list(WebhookDelivery.objects.order_by("pk").values_list("attempt", "outcome")) == [(1, "failed"),
                                                                                            (10, "failed")]

    page = Client()
    page.force_login(admin)
    settings_page = page.get("/settings/").content.decode()
    assert 'id="webhook-attention"' in settings_page and "The receiver answered 503." in settings_page
    assert "Webhook notification" in page.get("/").content.decode()

    denied = client_for(engineer).post(f"/api/v1/webhooks/{endpoint.pk}/retry-notifications/")
    assert denied.status_code in (403, 404)
    http_receiver.status = 200
    response = client_for(admin).post(f"/api/v1/webhooks/{endpoint.pk}/retry-notifications/")
    assert response.status_code == 200 and response.json() == {"retried": 1}
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("pending", 0, "")
    retry = AuditEvent.objects.get(action="webhook.notification.retry")
    assert retry.actor == admin and retry.changes["status"] == ["needs_attention", "pending"]

    assert runner.tick(NOTIFY_KIND) == {"done": 1}
    notification.refresh_from_db()
    assert notification.status == "delivered" and notification.finished_at is not None
    assert len(http_receiver.requests) == 3 and http_receiver.requests[-1]["json"]["text"] == "hello"
    assert client_for(admin).post(f"/api/v1/webhooks/{endpoint.pk}/retry-notifications/").json() == {"retried": 0}


def test_a_notification_is_written_once_per_change(db):
    team = TeamFactory(slug="hooks")
    WebhookEndpointFactory(team=team)
    for _ in range(2):  # a retried request reports the same change twice
        with transaction.atomic():
            webhooks_notify(team=team, event="demo.event", text="hello", data={}, key="same-change")
    assert WebhookNotification.objects.count() == 1
