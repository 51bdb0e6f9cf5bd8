"""How to exercise each API route in the authorization matrix.

A new route is covered by adding its entry here (the matrix test fails for a route without one);
the expected outcome for each role comes from the view's `capabilities` table and ROLE_CAPABILITIES.
"""
from dataclasses import dataclass, field
from typing import Callable

from django.utils import timezone

from apps.audit.services import audit_record
from apps.outbox.choices import OutboxStatus
from apps.outbox.models import OutboxMessage
from apps.teams.models import Membership
from apps.teams.services import api_token_create
from tests.factories import UserFactory, WebhookEndpointFactory


def _none(team, actor):
    return None


@dataclass
class Case:
    # Creates the object the route acts on, in `team` (owned by `actor` for the caller's own objects).
    make: Callable = _none
    kwargs: Callable = lambda obj: {"pk": obj.pk}
    body: dict[str, Callable] = field(default_factory=dict)  # method -> fn(team, obj) -> dict
    query: Callable = lambda team, obj: {}
    success: dict[str, int] = field(default_factory=dict)
    # Routes that return a collection: the outcome is "is the object in it", not a status code.
    list_like: bool = False
    listed: Callable = lambda response, obj: str(obj.pk) in [str(row["id"]) for row in response.json()["results"]]


def _token(team, actor):
    return api_token_create(actor=actor, name="ci")[0]


def _membership(team, actor):
    return Membership.objects.create(team=team, user=UserFactory(), role="viewer")


def _audit_event(team, actor):
    from django.db import transaction

    with transaction.atomic():
        return audit_record(actor=None, action="test.event", object_type="test", object_id="1", team=team)


def _dead_message(team, actor):
    return OutboxMessage.objects.create(topic="teams.deliver_webhook", payload={}, dedup_key=f"dead:{team.pk}",
                                        team=team, status=OutboxStatus.DEAD, next_attempt_at=timezone.now())


CASES: dict[str, Case] = {
    "api:me": Case(list_like=True, listed=lambda response, obj: True),
    "api:team-list": Case(
        make=lambda team, actor: team,
        body={"post": lambda team, obj: {"slug": "brand-new", "name": "Brand new"}},
        listed=lambda response, obj: obj.slug in [row["slug"] for row in response.json()["results"]],
    ),
    "api:team-detail": Case(make=lambda team, actor: team, kwargs=lambda obj: {"slug": obj.slug}),
    "api:membership-list": Case(
        make=_membership,
        body={"post": lambda team, obj: {"team": team.slug, "username": UserFactory().username, "role": "viewer"}},
    ),
    "api:membership-detail": Case(make=_membership, body={"patch": lambda team, obj: {"role": "approver"}}),
    "api:api-token-list": Case(make=_token, body={"post": lambda team, obj: {"name": "ci-pipeline"}}),
    "api:api-token-detail": Case(make=_token),
    "api:api-token-revoke": Case(make=_token, success={"post": 200}),
    "api:webhook-list": Case(
        make=lambda team, actor: WebhookEndpointFactory(team=team),
        body={"post": lambda team, obj: {"team": team.slug, "name": "slack", "url": "http://127.0.0.1:9/hook"}},
    ),
    "api:webhook-detail": Case(make=lambda team, actor: WebhookEndpointFactory(team=team)),
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
