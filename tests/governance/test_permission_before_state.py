"""Permission before state: a role that may not act on a request learns nothing about its state (403, not 409);
a role that may act gets the state's 409."""
import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.registry.choices import PromotionStatus
from apps.registry.models import Approval, Environment, PromotionRequest
from tests.registry.conftest import people  # noqa: F401 (fixture)
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

API = "/api/v1/registry"


@pytest.fixture
def cancelled(team, people):
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team), creator="mlflow")
    return PromotionRequest.objects.create(
        team=team, version=version, environment=Environment.objects.get(name="production"),
        requested_by=people["dave"], status=PromotionStatus.CANCELLED, decided_at=timezone.now(),
        policy={"approvals_required": 2, "approver_roles": ["approver", "team_admin"], "expiry_hours": 72,
                "gates": []}, gates_passed=False,
        gate_results=[{"kind": "metric", "metric": "accuracy", "value": 0.5, "op": ">=", "threshold": 0.9,
                       "passed": False, "message": "accuracy = 0.5 fails >= 0.9."}])


@pytest.mark.parametrize(("who", "verb", "body"), [
    ("vera", "approve", {}),  # viewer
    ("vera", "reject", {"comment": "no"}),
    ("dave", "approve", {}),  # ML engineer (and the requester)
    ("bob", "cancel", {}),  # approvers may not cancel
    ("bob", "override", {"reason": "fine"}),  # only team admins override
])
def test_a_role_that_may_not_act_gets_403_whatever_the_state(cancelled, people, client_for, who, verb, body):
    response = client_for(people[who]).post(f"{API}/promotions/{cancelled.pk}/{verb}/", body, format="json")
    assert response.status_code == 403, response.json()
    assert response.json()["error"]["code"] == "permission_denied"
    assert "cancelled" not in response.json()["error"]["message"]
    cancelled.refresh_from_db()
    assert cancelled.status == PromotionStatus.CANCELLED and not Approval.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="registry.promotion.").exists()


def test_a_role_that_may_act_gets_the_state_conflict(cancelled, people, client_for):
    response = client_for(people["bob"]).post(f"{API}/promotions/{cancelled.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "is cancelled" in response.json()["error"]["message"]
    response = client_for(people["admin"]).post(f"{API}/promotions/{cancelled.pk}/override/", {"reason": "ok"},
                                                format="json")
    assert response.status_code == 409


def test_revoke_and_policy_edits_check_the_role_first(team, people, client_for):
    model = RegisteredModelFactory(team=team)  # holds no alias: revoking is a 409 for those who may revoke
    url = f"{API}/models/{model.pk}/revoke-alias/"
    body = {"environment": "production", "reason": "bad canary"}
    assert client_for(people["vera"]).post(url, body, format="json").status_code == 403
    response = client_for(people["bob"]).post(url, body, format="json")
    assert response.status_code == 409 and "holds the 'production' alias" in response.json()["error"]["message"]
    existing = policy(team, approvals=2)
    response = client_for(people["bob"]).patch(f"{API}/policies/{existing.pk}/", {"approvals_required": 0},
                                               format="json")
    assert response.status_code == 403  # not the floor's 400: an approver may not edit policies at all
