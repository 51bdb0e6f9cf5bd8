"""One-off upgrade: re-chain the events written before the keyed scheme.

Rows written under the old scheme (unkeyed sha256 over a JSON form that didn't survive the database, e.g.
an IPv6 client address) get the new canonical hash and their MAC under the current AUDIT_HMAC_KEYS key.
The append-only trigger is switched off for this step only, inside the migration's transaction. Re-chaining
would also hide any earlier tampering, so the old chain is checked first and the result is appended to the
log as `audit.chain.rekeyed` (rows that failed the old check are named there).
"""
import hashlib
import json

from django.db import migrations
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, chain_mac, content_hash, event_fields
from apps.audit.keys import current_hmac_key

_LISTED = 100


def legacy_hash(event, prev_hash: str) -> str:
    """The scheme of 0001/0002, frozen here."""
    canonical = json.dumps({
        "occurred_at": event.occurred_at.isoformat(), "actor_id": event.actor_id, "actor_label": event.actor_label,
        "team_id": event.team_id, "action": event.action, "object_type": event.object_type,
        "object_id": str(event.object_id), "changes": json.loads(json.dumps(event.changes, default=str)),
        "request_id": event.request_id, "client_ip": event.client_ip,
    }, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def rechain(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    if not AuditEvent.objects.exists():
        return
    key_id, key = current_hmac_key()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    legacy_prev, prev, failed, legacy_head, count = GENESIS_HASH, GENESIS_HASH, [], GENESIS_HASH, 0
    batch = []
    for event in AuditEvent.objects.order_by("id"):
        if event.prev_hash != legacy_prev or legacy_hash(event, event.prev_hash) != event.hash:
            failed.append(event.id)
        legacy_prev = legacy_head = event.hash
        event.prev_hash, event.key_id = prev, key_id
        event.hash = content_hash(prev, event_fields(event))
        event.mac = chain_mac(key, event.hash)
        prev = event.hash
        count += 1
        batch.append(event)
    AuditEvent.objects.bulk_update(batch, ["prev_hash", "hash", "key_id", "mac"], batch_size=1000)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update_delete")
    marker = AuditEvent(
        occurred_at=timezone.now(), actor_label="system", action="audit.chain.rekeyed", object_type="audit.chain",
        object_id="", changes={"events": count, "legacy_head": legacy_head, "legacy_check_failed": len(failed),
                               "legacy_check_failed_ids": failed[:_LISTED]},
        request_id="", client_ip=None, prev_hash=prev, key_id=key_id, actor_id=None, team_id=None,
    )
    marker.hash = content_hash(prev, event_fields(marker))
    marker.mac = chain_mac(key, marker.hash)
    marker.save(force_insert=True)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_keyed_chain_checkpoints_no_truncate")]
    operations = [migrations.RunPython(rechain, migrations.RunPython.noop)]
