"""The platform floor: team policies may tighten it, never loosen it; a protected environment without a team
policy refuses promotions instead of approving them; every request records which policy decided it."""
import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.outbox.models import OutboxMessage
from apps.registry import selectors
from apps.registry.choices import PolicySource, PromotionStatus
from apps.registry.models import ApprovalPolicy, PolicyFloor, PromotionRequest
from tests.registry.conftest import people  # noqa: F401 (fixture)
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

API = "/api/v1/registry"
FLOOR_GATE = {"kind": "metric", "metric": "latency_p95_ms", "op": "<=", "threshold": 50.0}


@pytest.fixture
def production_floor(platform_admin, client_for):
    """The migration's protected production floor, raised by a platform admin to 2 approvals and a latency gate."""
    floor = PolicyFloor.objects.get(environment__name="production")
    response = client_for(platform_admin).patch(f"{API}/policy-floors/{floor.pk}/",
                                                {"approvals_required": 2, "gates": [FLOOR_GATE]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["protected"] is True and response.json()["approvals_required"] == 2
    return floor


@pytest.fixture
def version(team):
    return ModelVersionFactory(model=RegisteredModelFactory(team=team, team_source="assigned"), creator="mlflow")


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    return error["message"]


def test_floor_change_is_audited_and_readable_by_everyone(production_floor, people, client_for, platform_admin):
    event = AuditEvent.objects.get(action="registry.floor.update")
    assert event.actor == platform_admin and event.changes["approvals_required"] == [1, 2]
    listed = client_for(people["vera"]).get(f"{API}/policy-floors/").json()["results"]
    assert [(f["environment"], f["protected"], f["approvals_required"]) for f in listed] == [("production", True, 2)]
    refused = client_for(people["admin"]).patch(f"{API}/policy-floors/{production_floor.pk}/",
                                                {"approvals_required": 0}, format="json")
    assert "Only platform admins" in _error(refused, 403, "permission_denied")
    # A protected environment can't have a floor without approvals.
    response = client_for(platform_admin).patch(f"{API}/policy-floors/{production_floor.pk}/",
                                                {"approvals_required": 0}, format="json")
    assert "protected" in _error(response, 400, "invalid")
    assert PolicyFloor.objects.get(pk=production_floor.pk).approvals_required == 2


def test_team_policy_below_the_floor_is_refused(production_floor, team, people, client_for):
    admin = client_for(people["admin"])
    response = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production",
                                               "approvals_required": 0}, format="json")
    message = _error(response, 400, "below_floor")
    assert "platform floor for production requires at least 2 approval(s)" in message
    assert response.json()["error"]["fields"]["approvals_required"] == ["at least 2 (platform floor)"]
    response = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production",
                                               "approvals_required": 2, "approver_roles": ["ml_engineer"]},
                          format="json")
    assert "may not let ml_engineer approve" in _error(response, 400, "below_floor")
    assert not ApprovalPolicy.objects.exists()

    existing = policy(team, approvals=2, roles=("approver",))
    response = admin.patch(f"{API}/policies/{existing.pk}/", {"approvals_required": 0}, format="json")
    assert "never loosen it" in _error(response, 400, "below_floor")
    existing.refresh_from_db()
    assert existing.approvals_required == 2
    assert not AuditEvent.objects.filter(action__startswith="registry.policy.").exists()


def test_deleting_the_production_policy_refuses_promotion(production_floor, team, people, version, client_for):
    admin = client_for(people["admin"])
    created = admin.post(f"{API}/policies/", {"team": team.slug, "environment": "production",
                                              "approvals_required": 2}, format="json")
    assert created.status_code == 201, created.json()
    assert admin.delete(f"{API}/policies/{created.json()['id']}/").status_code == 204
    deleted = AuditEvent.objects.get(action="registry.policy.delete")
    assert deleted.changes["approvals_required"] == [2, None] and deleted.changes["environment"] == ["production", None]

    response = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                               {"environment": "production"}, format="json")
    message = _error(response, 409, "no_policy")
    assert "production is a protected environment" in message and "a team admin must create one" in message
    assert "at least 2 approval(s)" in message
    assert not PromotionRequest.objects.exists()
    assert not OutboxMessage.objects.filter(topic="registry.publish_promotion").exists()
    assert not AuditEvent.objects.filter(action__startswith="registry.promotion.").exists()
    assert not selectors.version_approved_for(version=version, environment="production")
    page = Client()
    page.force_login(people["dave"])
    assert "promotions there are refused until a team admin creates one" in page.get(
        f"/registry/versions/{version.pk}/").content.decode()
    # Not protected, no floor, no policy: nothing to approve there.
    assert selectors.version_approved_for(version=version, environment="staging")


