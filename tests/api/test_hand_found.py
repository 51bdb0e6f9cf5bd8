"""Each input that answered 500 when tried by hand (issue 12) answers 4xx in the one error shape, saying what to fix."""
import json

import pytest

pytestmark = pytest.mark.django_db

NUL = "\u0000"


def assert_error(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"] and isinstance(error["fields"], dict)
    text = error["message"] + json.dumps(error["fields"])
    for needle in needles:
        assert needle in text, error
    return error


@pytest.fixture
def operator(seeded, client_for):
    return client_for(seeded.operator)


@pytest.fixture
def admin(seeded, client_for):
    return client_for(seeded.admin)


def post_json(client, path: str, body) -> object:
    """The body as raw JSON text, so values Python's encoder would not write (10**30 is fine, NUL too) go as sent."""
    return client.generic("POST", path, json.dumps(body), content_type="application/json")


# Reference data
def test_reference_column_mixing_text_and_numbers(operator, seeded):
    response = post_json(operator, "/api/v1/monitoring/references/",
                         {"model_version": seeded.version.pk, "rows": [{"a": "x"}, {"a": 1}]})
    assert_error(response, 400, "Column 'a' mixes", "same type")


def test_reference_integer_past_64_bits(operator, seeded):
    response = post_json(operator, "/api/v1/monitoring/references/",
                         {"model_version": seeded.version.pk, "rows": [{"a": 10**30}]})
    error = assert_error(response, 400, "Integer out of range")
    assert "rows[0].a" in error["fields"]


# Prediction logs
def prediction(**fields) -> dict:
    return {"timestamp": "2026-03-02T10:00:00Z", "request_id": "r-1", "features": {"amount": 12.5, "age": 40},
            **fields}


def test_prediction_timestamp_at_the_end_of_year_9999(operator, seeded):
    response = post_json(operator, "/api/v1/monitoring/predictions/",
                         {"model_version": seeded.version.pk, "batch_id": "b-9999",
                          "rows": [prediction(timestamp="9999-12-31T23:59:59Z")]})
    assert_error(response, 400, "timestamp", "outside 1900-01-01 to 9000-01-01")


@pytest.mark.parametrize("field", ["request_id", "error"])
def test_prediction_text_with_nul(operator, seeded, field):
    response = post_json(operator, "/api/v1/monitoring/predictions/",
                         {"model_version": seeded.version.pk, "batch_id": "b-nul",
                          "rows": [prediction(**{field: f"a{NUL}b"})]})
    error = assert_error(response, 400, "NUL")
    assert f"rows[0].{field}" in error["fields"]


def test_prediction_feature_with_400_digits(operator, seeded):
    response = operator.generic("POST", "/api/v1/monitoring/predictions/",
                                '{"model_version": %d, "batch_id": "b-big", "rows": [{"timestamp": '
                                '"2026-03-02T10:00:00Z", "features": {"amount": %s}}]}' % (seeded.version.pk, "9" * 400),
                                content_type="application/json")
    error = assert_error(response, 400, "Integer out of range")
    assert "rows[0].features.amount" in error["fields"]


# Bounds on integer and text fields
@pytest.mark.parametrize("min_rows", [10**30, 2**40])
def test_monitor_min_rows_out_of_range(operator, seeded, min_rows):
    response = post_json(operator, "/api/v1/monitoring/monitors/",
                         {"team": seeded.team.slug, "name": "big", "model_version": seeded.version.pk,
                          "min_rows": min_rows})
    assert_error(response, 400, "min_rows")


def quota_body(**fields) -> dict:
    return {"team": "fraud", "cluster": "local", "gpu_type": "a100-80gb", "guaranteed": 1, **fields}


@pytest.mark.parametrize("guaranteed", [10**30, 2**40])
def test_quota_guaranteed_out_of_range(admin, guaranteed):
    assert_error(post_json(admin, "/api/v1/costs/quotas/", quota_body(guaranteed=guaranteed)), 400, "guaranteed")


def test_quota_cohort_longer_than_the_column(admin):
    assert_error(post_json(admin, "/api/v1/costs/quotas/", quota_body(cohort="c" * 500)), 400, "cohort",
                 "no more than 63 characters")


@pytest.mark.parametrize("gpu_count", [10**30, 2**40])
def test_admission_gpu_count_out_of_range(operator, gpu_count):
    response = post_json(operator, "/api/v1/costs/admission/",
                         {"team": "fraud", "cluster": "local", "gpu_type": "a100-80gb", "gpu_count": gpu_count})
    assert_error(response, 400, "gpu_count")


# Dates outside PostgreSQL's (and Python's) reach, before the first byte of an export
UNTIL = "1045-11-11T18:10:09.8%2B18:39"


def test_audit_events_until_far_in_the_past(operator):
    assert_error(operator.get(f"/api/v1/audit/events/?until={UNTIL}"), 400, "until", "from 1900-01-01")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_audit_export_validates_the_filter_before_streaming(operator, fmt):
    assert_error(operator.get(f"/api/v1/audit/export?format={fmt}&until={UNTIL}"), 400, "until")


def test_audit_export_still_streams(operator):
    response = operator.get("/api/v1/audit/export?format=csv")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"id,occurred_at")


