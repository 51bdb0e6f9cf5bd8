"""Matrix cases for the foundation's routes (teams, tokens, webhooks, audit, outbox)."""
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.models import AllowedNetwork
from apps.outbox.choices import OutboxStatus
from apps.outbox.models import OutboxMessage
from apps.teams.models import Membership, PlatformRoleGrant
from apps.teams.services import api_token_create
from tests.factories import PASSWORD, UserFactory, WebhookEndpointFactory

from .base import Case, _archived


def _token(team, actor):
    return api_token_create(actor=actor, name="ci")[0]


def _membership(team, actor):
    return Membership.objects.create(team=team, user=UserFactory(), role="viewer")


def _platform_role(team, actor):
    return PlatformRoleGrant.objects.create(user=UserFactory(), role="finance")


def _audit_event(team, actor):
    with transaction.atomic():
        return audit_record(actor=None, action="test.event", object_type="test", object_id="1", team=team)


def _allowed_network(team, actor):
    return AllowedNetwork.objects.create(cidr="10.9.0.0/16", reason="on-premises relay")


def _dead_message(team, actor):
    return OutboxMessage.objects.create(topic="teams.deliver_webhook", payload={}, dedup_key=f"dead:{team.pk}",
                                        team=team, status=OutboxStatus.DEAD, next_attempt_at=timezone.now())


def _team_with_member(team, actor):
    Membership.objects.create(team=team, user=UserFactory(), role="viewer")
    return team


CASES: dict[str, Case] = {
    "api:me": Case(list_like=True, listed=lambda response, obj: True),
    "api:token-exchange": Case(
        make=lambda team, actor: UserFactory(username="cli-user"),
        body={"post": lambda team, obj: {"username": obj.username, "password": PASSWORD, "name": "cli"}},
    ),
    "api:team-list": Case(
        make=lambda team, actor: team,
        body={"post": lambda team, obj: {"slug": "brand-new", "name": "Brand new"}},
        listed=lambda response, obj: obj.slug in [row["slug"] for row in response.json()["results"]],
    ),
    # DELETE: the team has a member, so it can only be archived (409 once the permission check passes).
    "api:team-detail": Case(make=_team_with_member, kwargs=lambda obj: {"slug": obj.slug}, success={"delete": 409}),
    "api:team-archive": Case(make=lambda team, actor: team, kwargs=lambda obj: {"slug": obj.slug},
                             success={"post": 200}),
    "api:team-restore": Case(make=lambda team, actor: _archived(team), kwargs=lambda obj: {"slug": obj.slug},
                             success={"post": 200}),
    "api:membership-list": Case(
        make=_membership,
        body={"post": lambda team, obj: {"team": team.slug, "username": UserFactory().username, "role": "viewer"}},
    ),
    "api:membership-detail": Case(make=_membership, body={"patch": lambda team, obj: {"role": "approver"}}),
    "api:platform-role-list": Case(
        make=_platform_role, body={"post": lambda team, obj: {"username": UserFactory().username, "role": "finance"}},
    ),
    "api:platform-role-detail": Case(make=_platform_role),
    "api:api-token-list": Case(make=_token, body={"post": lambda team, obj: {"name": "ci-pipeline"}}),
    "api:api-token-detail": Case(make=_token),
    "api:api-token-revoke": Case(make=_token, success={"post": 200}),
    "api:webhook-list": Case(
        make=lambda team, actor: WebhookEndpointFactory(team=team),
        body={"post": lambda team, obj: {"team": team.slug, "name": "slack", "url": "http://127.0.0.1:9/hook"}},
    ),
    "api:webhook-detail": Case(make=lambda team, actor: WebhookEndpointFactory(team=team)),
    "api:webhook-rotate-secret": Case(make=lambda team, actor: WebhookEndpointFactory(team=team), success={"post": 200}),
    "api:webhook-deliveries": Case(make=lambda team, actor: WebhookEndpointFactory(team=team)),
    "api:webhook-retry-notifications": Case(make=lambda team, actor: WebhookEndpointFactory(team=team),
                                            success={"post": 200}),
    "api:allowed-network-list": Case(
        make=_allowed_network, body={"post": lambda team, obj: {"cidr": "10.8.0.0/16", "reason": "relay"}},
    ),
    "api:allowed-network-detail": Case(make=_allowed_network),
    "api:audit-event-list": Case(make=_audit_event),
    "api:audit-event-detail": Case(make=_audit_event),
    "api:audit-export": Case(
        make=_audit_event, list_like=True, query=lambda team, obj: {"format": "jsonl"},
        listed=lambda response, obj: obj.hash in b"".join(response.streaming_content).decode(),
    ),
    "api:outbox-message-list": Case(make=_dead_message),
    "api:outbox-message-detail": Case(make=_dead_message),
    "api:outbox-message-requeue": Case(make=_dead_message, success={"post": 200}),
}
