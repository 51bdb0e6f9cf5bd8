from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from apps.core.errors import Forbidden, NotFound
from apps.core.lifecycle import require_active

from .choices import ROLE_CAPABILITIES, SCOPE_CAPABILITIES, Capability, PlatformRole
from .models import ApiToken, Membership, PlatformRoleGrant, Team

User = get_user_model()


def roles_for(*, user) -> dict[int, str]:
    """team id → role, for the teams the user belongs to."""
    if not user.is_authenticated:
        return {}
    cache = getattr(user, "_team_roles", None)
    if cache is None:
        cache = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        user._team_roles = cache
    return cache


def token_scope(*, user) -> str | None:
    """The scope of the API token the request was authenticated with; None for a session (no limit)."""
    return getattr(user, "api_token_scope", None)


def scope_allows(*, user, capability: str) -> bool:
    scope = token_scope(user=user)
    return scope is None or capability in SCOPE_CAPABILITIES[scope]


def capabilities_for(*, user) -> frozenset[str]:
    """Everything the user's roles allow in at least one team (all of it for a platform admin)."""
    if user.is_superuser:
        return frozenset(Capability.values)
    return frozenset().union(*(ROLE_CAPABILITIES[role] for role in roles_for(user=user).values()))


def team_ids_for(*, user, capability: str = Capability.VIEW) -> set[int] | None:
    """Ids of teams where the user holds the capability; None means every team (platform admin).

    Through an API token the capability must also be in the token's scope; every capability check
    comes through here, so the scope holds everywhere.
    """
    if not user.is_authenticated or not scope_allows(user=user, capability=capability):
        return set()
    if user.is_superuser:
        return None
    return {team_id for team_id, role in roles_for(user=user).items() if capability in ROLE_CAPABILITIES[role]}


def scope_to_teams(queryset: QuerySet, *, user, capability: str = Capability.VIEW, field: str = "team") -> QuerySet:
    """Filter any team-owned queryset to what the user may see. Fails closed for anonymous users."""
    ids = team_ids_for(user=user, capability=capability)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field}__in": ids})


def has_capability(*, user, team_id: int, capability: str) -> bool:
    ids = team_ids_for(user=user, capability=capability)
    return ids is None or team_id in ids


def require_capability(*, user, team: Team, capability: str) -> None:
    """Raise NotFound when the user can't see the team at all, Forbidden when the role is too weak, Conflict
    when the team is archived and the capability would start new work."""
    if has_capability(user=user, team_id=team.pk, capability=capability):
        if capability != Capability.VIEW:
            require_active(team, label=f"Team '{team.slug}'")
        return
    role = roles_for(user=user).get(team.pk)
    if role is None and not user.is_superuser:
        raise NotFound(f"Team '{team.slug}' not found.")
    if not scope_allows(user=user, capability=capability):
        raise _scope_forbidden(user=user, capability=capability)
    raise Forbidden(
        f"Your role '{role}' in team '{team.slug}' does not allow this; it needs the '{capability}' capability "
        f"({Capability(capability).label.lower()})."
    )


def require_platform_admin(*, user) -> None:
    if not (user.is_authenticated and user.is_superuser):
        raise Forbidden("Only platform admins may do this.")
    if not scope_allows(user=user, capability=Capability.ADMINISTER):
        raise _scope_forbidden(user=user, capability=Capability.ADMINISTER)


def is_service_account(*, user) -> bool:
    """A team's non-human principal (ServiceAccount): it acts through tokens only and never approves."""
    return bool(user.is_authenticated and user.pk is not None and hasattr(user, "service_account"))


def platform_roles_for(*, user) -> frozenset[str]:
    """The platform-wide roles granted to the user (a platform admin holds them all without a grant)."""
    if user.is_superuser:
        return frozenset(PlatformRole.values)
    if not user.is_authenticated or user.pk is None:  # anonymous, or a node agent (apps.costs.authentication)
        return frozenset()
    cache = getattr(user, "_platform_roles", None)
    if cache is None:
        cache = frozenset(PlatformRoleGrant.objects.filter(user=user).values_list("role", flat=True))
        user._platform_roles = cache
    return cache


