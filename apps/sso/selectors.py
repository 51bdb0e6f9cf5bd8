from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.teams.choices import Capability
from apps.teams.models import ApiToken, ServiceAccount
from apps.teams.selectors import platform_roles_for, require_platform_admin, roles_for, scope_to_teams

from .models import GroupMapping, SsoIdentity


def group_mapping_list(*, user) -> QuerySet[GroupMapping]:
    require_platform_admin(user=user)
    return GroupMapping.objects.select_related("team", "created_by")


def group_mapping_get(*, user, mapping_id) -> GroupMapping:
    try:
        return group_mapping_list(user=user).get(pk=mapping_id)
    except (GroupMapping.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Group mapping {mapping_id} not found.")


def sso_identity_for(*, user) -> SsoIdentity | None:
    return SsoIdentity.objects.filter(user=user).first() if user.is_authenticated else None


def has_no_team(*, user) -> bool:
    """Signed in, yet nothing to work on: no membership, no platform role, not a platform admin."""
    return not (user.is_superuser or roles_for(user=user) or platform_roles_for(user=user))


def service_account_list(*, user) -> QuerySet[ServiceAccount]:
    """The service accounts of the teams the user administers."""
    return scope_to_teams(ServiceAccount.objects.select_related("team", "user", "created_by"), user=user,
                          capability=Capability.ADMINISTER)


def service_account_get(*, user, account_id) -> ServiceAccount:
    try:
        return service_account_list(user=user).get(pk=account_id)
    except (ServiceAccount.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Service account {account_id} not found.")


def service_account_token_list(*, account: ServiceAccount) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=account.user)
