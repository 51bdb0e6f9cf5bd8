"""`Idempotency-Key` on POSTs: a retried call gets the first call's answer instead of doing the work twice.

An integration that lost its connection after "start a GPU job" cannot know whether the job started; with
the same key it can send the call again safely. Same key and same request → the stored response, replayed
with `Idempotent-Replayed: true`; same key and a different request → 422; a second call while the first is
still running → 409. Keys belong to the authenticated user and are kept 24 hours. Server errors are not
stored, so a call that failed on our side can be retried with the same key.
"""
import hashlib
import json
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from apps.core.errors import Conflict, InvalidInput, Unprocessable
from apps.core.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotentReplay(Exception):
    """Raised before the handler runs; the viewset answers with `response` instead."""

    def __init__(self, response: Response):
        super().__init__("idempotent replay")
        self.response = response


def _fingerprint(request) -> str:
    raw = request._request.body
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        body = raw
    head = f"{request.method}\n{request.path}\n{request.META.get('QUERY_STRING', '')}\n".encode()
    return hashlib.sha256(head + body).hexdigest()


def idempotency_begin(request) -> IdempotencyKey | None:
    """Claim the key for this request, or raise: IdempotentReplay (answered before), Unprocessable (the key
    was used for another request), Conflict (the first call with this key is still running)."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST" or not request.user.is_authenticated:
        return None
    if not _VALID_KEY.match(key):
        raise InvalidInput(f"{HEADER} must be 1 to 255 visible ASCII characters (a UUID is a good choice).",
                           fields={HEADER: ["1 to 255 visible ASCII characters."]})
    principal = f"user:{request.user.pk}"
    fingerprint = _fingerprint(request)
    IdempotencyKey.objects.filter(principal=principal, key=key, created_at__lt=timezone.now() - TTL).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(principal=principal, key=key, request_hash=fingerprint,
                                                 method=request.method, path=request.path[:2000])
    except IntegrityError:
        pass
    first = IdempotencyKey.objects.filter(principal=principal, key=key).first()
    if first is None:  # its first call failed on our side and was forgotten meanwhile: start again
        return idempotency_begin(request)
    if first.request_hash != fingerprint:
        raise Unprocessable(f"This {HEADER} was already used for a different request ({first.method} {first.path} "
                            f"at {first.created_at.isoformat()}); send a new key for a new request.",
                            code="idempotency_key_reused")
    if first.status_code is None:
        raise Conflict(f"The first request with this {HEADER} is still being processed; retry in a moment.",
                       code="idempotency_in_progress")
    raise IdempotentReplay(Response(first.response_body, status=first.status_code, headers={REPLAYED_HEADER: "true"}))


def idempotency_finish(record: IdempotencyKey, response) -> None:
    """Store the answer; forget the key when the server failed, so the retry runs the request again."""
    if response.status_code >= 500:
        record.delete()
        return
    data = getattr(response, "data", None)
    body = None if data is None else json.loads(JSONRenderer().render(data))
    IdempotencyKey.objects.filter(pk=record.pk).update(status_code=response.status_code, response_body=body)


def idempotency_purge() -> int:
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - TTL).delete()
    return deleted


def add_idempotency_header(result, generator, request, public):
    """drf-spectacular postprocessing hook: every POST of a ScopedViewSet documents the optional header and its 409/422."""
    error_ref = {"$ref": "#/components/schemas/Error"} if "Error" in result.get("components", {}).get("schemas", {}) \
        else {"type": "object"}
    from apps.core.api.views import ScopedViewSet

    keyed = {path for path, _regex, method, view in generator.endpoints
             if method == "POST" and issubclass(getattr(view, "cls", object), ScopedViewSet)}
    for path, path_item in result.get("paths", {}).items():
        operation = path_item.get("post")
        if operation is None or path not in keyed:
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == HEADER for p in parameters):
            parameters.append({
                "in": "header", "name": HEADER, "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
                "description": "Makes a retried POST safe: the same key with the same body replays the first "
                               "response (kept 24 h); the same key with a different body answers 422.",
            })
        responses = operation.setdefault("responses", {})
        for code, text in (("409", "Conflict (e.g. the first request with this Idempotency-Key is still running)"),
                           ("422", "This Idempotency-Key was used for a different request")):
            responses.setdefault(code, {"description": text,
                                        "content": {"application/json": {"schema": error_ref}}})
    return result
