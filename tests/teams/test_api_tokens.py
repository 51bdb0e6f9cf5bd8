"""API tokens: shown once, stored hashed, usable as Bearer, revocable, audited."""
import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.teams.models import ApiToken

pytestmark = pytest.mark.django_db


def create_token(client_for, user, name="ci", scope="read") -> dict:
    response = client_for(user).post("/api/v1/tokens/", {"name": name, "scope": scope}, format="json")
    assert response.status_code == 201
    return response.json()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_token_is_shown_once_and_stored_hashed(client_for, team_admin):
    created = create_token(client_for, team_admin)
    plaintext = created["token"]
    assert plaintext.startswith(f"cp_{created['prefix']}_")
    stored = ApiToken.objects.get(pk=created["id"])
    assert plaintext.split("_", 2)[2] not in stored.secret_hash
    listed = client_for(team_admin).get("/api/v1/tokens/").json()["results"]
    assert "token" not in listed[0]


def test_token_authenticates_and_audits_as_the_user_via_token(client_for, team, team_admin):
    plaintext = create_token(client_for, team_admin, name="ci-bot", scope="admin")["token"]
    me = bearer(plaintext).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json() == {"username": "tadmin", "is_platform_admin": False, "platform_roles": [],
                         "teams": {team.slug: "team_admin"}}
    response = bearer(plaintext).post("/api/v1/webhooks/", {"team": team.slug, "name": "slack",
                                                             "url": "http://127.0.0.1:9/x"}, format="json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="webhook.create")
    assert event.actor_label == "tadmin (token ci-bot)"
    assert ApiToken.objects.get(name="ci-bot").last_used_at is not None


def test_revoked_token_is_refused(client_for, team_admin):
    created = create_token(client_for, team_admin)
    revoke = client_for(team_admin).post(f"/api/v1/tokens/{created['id']}/revoke/")
    assert revoke.status_code == 200 and revoke.json()["revoked_at"]
    response = bearer(created["token"]).get("/api/v1/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    again = client_for(team_admin).post(f"/api/v1/tokens/{created['id']}/revoke/")
    assert again.status_code == 409
    assert [e.action for e in AuditEvent.objects.order_by("id")] == ["api_token.create", "api_token.revoke"]


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer cp_abc_wrong", "Bearer a b"])
def test_bad_tokens_are_401_with_a_message(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"]


def test_token_name_is_required(client_for, team_admin):
    response = client_for(team_admin).post("/api/v1/tokens/", {"name": "  "}, format="json")
    assert response.status_code == 400
