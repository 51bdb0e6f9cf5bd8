"""The column path for JSON prediction batches (services/ingest_columns.py) stores what the general path stores,
and leaves every batch it does not take whole — rejected rows, values the strict JSON parser refuses — to the
general path, which answers as before."""
import json

import pyarrow.parquet as pq
import pytest
from django.db import connection

from apps.monitoring.logstorage import store
from apps.monitoring.models import PredictionFile
from apps.monitoring.services import ingest_columns

from . import factories as f

URL = "/api/v1/monitoring/predictions/"


@pytest.fixture
def paths(monkeypatch):
    """Which path each request took: "columns" or "rows"."""
    taken = []
    decode = ingest_columns.batch_columns

    def spy(*args, **kwargs):
        columns = decode(*args, **kwargs)
        taken.append("rows" if columns is None else "columns")
        return columns

    monkeypatch.setattr(ingest_columns, "batch_columns", spy)
    return taken


def _post(client, body: str):
    return client.generic("POST", URL, body, content_type="application/json")


def _stored(batch_pk: int) -> dict:
    with connection.cursor() as c:
        c.execute("SELECT ts, request_id, prediction, prediction_num, score, latency_ms, error, deployment_id "
                  "FROM monitoring_prediction_log WHERE batch_pk = %s ORDER BY ts, request_id", [batch_pk])
        log = c.fetchall()
    target = store()
    files = {}
    for file in PredictionFile.objects.filter(batch_pk=batch_pk).order_by("day"):
        table = pq.read_table(target.path(file.path), filesystem=target.filesystem)
        files[file.day] = (file.rows, file.columns, sorted(map(repr, table.to_pylist())),
                           {str(field.name): str(field.type) for field in table.schema})
    return {"log": log, "files": files}


ROWS = [
    {"timestamp": "2026-03-02T10:00:00Z", "request_id": "a", "prediction": "1", "latency_ms": 12.5, "score": 0.9,
     "features": {"amount": 1.5, "age": 30, "country": "de", "channel": "web"}},
    {"timestamp": "2026-03-02T11:30:00+02:00", "request_id": 17, "prediction": 1.0, "latency_ms": 3, "error": "",
     "features": {"amount": None, "age": 2**53 + 1, "country": 3, "channel": 2.0}},
    {"timestamp": "2026-03-02T12:00:00", "prediction": 7, "error": "boom " + "x" * 2100,
     "features": {"amount": -0.0, "country": True, "channel": None}},
    {"timestamp": " 2026-03-03 00:00:01.5+00:00 ", "request_id": "r" * 250, "prediction": False, "score": None,
     "features": {"amount": 1e300, "age": -4, "country": 1.25, "channel": "é ✓"}},
    {"timestamp": "2026-03-03T05:00:00-05:30", "request_id": "", "prediction": None, "latency_ms": 0,
     "features": {}},
]


def test_a_clean_batch_takes_the_column_path_and_stores_what_the_general_path_stores(
        client_for, engineer, mon, paths, monkeypatch):
    client = client_for(engineer)
    fast = _post(client, json.dumps({"model_version": mon.model_version_id, "batch_id": "fast", "rows": ROWS}))
    assert fast.status_code == 201, fast.json()
    assert paths == ["columns"]
    monkeypatch.setattr(ingest_columns, "decode_header", lambda request: None)
    general = _post(client, json.dumps({"model_version": mon.model_version_id, "batch_id": "general", "rows": ROWS}))
    assert general.status_code == 201, general.json()
    assert paths == ["columns"]  # the general path never asked for columns
    keep = ("received", "accepted", "rejected", "rejections", "examples", "source", "model_version", "duplicate")
    assert {k: fast.json()[k] for k in keep} == {k: general.json()[k] for k in keep}
    stored = _stored(fast.json()["id"])
    assert stored == _stored(general.json()["id"])
    assert len(stored["log"]) == 5 and len(stored["files"]) == 2


