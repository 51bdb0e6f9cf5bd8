"""Matrix cases for SSO group mappings and service accounts."""
from django.contrib.auth import get_user_model

from apps.sso.models import GroupMapping
from apps.teams.models import ApiToken, Membership, ServiceAccount

from .base import Case


def _mapping(team, actor):
    return GroupMapping.objects.create(group=f"idp-{team.slug}", team=team, role="viewer")


def _service_account(team, actor):
    user = get_user_model().objects.create(username=f"svc.{team.slug}.ci")
    Membership.objects.create(team=team, user=user, role="ml_engineer")
    account = ServiceAccount.objects.create(user=user, team=team, name="ci")
    account.token_id = ApiToken.objects.create(user=user, name="deploy", prefix=f"sa{account.pk:06d}",
                                               secret_hash="0" * 64, scope="read",
                                               expires_at="2100-01-01T00:00:00Z").pk
    return account


CASES: dict[str, Case] = {
    "api:sso-group-mapping-list": Case(
        make=_mapping, body={"post": lambda team, obj: {"group": "idp-new", "team": team.slug, "role": "approver"}},
    ),
    "api:sso-group-mapping-detail": Case(make=_mapping),
    "api:service-account-list": Case(
        make=_service_account,
        body={"post": lambda team, obj: {"team": team.slug, "name": "ci-new", "role": "ml_engineer"}},
    ),
    "api:service-account-detail": Case(make=_service_account),
    "api:service-account-deactivate": Case(make=_service_account, success={"post": 200}),
    "api:service-account-tokens": Case(make=_service_account, body={"post": lambda team, obj: {"name": "deploy-2"}}),
    "api:service-account-revoke-token": Case(make=_service_account, success={"post": 200},
                                             body={"post": lambda team, obj: {"token": obj.token_id}}),
}
