"""Service accounts: created by team admins in their team with a non-approving role, acting only through scoped,
expiring tokens; named as service accounts in the audit log; refused when they try to decide a promotion."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict, InvalidInput
from apps.registry import services as registry
from apps.sso import services
from apps.teams import services as team_services
from apps.teams.models import Membership
from tests.factories import PASSWORD, member
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def admin_client(client_for, team_admin):
    return client_for(team_admin)


def create(admin_client, team, **body):
    return admin_client.post(reverse("api:service-account-list"),
                             {"team": team.slug, "name": "ci", "role": "ml_engineer", **body}, format="json")


def test_a_team_admin_creates_one_and_issues_a_token_that_works_within_its_role(admin_client, team, other_team):
    response = create(admin_client, team, description="GitHub Actions")
    assert response.status_code == 201, response.json()
    account = response.json()
    assert (account["username"], account["role"], account["is_active"]) == ("svc.fraud.ci", "ml_engineer", True)

    tokens_url = reverse("api:service-account-tokens", kwargs={"pk": account["id"]})
    too_much = admin_client.post(tokens_url, {"name": "deploy", "scope": "approve"}, format="json")
    assert too_much.status_code == 400 and "roles of svc.fraud.ci" in too_much.json()["error"]["message"]
    issued = admin_client.post(tokens_url, {"name": "deploy", "scope": "operate", "expires_in_days": 7}, format="json")
    assert issued.status_code == 201 and issued.json()["token"].startswith("cp_")

    me = bearer(issued.json()["token"]).get(reverse("api:me"))
    assert me.json()["teams"] == {"fraud": "ml_engineer"}  # its own team only
    assert [t["name"] for t in admin_client.get(tokens_url).json()["results"]] == ["deploy"]
    assert "token" not in admin_client.get(tokens_url).json()["results"][0]


def test_roles_that_approve_or_administer_are_refused(admin_client, team, team_admin):
    for role in ("approver", "team_admin"):
        response = create(admin_client, team, role=role)
        assert response.status_code == 400 and "for people" in response.json()["error"]["message"]
    account = services.service_account_create(actor=team_admin, team=team, name="ci", role="viewer")
    membership = Membership.objects.get(user=account.user)
    with pytest.raises(InvalidInput, match="only be viewer or ml_engineer"):
        team_services.membership_change_role(actor=team_admin, membership=membership, role="approver")


def test_it_belongs_to_one_team(team, other_team, team_admin):
    account = services.service_account_create(actor=team_admin, team=team, name="ci", role="viewer")
    other_admin = member(other_team, "team_admin", "search-lead")
    with pytest.raises(Conflict, match="belongs to that team only"):
        team_services.membership_add(actor=other_admin, team=other_team, username=account.user.username, role="viewer")


def test_it_has_no_password_and_its_deactivation_stops_its_tokens(api_client, team, team_admin):
    account = services.service_account_create(actor=team_admin, team=team, name="ci", role="viewer")
    exchange = api_client.post(reverse("api:token-exchange"),
                               {"username": account.user.username, "password": PASSWORD}, format="json")
    assert exchange.status_code == 401
    _, plaintext = services.service_account_token_create(actor=team_admin, account=account, name="read")
    assert bearer(plaintext).get(reverse("api:me")).status_code == 200
    services.service_account_deactivate(actor=team_admin, account=account)
    assert bearer(plaintext).get(reverse("api:me")).status_code == 401


def test_its_actions_are_audited_as_a_service_account(team, team_admin):
    account = services.service_account_create(actor=team_admin, team=team, name="ci", role="ml_engineer")
    _, plaintext = services.service_account_token_create(actor=team_admin, account=account, name="deploy",
                                                         scope="operate")
    response = bearer(plaintext).post(reverse("api:api-token-list"), {"name": "child", "expires_in_days": 1},
                                      format="json")
    assert response.status_code == 201
    event = AuditEvent.objects.filter(action="api_token.create").latest("id")
    assert event.actor_label == "svc.fraud.ci (service account, token deploy)"
    issued = AuditEvent.objects.get(action="service_account.token.create")
    assert issued.actor_label == "tadmin" and issued.changes["owner"] == [None, "svc.fraud.ci"]


def test_it_can_never_approve_a_promotion(team, team_admin):
    """Even with an approver role written straight into the database and an approve-scoped token."""
    policy(team, approvals=1, roles=["approver", "team_admin"])
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team))
    engineer = member(team, "ml_engineer", "dave")
    request = registry.promotion_request(actor=engineer, version=version, environment="production")
    account = services.service_account_create(actor=team_admin, team=team, name="ci", role="ml_engineer")
    Membership.objects.filter(user=account.user).update(role="approver")
    _, plaintext = services.service_account_token_create(actor=team_admin, account=account, name="ci",
                                                         scope="approve")

    response = bearer(plaintext).post(reverse("api:registry-promotion-approve", kwargs={"pk": request.pk}),
                                      {"comment": "lgtm"}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "service_account"
    assert "svc.fraud.ci' is a service account; separation of duties says only people decide" in error["message"]
    assert not request.approvals.exists()