def test_numeric_prediction_as_text_and_a_retry(client_for, engineer, team, paths, monkeypatch):
    version = f.model_version(team, name="regressor")
    data = f.frame(200).assign(prediction=lambda d: d["amount"] * 2)
    f.monitor(team, version, f.reference(team, version, data))
    rows = [{"timestamp": "2026-03-02T10:00:00Z", "request_id": f"p{i}", "prediction": p,
             "features": {"amount": None if i == 1 else i / 3, "age": 2**60 + i, "country": "de", "channel": "web"}}
            for i, p in enumerate(["0.5", 3, 2.25, "nan", None])]
    client = client_for(engineer)
    body = json.dumps({"model_version": version.pk, "batch_id": "num", "rows": rows})
    first = _post(client, body)
    assert first.status_code == 201 and first.json()["accepted"] == 5
    assert _post(client, body).json()["duplicate"] is True
    assert paths == ["columns", "columns"]
    monkeypatch.setattr(ingest_columns, "decode_header", lambda request: None)
    general = _post(client, json.dumps({"model_version": version.pk, "batch_id": "num-general", "rows": rows}))
    assert _stored(first.json()["id"]) == _stored(general.json()["id"])


def test_rows_to_reject_go_the_general_way_with_the_same_reasons(client_for, engineer, mon, paths):
    good = ROWS[0]
    rows = [good, {**good, "features": {"amount": True}}, {**good, "latency_ms": -1}, {**good, "colour": 1},
            {**good, "features": {"amount": "2.5"}}, {**good, "timestamp": "yesterday"}]
    response = _post(client_for(engineer), json.dumps({"model_version": mon.model_version_id, "batch_id": "mixed",
                                                       "rows": rows}))
    assert response.status_code == 201, response.json()
    assert paths == ["rows"]
    assert (response.json()["accepted"], response.json()["rejections"]) == (2, {
        "amount": {"wrong type: expected a number": 1}, "latency_ms": {"negative": 1},
        "colour": {"unknown field (put features under 'features')": 1},
        "timestamp": {"not an ISO 8601 timestamp": 1}})


@pytest.mark.parametrize("value, message, where", [
    ('"d\\u0000e"', "NUL", "rows[0].features.country"),
    ('"\\ud800"', "lone surrogate", "rows[0].features.country"),
    ("1e400", "Number too large", "rows[0].features.amount"),
    ("1" + "0" * 30, "Integer out of range", "rows[0].features.amount"),
    ("[" * 70 + "]" * 70, "Nested more than 64 levels", None),
    ("NaN", "JSON parse error", None),
])
def test_what_the_strict_parser_refuses_is_still_refused(client_for, engineer, mon, value, message, where):
    column = "amount" if where and where.endswith("amount") else "country"
    body = ('{"model_version": %d, "batch_id": "strict", "rows": [{"timestamp": "2026-03-02T10:00:00Z", '
            '"features": {"%s": %s}}]}' % (mon.model_version_id, column, value))
    response = _post(client_for(engineer), body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert message in error["message"] + json.dumps(error["fields"])
    if where:
        assert where in error["fields"]


def test_a_duplicate_key_keeps_the_last_value_as_the_general_path_does(client_for, engineer, mon, paths):
    body = ('{"model_version": %d, "batch_id": "dup", "rows": [{"timestamp": "2026-03-02T10:00:00Z", '
            '"features": {"amount": 1, "amount": 2}}]}' % mon.model_version_id)
    response = _post(client_for(engineer), body)
    assert response.status_code == 201 and response.json()["accepted"] == 1 and paths == ["columns"]
    (_, _, values, _), = _stored(response.json()["id"])["files"].values()
    assert "'amount': 2.0" in values[0]


def test_a_body_nested_past_the_decoders_limits_answers_as_the_general_path_does(client_for, engineer, mon,
                                                                                monkeypatch):
    body = ('{"model_version": %d, "batch_id": "deep", "rows": %s}' % (mon.model_version_id, "[" * 5000 + "]" * 5000))
    client = client_for(engineer)
    first = _post(client, body)
    monkeypatch.setattr(ingest_columns, "decode_header", lambda request: None)
    general = _post(client, body)
    assert first.status_code == general.status_code == 400
    assert first.json()["error"]["fields"] == general.json()["error"]["fields"] == {
        "body": ["Nested more than 64 levels deep."]}
