import json

from django.db import connection, transaction
from django.utils import timezone

from django.conf import settings

from apps.core.context import canonical_ip, current_context

from .chain import GENESIS_HASH, chain_mac, content_hash, event_fields
from .checkpoints import checkpoint_record, sign, sink_append
from .keys import current_hmac_key, public_key_id, signing_key
from .models import AuditCheckpoint, AuditEvent

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
    notes = []
    # `service_account` is the reverse accessor of apps.teams' ServiceAccount; a person has none.
    if actor.pk is not None and hasattr(actor, "service_account"):
        notes.append("service account")
    token_name = getattr(actor, "auth_token_name", None)
    if token_name:
        notes.append(f"token {token_name}")
    return f"{actor.get_username()} ({', '.join(notes)})" if notes else actor.get_username()


def audit_record(*, actor, action: str, target=None, object_type: str | None = None, object_id=None, team=None,
                 changes: dict | None = None) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (so it commits with the change)."""
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = target.pk if object_id is None else object_id
        if team is None and hasattr(target, "team_id"):
            team = target.team
    ctx = current_context()
    key_id, key = current_hmac_key()
    with transaction.atomic():
        _lock_chain()
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
            client_ip=canonical_ip(ctx.client_ip) if ctx else None,
            prev_hash=prev_hash,
            key_id=key_id,
        )
        event.hash = content_hash(prev_hash, event_fields(event))
        event.mac = chain_mac(key, event.hash)
        event.save(force_insert=True)
        if _checkpoint_due(event):
            audit_checkpoint_create()
    return event


def _lock_chain() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def _checkpoint_due(event: AuditEvent) -> bool:
    """AUDIT_CHECKPOINT_EVERY_EVENTS events since the last checkpoint (an index scan of at most that many ids)."""
    every = settings.AUDIT_CHECKPOINT_EVERY_EVENTS
    if every <= 0:
        return False
    since = AuditCheckpoint.objects.order_by("-size").values_list("head_event_id", flat=True).first() or 0
    return AuditEvent.objects.filter(id__gt=since, id__lte=event.id).order_by("id")[every - 1:every].exists()


def audit_checkpoint_create() -> AuditCheckpoint | None:
    """Sign the chain's head, count and time; store it and append it to the sink after commit.

    None when no event was added since the last checkpoint. The count is the last checkpoint's plus the
    events after its head, so a checkpoint costs an index scan of the new events, not of the table.
    """
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-id").values("id", "hash").first()
        last = AuditCheckpoint.objects.order_by("-size").first()
        if head is None or (last is not None and last.head_event_id >= head["id"]):
            return None
        since = last.head_event_id if last else 0
        private_key = signing_key()
        checkpoint = AuditCheckpoint(
            size=(last.size if last else 0) + AuditEvent.objects.filter(id__gt=since).count(),
            head_hash=head["hash"],
            head_event_id=head["id"],
            signed_at=timezone.now(),
            key_id=public_key_id(private_key.public_key()),
        )
        record = checkpoint_record(checkpoint)
        checkpoint.signature = record["signature"] = sign(private_key, record)
        checkpoint.save(force_insert=True)
        transaction.on_commit(lambda: sink_append(record))
    return checkpoint