def test_weakening_within_the_floor_is_audited_with_before_and_after(production_floor, team, people, client_for):
    existing = policy(team, approvals=3, roles=("approver",))
    admin = client_for(people["admin"])
    response = admin.patch(f"{API}/policies/{existing.pk}/", {"approvals_required": 2,
                                                              "approver_roles": ["approver", "team_admin"]},
                           format="json")
    assert response.status_code == 200, response.json()
    event = AuditEvent.objects.get(action="registry.policy.weaken")
    assert event.changes["approvals_required"] == [3, 2]
    assert event.changes["approver_roles"] == [["approver"], ["approver", "team_admin"]]
    assert event.changes["loosened"] == [None, ["approvals_required", "approver_roles"]]
    assert admin.patch(f"{API}/policies/{existing.pk}/", {"approvals_required": 4}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="registry.policy.update").count() == 1


def test_request_records_the_effective_policy_and_who_decided(production_floor, team, people, version, client_for,
                                                              platform_admin):
    # The team wrote 2 approvals before the floor went up to 3: the floor decides the count now.
    policy(team, approvals=2, roles=("approver",), gates=[{"kind": "metric", "metric": "accuracy", "op": ">=",
                                                           "threshold": 0.9}])
    client_for(platform_admin).patch(f"{API}/policy-floors/{production_floor.pk}/", {"approvals_required": 3},
                                     format="json")
    response = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                               {"environment": "production"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["policy_source"] == PolicySource.TEAM and body["status"] == PromotionStatus.REQUESTED
    assert body["policy"]["approvals_required"] == 3 and body["policy"]["raised_by_floor"] == ["approvals_required",
                                                                                                "gates"]
    assert [(g["metric"], g["source"]) for g in body["policy"]["gates"]] == [("latency_p95_ms", "floor"),
                                                                             ("accuracy", "team")]
    assert [r["metric"] for r in body["gate_results"]] == ["latency_p95_ms", "accuracy"]
    request = PromotionRequest.objects.get(pk=body["id"])
    assert request.decided_by == ("team policy: 3 approval(s) from approver (raised by the platform floor: "
                                  "approvals_required, gates)")
    page = Client()
    page.force_login(people["vera"])
    model_page = page.get(f"/registry/models/{version.model_id}/").content.decode()
    assert "raised by the platform floor" in model_page
    request_page = page.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "platform floor for production: 3 approval(s)" in request_page
    policies_page = page.get("/registry/policies/").content.decode()
    assert 'id="floor-production"' in policies_page and "At least 3 approval(s)" in policies_page


def test_floor_alone_decides_in_an_unprotected_environment(team, people, version, client_for, platform_admin):
    created = client_for(platform_admin).post(f"{API}/policy-floors/", {"environment": "staging",
                                                                        "approvals_required": 1,
                                                                        "approver_roles": ["approver"]},
                                              format="json")
    assert created.status_code == 201, created.json()
    assert AuditEvent.objects.filter(action="registry.floor.create").exists()
    request = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                              {"environment": "staging"}, format="json").json()
    assert request["policy_source"] == PolicySource.FLOOR and request["status"] == PromotionStatus.REQUESTED
    approved = client_for(people["bob"]).post(f"{API}/promotions/{request['id']}/approve/", {}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == PromotionStatus.APPROVED


def test_team_policy_within_the_floor_approves_with_two(production_floor, team, people, version, client_for):
    policy(team, approvals=2, roles=("approver",))
    request = client_for(people["dave"]).post(f"{API}/versions/{version.pk}/request-promotion/",
                                              {"environment": "production"}, format="json").json()
    assert request["policy_source"] == PolicySource.TEAM and request["policy"]["raised_by_floor"] == ["gates"]
    for approver, status in (("bob", PromotionStatus.REQUESTED), ("carol", PromotionStatus.APPROVED)):
        response = client_for(people[approver]).post(f"{API}/promotions/{request['id']}/approve/", {}, format="json")
        assert response.status_code == 200 and response.json()["status"] == status
    page = Client()
    page.force_login(people["bob"])
    timeline = page.get(f"/registry/requests/{request['id']}/").content.decode()
    assert "decided by team policy: 2 approval(s) from approver (raised by the platform floor: gates)" in timeline


def test_platform_admin_edits_the_floor_on_the_policies_page(people, platform_admin):
    floor = PolicyFloor.objects.get(environment__name="production")
    form = {"protected": "1", "approvals_required": "2", "approver_roles": ["approver"],
            "gates": "fairness_gap <= 0.05"}
    team_admin = Client()
    team_admin.force_login(people["admin"])
    response = team_admin.post(f"/registry/policies/floors/{floor.pk}/", form, follow=True)
    assert "Only platform admins may do this." in response.content.decode()
    assert PolicyFloor.objects.get(pk=floor.pk).approvals_required == 1
    admin = Client()
    admin.force_login(platform_admin)
    response = admin.post(f"/registry/policies/floors/{floor.pk}/", form, follow=True)
    assert "Platform floor for production saved." in response.content.decode()
    floor.refresh_from_db()
    assert (floor.protected, floor.approvals_required, floor.approver_roles) == (True, 2, ["approver"])
    assert floor.gates == [{"kind": "metric", "metric": "fairness_gap", "op": "<=", "threshold": 0.05, "name": ""}]
