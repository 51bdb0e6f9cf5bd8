"""Group mappings (IdP group → team role, or platform admin): platform admins add and delete them, audited."""
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.teams.choices import Role
from apps.teams.models import Team
from apps.teams.selectors import require_platform_admin

from ..models import GroupMapping, SsoIdentity
from .login import memberships_reconcile


def _reconcile_group_members(group: str) -> int:
    """Apply a mapping change now to everybody whose last login reported the group (not at their next login)."""
    identities = SsoIdentity.objects.select_for_update().select_related("user").filter(groups__contains=[group])
    for identity in identities:
        memberships_reconcile(identity=identity)
    return len(identities)


@transaction.atomic
def group_mapping_create(*, actor, group: str, team: Team | None = None, role: str = "",
                         platform_admin: bool = False) -> GroupMapping:
    """Platform admins only; either (team, role) or platform admin. Applied at once to users already seen
    with the group, and at every later login."""
    require_platform_admin(user=actor)
    group = group.strip()
    if not group:
        raise InvalidInput("Give the IdP group (a value of the groups claim).", fields={"group": ["required"]})
    if platform_admin and (team is not None or role):
        raise InvalidInput("A mapping gives platform admin or a role in a team, not both.",
                           fields={"platform_admin": ["with a team"]})
    if not platform_admin:
        if team is None:
            raise InvalidInput("Choose the team the group maps into (or platform admin).", fields={"team": ["required"]})
        if role not in Role.values:
            raise InvalidInput(f"Unknown role '{role}'. Use one of: {', '.join(Role.values)}.",
                               fields={"role": ["unknown"]})
    try:
        with transaction.atomic():
            mapping = GroupMapping.objects.create(group=group, team=team, role=role if team else "",
                                                  platform_admin=platform_admin, created_by=actor)
    except IntegrityError:
        where = "platform admin" if platform_admin else f"team '{team.slug}'"
        raise Conflict(f"Group '{group}' is already mapped to {where}; delete that mapping to change it.",
                       fields={"group": ["already mapped"]})
    audit_record(actor=actor, action="sso.group_mapping.create", target=mapping, team=team,
                 changes={"group": [None, group], "team": [None, team.slug if team else None],
                          "role": [None, mapping.role or None], "platform_admin": [None, platform_admin]})
    _reconcile_group_members(group)
    return mapping


@transaction.atomic
def group_mapping_delete(*, actor, mapping: GroupMapping) -> None:
    require_platform_admin(user=actor)
    audit_record(actor=actor, action="sso.group_mapping.delete", target=mapping, team=mapping.team,
                 changes={"group": [mapping.group, None], "team": [mapping.team.slug if mapping.team else None, None],
                          "role": [mapping.role or None, None], "platform_admin": [mapping.platform_admin, None]})
    group = mapping.group
    mapping.delete()
    _reconcile_group_members(group)
