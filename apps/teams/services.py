import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.outbox.services import outbox_enqueue

from .choices import Capability, Role
from .models import ApiToken, Membership, Team, WebhookEndpoint
from .selectors import require_capability, require_platform_admin

User = get_user_model()

TOKEN_PREFIX = "cp"


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


def _validate_role(role: str) -> None:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role '{role}'. Use one of: {', '.join(Role.values)}.", fields={"role": ["unknown"]})


@transaction.atomic
def membership_add(*, actor, team: Team, username: str, role: str) -> Membership:
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    _validate_role(role)
    try:
        user = User.objects.get(username=username)
    except User.DoesNotExist:
        raise InvalidInput(f"No user named '{username}'.", fields={"username": ["unknown user"]})
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"'{username}' is already a member of '{team.slug}'; change the role instead.")
    audit_record(actor=actor, action="membership.add", target=membership, team=team,
                 changes={"user": [None, username], "role": [None, role]})
    return membership


@transaction.atomic
def membership_change_role(*, actor, membership: Membership, role: str) -> Membership:
    require_capability(user=actor, team=membership.team, capability=Capability.ADMINISTER)
    _validate_role(role)
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
    audit_record(actor=actor, action="membership.remove", target=membership,
                 changes={"user": [membership.user.username, None], "role": [membership.role, None]})
    membership.delete()


@transaction.atomic
def api_token_create(*, actor, name: str) -> tuple[ApiToken, str]:
    """Returns the token and its plaintext, which is never stored and can't be shown again."""
    if not name.strip():
        raise InvalidInput("Give the token a name that says what uses it.", fields={"name": ["required"]})
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=actor, name=name.strip(), prefix=prefix, secret_hash=hash_secret(secret))
    audit_record(actor=actor, action="api_token.create", target=token, changes={"name": [None, token.name],
                                                                                "prefix": [None, prefix]})
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


@transaction.atomic
def webhook_create(*, actor, team: Team, name: str, url: str, events: list[str]) -> WebhookEndpoint:
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise InvalidInput(f"'{url}' is not an http(s) URL; give the receiver's full URL.", fields={"url": ["invalid"]})
    endpoint = WebhookEndpoint.objects.create(team=team, name=name, url=url, events=events)
    audit_record(actor=actor, action="webhook.create", target=endpoint,
                 changes={"name": [None, name], "url": [None, url], "events": [None, events]})
    return endpoint


@transaction.atomic
def webhook_delete(*, actor, endpoint: WebhookEndpoint) -> None:
    require_capability(user=actor, team=endpoint.team, capability=Capability.ADMINISTER)
    audit_record(actor=actor, action="webhook.delete", target=endpoint, changes={"url": [endpoint.url, None]})
    endpoint.delete()


def webhooks_notify(*, team: Team, event: str, text: str, data: dict, key: str) -> int:
    """Queue a Slack-compatible message to each of the team's endpoints that wants the event.

    Must be called inside the transaction of the change it reports; `key` identifies that change so a
    retried request does not notify twice.
    """
    queued = 0
    for endpoint in team.webhooks.filter(active=True):
        if endpoint.wants(event):
            outbox_enqueue(
                topic="teams.deliver_webhook",
                payload={"endpoint_id": endpoint.pk, "event": event, "body": {"text": text, "event": event, **data}},
                dedup_key=f"webhook:{endpoint.pk}:{event}:{key}",
                team=team,
            )
            queued += 1
    return queued
