"""An owner of the database cannot quietly rewrite the audit log: every tamper is refused or reported.

Tampering is done as such an owner would: triggers switched off, rows edited in SQL.
"""
import importlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.chain import GENESIS_HASH, chain_mac, content_hash, event_fields
from apps.audit.models import AuditCheckpoint, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_checkpoint_create, audit_record
from tests.conftest import AUDIT_TRUNCATE_GUARDS

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def sink(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    return tmp_path / "checkpoints.jsonl"


def record(n: int, *, start: int = 0) -> list[AuditEvent]:
    return [audit_record(actor=None, action="test.step", object_type="step", object_id=i,
                         changes={"n": [i, i + 1], "big": [1e16, 1e-7]}) for i in range(start, start + n)]


def checkpoint(django_capture_on_commit_callbacks) -> AuditCheckpoint:
    with django_capture_on_commit_callbacks(execute=True):
        return audit_checkpoint_create()


def as_owner(sql: str, params=()):
    """What a table owner can do: switch every guard off, edit, switch them back on."""
    with connection.cursor() as cursor:
        for table in ("audit_auditevent", "audit_auditcheckpoint"):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        for table in ("audit_auditevent", "audit_auditcheckpoint"):
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def breaks() -> list[tuple[int | None, str]]:
    return [(b.event_id, b.reason) for b in audit_chain_verify().breaks]


def test_an_untouched_log_with_checkpoints_verifies(django_capture_on_commit_callbacks, sink, capsys):
    record(3)
    cp = checkpoint(django_capture_on_commit_callbacks)
    record(2, start=3)
    assert (cp.size, checkpoint(django_capture_on_commit_callbacks).size) == (3, 5)
    assert checkpoint(django_capture_on_commit_callbacks) is None  # nothing new to sign
    assert [json.loads(line)["size"] for line in sink.read_text().splitlines()] == [3, 5]
    call_command("audit_verify")
    signed_at = AuditCheckpoint.objects.get(size=5).signed_at.isoformat()
    assert capsys.readouterr().out.strip() == (
        f"OK: 5 audit events verified; 2 signed checkpoints, the latest covers 5 events "
        f"(signed at {signed_at}); 0 events after it are not yet signed")


def test_a_checkpoint_is_signed_every_n_events(settings, django_capture_on_commit_callbacks, sink):
    settings.AUDIT_CHECKPOINT_EVERY_EVENTS = 3
    with django_capture_on_commit_callbacks(execute=True):
        record(7)
    assert list(AuditCheckpoint.objects.order_by("size").values_list("size", flat=True)) == [3, 6]
    assert len(sink.read_text().splitlines()) == 2
    assert audit_chain_verify().ok


def test_edited_row_is_named():
    events = record(4)
    as_owner("UPDATE audit_auditevent SET changes = '{\"n\": [0, 999]}' WHERE id = %s", [events[1].id])
    assert breaks() == [(events[1].id, "its content does not match its hash: the row was altered")]


def test_chain_recomputed_without_the_key_is_detected(django_capture_on_commit_callbacks):
    """The attacker rewrites a row and recomputes the public hash chain after it; the MACs give them away."""
    events = record(4)
    checkpoint(django_capture_on_commit_callbacks)
    prev = events[0].hash
    for event in AuditEvent.objects.filter(id__gt=events[0].id).order_by("id"):
        if event.id == events[1].id:
            event.actor_label = "someone else"
        event.prev_hash, event.hash = prev, content_hash(prev, event_fields(event))
        as_owner("UPDATE audit_auditevent SET actor_label = %s, prev_hash = %s, hash = %s WHERE id = %s",
                 [event.actor_label, event.prev_hash, event.hash, event.id])
        prev = event.hash
    found = breaks()
    assert [event_id for event_id, _ in found[:3]] == [e.id for e in events[1:]]
    assert all("MAC does not verify" in reason for _, reason in found[:3])
    assert "is not in the chain: events up to it were altered or removed" in found[3][1]


def test_forged_row_is_detected():
    [event] = record(1)
    forged_hash = content_hash(event.hash, {
        "occurred_at": event.occurred_at, "actor_id": None, "actor_label": "x", "team_id": None,
        "action": "test.forged", "object_type": "", "object_id": "", "changes": {}, "request_id": "",
        "client_ip": None})
    with connection.cursor() as cursor:  # INSERT is what the table allows: no guard to switch off
        cursor.execute(
            "INSERT INTO audit_auditevent (occurred_at, actor_label, action, object_type, object_id, changes,"
            " request_id, prev_hash, hash, key_id, mac) VALUES (%s, 'x', 'test.forged', '', '', '{}', '', %s, %s,"
            " %s, %s) RETURNING id",
            [event.occurred_at, event.hash, forged_hash, event.key_id, chain_mac(b"a guessed key", forged_hash)])
        forged_id = cursor.fetchone()[0]
    assert [(i, "MAC does not verify" in r) for i, r in breaks()] == [(forged_id, True)]


def test_deleted_middle_row_is_named_at_the_next_row_and_against_the_checkpoint(django_capture_on_commit_callbacks):
    events = record(4)
    checkpoint(django_capture_on_commit_callbacks)
    as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    found = breaks()
    assert found[0] == (events[2].id, f"its prev_hash does not match the hash of event {events[0].id}: "
                                      "events were deleted, inserted or reordered here")
    assert found[1][0] is None and found[1][1].endswith(
        f"ends at event {events[3].id}, but the chain reaches it after 3 events: 1 events before it were deleted")


def test_reordered_rows_are_named():
    events = record(3)
    as_owner("UPDATE audit_auditevent SET id = CASE id WHEN %s THEN -1 WHEN %s THEN %s END WHERE id IN (%s, %s)",
             [events[1].id, events[2].id, events[1].id, events[1].id, events[2].id])
    as_owner("UPDATE audit_auditevent SET id = %s WHERE id = -1", [events[2].id])
    assert [i for i, r in breaks() if "reordered" in r] == [events[1].id, events[2].id]


def test_deleted_tail_is_detected_against_the_latest_checkpoint(django_capture_on_commit_callbacks):
    events = record(4)
    checkpoint(django_capture_on_commit_callbacks)
    as_owner("DELETE FROM audit_auditevent WHERE id >= %s", [events[2].id])
    [(event_id, reason)] = breaks()
    assert event_id is None
    assert reason.endswith(f"ends at event {events[3].id}, which is missing, and the chain has only 2 events: "
                           "events were deleted from the end")


@pytest.mark.parametrize("table", list(AUDIT_TRUNCATE_GUARDS))
def test_truncate_is_refused(table):
    record(2)
    with connection.cursor() as cursor:  # the test database lets Django's flush through; production doesn't
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {AUDIT_TRUNCATE_GUARDS[table]}")
    with pytest.raises(DatabaseError, match=f"{table} is append-only: TRUNCATE is not allowed"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table}")
    assert AuditEvent.objects.count() == 2


def test_emptied_tables_are_detected_against_the_sink(django_capture_on_commit_callbacks):
    record(3)
    checkpoint(django_capture_on_commit_callbacks)
    as_owner("DELETE FROM audit_auditevent")
    as_owner("DELETE FROM audit_auditcheckpoint")
    found = [reason for _, reason in breaks()]
    assert len(found) == 2
    assert found[0].endswith("covers them: the table was emptied")
    assert found[1].endswith("is in the sink but missing from the database")


def test_every_break_is_reported_not_only_the_first(django_capture_on_commit_callbacks):
    events = record(6)
    checkpoint(django_capture_on_commit_callbacks)
    as_owner("UPDATE audit_auditevent SET action = 'test.hidden' WHERE id = %s", [events[0].id])
    as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[2].id])
    as_owner("UPDATE audit_auditevent SET object_id = 'x' WHERE id = %s", [events[4].id])
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    message = str(failure.value)
    assert message.startswith("BROKEN: 4 problems in 5 events:")
    for event_id in (events[0].id, events[3].id, events[4].id):
        assert f"  - audit event {event_id}: " in message
    assert "2 events before it were deleted" not in message and "1 events before it were deleted" in message


