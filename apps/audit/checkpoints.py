"""Signed checkpoints (signed tree heads) and their sink outside the database: a JSON Lines file.

A checkpoint says "the chain had `size` events ending in `head_hash`", signed with Ed25519. It is stored in
the database and appended to the sink; an auditor with the public key checks it without the database.
"""
import base64
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import connection

from .chain import canonical_json, canonical_time
from .keys import signature_valid

logger = logging.getLogger(__name__)

SIGNED_FIELDS = ("size", "head_hash", "head_event_id", "signed_at", "key_id")


def checkpoint_record(checkpoint) -> dict:
    """The portable form of a checkpoint: one line of the sink file."""
    return {
        "size": checkpoint.size,
        "head_hash": checkpoint.head_hash,
        "head_event_id": checkpoint.head_event_id,
        "signed_at": canonical_time(checkpoint.signed_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def signed_message(record: dict) -> bytes:
    return canonical_json({
        **{name: record[name] for name in SIGNED_FIELDS},
        "signed_at": canonical_time(record["signed_at"]),
    }).encode()


def sign(private_key, record: dict) -> str:
    return base64.b64encode(private_key.sign(signed_message(record))).decode()


def checkpoint_problem(record: dict, public_keys: dict) -> str | None:
    """Why this checkpoint can't be trusted, or None when its signature verifies."""
    key = public_keys.get(record.get("key_id"))
    if key is None:
        return f"is signed by key {record.get('key_id')!r}, which is not a known signing key"
    try:
        signature = base64.b64decode(record["signature"], validate=True)
        message = signed_message(record)
    except (ValueError, TypeError):
        return "is malformed"
    if not signature_valid(key, signature, message):
        return "has a signature that does not verify (forged or altered)"
    return None


def sink_path() -> Path | None:
    """The configured sink file ({database} → this database's name), or None when none is configured."""
    template = settings.AUDIT_CHECKPOINT_FILE
    if not template:
        return None
    return Path(str(template).format(database=connection.settings_dict["NAME"]))


def sink_append(record: dict) -> None:
    """Append after commit; a failed append is logged, and audit_verify warns about the missing line."""
    path = sink_path()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as sink:
            sink.write(json.dumps(record, sort_keys=True) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
    except OSError:
        logger.exception("Could not append audit checkpoint %s to %s", record["size"], path)


def read_checkpoint_file(path: Path) -> list[dict]:
    """Every checkpoint in a JSON Lines file; a line that isn't one raises ValueError naming the line."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            missing = [name for name in (*SIGNED_FIELDS, "signature") if name not in record]
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{number} is not a checkpoint ({exc})") from exc
        if missing:
            raise ValueError(f"{path}:{number} is not a checkpoint (lacks {', '.join(missing)})")
        records.append(record)
    return records
