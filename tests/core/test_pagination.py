"""A malformed page request is a 400 naming the parameter; a page past the end is a 404 saying how many there are."""
import pytest

from tests.deployments.factories import deployment_in
from tests.factories import member

pytestmark = pytest.mark.django_db

URL = "/api/v1/deployments/deployments/"


@pytest.mark.parametrize("query,name", [
    ("page=0", "page"), ("page=-1", "page"), ("page=abc", "page"), ("page=1.5", "page"), ("page=%D9%A3", "page"),
    ("page_size=0", "page_size"), ("page_size=x", "page_size"), ("page_size=501", "page_size"),
])
def test_a_malformed_page_request_is_400_naming_the_parameter(client_for, team, query, name):
    response = client_for(member(team, "team_admin", "tadmin")).get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [name], error


def test_pages_past_the_end_are_404_with_the_page_count_and_valid_pages_work(client_for, team):
    for name in ("a", "b", "c"):
        deployment_in(team, "healthy", name=name)
    client = client_for(member(team, "team_admin", "tadmin"))
    body = client.get(f"{URL}?page_size=2&page=2").json()
    assert body["count"] == 3 and len(body["results"]) == 1 and body["next"] is None
    missing = client.get(f"{URL}?page_size=2&page=3")
    assert missing.status_code == 404
    assert "past the last page (2)" in missing.json()["error"]["message"]
    # An empty list still has its first page.
    assert client.get(f"{URL}?status=failed&page=1").status_code == 200
