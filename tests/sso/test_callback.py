"""The callback's refusals, against the real provider: a code the provider does not know, an answer to a login
this browser never started, and the provider's own error."""
import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def started_login(client) -> str:
    """Start a login (state, nonce and PKCE verifier in the session) and return its state."""
    response = client.get(reverse("sso:login"))
    assert response.status_code == 302 and "code_challenge_method=S256" in response["Location"]
    return response["Location"].split("state=")[1].split("&")[0]


def test_a_code_the_provider_refuses_is_a_clear_error(client, oidc_provider):
    state = started_login(client)
    response = client.get(reverse("sso:callback"), {"code": "made-up", "state": state})
    assert response.status_code == 403
    assert "Test IdP (the identity provider) refused the login: it answered HTTP 400 to POST" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_answer_to_a_login_not_started_here_is_refused(client, oidc_provider):
    response = client.get(reverse("sso:callback"), {"code": "c", "state": "s"})
    assert response.status_code == 403 and "does not belong to a login started in this browser" in response.content.decode()
    started_login(client)
    response = client.get(reverse("sso:callback"), {"code": "c", "state": "someone-elses"})
    assert response.status_code == 403 and "does not belong to a login started in this browser" in response.content.decode()


def test_the_providers_error_is_shown(client, oidc_provider):
    state = started_login(client)
    response = client.get(reverse("sso:callback"), {"error": "access_denied", "error_description": "User cancelled",
                                                    "state": state})
    assert response.status_code == 403 and "Test IdP answered: User cancelled." in response.content.decode()
