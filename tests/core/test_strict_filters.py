"""Unknown filter values are a 400 that names the allowed values, not an empty 200 that reads as "nothing"."""
import pytest

from tests.deployments.factories import deployment_in
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url,name,allowed", [
    ("/api/v1/registry/promotions/?status=bogus", "status", "approved"),
    ("/api/v1/registry/models/?presence=gone-ish", "presence", "present"),
    ("/api/v1/deployments/deployments/?status=bogus", "status", "healthy"),
    ("/api/v1/monitoring/runs/?status=bogus", "status", "succeeded"),
    ("/api/v1/audit/events/?object_type=deployment", "object_type", "deployments.deployment"),
    ("/api/v1/registry/versions/?model=abc", "model", "whole number"),
])
def test_an_unknown_filter_value_is_400_naming_the_allowed_ones(client_for, team, url, name, allowed):
    response = client_for(member(team, "team_admin", "tadmin")).get(url)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and name in error["fields"]
    assert allowed in error["message"], error["message"]


def test_a_known_value_still_filters(client_for, team):
    deployment_in(team, "healthy")
    client = client_for(member(team, "team_admin", "tadmin"))
    assert client.get("/api/v1/deployments/deployments/?status=healthy").json()["count"] == 1
    assert client.get("/api/v1/deployments/deployments/?status=failed").json()["count"] == 0
    events = client.get("/api/v1/audit/events/?object_type=deployments.deployment")
    assert events.status_code == 200
