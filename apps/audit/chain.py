"""The hash chain: hash = sha256(prev_hash + canonical(row)). Shared by writing and verifying."""
import hashlib
import json

GENESIS_HASH = "0" * 64


def canonical(*, occurred_at, actor_id, actor_label, team_id, action, object_type, object_id, changes, request_id,
              client_ip) -> str:
    return json.dumps(
        {
            "occurred_at": occurred_at.isoformat(),
            "actor_id": actor_id,
            "actor_label": actor_label,
            "team_id": team_id,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            # Round-trip through JSON so values read back from jsonb hash exactly like those written.
            "changes": json.loads(json.dumps(changes, default=str)),
            "request_id": request_id,
            "client_ip": client_ip,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def row_hash(prev_hash: str, canonical_row: str) -> str:
    return hashlib.sha256((prev_hash + canonical_row).encode()).hexdigest()


def event_hash(event, prev_hash: str) -> str:
    return row_hash(
        prev_hash,
        canonical(
            occurred_at=event.occurred_at,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            team_id=event.team_id,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            changes=event.changes,
            request_id=event.request_id,
            client_ip=event.client_ip,
        ),
    )
