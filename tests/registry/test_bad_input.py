"""Bad input through the API: each a 4xx whose message says why, and nothing changes."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.registry.choices import PromotionStatus
from apps.registry.models import Approval, ApprovalPolicy, PromotionRequest
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

API = "/api/v1/registry"


@pytest.fixture
def version(team):
    return ModelVersionFactory(model=RegisteredModelFactory(team=team), creator="dave")


@pytest.fixture
def open_request(version, people, team, client_for):
    policy(team, approvals=2, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9}])
    response = client_for(people["admin"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                                {"environment": "production"}, format="json")
    assert response.status_code == 201, response.json()
    return PromotionRequest.objects.get(pk=response.json()["id"])


def _unchanged(request, status=PromotionStatus.REQUESTED, approvals=0):
    request.refresh_from_db()
    assert request.status == status and Approval.objects.filter(request=request).count() == approvals


def test_unknown_model_and_version(people, client_for):
    client = client_for(people["dave"])
    for url in (f"{API}/models/999999/", f"{API}/versions/999999/", f"{API}/versions/abc/"):
        response = client.get(url)
        assert response.status_code == 404 and "not found" in response.json()["error"]["message"]
    response = client.post(f"{API}/versions/999999/request-promotion/", {"environment": "production"}, format="json")
    assert response.status_code == 404


def test_unknown_environment(version, people, client_for):
    response = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                               {"environment": "moon"}, format="json")
    assert response.status_code == 400
    assert "Unknown environment 'moon'" in response.json()["error"]["message"]
    assert "production" in response.json()["error"]["message"]
    assert not PromotionRequest.objects.exists()


def test_unknown_field_is_refused(version, people, client_for):
    response = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                               {"environment": "production", "force": True}, format="json")
    assert response.status_code == 400 and "force" in response.json()["error"]["fields"]


def test_approving_twice(open_request, people, client_for):
    client = client_for(people["bob"])
    assert client.post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json").status_code == 200
    response = client.post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "already approved" in response.json()["error"]["message"]
    _unchanged(open_request, approvals=1)


def test_self_approval_by_requester_and_creator(open_request, people, client_for, team):
    response = client_for(people["admin"]).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 403 and "separation of duties" in response.json()["error"]["message"]
    # dave registered the version in MLflow; give him approver rights to show the creator rule alone stops him.
    from apps.teams.models import Membership
    Membership.objects.filter(team=team, user=people["dave"]).update(role="approver")
    response = client_for(people["dave"]).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 403 and "You registered" in response.json()["error"]["message"]
    _unchanged(open_request)


def test_viewer_and_engineer_cannot_approve(open_request, people, client_for):
    for who in ("vera", "dave"):
        response = client_for(people[who]).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
        assert response.status_code == 403 and "'approve' capability" in response.json()["error"]["message"]
    _unchanged(open_request)


def test_role_not_in_policy(open_request, people, client_for):
    open_request.policy["approver_roles"] = ["approver"]
    open_request.save()
    other_admin = people["admin"]  # requester anyway; use a second admin
    from tests.factories import member
    second = member(open_request.team, "team_admin", "zed")
    response = client_for(second).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 403 and "lets approver decide" in response.json()["error"]["message"]
    assert other_admin


def test_approving_after_expiry(open_request, people, client_for):
    PromotionRequest.objects.filter(pk=open_request.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client_for(people["bob"]).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "expired" in response.json()["error"]["message"]
    _unchanged(open_request)


def test_approving_after_rejection(open_request, people, client_for):
    response = client_for(people["carol"]).post(f"{API}/promotions/{open_request.pk}/reject/",
                                                {"comment": "too slow"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    response = client_for(people["bob"]).post(f"{API}/promotions/{open_request.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "rejected" in response.json()["error"]["message"]
    _unchanged(open_request, status=PromotionStatus.REJECTED, approvals=1)


def test_reject_needs_a_comment(open_request, people, client_for):
    response = client_for(people["bob"]).post(f"{API}/promotions/{open_request.pk}/reject/", {}, format="json")
    assert response.status_code == 400 and "why" in response.json()["error"]["message"]
    _unchanged(open_request)


def test_gate_failure_blocks_and_is_shown_metric_by_metric(team, people, client_for):
    weak = ModelVersionFactory(model=RegisteredModelFactory(team=team), metrics={"accuracy": 0.5})
    policy(team, approvals=1, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9},
                                     {"kind": "metric", "metric": "latency_p95_ms", "op": "<=", "threshold": 50}])
    client = client_for(people["dave"])
    gates = client.get(f"{API}/versions/{weak.pk}/gates/", {"environment": "production"}).json()
    assert gates["passed"] is False
    assert [(g["metric"], g["passed"]) for g in gates["results"]] == [("accuracy", False), ("latency_p95_ms", False)]
    assert "missing" in gates["results"][1]["message"]
    request = client.post(f"{API}/versions/{weak.pk}/request-promotion/", {"environment": "production"},
                          format="json").json()
    response = client_for(people["bob"]).post(f"{API}/promotions/{request['id']}/approve/", {}, format="json")
    assert response.status_code == 409 and "accuracy = 0.5 fails >= 0.9" in response.json()["error"]["message"]
    response = client_for(people["admin"]).post(f"{API}/promotions/{request['id']}/override/", {"reason": ""},
                                                format="json")
    assert response.status_code == 400


def test_duplicate_open_request(open_request, people, client_for):
    response = client_for(people["dave"]).post(f"{API}/versions/{open_request.version_id}/request-promotion/",
                                               {"environment": "production"}, format="json")
    assert response.status_code == 409 and "open request" in response.json()["error"]["message"]


def test_policy_edit_by_team_admin_is_audited_and_validated(team, people, client_for):
    admin = client_for(people["admin"])
    response = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production", "approvals_required": 2,
                                               "approver_roles": ["approver"],
                                               "gates": [{"kind": "metric", "metric": "accuracy", "op": "~",
                                                          "threshold": 0.9}]}, format="json")
    assert response.status_code == 400 and not ApprovalPolicy.objects.exists()
    response = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production", "approvals_required": 2,
                                               "approver_roles": ["approver"],
                                               "gates": [{"kind": "metric", "metric": "accuracy", "op": ">=",
                                                          "threshold": 0.9}]}, format="json")
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    response = admin.patch(f"{API}/policies/{pk}/", {"approvals_required": 3}, format="json")
    assert response.status_code == 200 and response.json()["approvals_required"] == 3
    event = AuditEvent.objects.filter(action="registry.policy.update").get()
    assert event.changes == {"approvals_required": [2, 3]}
    response = client_for(people["bob"]).patch(f"{API}/policies/{pk}/", {"approvals_required": 0}, format="json")
    assert response.status_code == 403
    response = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production"}, format="json")
    assert response.status_code == 409


def test_alias_history_export(team, people, client_for):
    from apps.registry.models import AliasHolding
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team))
    AliasHolding.objects.create(model=version.model, alias="production", version=version, version_number=version.version,
                                since=timezone.now(), source="outside", reason="set in MLflow UI")
    client = client_for(people["vera"])
    response = client.get(f"{API}/models/{version.model_id}/alias-history/export/", {"format": "csv"})
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and "changed_outside_control_plane" in body.splitlines()[0]
    assert "True" in body.splitlines()[1]
    response = client.get(f"{API}/models/{version.model_id}/alias-history/export/", {"format": "xml"})
    assert response.status_code == 400
