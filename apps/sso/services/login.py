"""The SSO login: a user found by (issuer, subject) or created from the claims, and the reconciliation of the
user's SSO memberships with the group mappings. Every change is audited in its transaction."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.teams.choices import MembershipSource, Role
from apps.teams.models import Membership, Team

from ..errors import LoginRefused
from ..models import GroupMapping, SsoIdentity

User = get_user_model()

# When several groups map one user into the same team, the first of these roles wins (one membership a team).
ROLE_PRECEDENCE = [Role.TEAM_ADMIN, Role.APPROVER, Role.ML_ENGINEER, Role.VIEWER]


def claimed_groups(claims: dict) -> list[str]:
    """The groups claim as a sorted list of strings (providers send a list, some a single string)."""
    value = claims.get(settings.OIDC_CLAIM_GROUPS) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise LoginRefused(f"The provider's '{settings.OIDC_CLAIM_GROUPS}' claim is neither a list nor a string.")
    return sorted({str(group) for group in value})


@transaction.atomic
def sso_login(*, issuer: str, claims: dict):
    """The user for verified claims: found by (issuer, subject), else created just in time; profile updated,
    memberships reconciled with the group mappings. LoginRefused says why nobody is logged in."""
    identity = (SsoIdentity.objects.select_for_update().select_related("user")
                .filter(issuer=issuer, subject=str(claims["sub"])).first())
    if identity is None:
        identity = _identity_create(issuer=issuer, claims=claims)
    user = identity.user
    if not user.is_active:
        raise LoginRefused(f"The account '{user.username}' is deactivated here; ask a platform admin.")
    _profile_update(user, claims)
    identity.groups, identity.last_login_at = claimed_groups(claims), timezone.now()
    identity.save(update_fields=["groups", "last_login_at"])
    memberships_reconcile(identity=identity)
    return user


def _identity_create(*, issuer: str, claims: dict) -> SsoIdentity:
    username = str(claims.get(settings.OIDC_CLAIM_USERNAME) or "").strip()
    if not username:
        raise LoginRefused(f"The provider sent no '{settings.OIDC_CLAIM_USERNAME}' claim (OIDC_CLAIM_USERNAME), "
                           f"so no account can be created; check the client's scopes and claim mappers.")
    if len(username) > User._meta.get_field("username").max_length:
        raise LoginRefused(f"The username '{username[:40]}…' is longer than this platform allows.")
    user = User.objects.filter(username=username).first()
    if user is not None:
        if (not settings.OIDC_LINK_EXISTING_USERS or hasattr(user, "sso_identity")
                or hasattr(user, "service_account")):
            raise LoginRefused(f"An account named '{username}' already exists here and is not linked to this "
                               f"provider; a platform admin must rename it or set OIDC_LINK_EXISTING_USERS.")
        action = "sso.user.link"
    else:
        user = User(username=username)
        user.set_unusable_password()
        user.save()
        action = "sso.user.create"
    identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=str(claims["sub"]))
    audit_record(actor=None, action=action, target=user, changes={"username": [None, username],
                                                                  "issuer": [None, issuer]})
    return identity


def _profile_update(user, claims: dict) -> None:
    email = str(claims.get(settings.OIDC_CLAIM_EMAIL) or "")[:254]
    first, _, last = str(claims.get(settings.OIDC_CLAIM_NAME) or "").strip().rpartition(" ")
    first, last = (first, last) if first else (last, "")
    wanted = {"email": email, "first_name": first[:150], "last_name": last[:150]}
    changed = [field for field, value in wanted.items() if getattr(user, field) != value]
    if changed:
        for field in changed:
            setattr(user, field, wanted[field])
        user.save(update_fields=changed)


def _desired(groups: list[str]) -> tuple[dict[int, tuple[Team, str, list[str]]], list[str]]:
    """team id → (team, role, the groups that give it); and the groups that give platform admin."""
    desired: dict[int, tuple[Team, str, list[str]]] = {}
    admin_groups = []
    for mapping in GroupMapping.objects.filter(group__in=groups).select_related("team"):
        if mapping.platform_admin:
            admin_groups.append(mapping.group)
            continue
        team, role, via = desired.get(mapping.team_id, (mapping.team, mapping.role, []))
        if ROLE_PRECEDENCE.index(mapping.role) < ROLE_PRECEDENCE.index(role):
            role = mapping.role
        desired[mapping.team_id] = (team, role, sorted([*via, mapping.group]))
    return desired, sorted(admin_groups)


def memberships_reconcile(*, identity: SsoIdentity) -> None:
    """Make the user's SSO memberships (and SSO-granted platform admin) what the mappings of the last login's
    groups say: added, changed, removed. Manual memberships and manually granted platform admin stay as they are."""
    user = identity.user
    desired, admin_groups = _desired(identity.groups)
    current = {m.team_id: m for m in Membership.objects.select_for_update().select_related("team").filter(user=user)}
    for team_id, membership in current.items():
        if membership.source != MembershipSource.SSO:
            continue
        if team_id not in desired:
            audit_record(actor=None, action="sso.membership.remove", target=membership,
                         changes={"user": [user.username, None], "role": [membership.role, None],
                                  "source": [MembershipSource.SSO, None]})
            membership.delete()
        elif membership.role != desired[team_id][1]:
            before, membership.role = membership.role, desired[team_id][1]
            membership.save(update_fields=["role"])
            audit_record(actor=None, action="sso.membership.change_role", target=membership,
                         changes={"user": [user.username, user.username], "role": [before, membership.role],
                                  "groups": [None, desired[team_id][2]]})
    for team_id, (team, role, via) in desired.items():
        if team_id in current:
            continue  # an SSO one was reconciled above; a manual one stays manual
        membership = Membership.objects.create(team=team, user=user, role=role, source=MembershipSource.SSO)
        audit_record(actor=None, action="sso.membership.add", target=membership,
                     changes={"user": [None, user.username], "role": [None, role],
                              "source": [None, MembershipSource.SSO], "groups": [None, via]})
    _platform_admin_reconcile(identity, admin_groups)


def _platform_admin_reconcile(identity: SsoIdentity, admin_groups: list[str]) -> None:
    user = identity.user
    if admin_groups and not user.is_superuser:
        user.is_superuser = user.is_staff = True
        user.save(update_fields=["is_superuser", "is_staff"])
        identity.platform_admin_from_sso = True
        identity.save(update_fields=["platform_admin_from_sso"])
        audit_record(actor=None, action="sso.platform_admin.grant", target=user,
                     changes={"is_superuser": [False, True], "groups": [None, admin_groups]})
    elif not admin_groups and user.is_superuser and identity.platform_admin_from_sso:
        user.is_superuser = user.is_staff = False
        user.save(update_fields=["is_superuser", "is_staff"])
        identity.platform_admin_from_sso = False
        identity.save(update_fields=["platform_admin_from_sso"])
        audit_record(actor=None, action="sso.platform_admin.revoke", target=user,
                     changes={"is_superuser": [True, False]})
