"""The audit log is append-only, hash-chained and keyed; audit_verify names the altered or missing rows."""
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record
from tests.factories import TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def record_events(n: int, team=None):
    actor = UserFactory(username="auditor")
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(audit_record(actor=actor, action="test.step", object_type="step", object_id=i, team=team,
                                       changes={"n": [i, i + 1], "ratio": [0.1 + 0.2, 1e-7]}))
    return events


def bypass_trigger(sql: str, params=()):
    """What an attacker with table-owner rights would do: switch the trigger off and edit."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update_delete")


def test_each_row_links_to_the_previous_one():
    events = record_events(3, team=TeamFactory())
    assert events[0].prev_hash == "0" * 64
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert audit_chain_verify().ok


def test_audit_verify_reports_ok(capsys):
    record_events(3)
    call_command("audit_verify")
    assert "OK: 3 audit events verified; no signed checkpoint yet" in capsys.readouterr().out


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET action = 'x'", "DELETE FROM audit_auditevent"])
def test_database_refuses_update_and_delete(statement):
    record_events(1)
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert AuditEvent.objects.count() == 1


def test_orm_delete_is_refused_too():
    [event] = record_events(1)
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            event.delete()


def test_altered_row_is_detected_by_audit_verify():
    events = record_events(4)
    bypass_trigger("UPDATE audit_auditevent SET changes = '{\"n\": [0, 999]}' WHERE id = %s", [events[2].id])
    report = audit_chain_verify()
    assert [(b.event_id, "altered" in b.reason) for b in report.breaks] == [(events[2].id, True)]
    with pytest.raises(CommandError, match=f"BROKEN: 1 problems in 4 events:\n  - audit event {events[2].id}: "):
        call_command("audit_verify")


def test_deleted_row_is_detected_at_the_row_after_it():
    events = record_events(4)
    bypass_trigger("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    report = audit_chain_verify()
    assert [(b.event_id, "deleted" in b.reason) for b in report.breaks] == [(events[2].id, True)]


def test_secrets_are_masked_in_changes():
    with transaction.atomic():
        event = audit_record(actor=None, action="cluster.update", object_type="cluster", object_id=1,
                             changes={"api_token": ["old", "new"], "name": ["a", "b"]})
    assert event.changes == {"api_token": "***", "name": ["a", "b"]}
    assert event.actor_label == "system"