def test_rotated_hmac_key_keeps_old_rows_verifiable(settings):
    settings.AUDIT_HMAC_KEYS = ["old:" + "o" * 32]
    old = record(2)
    settings.AUDIT_HMAC_KEYS = ["new:" + "n" * 32, "old:" + "o" * 32]
    new = record(1, start=2)
    assert [e.key_id for e in old + new] == ["old", "old", "new"]
    assert audit_chain_verify().ok
    settings.AUDIT_HMAC_KEYS = ["new:" + "n" * 32]
    assert breaks() == [(e.id, "its MAC key 'old' is not in AUDIT_HMAC_KEYS") for e in old]


@pytest.mark.parametrize("remote_addr, forwarded_for, trusted, recorded", [
    ("2001:DB8::1", "", [], "2001:db8::1"),                     # an IPv6 client verifies as stored
    ("203.0.113.9", "198.51.100.1", [], "203.0.113.9"),        # forged X-Forwarded-For from a client: ignored
    ("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5", ["10.0.0.0/8"], "198.51.100.7"),  # rightmost untrusted hop
    ("10.0.0.2", "2001:DB8::7", ["10.0.0.0/8"], "2001:db8::7"),
    ("10.0.0.2", "not-an-ip, 10.0.0.5", ["10.0.0.0/8"], "10.0.0.5"),
])
def test_client_ip_is_remote_addr_or_what_a_trusted_proxy_forwarded(settings, api_client, platform_admin,
                                                                     remote_addr, forwarded_for, trusted, recorded):
    settings.TRUSTED_PROXIES = trusted
    api_client.force_authenticate(platform_admin)
    response = api_client.post("/api/v1/teams/", {"slug": "ipv6", "name": "IPv6"}, format="json",
                               REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert response.status_code == 201
    assert AuditEvent.objects.get(action="team.create").client_ip == recorded
    assert audit_chain_verify().ok


@pytest.fixture
def exported(django_capture_on_commit_callbacks, api_client, platform_admin, tmp_path, sink):
    api_client.force_authenticate(platform_admin)
    api_client.post("/api/v1/teams/", {"slug": "fraud", "name": "Fraud"}, format="json", REMOTE_ADDR="2001:DB8::1")
    record(3)
    checkpoint(django_capture_on_commit_callbacks)
    record(1, start=3)
    response = api_client.get("/api/v1/audit/export", {"format": "jsonl"})
    export = tmp_path / "audit.jsonl"
    export.write_bytes(b"".join(response.streaming_content))
    public_key = tmp_path / "audit.pub"
    call_command("audit_public_key", stdout=public_key.open("w"))
    return SimpleNamespace(export=export, checkpoints=sink, public_key=str(public_key))


def verify_offline(exported) -> str:
    out = io.StringIO()
    with connection.execute_wrapper(refuse_queries):
        call_command("audit_verify", export=exported.export, checkpoints=exported.checkpoints,
                     public_key=[exported.public_key], stdout=out)
    return out.getvalue()


def refuse_queries(execute, sql, params, many, context):
    raise AssertionError(f"offline verification queried the database: {sql}")


def test_export_verifies_offline(exported):
    assert verify_offline(exported).startswith("OK: 5 exported audit events verified offline; 1 signed checkpoints, "
                                               "the latest covers 4 events")
    assert "1 events after it are not yet signed" in verify_offline(exported)


def test_altered_export_is_detected_offline(exported):
    rows = [json.loads(line) for line in exported.export.read_text().splitlines()]
    rows[2]["changes"] = {"n": [0, 999]}
    exported.export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(CommandError, match=f"audit event {rows[2]['id']}: its content does not match its hash"):
        verify_offline(exported)


def test_recomputed_export_fails_against_the_signed_checkpoint(exported):
    """Without the HMAC key offline, rewriting a row and its public hash chain still misses the signed head."""
    rows = [json.loads(line) for line in exported.export.read_text().splitlines()]
    rows[1]["actor_label"] = "someone else"
    prev = rows[0]["hash"]
    for row in rows[1:]:
        row["prev_hash"], row["hash"] = prev, content_hash(prev, row)
        prev = row["hash"]
    exported.export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(CommandError, match="is not in the chain: events up to it were altered or removed"):
        verify_offline(exported)


def test_forged_checkpoint_is_detected_offline(exported):
    [line] = exported.checkpoints.read_text().splitlines()
    forged = {**json.loads(line), "size": 5}
    exported.checkpoints.write_text(json.dumps(forged) + "\n")
    with pytest.raises(CommandError, match="signed at .* has a signature that does not verify"):
        verify_offline(exported)


def test_upgrade_rechains_legacy_rows_and_says_so():
    """Migration 0004 on rows of the old unkeyed scheme, one of them with an IPv6 address stored normalised."""
    upgrade = importlib.import_module("apps.audit.migrations.0004_rechain_existing_events_with_keys")
    prev = GENESIS_HASH
    for i, ip in enumerate(["192.0.2.1", "2001:DB8::1", None]):
        event = AuditEvent(occurred_at=datetime.fromisoformat("2026-01-01T00:00:00+00:00"), actor_label="system",
                           action="legacy.step", object_type="step", object_id=str(i),
                           changes={"ratio": [0.1 + 0.2, 1e-7]}, request_id="", client_ip=ip, prev_hash=prev,
                           key_id="", mac="")
        event.hash = upgrade.legacy_hash(event, prev)
        event.save(force_insert=True)
        prev = event.hash
    legacy = list(AuditEvent.objects.order_by("id"))
    upgrade.rechain(django_apps, SimpleNamespace(connection=connection))
    assert audit_chain_verify().ok
    marker = AuditEvent.objects.get(action="audit.chain.rekeyed")
    # The IPv6 row failed the old check (hashed as written, stored normalised); the row after it still linked.
    assert marker.changes == {"events": 3, "legacy_head": legacy[-1].hash, "legacy_check_failed": 1,
                              "legacy_check_failed_ids": [legacy[1].id]}


@pytest.mark.parametrize("audit_env, refusal", [
    ({}, "Environment variable AUDIT_HMAC_KEYS must be set in production"),
    ({"AUDIT_HMAC_KEYS": "k1:" + "s" * 40}, "Environment variable AUDIT_SIGNING_KEY must be set in production"),
    ({"AUDIT_HMAC_KEYS": "k1:" + "s" * 40, "AUDIT_SIGNING_KEY": "c2hvcnQ="}, "AUDIT_SIGNING_KEY must be the base64 of"),
])
def test_production_refuses_to_start_without_audit_keys(audit_env, refusal):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env.update(CONTROLPLANE_ENV="production", DJANGO_SECRET_KEY="p" * 60,
               CONTROLPLANE_FERNET_KEYS=Fernet.generate_key().decode(),
               DATABASE_URL="postgres://u@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0", **audit_env)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert refusal in result.stderr
