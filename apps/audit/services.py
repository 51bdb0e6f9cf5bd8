import json

from django.db import connection, transaction
from django.utils import timezone

from apps.core.context import current_context

from .chain import GENESIS_HASH, event_hash
from .models import AuditEvent

# Any key that looks like a credential is masked before it reaches the log.
_SECRET_MARKERS = ("secret", "password", "token", "kubeconfig", "private_key", "credential", "fernet")
MASK = "***"
# pg_advisory_xact_lock key: one writer extends the chain at a time, released at commit, so the
# chain order is the commit order.
_CHAIN_LOCK_KEY = 7_351_001


def mask_secrets(value):
    if isinstance(value, dict):
        return {
            k: (MASK if any(m in str(k).lower() for m in _SECRET_MARKERS) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def diff(before: dict, after: dict) -> dict:
    """{field: [before, after]} for the fields whose value changed."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def actor_label(actor) -> str:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return "system"
    token_name = getattr(actor, "auth_token_name", None)
    return f"{actor.get_username()} (token {token_name})" if token_name else actor.get_username()


def audit_record(*, actor, action: str, target=None, object_type: str | None = None, object_id=None, team=None,
                 changes: dict | None = None) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (so it commits with the change)."""
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = target.pk if object_id is None else object_id
        if team is None and hasattr(target, "team_id"):
            team = target.team
    ctx = current_context()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        event = AuditEvent(
            occurred_at=timezone.now(),
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_label=actor_label(actor),
            team=team,
            action=action,
            object_type=object_type or "",
            object_id=str(object_id if object_id is not None else ""),
            changes=json.loads(json.dumps(mask_secrets(changes or {}), default=str)),
            request_id=ctx.request_id if ctx else "",
            client_ip=ctx.client_ip if ctx else None,
            prev_hash=prev_hash,
        )
        event.hash = event_hash(event, prev_hash)
        event.save(force_insert=True)
    return event
