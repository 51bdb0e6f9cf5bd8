"""The demo seed leaves the registry ready for the demo: v1 went to production with its failing fairness gate
overridden, then v2 replaced it through a completed approval (the alias set in MLflow), a production policy
with gates, and one request waiting for an approver."""
import pytest
from django.core.management import call_command

from apps.demo import seed as demo
from apps.registry import selectors
from apps.registry.choices import PromotionStatus
from apps.registry.models import ApprovalPolicy, PolicyFloor, PromotionRequest, RegisteredModel


@pytest.fixture
def clean_mlflow(mlflow_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    if client.search_registered_models(filter_string=f"name='{demo.MODEL_NAME}'"):
        client.delete_registered_model(demo.MODEL_NAME)
    return client


def test_seed_demo_registry(db, clean_mlflow, capsys):
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    out = capsys.readouterr().out
    assert "v1 → staging request waiting" in out
    model = RegisteredModel.objects.get(name=demo.MODEL_NAME)
    v2 = model.versions.get(version=2)
    assert model.team.slug == "fraud" and model.aliases == {"production": 2}
    assert selectors.version_approved_for(version=v2, environment="production")
    assert clean_mlflow.get_model_version_by_alias(demo.MODEL_NAME, "production").version == "2"
    floor = PolicyFloor.objects.get(environment__name="production")
    assert floor.protected and floor.approvals_required == 2
    production = ApprovalPolicy.objects.get(team__slug="fraud", environment__name="production")
    assert production.approvals_required == 2 and production.approver_roles == ["approver"]
    assert {g.metric for g in production.gates.all()} == {"accuracy", "latency_p95_ms", "fairness_gap"}
    published = PromotionRequest.objects.get(version=v2, environment__name="production")
    assert published.status == PromotionStatus.PUBLISHED and published.gates_passed
    assert sorted(published.approvals.values_list("user__username", flat=True)) == ["bob", "carol"]
    assert published.policy_source == "team" and published.policy["floor"]["approvals_required"] == 2
    first = PromotionRequest.objects.get(version__version=1, environment__name="production")
    assert first.status == PromotionStatus.PUBLISHED and not first.gates_passed
    assert first.override_by.username == "alice" and "fairness" in first.override_reason
    waiting = PromotionRequest.objects.get(status=PromotionStatus.REQUESTED)
    assert waiting.version.version == 1 and waiting.environment.name == "staging"
