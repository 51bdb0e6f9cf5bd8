"""A body nested deeper than Python's json decoder goes answers the strict parser's 400, not a 500."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/monitoring/labels/", "/api/v1/monitoring/monitors/"])
def test_a_body_nested_thousands_deep_is_a_400(seeded, client_for, path):
    response = client_for(seeded.operator).generic("POST", path, '{"labels": %s}' % ("[" * 5000 + "]" * 5000),
                                                   content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {"body": ["Nested more than 64 levels deep."]}
