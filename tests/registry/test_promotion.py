"""The promotion workflow end to end against the real MLflow server: gates, two approvals, the alias set in
MLflow, the previous holder recorded, and the MLflow-down path that completes later."""
import pytest

from apps.audit.models import AuditEvent
from apps.outbox.models import OutboxMessage
from apps.registry import selectors, services
from apps.registry.choices import AliasSource, PromotionStatus
from apps.registry.models import AliasHolding, PromotionRequest
from apps.registry.tasks import publish_promotion_task
from tests.registry.factories import policy

ACCURACY_GATE = {"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.90}


def publish(request):
    """Run the outbox's publish message through the real task body (what the worker would do)."""
    message = OutboxMessage.objects.get(dedup_key=f"registry-publish:{request.pk}")
    return publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True)


def mlflow_alias(uri, name, alias):
    from mlflow import MlflowClient

    return MlflowClient(uri).get_model_version_by_alias(name, alias)


def test_two_approvals_set_the_alias_in_mlflow(own_model, people, team, mlflow_uri):
    policy(team, gates=[ACCURACY_GATE])
    v2 = own_model["v2"]
    request = services.promotion_request(actor=people["dave"], version=v2, environment="production", comment="better")
    assert request.gates_passed and request.status == PromotionStatus.REQUESTED
    assert not selectors.version_approved_for(version=v2, environment="production")
    services.promotion_approve(actor=people["bob"], request=request, comment="ok")
    request.refresh_from_db()
    assert request.status == PromotionStatus.REQUESTED
    request = services.promotion_approve(actor=people["carol"], request=request, comment="ok too")
    assert request.status == PromotionStatus.APPROVED
    assert request.get_status_display() == "Approved, publishing to MLflow"
    publish(request)
    request.refresh_from_db()
    assert request.status == PromotionStatus.PUBLISHED
    mv = mlflow_alias(mlflow_uri, own_model["model"].name, "production")
    assert mv.version == "2"
    assert mv.tags["controlplane.approval_id"] == str(request.pk) and mv.tags["controlplane.approvers"] == "bob,carol"
    assert selectors.version_approved_for(version=v2, environment="production")
    holding = AliasHolding.objects.get(model=own_model["model"], alias="production", until__isnull=True)
    assert holding.version == v2 and holding.approved_by == ["bob", "carol"]
    actions = set(AuditEvent.objects.filter(object_id=str(request.pk)).values_list("action", flat=True))
    assert {"registry.promotion.request", "registry.promotion.approve", "registry.promotion.approved",
            "registry.promotion.published"} <= actions
    # A sync afterwards sees the alias the control plane set: no "outside" entry.
    services.sync_run_now(actor=None)
    assert not AliasHolding.objects.filter(model=own_model["model"], source=AliasSource.OUTSIDE).exists()


def test_promoting_again_records_the_previous_holder(own_model, people, team, mlflow_uri):
    policy(team, approvals=1)
    first = services.promotion_request(actor=people["dave"], version=own_model["v1"], environment="production")
    publish(services.promotion_approve(actor=people["bob"], request=first))
    second = services.promotion_request(actor=people["dave"], version=own_model["v2"], environment="production")
    publish(services.promotion_approve(actor=people["bob"], request=second))
    second.refresh_from_db()
    assert second.previous_version == own_model["v1"]
    holdings = AliasHolding.objects.filter(model=own_model["model"], alias="production").order_by("since")
    assert [(h.version_number, h.until is None) for h in holdings] == [(1, False), (2, True)]
    assert mlflow_alias(mlflow_uri, own_model["model"].name, "production").version == "2"
    own_model["v1"].refresh_from_db()
    assert own_model["v1"].aliases == [] and not selectors.version_approved_for(version=own_model["v1"],
                                                                                 environment="production")


def test_mlflow_down_leaves_request_publishing_then_completes(own_model, people, team, mlflow_uri, settings):
    policy(team, approvals=1)
    request = services.promotion_request(actor=people["dave"], version=own_model["v2"], environment="staging")
    # No staging policy: approved at once, waiting to publish.
    assert request.status == PromotionStatus.APPROVED
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    message = OutboxMessage.objects.get(dedup_key=f"registry-publish:{request.pk}")
    # The first attempt fails; the runner keeps the error and retries after a backoff (out of attempts: see
    # test_publish_attention.py). Before the runner the task raised and Celery retried it.
    result = publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True)
    assert result.get() == {"retry": 1}
    request.refresh_from_db()
    assert request.status == PromotionStatus.APPROVED  # never half-done: no alias, no holding
    assert request.attempts == 1 and "Connection" in request.last_error
    PromotionRequest.objects.filter(pk=request.pk).update(next_attempt_at=None)  # the backoff has passed
    assert not AliasHolding.objects.filter(model=own_model["model"], alias="staging").exists()
    settings.MLFLOW_TRACKING_URI = mlflow_uri
    publish(request)
    request.refresh_from_db()
    assert request.status == PromotionStatus.PUBLISHED
    assert mlflow_alias(mlflow_uri, own_model["model"].name, "staging").version == "2"