# OPTIONS and a monitor without a reference
def test_options_on_labels(operator):
    response = operator.options("/api/v1/monitoring/labels/")
    assert response.status_code == 200, response.content
    assert response.json()["name"]


def test_full_report_of_a_monitor_whose_reference_was_removed(operator, seeded):
    response = operator.patch(f"/api/v1/monitoring/monitors/{seeded.monitor.pk}/", {"reference": None}, format="json")
    assert response.status_code == 200, response.content
    response = operator.post(f"/api/v1/monitoring/runs/{seeded.run.pk}/full-report/")
    assert_error(response, 409, "no reference dataset", "reference")


# Strict types: booleans are JSON booleans, quantities are parsed and bounded
def deployment_body(**fields) -> dict:
    return {"team": "fraud", "name": "strict", "model_version": 0, "environment": "staging", "cluster": "local",
            **fields}


@pytest.mark.parametrize("strategy, needle", [
    ({"kind": "canary", "steps": [{"weight": 10, "pause": "false"}, {"weight": 100}]}, "pause"),
    ({"kind": "blue_green", "auto_switch": "maybe"}, "auto_switch"),
])
def test_strategy_booleans_must_be_json_booleans(operator, seeded, strategy, needle):
    body = deployment_body(model_version=seeded.version.pk, strategy=strategy)
    assert_error(post_json(operator, "/api/v1/deployments/deployments/", body), 400, needle, "JSON boolean")


@pytest.mark.parametrize("resources, needle", [
    ({"cpu": "99999999999999999999", "memory": "1Gi"}, "cpu must be"),
    ({"cpu": "1", "memory": "9" * 40}, "memory must be"),
    ({"cpu": "2000", "memory": "1Gi"}, "cpu must be"),
    ({"cpu": "1", "memory": "17Ti"}, "memory must be"),
])
def test_quantities_are_parsed_and_bounded(operator, seeded, resources, needle):
    body = deployment_body(model_version=seeded.version.pk, resources=resources)
    assert_error(post_json(operator, "/api/v1/deployments/deployments/", body), 400, needle)


def test_the_ui_spec_refuses_a_string_pause_too():
    from apps.core.errors import InvalidInput
    from apps.deployments.spec import validate_strategy

    with pytest.raises(InvalidInput, match="pause must be true or false"):
        validate_strategy({"kind": "canary", "steps": [{"weight": 10, "pause": "false"}, {"weight": 100}]})


# NUL anywhere
def test_nul_in_a_query_string(operator):
    assert_error(operator.get("/api/v1/audit/events/?action=a%00b"), 400, "NUL")


def test_nul_in_a_json_key(operator, seeded):
    response = post_json(operator, "/api/v1/monitoring/labels/",
                         {"model_version": seeded.version.pk, "labels": [{f"request{NUL}_id": "x", "label": 1}]})
    assert_error(response, 400, "NUL")


def test_lone_surrogate_and_nul_key_are_not_echoed_into_storage(operator, seeded):
    """The error names the path with the NUL escaped: an Idempotency-Key stores the answer, and PostgreSQL
    refuses NUL and lone surrogates in JSONB."""
    response = operator.generic("POST", "/api/v1/monitoring/labels/",
                                '{"model_version": %d, "labels": [{"a\\u0000b": "\\ud800"}]}' % seeded.version.pk,
                                content_type="application/json", HTTP_IDEMPOTENCY_KEY="fuzz-nul")
    error = assert_error(response, 400, "NUL")
    assert list(error["fields"]) == ["labels[0].a\\u0000b"]
    response = operator.generic("POST", "/api/v1/monitoring/labels/",
                                '{"model_version": %d, "labels": [{"request_id": "\\udc00", "label": 1}]}'
                                % seeded.version.pk, content_type="application/json")
    assert_error(response, 400, "lone surrogate")
