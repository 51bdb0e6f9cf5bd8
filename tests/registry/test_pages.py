"""Server-rendered pages: each renders for a team member and acts through the same services as the API."""
from django.test import Client

from apps.registry.choices import PromotionStatus
from apps.registry.models import ApprovalPolicy, PromotionRequest
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_pages_render_and_promotion_flows_through_forms(team, people):
    model = RegisteredModelFactory(team=team, name="fraud-model")
    version = ModelVersionFactory(model=model, metrics={"accuracy": 0.5}, creator="mlflow")
    policy(team, approvals=1, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9}])
    dave = _client(people["dave"])
    assert "fraud-model" in dave.get("/registry/").content.decode()
    assert "fraud-model" not in dave.get("/registry/?q=nomatch").content.decode()
    page = dave.get(f"/registry/models/{model.pk}/").content.decode()
    assert "Alias history" in page and "metric-charts" in page
    page = dave.get(f"/registry/versions/{version.pk}/").content.decode()
    assert "accuracy = 0.5 fails &gt;= 0.9" in page
    response = dave.post(f"/registry/versions/{version.pk}/request-promotion/", {"environment": "production"})
    request = PromotionRequest.objects.get()
    assert response.status_code == 302 and response.url == f"/registry/requests/{request.pk}/"
    bob = _client(people["bob"])
    assert f"#{request.pk}" in bob.get("/registry/inbox/").content.decode()
    response = bob.post(f"/registry/requests/{request.pk}/approve/", {}, HTTP_REFERER=f"/registry/requests/{request.pk}/")
    page = bob.get(response.url).content.decode()
    assert "Quality gates fail" in page
    admin = _client(people["admin"])
    admin.post(f"/registry/requests/{request.pk}/override/", {"reason": "known data issue"})
    bob.post(f"/registry/requests/{request.pk}/approve/", {"comment": "fine"})
    request.refresh_from_db()
    assert request.status == PromotionStatus.APPROVED
    page = bob.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "Approved, publishing to MLflow" in page and "known data issue" in page


def test_policy_form(team, people):
    admin = _client(people["admin"])
    admin.post("/registry/policies/new/", {"team": team.slug, "environment": "staging", "approvals_required": "1",
                                           "approver_roles": ["approver"], "expiry_hours": "24",
                                           "gates": "accuracy >= 0.9\nno_regression f1 >= 0.01\nartifact model_card.md"})
    p = ApprovalPolicy.objects.get()
    assert [g.kind for g in p.gates.all()] == ["metric", "no_regression", "artifact"]
    response = admin.post(f"/registry/policies/{p.pk}/", {"approvals_required": "2", "approver_roles": ["approver"],
                                                          "expiry_hours": "24", "gates": "accuracy ~ 3"},
                          HTTP_REFERER="/registry/policies/")
    assert "not understood" in admin.get(response.url).content.decode()
    p.refresh_from_db()
    assert p.approvals_required == 1
    assert "Save" not in _client(people["bob"]).get("/registry/policies/").content.decode()
