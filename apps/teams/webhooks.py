"""Outgoing webhooks: signed with the endpoint's secret, sent through the SSRF guard, never redirected.

Receivers verify `X-ControlPlane-Signature: t=<unix time>,v1=<hex>` where the hex is
HMAC-SHA256(secret, f"{t}.{raw body}"), and refuse a `t` too far from their clock (replays).
"""
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import requests

from apps.core import netguard
from apps.core.masking import mask_url

from .choices import DeliveryOutcome

SIGNATURE_HEADER = "X-ControlPlane-Signature"
EVENT_HEADER = "X-ControlPlane-Event"
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class AttemptResult:
    outcome: str
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _outcome(status_code: int) -> str:
    if 200 <= status_code < 300:
        return DeliveryOutcome.DELIVERED
    if status_code >= 500 or status_code == 429:
        return DeliveryOutcome.FAILED
    if 300 <= status_code < 400:
        return DeliveryOutcome.REFUSED
    return DeliveryOutcome.REJECTED


def post_signed(*, url: str, secret: str, event: str, body: dict) -> AttemptResult:
    """One delivery attempt. Errors name the masked URL only: the path of a Slack URL is its secret."""
    try:
        netguard.check_url(url)
    except netguard.UnsafeDestination as exc:
        return AttemptResult(DeliveryOutcome.REFUSED, error=exc.message[:500])
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "controlplane-webhooks", EVENT_HEADER: event,
               SIGNATURE_HEADER: signature_header(secret=secret, timestamp=int(time.time()), body=payload)}
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with netguard.guarded_session() as session:
            response = session.post(url, data=payload, headers=headers, timeout=TIMEOUT_SECONDS)
    except netguard.UnsafeDestination as exc:
        return AttemptResult(DeliveryOutcome.REFUSED, latency_ms=elapsed_ms(), error=exc.message[:500])
    except requests.Timeout:
        return AttemptResult(DeliveryOutcome.FAILED, latency_ms=elapsed_ms(),
                             error=f"{mask_url(url)} did not answer within {TIMEOUT_SECONDS} s")
    except requests.RequestException as exc:
        return AttemptResult(DeliveryOutcome.FAILED, latency_ms=elapsed_ms(),
                             error=f"{type(exc).__name__}: could not reach {mask_url(url)}")
    outcome = _outcome(response.status_code)
    error = ""
    if outcome == DeliveryOutcome.REFUSED:
        error = (f"The receiver answered {response.status_code} with a redirect to "
                 f"{mask_url(response.headers.get('Location', ''))}; redirects are not followed.")
    elif outcome != DeliveryOutcome.DELIVERED:
        error = f"The receiver answered {response.status_code}."
    return AttemptResult(outcome, status_code=response.status_code, latency_ms=elapsed_ms(), error=error)