def test_failing_gate_blocks_approval_until_override(own_model, people, team):
    policy(team, approvals=1, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9},
                                     {"kind": "metric", "metric": "auc", "op": ">=", "threshold": 0.8},
                                     {"kind": "artifact", "name": "model_card.md"}])
    request = services.promotion_request(actor=people["dave"], version=own_model["v1"], environment="production")
    assert not request.gates_passed
    by_metric = {r["metric"]: r for r in request.gate_results}
    assert by_metric["accuracy"]["value"] == 0.85 and not by_metric["accuracy"]["passed"]
    assert "Metric 'auc' is missing" in by_metric["auc"]["message"]
    assert not by_metric["model_card.md"]["passed"]
    from apps.core.errors import Conflict, Forbidden
    with pytest.raises(Conflict, match="Quality gates fail"):
        services.promotion_approve(actor=people["bob"], request=request)
    with pytest.raises(Forbidden):
        services.promotion_override(actor=people["bob"], request=request, reason="not an admin")
    services.promotion_override(actor=people["admin"], request=request, reason="hotfix, reviewed offline")
    assert AuditEvent.objects.filter(action="registry.promotion.override", object_id=str(request.pk)).exists()
    request = services.promotion_approve(actor=people["bob"], request=request)
    assert request.status == PromotionStatus.APPROVED


def test_no_regression_gate_compares_with_the_holder(own_model, people, team):
    policy(team, approvals=1, gates=[{"kind": "no_regression", "metric": "accuracy", "op": ">=", "threshold": 0.02}])
    publish(services.promotion_approve(actor=people["bob"], request=services.promotion_request(
        actor=people["dave"], version=own_model["v2"], environment="production")))
    results = selectors.gate_results(version=own_model["v1"], environment="production")
    assert len(results) == 1 and not results[0]["passed"] and "regresses" in results[0]["message"]
    assert selectors.gate_results(version=own_model["v2"], environment="production")[0]["passed"]


def test_revoke_removes_the_alias(own_model, people, team, mlflow_uri):
    from mlflow.exceptions import MlflowException

    request = services.promotion_request(actor=people["dave"], version=own_model["v2"], environment="staging")
    publish(request)
    revoke = services.alias_revoke(actor=people["bob"], model=own_model["model"], environment="staging",
                                   reason="bad canary")
    publish(revoke)
    with pytest.raises(MlflowException):
        mlflow_alias(mlflow_uri, own_model["model"].name, "staging")
    holding = AliasHolding.objects.get(model=own_model["model"], alias="staging")
    assert holding.until is not None


def test_webhooks_on_request_approval_rejection(synced, people, team):
    from tests.factories import WebhookEndpointFactory

    WebhookEndpointFactory(team=team, events=["registry."])
    policy(team, approvals=2)
    request = services.promotion_request(actor=people["dave"], version=synced["v2"], environment="production")
    services.promotion_approve(actor=people["bob"], request=request)
    services.promotion_reject(actor=people["carol"], request=request, comment="not this week")
    events = [m.payload["event"] for m in OutboxMessage.objects.filter(topic="teams.deliver_webhook")
              .order_by("created_at")]
    assert events == ["registry.promotion.requested", "registry.promotion.approval", "registry.promotion.rejected"]
    body = OutboxMessage.objects.filter(topic="teams.deliver_webhook").first().payload["body"]
    assert body["text"] and body["model"] == synced["model"].name


def test_expiry_job(synced, people, team):
    from datetime import timedelta

    from django.utils import timezone

    policy(team)
    request = services.promotion_request(actor=people["dave"], version=synced["v2"], environment="production")
    assert services.promotions_expire(now=timezone.now() + timedelta(hours=73)) == 1
    request.refresh_from_db()
    assert request.status == PromotionStatus.EXPIRED
