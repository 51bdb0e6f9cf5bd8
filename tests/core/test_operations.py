"""Health, readiness, metrics and API docs, served without internet access."""
import pytest

pytestmark = pytest.mark.django_db


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "alive"}


def test_readyz_names_the_failed_dependency(client, settings):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens on the discard port
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["mlflow"]
    assert body["checks"]["postgresql"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.mark.mlflow
def test_readyz_is_200_when_everything_is_up(client, mlflow_uri):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"


def test_metrics_are_prometheus_text(client, settings):
    settings.METRICS_TOKEN = "scraper-secret"  # /metrics is not public (tests/security/test_auth_hardening.py)
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper-secret")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content or b"python_info" in response.content


def test_openapi_schema_lists_every_api_route(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/teams/" in schema["paths"]
    assert "/api/v1/audit/export" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_swagger_ui_assets_are_local(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn." not in page and "unpkg" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_plotly_js_comes_from_the_installed_package(client):
    response = client.get("/static/plotly/plotly.min.js")
    assert response.status_code == 200
