"""Bad input anywhere in the API gets a 4xx in one shape, with a message that says what to fix."""
import pytest

from apps.teams.models import Membership

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["fields"], dict)
    return error


def test_malformed_json(client_for, team_admin):
    response = client_for(team_admin).generic("POST", "/api/v1/memberships/", "{not json",
                                              content_type="application/json")
    error = assert_error(response, 400, "malformed_request")
    assert "JSON" in error["message"]


def test_unknown_field_is_named(client_for, team, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": team.slug, "username": "x",
                                                                     "role": "viewer", "rol": "oops"}, format="json")
    error = assert_error(response, 400, "invalid")
    assert error["fields"]["rol"] == ["Unknown field. Allowed fields: role, team, username."]


def test_wrong_type_and_missing_field(client_for, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": ["fraud"], "role": "viewer"},
                                           format="json")
    error = assert_error(response, 400, "invalid")
    assert set(error["fields"]) == {"team", "username"}
    assert "username: This field is required." in error["message"]


def test_invalid_choice(client_for, team, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": team.slug, "username": "tadmin",
                                                                     "role": "owner"}, format="json")
    error = assert_error(response, 400, "invalid")
    assert "role" in error["fields"]


def test_body_that_is_not_an_object(client_for, team_admin):
    response = client_for(team_admin).post("/api/v1/tokens/", ["ci"], format="json")
    assert_error(response, 400, "invalid")


def test_missing_object(client_for, team_admin):
    error = assert_error(client_for(team_admin).get("/api/v1/memberships/999999/"), 404, "not_found")
    assert error["message"] == "Membership 999999 not found."


def test_non_numeric_id_is_not_found_not_500(client_for, team_admin):
    assert_error(client_for(team_admin).get("/api/v1/memberships/abc/"), 404, "not_found")


def test_unknown_api_path(client_for, team_admin):
    error = assert_error(client_for(team_admin).get("/api/v1/no-such-thing/"), 404, "not_found")
    assert "/api/docs/" in error["message"]


def test_method_not_allowed(client_for, team_admin):
    assert_error(client_for(team_admin).put("/api/v1/teams/fraud/", {}, format="json"), 405, "method_not_allowed")


def test_unauthenticated(api_client):
    error = assert_error(api_client.get("/api/v1/teams/"), 401, "not_authenticated")
    assert error["request_id"]


def test_conflict_changes_nothing(client_for, team, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": team.slug, "username": "tadmin",
                                                                     "role": "viewer"}, format="json")
    error = assert_error(response, 409, "conflict")
    assert "already a member" in error["message"]
    assert Membership.objects.get(user=team_admin).role == "team_admin"


def test_unknown_team_in_body(client_for, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": "nope", "username": "tadmin",
                                                                     "role": "viewer"}, format="json")
    assert assert_error(response, 404, "not_found")["message"] == "Team 'nope' not found."


def test_request_id_is_echoed(client_for, team_admin):
    response = client_for(team_admin).get("/api/v1/memberships/999/", HTTP_X_REQUEST_ID="ci-run-42")
    assert response["X-Request-ID"] == "ci-run-42"
    assert response.json()["error"]["request_id"] == "ci-run-42"


def test_oversized_json_body_is_413(client_for, team_admin, settings):
    body = '{"name": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = client_for(team_admin).generic("POST", "/api/v1/tokens/", body, content_type="application/json")
    error = assert_error(response, 413, "payload_too_large")
    assert "MB" in error["message"]
