"""Webhook secrets never leave: the URL is encrypted at rest and masked in API responses, audit rows and the
UI; deliveries are signed with a secret shown once (and rotatable); every attempt is logged."""
import hashlib
import hmac
import io
import logging
import time

import pytest
from django.db import connection
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.teams.models import WebhookNotification
from apps.teams.tasks import deliver_webhook_task

pytestmark = pytest.mark.django_db

SECRET_PATH = "/services/T0001/B0002/very-secret-slack-token"


def create_webhook(client, team, url):
    response = client.post("/api/v1/webhooks/", {"team": team.slug, "name": "slack-ml", "url": url}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def deliver(endpoint_id, key="change-1"):
    """Run the delivery task here (what a worker does with the outbox's wake-up hint)."""
    return deliver_webhook_task.apply(kwargs={"endpoint_id": endpoint_id, "event": "registry.approve",
                                              "body": {"text": "approved"}, "dedup_key": key}, throw=False)


def verify(request, secret, tolerance=300):
    """What a receiver does with the header: recompute the HMAC over `t.body` and check the clock."""
    fields = dict(part.split("=", 1) for part in request["headers"]["X-ControlPlane-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < tolerance


def test_url_is_encrypted_at_rest_and_masked_in_api_audit_and_ui(client, client_for, team, team_admin):
    api = client_for(team_admin)
    url = f"http://127.0.0.1:9{SECRET_PATH}"
    created = create_webhook(api, team, url)
    assert created["url"] == "http://127.0.0.1:9/…/****"
    assert created["secret"].startswith("whsec_")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM teams_webhookendpoint WHERE id = %s", [created["id"]])
        raw_row = b"|".join(bytes(v) if isinstance(v, memoryview) else str(v).encode() for v in cursor.fetchone())
    assert SECRET_PATH.encode() not in raw_row and created["secret"].encode() not in raw_row

    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in ("", created["secret"])
    pages = [api.get("/api/v1/webhooks/").content, api.get(f"/api/v1/webhooks/{created['id']}/").content]
    client.force_login(team_admin)
    pages.append(client.get(reverse("teams:settings")).content)
    for page in pages:
        assert b"http://127.0.0.1:9/\xe2\x80\xa6/****" in page  # "…" in UTF-8
        assert SECRET_PATH.encode() not in page and created["secret"].encode() not in page
        assert rotated.json()["secret"].encode() not in page
    assert api.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 204

    events = AuditEvent.objects.filter(object_type="teams.webhookendpoint").order_by("id")
    assert [e.action for e in events] == ["webhook.create", "webhook.rotate_secret", "webhook.delete"]
    for event in events:
        assert SECRET_PATH not in str(event.changes) and "whsec_" not in str(event.changes)
    assert events[0].changes["url"] == [None, "http://127.0.0.1:9/…/****"]


def test_receiver_verifies_the_signature_with_the_secret_shown_once(client_for, team, team_admin, http_receiver):
    api = client_for(team_admin)
    created = create_webhook(api, team, http_receiver.url)
    assert deliver(created["id"], key="c-1").get() == {"status": "done", "dedup_key": "c-1", "result": "delivered"}
    first = http_receiver.requests[0]
    assert first["json"] == {"text": "approved"} and first["headers"]["X-ControlPlane-Event"] == "registry.approve"
    assert verify(first, created["secret"])
    assert not verify(first, "whsec_guessed")

    new_secret = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/").json()["secret"]
    deliver(created["id"], key="c-2").get()
    assert verify(http_receiver.requests[1], new_secret) and not verify(http_receiver.requests[1], created["secret"])


def test_every_attempt_is_logged_with_outcome_status_and_latency(client, client_for, team, team_admin, http_receiver,
                                                                 caplog):
    caplog.set_level(logging.DEBUG)
    api = client_for(team_admin)
    created = create_webhook(api, team, http_receiver.url.replace("/hook", SECRET_PATH))
    http_receiver.statuses = [503]
    assert deliver(created["id"]).get()["result"] == "pending"  # the runner retries after a backoff
    WebhookNotification.objects.filter(delivery_key="change-1").update(next_attempt_at=None)  # the backoff passed
    assert deliver(created["id"]).get()["result"] == "delivered"
    assert http_receiver.requests[-1]["path"] == SECRET_PATH
    assert "The receiver answered 503." in caplog.text and SECRET_PATH not in caplog.text  # the retry's log line

    response = api.get(f"/api/v1/webhooks/{created['id']}/deliveries/")
    assert response.status_code == 200 and SECRET_PATH not in response.content.decode()
    log = [{k: row[k] for k in ("attempt", "outcome", "status_code", "error")} for row in response.json()["results"]]
    assert log == [
        {"attempt": 2, "outcome": "delivered", "status_code": 200, "error": ""},
        {"attempt": 1, "outcome": "failed", "status_code": 503, "error": "The receiver answered 503."},
    ]
    assert all(row["latency_ms"] is not None and row["delivery_key"] == "change-1"
               for row in response.json()["results"])

    client.force_login(team_admin)
    table = client.get(reverse("teams:settings")).content.decode()
    assert "The receiver answered 503." in table and "Failed, retried" in table and "Delivered" in table


def test_migration_encrypts_urls_stored_in_plaintext():
    """Migrates inside the test's transaction (PostgreSQL DDL is transactional), so the rollback undoes it."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("teams", "0003_webhook_secrets_and_delivery_log")], [("teams", "0004_webhook_encrypt_existing_urls")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    team = old_apps.get_model("teams", "Team").objects.create(slug="legacy", name="Legacy")
    old_apps.get_model("teams", "WebhookEndpoint").objects.create(team=team, name="slack", events=[],
                                                                  url=f"https://hooks.slack.com{SECRET_PATH}")
    with connection.cursor() as cursor:  # check the foreign keys now, not while 0004 alters the table
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from apps.teams.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.get(name="slack")
    assert SECRET_PATH.encode() not in bytes(endpoint.url_encrypted)
    assert endpoint.url == f"https://hooks.slack.com{SECRET_PATH}" and endpoint.url_masked == "https://hooks.slack.com/…/****"
    assert endpoint.signing_secret  # each endpoint got its own secret (admins rotate to read one)


def test_fernet_rotate_re_encrypts_webhooks_with_the_new_key(settings, team):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from tests.factories import WebhookEndpointFactory

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONTROLPLANE_FERNET_KEYS = [old]
    endpoint = WebhookEndpointFactory(team=team, url=f"https://hooks.slack.com{SECRET_PATH}")
    settings.CONTROLPLANE_FERNET_KEYS = [new, old]
    out = io.StringIO()
    call_command("fernet_rotate", stdout=out)
    assert "1 webhook(s)" in out.getvalue()
    settings.CONTROLPLANE_FERNET_KEYS = [new]
    endpoint.refresh_from_db()
    assert endpoint.url == f"https://hooks.slack.com{SECRET_PATH}" and endpoint.signing_secret == "whsec_factory"
