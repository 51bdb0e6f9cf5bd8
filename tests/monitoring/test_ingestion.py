"""Prediction log ingestion: JSON and files, rejections explained, idempotent batch ids, size limits, labels."""
import io
from datetime import timedelta

import pandas as pd
import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.monitoring import selectors
from apps.monitoring.models import PredictionBatch, PredictionLabel

from . import factories as f

URL = "/api/v1/monitoring/predictions/"


def _row(i, **over):
    row = {"timestamp": f"2026-03-02T10:{i % 60:02d}:00Z", "request_id": f"req-{i}",
           "features": {"amount": 10.5 + i, "age": 30, "country": "de", "channel": "web"},
           "prediction": "1", "latency_ms": 12.5}
    row.update(over)
    return row


def _count(version):
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM monitoring_prediction_log WHERE model_version_id = %s", [version.pk])
        return c.fetchone()[0]


def test_json_batch_is_stored_and_bad_rows_are_explained(client_for, engineer, mon):
    rows = [_row(i) for i in range(5)]
    rows.append(_row(5, features={"amount": "lots", "age": 1, "country": "de", "channel": "web"}))
    rows.append(_row(6, features={"amount": 1, "colour": "red"}))
    rows.append(_row(7, timestamp="yesterday"))
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "b-1", "rows": rows},
                                         format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (8, 5, 3)
    assert body["rejections"] == {"amount": {"wrong type: expected a number": 1},
                                  "colour": {"unknown column (not in the monitor schema)": 1},
                                  "timestamp": {"not an ISO 8601 timestamp": 1}}
    assert {"row": 5, "column": "amount", "reason": "wrong type: expected a number"} in body["examples"]
    assert _count(mon.model_version) == 5
    assert AuditEvent.objects.filter(action="monitoring.predictions.ingest").count() == 1


def test_retried_batch_id_is_idempotent(client_for, engineer, mon):
    payload = {"model_version": mon.model_version_id, "batch_id": "retry-me", "rows": [_row(i) for i in range(3)]}
    first = client_for(engineer).post(URL, payload, format="json")
    again = client_for(engineer).post(URL, payload, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]
    assert _count(mon.model_version) == 3
    assert PredictionBatch.objects.count() == 1


def test_all_rows_rejected_is_a_clear_400_and_stores_nothing(client_for, engineer, mon):
    rows = [_row(i, features={"amount": 1, "unknown_col": 2}) for i in range(4)]
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "bad", "rows": rows},
                                         format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "All 4 rows were rejected" in error["message"] and "unknown_col" in error["message"]
    assert error["fields"]["unknown_col"] == ["unknown column (not in the monitor schema) (4 rows)"]
    assert PredictionBatch.objects.count() == 0 and _count(mon.model_version) == 0


def test_oversized_upload_is_413_with_the_limit(client_for, engineer, mon, settings):
    settings.MONITORING_MAX_UPLOAD_BYTES = 2000
    rows = [_row(i) for i in range(40)]
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "big", "rows": rows},
                                         format="json")
    assert response.status_code == 413
    assert "limit is 0.0 MB" in response.json()["error"]["message"] or "limit" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "payload_too_large"


def test_too_many_rows_is_413(client_for, engineer, mon, settings):
    settings.MONITORING_MAX_BATCH_ROWS = 3
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "many",
                                               "rows": [_row(i) for i in range(4)]}, format="json")
    assert response.status_code == 413 and "limit is 3 rows" in response.json()["error"]["message"]


def test_no_monitor_means_no_schema_409(client_for, engineer, team):
    version = f.model_version(team, name="unwatched")
    response = client_for(engineer).post(URL, {"model_version": version.pk, "batch_id": "x", "rows": [_row(1)]},
                                         format="json")
    assert response.status_code == 409 and "create one first" in response.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_file_upload(client_for, engineer, mon, kind):
    frame = pd.DataFrame({"timestamp": ["2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", "not a time"],
                          "request_id": ["a", "b", "c"], "amount": [1.0, 2.0, 3.0], "age": [30, 40, 50],
                          "country": ["de", "fr", "it"], "channel": ["web", "app", "web"], "prediction": ["0", "1", "1"]})
    buffer = io.BytesIO()
    if kind == "csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    buffer.seek(0)
    buffer.name = f"logs.{kind}"
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": f"file-{kind}",
                                               "file": buffer}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["accepted"] == 2 and response.json()["source"] == kind
    assert response.json()["rejections"] == {"timestamp": {"not an ISO 8601 timestamp": 1}}