def require_platform_role(*, user, role: str, capability: str = Capability.VIEW) -> None:
    """Platform admins and holders of `role`; `capability` is what a token's scope must allow (VIEW to read,
    ADMINISTER for a platform-level write such as closing a month)."""
    if role not in platform_roles_for(user=user):
        raise Forbidden(f"Only platform admins and users with the '{role}' role may do this.")
    if not scope_allows(user=user, capability=capability):
        raise _scope_forbidden(user=user, capability=capability)


def cost_team_ids_for(*, user) -> set[int] | None:
    """Teams whose costs the user may read: every team (None) for platform admins and finance, else the teams
    where the user may view. Costs only: finance sees no other team data (team_ids_for is unchanged)."""
    if PlatformRole.FINANCE in platform_roles_for(user=user) and scope_allows(user=user, capability=Capability.VIEW):
        return None
    return team_ids_for(user=user)


def _scope_forbidden(*, user, capability: str) -> Forbidden:
    """`capability` is a team capability, or ADMINISTER standing for platform-admin rights."""
    enough = [scope for scope, caps in SCOPE_CAPABILITIES.items() if capability in caps]
    return Forbidden(f"This API token's scope '{token_scope(user=user)}' does not allow this; it needs the "
                     f"'{capability}' capability. Use a token with scope {' or '.join(enough)}.", code="token_scope")


def team_list(*, user) -> QuerySet[Team]:
    return scope_to_teams(Team.objects.all(), user=user, field="pk")


def team_get(*, user, team_id) -> Team:
    try:
        return team_list(user=user).get(pk=team_id)
    except (Team.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Team {team_id} not found.")


def team_get_by_slug(*, user, slug: str) -> Team:
    try:
        return team_list(user=user).get(slug=slug)
    except Team.DoesNotExist:
        raise NotFound(f"Team '{slug}' not found.")


def platform_role_grant_list(*, user) -> QuerySet[PlatformRoleGrant]:
    require_platform_admin(user=user)
    return PlatformRoleGrant.objects.select_related("user", "granted_by")


def membership_list(*, user) -> QuerySet[Membership]:
    return scope_to_teams(Membership.objects.select_related("team", "user"), user=user)


def membership_get(*, user, membership_id) -> Membership:
    try:
        return membership_list(user=user).get(pk=membership_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Membership {membership_id} not found.")


def api_token_list(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user) if user.is_authenticated else ApiToken.objects.none()


def api_token_get(*, user, token_id) -> ApiToken:
    try:
        return api_token_list(user=user).get(pk=token_id)
    except (ApiToken.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"API token {token_id} not found.")


SESSION_TEAM_KEY = "current_team_id"


def current_team(*, request, teams: list[Team] | None = None) -> Team | None:
    """The team picked in the team switcher (kept in the session), else the user's first team."""
    teams = teams if teams is not None else list(team_list(user=request.user))
    chosen = request.session.get(SESSION_TEAM_KEY)
    for team in teams:
        if team.pk == chosen:
            return team
    return teams[0] if teams else None


def webhook_list(*, user) -> QuerySet:
    """Only team admins see webhooks (even masked, the host and delivery log are theirs to read)."""
    from .models import WebhookEndpoint

    return scope_to_teams(WebhookEndpoint.objects.select_related("team"), user=user, capability=Capability.ADMINISTER)


def webhook_get(*, user, webhook_id):
    from .models import WebhookEndpoint

    try:
        return webhook_list(user=user).get(pk=webhook_id)
    except (WebhookEndpoint.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Webhook {webhook_id} not found.")


def webhook_delivery_list(*, user, endpoint=None) -> QuerySet:
    """The delivery log (every attempt), newest first, for the webhooks the user administers."""
    from .models import WebhookDelivery

    deliveries = scope_to_teams(WebhookDelivery.objects.select_related("endpoint"), user=user,
                                capability=Capability.ADMINISTER, field="endpoint__team")
    return deliveries if endpoint is None else deliveries.filter(endpoint=endpoint)


def webhook_notification_list(*, user, status: str | None = None) -> QuerySet:
    """Notifications owed to the webhooks the user administers (the runner delivers them), newest first."""
    from .models import WebhookNotification

    notifications = scope_to_teams(WebhookNotification.objects.select_related("endpoint__team"), user=user,
                                   capability=Capability.ADMINISTER, field="endpoint__team")
    return notifications if status is None else notifications.filter(status=status)
