"""Matrix cases for /api/v1/monitoring/."""
from tests.monitoring import factories as f

from .base import Case


def _monitor(team, actor):
    return f.monitor(team, name=f"m-{team.slug}")


def _reference(team, actor):
    return f.reference(team, f.model_version(team))


def _run(team, actor):
    return f.run(_monitor(team, actor))


def _run_needing_attention(team, actor):
    return f.run(_monitor(team, actor), status="needs_attention", attempts=3, last_error="MemoryError: window too big")


def _alert(team, actor):
    return f.alert(_monitor(team, actor))


def _batch(team, actor):
    mon = _monitor(team, actor)
    return f.logs(mon.model_version, f.frame(5), batch_id="seed")


def _ingest_body(team, obj):
    return {"model_version": obj.model_version_id, "batch_id": "b-1",
            "rows": [{"timestamp": "2026-03-02T10:00:00Z", "request_id": "x1",
                      "features": {"amount": 3.5, "age": 30, "country": "de", "channel": "web"}, "prediction": "1"}]}


CASES: dict[str, Case] = {
    "api:monitoring-reference-list": Case(
        make=_reference,
        body={"post": lambda team, obj: {"model_version": obj.model_version_id, "name": "inline",
                                         "rows": [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]}},
    ),
    "api:monitoring-reference-detail": Case(make=_reference),
    "api:monitoring-reference-schema": Case(
        make=_reference, success={"post": 200},
        body={"post": lambda team, obj: {"schema": [c for c in obj.schema if c["name"] != "channel"]}},
    ),
    "api:monitoring-monitor-list": Case(
        make=_monitor,
        body={"post": lambda team, obj: {"team": team.slug, "name": "another", "model_version": obj.model_version_id,
                                         "reference": obj.reference_id}},
    ),
    "api:monitoring-monitor-detail": Case(make=_monitor, body={"patch": lambda team, obj: {"drift_share": 0.3}}),
    "api:monitoring-monitor-run": Case(make=_monitor),
    "api:monitoring-monitor-auto-rollback": Case(make=_monitor, success={"post": 200},
                                                 body={"post": lambda team, obj: {"enabled": False}}),
    # No deployment linked / no retraining job configured: the allowed roles get the 409 that says so.
    "api:monitoring-monitor-rollback": Case(make=_monitor, success={"post": 409}),
    "api:monitoring-monitor-retrain": Case(make=_monitor, success={"post": 409}),
    "api:monitoring-run-list": Case(make=_run),
    "api:monitoring-run-detail": Case(make=_run),
    # A run without a report: allowed roles get the 404 that says so.
    "api:monitoring-run-report": Case(make=_run, success={"get": 404}),
    "api:monitoring-run-full-report": Case(make=_run, success={"post": 202}),
    "api:monitoring-run-retry": Case(make=_run_needing_attention, success={"post": 200}),
    "api:monitoring-alert-list": Case(make=_alert),
    "api:monitoring-alert-detail": Case(make=_alert),
    "api:monitoring-alert-acknowledge": Case(make=_alert, success={"post": 200}),
    "api:monitoring-alert-resolve": Case(make=_alert, success={"post": 200},
                                         body={"post": lambda team, obj: {"comment": "fixed upstream"}}),
    "api:monitoring-alert-rollback": Case(make=_alert, success={"post": 409}),
    "api:monitoring-alert-retrain": Case(make=_alert, success={"post": 409}),
    "api:monitoring-prediction-batch-list": Case(make=_batch, body={"post": _ingest_body}),
    "api:monitoring-prediction-batch-detail": Case(make=_batch),
    "api:monitoring-label-list": Case(
        make=_batch,
        body={"post": lambda team, obj: {"model_version": obj.model_version_id,
                                         "labels": [{"request_id": "r-1", "label": "1"}]}},
    ),
}
