"""The login page and local passwords: the SSO button when configured, local passwords turned off for everyone
but platform admins (and for them too when asked), the mapping page for platform admins only."""
import pytest
from django.urls import reverse

from apps.sso.models import GroupMapping
from tests.factories import PASSWORD, UserFactory, member

pytestmark = pytest.mark.django_db


def password_login(client, user):
    return client.post(reverse("login"), {"username": user.username, "password": PASSWORD})


def test_the_login_page_offers_sso_when_configured(client, settings):
    assert "Sign in with" not in client.get(reverse("login")).content.decode()
    settings.OIDC_ISSUER, settings.OIDC_PROVIDER_NAME = "https://idp.example.test", "Acme Okta"
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Acme Okta" in page and "Or with a local password" in page


def test_local_passwords_off_leaves_platform_admins_theirs_while_allowed(client, settings, team):
    settings.OIDC_ISSUER = "https://idp.example.test"
    settings.LOCAL_PASSWORD_LOGIN = False
    person, admin = member(team, "team_admin", "alice"), UserFactory(username="root", is_superuser=True)
    refused = password_login(client, person)
    assert refused.status_code == 200 and "local passwords are for platform admins only" in refused.content.decode()
    assert "Platform admin login" in refused.content.decode()
    assert password_login(client, admin).status_code == 302
    client.logout()
    settings.LOCAL_ADMIN_LOGIN = False
    assert password_login(client, admin).status_code == 200
    assert "password" not in client.get(reverse("login")).content.decode().lower()


def test_a_password_session_ends_when_local_passwords_are_turned_off(client, settings, team):
    client.force_login(member(team, "viewer", "vera"), backend="apps.sso.backends.LocalPasswordBackend")
    assert client.get(reverse("home")).status_code == 200
    settings.LOCAL_PASSWORD_LOGIN = False
    assert client.get(reverse("home")).status_code == 302


def test_sso_login_when_sso_is_off_says_so(client):
    response = client.get(reverse("sso:login"))
    assert response.status_code == 403 and "not configured" in response.content.decode()


def test_only_platform_admins_reach_the_mapping_page(client, team, platform_admin):
    client.force_login(member(team, "team_admin", "alice"))
    assert client.get(reverse("sso:mappings")).status_code == 403
    client.force_login(platform_admin)
    response = client.post(reverse("sso:mapping-create"), {"group": "fraud-admins", "target": team.slug,
                                                           "role": "team_admin"}, follow=True)
    assert "Mapped fraud-admins" in response.content.decode()
    assert GroupMapping.objects.get(group="fraud-admins").team == team
    client.post(reverse("sso:mapping-create"), {"group": "ops", "target": "platform_admin"})
    assert GroupMapping.objects.get(group="ops").platform_admin