def test_unreadable_file_is_400(client_for, engineer, mon):
    buffer = io.BytesIO(b"\x00\x01garbage")
    buffer.name = "logs.parquet"
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "junk", "file": buffer},
                                         format="multipart")
    assert response.status_code == 400 and "Could not read 'logs.parquet'" in response.json()["error"]["message"]


def test_labels_join_by_request_id_and_replace(client_for, engineer, mon):
    client = client_for(engineer)
    client.post(URL, {"model_version": mon.model_version_id, "batch_id": "b", "rows": [_row(i) for i in range(3)]},
                format="json")
    response = client.post("/api/v1/monitoring/labels/", {"model_version": mon.model_version_id, "labels": [
        {"request_id": "req-0", "label": "1"}, {"request_id": "req-1", "label": 0}, {"request_id": "unknown", "label": 1},
        {"label": 1}]}, format="json")
    assert response.status_code == 201
    assert response.json() | {"rejections": None} == {"received": 4, "stored": 3, "updated": 0, "matched_predictions": 2,
                                                      "rejected": 1, "rejections": None}
    again = client.post("/api/v1/monitoring/labels/", {"model_version": mon.model_version_id, "labels": [
        {"request_id": "req-0", "label": "0"}]}, format="json")
    assert again.json()["updated"] == 1
    assert PredictionLabel.objects.get(request_id="req-0").value == "0"


def test_viewer_may_not_ingest(client_for, viewer, mon):
    response = client_for(viewer).post(URL, {"model_version": mon.model_version_id, "batch_id": "v", "rows": [_row(1)]},
                                       format="json")
    assert response.status_code == 403 and "operate" in response.json()["error"]["message"]


def test_prediction_counts_per_version_and_deployment(mon):
    f.logs(mon.model_version, f.frame(30), start=f.T0, span=timedelta(hours=3))
    counts = selectors.prediction_counts_by_deployment(model_version_ids=[mon.model_version_id], start=f.T0,
                                                       end=f.T0 + timedelta(hours=2))
    assert counts == {(mon.model_version_id, None): 20}  # logged without a deployment; the third hour is outside


def test_batch_larger_than_djangos_form_limit_is_accepted(client_for, engineer, mon, settings):
    """Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE guards form bodies; JSON batches have our own limit."""
    rows = [_row(i, request_id=f"big-{i}-" + "x" * 150) for i in range(12000)]
    import json

    assert len(json.dumps(rows)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "large", "rows": rows},
                                         format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["accepted"] == 12000


def test_batch_for_a_deployment_uses_the_version_it_serves(client_for, engineer, team):
    from tests.deployments.factories import deployment_in

    deployment = deployment_in(team, "healthy")
    version = deployment.current_revision.model_version
    f.monitor(team, version, f.reference(team, version))
    response = client_for(engineer).post(URL, {"deployment": deployment.pk, "batch_id": "dep", "rows": [_row(1)]},
                                         format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["model_version"] == version.pk
    missing = client_for(engineer).post(URL, {"batch_id": "none", "rows": [_row(1)]}, format="json")
    assert missing.status_code == 400 and "Say which model version" in missing.json()["error"]["message"]


def test_rows_land_in_monthly_partitions_created_on_demand(client_for, engineer, mon):
    rows = [_row(1, timestamp="2026-04-30T23:59:00Z"), _row(2, timestamp="2026-05-01T00:01:00Z")]
    response = client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": "edge", "rows": rows},
                                         format="json")
    assert response.status_code == 201
    with connection.cursor() as c:
        c.execute("SELECT tableoid::regclass::text, request_id FROM monitoring_prediction_log "
                  "WHERE model_version_id = %s ORDER BY ts", [mon.model_version_id])
        assert c.fetchall() == [("monitoring_prediction_log_y2026m04", "req-1"),
                                ("monitoring_prediction_log_y2026m05", "req-2")]
