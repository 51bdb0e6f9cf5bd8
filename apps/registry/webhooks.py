"""MLflow's registry webhooks, received: each signed delivery names a model, and that one model is synced.

MLflow signs a delivery as Standard Webhooks do: `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`<delivery id>.<timestamp>.<body>` with the secret given when the webhook was created, plus the
`X-MLflow-Delivery-Id` and `X-MLflow-Timestamp` (unix seconds) headers. A delivery is refused when it is
unsigned (401), signed with another secret or outside the replay window, or a delivery id already applied
(403). A lost or refused delivery is not lost work: the scheduled watermark pass finds the change.
"""
import base64
import hashlib
import hmac
import json
import time

from django.conf import settings
from django.core.cache import cache

from apps.core.errors import DomainError, Forbidden, InvalidInput, Unauthenticated

WEBHOOK_NAME = "controlplane-registry-sync"
# Everything MLflow announces about registered models and their versions (prompts are not ours to sync).
EVENTS = ["registered_model.created", "model_version.created", "model_version_tag.set",
          "model_version_tag.deleted", "model_version_alias.created", "model_version_alias.deleted"]
SYNCED_ENTITIES = {"registered_model", "model_version", "model_version_tag", "model_version_alias"}

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"


class WebhookNotConfigured(DomainError):
    status_code = 503
    code = "not_configured"


class ReplayCheckUnavailable(DomainError):
    status_code = 503
    code = "unavailable"


class SyncUnavailable(DomainError):
    status_code = 503
    code = "unavailable"


def delivery_verify(*, headers, body: bytes, now: float | None = None) -> dict:
    """The delivery's payload once its signature and timestamp check out; raises the refusal otherwise."""
    signature, timestamp, delivery_id = (headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER),
                                         headers.get(DELIVERY_HEADER))
    if not (signature and timestamp and delivery_id):
        raise Unauthenticated(f"Unsigned delivery: {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} and {DELIVERY_HEADER} "
                              f"are required (register the webhook with `manage.py mlflow_webhook_register`).")
    secret = settings.MLFLOW_WEBHOOK_SECRET
    if not secret:
        raise WebhookNotConfigured("MLflow webhooks are not accepted here: MLFLOW_WEBHOOK_SECRET is not set.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Forbidden(f"{TIMESTAMP_HEADER} must be unix seconds.", code="bad_signature")
    now = time.time() if now is None else now
    window = settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS
    if abs(now - sent_at) > window:
        raise Forbidden(f"Delivery timestamp is {int(now - sent_at)} s away from now; more than {window} s is "
                        f"refused as a possible replay.", code="stale_delivery")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Forbidden("Delivery signature does not match.", code="bad_signature")
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{text}".encode(), hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signature.split()):
        raise Forbidden("Delivery signature does not match.", code="bad_signature")
    try:
        payload = json.loads(text)
    except ValueError:
        raise InvalidInput("The delivery body is not JSON.")
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidInput("The delivery body has no `data` object.")
    return payload


def delivery_claim(*, headers) -> str:
    """Claim the delivery id for the replay window; a second delivery with the same id is refused.

    Returns the cache key, to release when applying fails (MLflow then retries the same delivery).
    """
    key = f"registry:mlflow-delivery:{headers[DELIVERY_HEADER][:100]}"
    try:
        fresh = cache.add(key, 1, timeout=2 * settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS)
    except Exception as exc:  # Redis down: a replay can't be told apart, so nothing is applied (MLflow retries)
        raise ReplayCheckUnavailable(f"Cannot check the delivery for a replay: {type(exc).__name__}.")
    if not fresh:
        raise Forbidden("This delivery was already received (a replay).", code="replayed_delivery")
    return key


def delivery_release(key: str) -> None:
    cache.delete(key)


def delivery_model_name(payload: dict) -> str | None:
    """The registered model a delivery is about, or None for events this control plane does not sync."""
    if payload.get("entity") not in SYNCED_ENTITIES:
        return None
    name = payload["data"].get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput("The delivery names no registered model.", fields={"data.name": ["Required."]})
    return name
