"""MLflow's registry webhooks reach the control plane: the harness MLflow server POSTs real, signed deliveries to
the app served by pytest-django's live server, and the change shows within 2 s. Forged, unsigned, stale and
replayed deliveries are refused and change nothing."""
import json
import time
import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.registry.choices import AliasSource
from apps.registry.models import AliasHolding, ModelVersion, RegisteredModel, SyncRun

SECRET = "webhook-test-secret-" + uuid.uuid4().hex
VISIBLE_WITHIN_S = 2.0


def wait_for(check, timeout: float):
    """Seconds until check() is truthy; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"not visible within {timeout}s")


@pytest.fixture
def mlflow_webhook(live_server, mlflow_uri, settings):
    """Our webhook registered in the harness MLflow server, pointing at the live server; removed afterwards."""
    from mlflow import MlflowClient

    from apps.registry.webhooks import WEBHOOK_NAME

    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    url = live_server.url.replace("localhost", "127.0.0.1") + reverse("api:registry-mlflow-webhook")
    call_command("mlflow_webhook_register", url=url)
    call_command("mlflow_webhook_register", url=url)  # idempotent: still one webhook
    client = MlflowClient(mlflow_uri)
    mine = [hook for hook in client.list_webhooks() if hook.name == WEBHOOK_NAME]
    assert len(mine) == 1 and mine[0].url == url
    time.sleep(1.2)  # the harness MLflow caches its webhook list for 1 s
    yield client
    client.delete_webhook(mine[0].webhook_id)
    time.sleep(1.2)  # nothing delivers to the live server after this test


def test_changes_in_mlflow_show_within_two_seconds(mlflow_webhook, register_version, unique_name, team):
    client = mlflow_webhook
    name = unique_name("hook")
    register_version(name, {"accuracy": 0.91})
    # Registering sends registered_model.created and model_version.created; no sync pass runs here.
    wait_for(lambda: ModelVersion.objects.filter(model__name=name, version=1).exists(), VISIBLE_WITHIN_S)
    version = ModelVersion.objects.get(model__name=name, version=1)
    assert version.metrics == {"accuracy": 0.91} and version.run_id and version.signature
    assert RegisteredModel.objects.get(name=name).team == team

    client.set_registered_model_alias(name, "staging", "1")
    elapsed = wait_for(lambda: AliasHolding.objects.filter(model__name=name, alias="staging",
                                                           until__isnull=True).exists(), VISIBLE_WITHIN_S)
    holding = AliasHolding.objects.get(model__name=name, alias="staging", until__isnull=True)
    assert holding.source == AliasSource.OUTSIDE and holding.version_number == 1, elapsed

    client.set_model_version_tag(name, "1", "reviewed", "yes")
    wait_for(lambda: ModelVersion.objects.get(model__name=name, version=1).tags.get("reviewed") == "yes",
             VISIBLE_WITHIN_S)

    client.delete_registered_model_alias(name, "staging")
    wait_for(lambda: AliasHolding.objects.get(pk=holding.pk).until is not None, VISIBLE_WITHIN_S)
    assert ModelVersion.objects.get(model__name=name, version=1).aliases == []
    assert not SyncRun.objects.exists(), "webhooks sync one model; no pass ran"


def _signed(payload: dict, *, secret: str = SECRET, timestamp: int | None = None, delivery_id: str | None = None):
    """Headers and body exactly as MLflow's own delivery code signs them."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps(payload)
    delivery_id = delivery_id or str(uuid.uuid4())
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return body, {"HTTP_X_MLFLOW_DELIVERY_ID": delivery_id, "HTTP_X_MLFLOW_TIMESTAMP": timestamp,
                  "HTTP_X_MLFLOW_SIGNATURE": _generate_hmac_signature(secret, delivery_id, timestamp, body)}


def test_forged_unsigned_stale_and_replayed_deliveries_are_refused(client, register_version, unique_name,
                                                                    mlflow_uri, settings, team):
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    name = unique_name("forged")
    register_version(name, {"accuracy": 0.9})  # in MLflow, not yet here (no webhook registered in this test)
    url = reverse("api:registry-mlflow-webhook")
    payload = {"entity": "model_version", "action": "created", "timestamp": "2026-12-01T00:00:00+00:00",
               "data": {"name": name, "version": "1", "source": "", "run_id": None, "tags": {},
                        "description": None}}

    def post(body, headers):
        return client.post(url, data=body, content_type="application/json", **headers)

    body, headers = _signed(payload)
    unsigned = post(body, {})
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "authentication_failed"
    forged = post(body, _signed(payload, secret="not-the-secret")[1])
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "bad_signature"
    tampered = post(body.replace(name, name + "-x"), headers)
    assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "bad_signature"
    stale = post(*_signed(payload, timestamp=int(time.time()) - settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS - 5))
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale_delivery"
    assert set(stale.json()["error"]) >= {"code", "message", "fields"}
    assert not RegisteredModel.objects.filter(name=name).exists(), "a refused delivery changed something"

    accepted = post(body, headers)
    assert accepted.status_code == 200 and accepted.json() == {"status": "synced", "model": name}
    assert ModelVersion.objects.get(model__name=name, version=1).metrics == {"accuracy": 0.9}
    replayed = post(body, headers)
    assert replayed.status_code == 403 and replayed.json()["error"]["code"] == "replayed_delivery"


def test_without_a_secret_deliveries_are_refused(client, settings, db):
    settings.MLFLOW_WEBHOOK_SECRET = ""
    body, headers = _signed({"entity": "model_version", "data": {"name": "m"}})
    response = client.post(reverse("api:registry-mlflow-webhook"), data=body, content_type="application/json",
                           **headers)
    assert response.status_code == 503 and "MLFLOW_WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_registering_without_configuration_says_what_to_set(settings, capsys):
    from django.core.management.base import CommandError

    settings.MLFLOW_WEBHOOK_URL, settings.MLFLOW_WEBHOOK_SECRET = "", ""
    with pytest.raises(CommandError, match="MLFLOW_WEBHOOK_URL"):
        call_command("mlflow_webhook_register")
    settings.MLFLOW_WEBHOOK_URL = "https://controlplane.example/api/v1/registry/mlflow-webhook/"
    with pytest.raises(CommandError, match="MLFLOW_WEBHOOK_SECRET"):
        call_command("mlflow_webhook_register")
    call_command("mlflow_webhook_register", "--if-configured")  # a start-up step: skipped, not failed
    assert "not registered" in capsys.readouterr().out
