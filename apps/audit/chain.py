"""The chain, shared by writing, verifying in the database and verifying an export offline.

Each row stores `hash = sha256(prev_hash + canonical(row))`, a public hash chain that anyone can recompute
from the rows, and `mac = HMAC-SHA256(key, hash)` under a key held outside the database (`key_id` names
it). Rewriting rows and recomputing the public chain is easy; producing the MACs without the key is not.
Signed checkpoints (see checkpoints.py) anchor the head hash and the row count outside the database.

`canonical` is computed from values as they read back from PostgreSQL, so a row verifies as stored:
times in UTC ISO 8601, IP addresses in their `ipaddress` form, JSON with sorted keys and numbers written
as normalised decimals (jsonb reads 1e16 back as 10000000000000000, and 1e-07 as 0.0000001).
"""
import hashlib
import hmac
import json
from datetime import datetime, timezone
from decimal import Context, Decimal

from apps.core.context import canonical_ip

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("occurred_at", "actor_id", "actor_label", "team_id", "action", "object_type", "object_id",
                 "changes", "request_id", "client_ip")


def _number(value: int | float) -> str:
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return str(exact.normalize(Context(prec=max(28, len(exact.as_tuple().digits)))))


def canonical_json(value) -> str:
    """Deterministic JSON text: sorted keys, no spaces, one spelling per number."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{canonical_json(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if value is None or isinstance(value, (bool, str)):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _number(value)
    return json.dumps(str(value))


def canonical_time(value: datetime | str) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(timezone.utc).isoformat()


def canonical(fields: dict) -> str:
    return canonical_json({
        **{name: fields[name] for name in HASHED_FIELDS},
        "occurred_at": canonical_time(fields["occurred_at"]),
        "object_id": str(fields["object_id"]),
        "client_ip": canonical_ip(fields["client_ip"]),
        # jsonb stores what JSON can say: a Decimal or date is its string, as the writer stored it.
        "changes": json.loads(json.dumps(fields["changes"], default=str)),
    })


def event_fields(event) -> dict:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def content_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256((prev_hash + canonical(fields)).encode()).hexdigest()


def chain_mac(key: bytes, row_hash: str) -> str:
    return hmac.new(key, row_hash.encode(), hashlib.sha256).hexdigest()
