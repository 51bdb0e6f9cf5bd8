import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import crypto, netguard
from apps.core.errors import Conflict, InvalidInput, NotFound, TooManyAttempts, Unauthenticated
from apps.core.lifecycle import delete_unreferenced, set_archived
from apps.core.masking import MASK, mask_url
from apps.outbox.services import outbox_enqueue

from .choices import (SCOPE_CAPABILITIES, SERVICE_ACCOUNT_ROLES, Capability, MembershipSource, PlatformRole, Role,
                      TokenScope)
from .models import (ApiToken, Membership, PlatformRoleGrant, ServiceAccount, Team, WebhookDelivery, WebhookEndpoint,
                     WebhookNotification)
from .selectors import (capabilities_for, is_service_account, platform_roles_for, require_capability,
                        require_platform_admin, token_scope)
from .throttling import login_lockout_message

User = get_user_model()

TOKEN_PREFIX = "cp"
WEBHOOK_SECRET_PREFIX = "whsec_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def team_create(*, actor, slug: str, name: str) -> Team:
    require_platform_admin(user=actor)
    if Team.objects.filter(slug=slug).exists():
        raise Conflict(f"A team with slug '{slug}' already exists.", fields={"slug": ["already taken"]})
    team = Team.objects.create(slug=slug, name=name)
    audit_record(actor=actor, action="team.create", target=team, team=team, changes={"slug": [None, slug],
                                                                                     "name": [None, name]})
    return team


@transaction.atomic
def team_set_archived(*, actor, team: Team, archived: bool) -> Team:
    """Archive (reversible: its history stays, it takes no new work) or restore a team; platform admins."""
    require_platform_admin(user=actor)
    return set_archived(team, actor=actor, archived=archived, label=f"Team '{team.slug}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"team.{op}", target=team,
                                                               team=team, changes=changes))


@transaction.atomic
def team_delete(*, actor, team: Team) -> None:
    """Delete a team nothing refers to (no members, models, deployments...); otherwise 409: archive it."""
    require_platform_admin(user=actor)
    delete_unreferenced(team, label=f"Team '{team.slug}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"team.{op}", target=team,
                                                               changes=changes))


def _validate_role(role: str) -> None:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role '{role}'. Use one of: {', '.join(Role.values)}.", fields={"role": ["unknown"]})


def _user_named(username: str):
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise InvalidInput(f"No user named '{username}'.", fields={"username": ["unknown user"]}) from None


@transaction.atomic
def membership_add(*, actor, team: Team, username: str, role: str) -> Membership:
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    _validate_role(role)
    user = _user_named(username)
    if is_service_account(user=user):
        raise Conflict(f"'{username}' is a service account of team '{user.service_account.team.slug}'; it belongs to "
                       f"that team only. Create a service account in '{team.slug}' instead.")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"'{username}' is already a member of '{team.slug}'; change the role instead.")
    audit_record(actor=actor, action="membership.add", target=membership, team=team,
                 changes={"user": [None, username], "role": [None, role]})
    return membership


def _check_manual(membership: Membership, verb: str) -> None:
    if membership.source == MembershipSource.SSO:
        raise Conflict(f"{membership.user.username}'s membership of '{membership.team.slug}' comes from SSO groups and "
                       f"is reconciled at every login, so it can't be {verb} here; change the user's groups at the "
                       f"identity provider, or the SSO group mappings.")


@transaction.atomic
def membership_change_role(*, actor, membership: Membership, role: str) -> Membership:
    require_capability(user=actor, team=membership.team, capability=Capability.ADMINISTER)
    _validate_role(role)
    _check_manual(membership, "changed")
    if is_service_account(user=membership.user) and role not in SERVICE_ACCOUNT_ROLES:
        raise InvalidInput(f"A service account may only be {' or '.join(SERVICE_ACCOUNT_ROLES)}: approving and "
                           f"administering are for people.", fields={"role": ["not for a service account"]})
    before = membership.role
    if before == role:
        return membership
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(actor=actor, action="membership.change_role", target=membership, changes={"role": [before, role]})
    return membership


@transaction.atomic
def membership_remove(*, actor, membership: Membership) -> None:
    require_capability(user=actor, team=membership.team, capability=Capability.ADMINISTER)
    _check_manual(membership, "removed")
    audit_record(actor=actor, action="membership.remove", target=membership,
                 changes={"user": [membership.user.username, None], "role": [membership.role, None]})
    membership.delete()


