"""Audit export: CSV and JSONL, filtered, streamed, scoped to the caller's teams."""
import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.audit.services import audit_record
from tests.factories import TeamFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    fraud, search = TeamFactory(slug="fraud"), TeamFactory(slug="search")
    alice = member(fraud, "team_admin", "alice")
    member(search, "team_admin", "sam")
    with transaction.atomic():
        audit_record(actor=alice, action="registry.approve", object_type="request", object_id=1, team=fraud)
        audit_record(actor=alice, action="deployment.rollback", object_type="deployment", object_id=2, team=fraud)
        audit_record(actor=None, action="registry.approve", object_type="request", object_id=3, team=search)
    return {"alice": alice, "fraud": fraud}


def body_of(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_jsonl_export_has_only_my_teams_events(client_for, events):
    response = client_for(events["alice"]).get("/api/v1/audit/export", {"format": "jsonl"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in body_of(response).splitlines()]
    assert [(r["team"], r["action"]) for r in rows] == [("fraud", "registry.approve"), ("fraud", "deployment.rollback")]
    assert all(len(r["hash"]) == 64 for r in rows)


def test_csv_export_with_filters_opens_as_a_table(client_for, events):
    response = client_for(events["alice"]).get("/api/v1/audit/export",
                                               {"format": "csv", "action": "registry.", "actor": "alice"})
    assert response["Content-Disposition"] == 'attachment; filename="audit.csv"'
    rows = list(csv.DictReader(io.StringIO(body_of(response))))
    assert [(r["action"], r["object_id"], r["actor_label"]) for r in rows] == [("registry.approve", "1", "alice")]


def test_time_range_filter(client_for, events):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = client_for(events["alice"]).get("/api/v1/audit/export", {"format": "jsonl", "since": future})
    assert body_of(response) == ""


def test_unknown_format_is_a_clear_400(client_for, events):
    response = client_for(events["alice"]).get("/api/v1/audit/export", {"format": "xlsx"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Unknown export format 'xlsx'. Use one of: csv, jsonl."


def test_malformed_time_filter_is_a_clear_400(client_for, events):
    response = client_for(events["alice"]).get("/api/v1/audit/export", {"since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()["error"]["fields"]
