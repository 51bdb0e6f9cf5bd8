"""Service accounts: non-human principals of a team (CI pipelines). A team admin creates one, issues it scoped,
expiring API tokens, revokes them, and deactivates the account. It holds a role in its team only
(SERVICE_ACCOUNT_ROLES: never one that approves or administers), and has no password and no SSO identity."""
import re

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.teams.choices import SERVICE_ACCOUNT_ROLES, Capability, TokenScope
from apps.teams.models import ApiToken, Membership, ServiceAccount, Team
from apps.teams.selectors import require_capability
from apps.teams.services import api_token_create_for

User = get_user_model()

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


def service_account_username(*, team: Team, name: str) -> str:
    """Says what it is wherever a username shows (audit log, approvals, memberships)."""
    return f"svc.{team.slug}.{name}"


@transaction.atomic
def service_account_create(*, actor, team: Team, name: str, role: str, description: str = "") -> ServiceAccount:
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    name = name.strip()
    if not NAME_RE.match(name):
        raise InvalidInput(f"'{name}' is not a service account name: lowercase letters, digits and dashes, up to 50.",
                           fields={"name": ["invalid"]})
    if role not in SERVICE_ACCOUNT_ROLES:
        raise InvalidInput(f"A service account may only be {' or '.join(SERVICE_ACCOUNT_ROLES)}: approving and "
                           f"administering are for people (separation of duties).",
                           fields={"role": ["not for a service account"]})
    username = service_account_username(team=team, name=name)
    if User.objects.filter(username=username).exists():
        raise Conflict(f"Team '{team.slug}' already has a service account named '{name}' (or a user '{username}' "
                       f"exists).", fields={"name": ["already taken"]})
    user = User(username=username, first_name=f"service account of {team.slug}"[:150])
    user.set_unusable_password()
    user.save()
    account = ServiceAccount.objects.create(user=user, team=team, name=name, description=description.strip()[:200],
                                            created_by=actor)
    Membership.objects.create(team=team, user=user, role=role)
    audit_record(actor=actor, action="service_account.create", target=account, team=team,
                 changes={"name": [None, name], "username": [None, username], "role": [None, role]})
    return account


def _check_usable(account: ServiceAccount) -> None:
    if not account.user.is_active:
        raise Conflict(f"Service account '{account.name}' is deactivated.")


@transaction.atomic
def service_account_token_create(*, actor, account: ServiceAccount, name: str, scope: str = TokenScope.READ,
                                 expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A token that acts as the service account, within its role and the scope; the plaintext is shown once."""
    require_capability(user=actor, team=account.team, capability=Capability.ADMINISTER)
    _check_usable(account)
    return api_token_create_for(actor=actor, owner=account.user, name=name, scope=scope,
                                expires_in_days=expires_in_days)


@transaction.atomic
def service_account_token_revoke(*, actor, account: ServiceAccount, token_id) -> ApiToken:
    require_capability(user=actor, team=account.team, capability=Capability.ADMINISTER)
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=account.user).first() if str(
        token_id).isdigit() else None
    if token is None:
        raise NotFound(f"Service account '{account.name}' has no token {token_id}.")
    if token.revoked_at is not None:
        raise Conflict(f"Token '{token.name}' was already revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S} UTC.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="service_account.token.revoke", target=token, team=account.team,
                 changes={"owner": [account.user.username, account.user.username],
                          "revoked_at": [None, token.revoked_at.isoformat()]})
    return token


@transaction.atomic
def service_account_deactivate(*, actor, account: ServiceAccount) -> ServiceAccount:
    """Its tokens stop working at once (the user is inactive) and are revoked; the row stays for the audit trail."""
    require_capability(user=actor, team=account.team, capability=Capability.ADMINISTER)
    _check_usable(account)
    now = timezone.now()
    revoked = ApiToken.objects.filter(user=account.user, revoked_at__isnull=True).update(revoked_at=now)
    account.user.is_active = False
    account.user.save(update_fields=["is_active"])
    audit_record(actor=actor, action="service_account.deactivate", target=account, team=account.team,
                 changes={"is_active": [True, False], "tokens_revoked": [0, revoked]})
    return account