@transaction.atomic
def platform_role_grant(*, actor, username: str, role: str) -> PlatformRoleGrant:
    """Give a user a platform-wide role (finance). Platform admins only; twice → 409."""
    require_platform_admin(user=actor)
    if role not in PlatformRole.values:
        raise InvalidInput(f"Unknown platform role '{role}'. Use one of: {', '.join(PlatformRole.values)}.",
                           fields={"role": ["unknown"]})
    user = _user_named(username)
    try:
        with transaction.atomic():
            grant = PlatformRoleGrant.objects.create(user=user, role=role, granted_by=actor)
    except IntegrityError:
        raise Conflict(f"'{username}' has the '{role}' role already.", fields={"role": ["already granted"]})
    audit_record(actor=actor, action="platform_role.grant", target=grant,
                 changes={"user": [None, username], "role": [None, role]})
    return grant


@transaction.atomic
def platform_role_revoke(*, actor, grant: PlatformRoleGrant) -> None:
    require_platform_admin(user=actor)
    audit_record(actor=actor, action="platform_role.revoke", target=grant,
                 changes={"user": [grant.user.username, None], "role": [grant.role, None]})
    grant.delete()


@transaction.atomic
def api_token_create(*, actor, name: str, scope: str = TokenScope.READ,
                     expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Returns the token and its plaintext, which is never stored and can't be shown again."""
    return _api_token_issue(actor=actor, owner=actor, name=name, scope=scope, expires_in_days=expires_in_days,
                            action="api_token.create")


@transaction.atomic
def api_token_create_for(*, actor, owner, name: str, scope: str = TokenScope.READ,
                         expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A token for a principal the caller manages (a service account; the caller checks that right first)."""
    return _api_token_issue(actor=actor, owner=owner, name=name, scope=scope, expires_in_days=expires_in_days,
                            action="service_account.token.create")


def api_token_exchange(*, request, username: str, password: str, name: str, scope: str = TokenScope.READ,
                       expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Username and password → a token, for command-line clients. It is a login: a wrong password counts
    towards the lockout of (username, client address) exactly like the login form's (django-axes)."""
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        raise TooManyAttempts(login_lockout_message())
    if user is None:
        raise Unauthenticated("Wrong username or password (or the user is deactivated).")
    with transaction.atomic():
        token, plaintext = _api_token_issue(actor=user, owner=user, name=name, scope=scope,
                                            expires_in_days=expires_in_days, action="api_token.exchange")
    # Resets the failure count and records last_login, as a login through the form does.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    return token, plaintext


def _api_token_issue(*, actor, owner, name: str, scope: str, expires_in_days: int | None, action: str):
    """A token for `owner` (the actor, or a service account the actor administers), no more than the owner's
    roles allow nor than the actor's own token (when the actor came with one)."""
    if not name.strip():
        raise InvalidInput("Give the token a name that says what uses it.", fields={"name": ["required"]})
    if scope not in TokenScope.values:
        raise InvalidInput(f"Unknown scope '{scope}'. Use one of: {', '.join(TokenScope.values)}.",
                           fields={"scope": ["unknown"]})
    days = settings.API_TOKEN_DEFAULT_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise InvalidInput(f"A token lives 1 to {settings.API_TOKEN_MAX_DAYS} days; {days} is outside that.",
                           fields={"expires_in_days": [f"between 1 and {settings.API_TOKEN_MAX_DAYS}"]})
    # Never more than the user's roles allow anywhere (VIEW is every member's), nor more than the
    # token this request came with.
    ceiling = capabilities_for(user=owner) | {Capability.VIEW}
    if platform_roles_for(user=owner):
        # A platform role's writes (finance closing a month) need an admin-scoped token; such a token still
        # holds in each team no more than the user's role there, and platform-admin rights need a superuser.
        ceiling = frozenset(Capability.values)
    via_scope = token_scope(user=actor)
    if via_scope is not None:
        ceiling &= SCOPE_CAPABILITIES[via_scope]
    allowed = [value for value, caps in SCOPE_CAPABILITIES.items() if caps <= ceiling]
    if scope not in allowed:
        limit = ("this token's scope" if via_scope is not None else
                 "your roles" if owner == actor else f"the roles of {owner.get_username()}")
        raise InvalidInput(f"Scope '{scope}' is more than {limit} allow; choose one of: {', '.join(allowed)}.",
                           fields={"scope": ["above the user's role"]})
    expires_at = timezone.now() + timedelta(days=days)
    via_expires_at = getattr(actor, "api_token_expires_at", None)
    if via_expires_at is not None and expires_at > via_expires_at:
        raise InvalidInput(f"A token can't outlive the token that creates it (expires "
                           f"{via_expires_at:%Y-%m-%d %H:%M} UTC); ask for fewer days or log in.",
                           fields={"expires_in_days": ["beyond the creating token's expiry"]})
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=owner, name=name.strip(), prefix=prefix, secret_hash=hash_secret(secret),
                                    scope=scope, expires_at=expires_at)
    changes = {"name": [None, token.name], "prefix": [None, prefix], "scope": [None, scope],
               "expires_at": [None, expires_at.isoformat()]}
    if owner != actor:
        changes["owner"] = [None, owner.get_username()]
    audit_record(actor=actor, action=action, target=token, changes=changes)
    return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def api_token_revoke(*, actor, token: ApiToken) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.user_id != actor.pk:
        raise NotFound(f"API token {token.pk} not found.")
    if token.revoked_at is not None:
        raise Conflict(f"Token '{token.name}' was already revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S} UTC.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="api_token.revoke", target=token,
                 changes={"revoked_at": [None, token.revoked_at.isoformat()]})
    return token


def _webhook_url_checked(url: str) -> str:
    url = url.strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        # The URL may embed a secret, so the message names only where it points.
        raise InvalidInput(f"'{mask_url(url)}' is not an http(s) URL; give the receiver's full URL.",
                           fields={"url": ["invalid"]})
    netguard.check_url(url, unresolvable_ok=True)
    return url


def new_signing_secret() -> str:
    return f"{WEBHOOK_SECRET_PREFIX}{secrets.token_urlsafe(32)}"


@transaction.atomic
def webhook_create(*, actor, team: Team, name: str, url: str, events: list[str]) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its signing secret, which is shown this once (rotate to get a new one)."""
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    secret = new_signing_secret()
    endpoint = WebhookEndpoint(team=team, name=name, events=events)
    endpoint.url, endpoint.signing_secret = _webhook_url_checked(url), secret
    endpoint.save()
    audit_record(actor=actor, action="webhook.create", target=endpoint,
                 changes={"name": [None, name], "url": [None, endpoint.url_masked], "events": [None, events]})
    return endpoint, secret


@transaction.atomic
def webhook_rotate_secret(*, actor, endpoint: WebhookEndpoint) -> tuple[WebhookEndpoint, str]:
    """A new signing secret, shown once; deliveries sign with it from now on (the old one stops working)."""
    require_capability(user=actor, team=endpoint.team, capability=Capability.ADMINISTER)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = new_signing_secret()
    endpoint.signing_secret, endpoint.secret_rotated_at = secret, timezone.now()
    endpoint.save(update_fields=["secret_encrypted", "secret_rotated_at"])
    audit_record(actor=actor, action="webhook.rotate_secret", target=endpoint,
                 changes={"secret": [MASK, MASK], "secret_rotated_at": [None, endpoint.secret_rotated_at.isoformat()]})
    return endpoint, secret


@transaction.atomic
def webhook_delete(*, actor, endpoint: WebhookEndpoint) -> None:
    require_capability(user=actor, team=endpoint.team, capability=Capability.ADMINISTER)
    audit_record(actor=actor, action="webhook.delete", target=endpoint, changes={"url": [endpoint.url_masked, None]})
    endpoint.delete()


def webhooks_reencrypt() -> int:
    """Re-encrypt every webhook URL and secret with the first Fernet key (after prepending a new one)."""
    count = 0
    for endpoint in WebhookEndpoint.objects.all():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url_encrypted=crypto.rotate(endpoint.url_encrypted),
                                                              secret_encrypted=crypto.rotate(endpoint.secret_encrypted))
        count += 1
    return count


def webhooks_notify(*, team: Team, event: str, text: str, data: dict, key: str) -> int:
    """Queue a Slack-compatible message to each of the team's endpoints that wants the event.

    Must be called inside the transaction of the change it reports; `key` identifies that change so a
    retried request does not notify twice.
    """
    queued = 0
    for endpoint in team.webhooks.filter(active=True):
        if endpoint.wants(event):
            body, delivery_key = {"text": text, "event": event, **data}, f"webhook:{endpoint.pk}:{event}:{key}"
            # The row is the notification the runner owes (kind teams.webhook); the message only wakes it.
            WebhookNotification.objects.get_or_create(delivery_key=delivery_key,
                                                      defaults={"endpoint": endpoint, "event": event, "body": body})
            outbox_enqueue(topic="teams.deliver_webhook",
                           payload={"endpoint_id": endpoint.pk, "event": event, "body": body},
                           dedup_key=delivery_key, team=team)
            queued += 1
    return queued


def webhook_delivery_record(*, endpoint_id: int, event: str, delivery_key: str, attempt: int,
                            result) -> WebhookDelivery | None:
    """Log one delivery attempt (None when the endpoint was deleted meanwhile)."""
    if not WebhookEndpoint.objects.filter(pk=endpoint_id).exists():
        return None
    return WebhookDelivery.objects.create(
        endpoint_id=endpoint_id, event=event[:100], delivery_key=delivery_key[:255], attempt=attempt,
        outcome=result.outcome, status_code=result.status_code, latency_ms=result.latency_ms, error=result.error[:500])
