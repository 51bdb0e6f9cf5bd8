"""Every API route × every role × own team / another team.

Routes come from the URL conf, so a new endpoint is checked as soon as it exists (and fails here
until tests/authz/cases.py says how to exercise it).
"""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.teams.choices import ROLE_CAPABILITIES, PlatformRole, Role
from apps.teams.models import PlatformRoleGrant
from tests.authz.cases import CASES
from tests.authz.routes import api_routes
from tests.factories import TeamFactory, UserFactory, member

ROUTES = api_routes()
# `finance` is a platform role held by a user in no team: it reads the costs of every team, nothing else.
ROLES = ["anonymous", *Role.values, "finance", "platform_admin"]
# Capabilities finance holds on every team: costs_view is a team's "view" for members, every team for finance and
# platform admins; finance marks platform-level cost routes (months, catalog reads) for platform admins and finance.
FINANCE_CAPABILITIES = {"costs_view", "finance"}
DEFAULT_SUCCESS = {"get": 200, "post": 201, "put": 200, "patch": 200, "delete": 204}


def test_every_route_has_a_case():
    missing = sorted({route.name for route in ROUTES} - set(CASES))
    assert not missing, f"Add these routes to tests/authz/cases.py: {missing}"


def expected_outcome(route, case, role: str, target: str) -> tuple[int, bool | None]:
    """(status, whether the object should be listed) for this role acting on an object of `target` team."""
    success = case.success.get(route.method, DEFAULT_SUCCESS[route.method])
    list_like = route.is_list or case.list_like
    if route.capability == "public":  # the body carries the credential (token exchange): the same for everyone
        return success, None
    if role == "anonymous":
        return 401, None
    if route.capability == "authenticated":  # platform-wide rules (policy floors): every signed-in user reads them
        return success, True if list_like else None
    if route.capability == "self":  # personal objects: platform admins don't see other people's either
        if route.is_detail and target == "other":
            return 404, None
        return success, (target == "own") if list_like else None
    if role == "platform_admin" or (role == "finance" and route.capability in FINANCE_CAPABILITIES):
        return success, True if list_like else None
    if route.capability in ("platform_admin", "finance"):
        return 403, None
    if role == "finance":  # a member of no team: every team's objects are another team's
        target = "other"
    capabilities = ROLE_CAPABILITIES[role] if target == "own" else frozenset()
    capability, lookup_capability = (_team_capability(route.capability), _team_capability(route.lookup_capability))
    if list_like:
        return 200, capability in capabilities
    if route.is_detail and lookup_capability not in capabilities:
        return 404, None
    if route.is_detail or target == "own":
        return (success if capability in capabilities else 403), None
    return 404, None  # acting on a team the caller is not in


def _team_capability(capability: str) -> str:
    """What a route's capability asks of a team member (costs_view is "view" in the team)."""
    return "view" if capability == "costs_view" else capability


@pytest.mark.parametrize("target", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", [r for r in ROUTES if r.name in CASES], ids=lambda r: r.id)
def test_authorization(route, role, target, db):
    case = CASES[route.name]
    own_team, other_team = TeamFactory(slug="own-team"), TeamFactory(slug="other-team")
    actor = None
    if role == "platform_admin":
        actor = UserFactory(username="platform", is_superuser=True, is_staff=True)
    elif role == "finance":
        actor = UserFactory(username="finance")
        PlatformRoleGrant.objects.create(user=actor, role=PlatformRole.FINANCE)
    elif role != "anonymous":
        actor = member(own_team, role, "actor")
    object_team = own_team if target == "own" else other_team
    # The caller's own objects (tokens) belong to the caller; "other" ones to somebody else.
    owner = actor if (target == "own" and actor is not None) else member(other_team, "team_admin", "stranger")
    obj = case.make(object_team, owner)

    client = APIClient()
    if actor is not None:
        client.force_authenticate(user=actor)
    url = reverse(route.name, kwargs=case.kwargs(obj) if route.is_detail else None)
    body_fn = case.body.get(route.method)
    body = body_fn(object_team, obj) if body_fn else None
    if route.method == "get":
        response = client.get(url, case.query(object_team, obj))
    else:
        response = getattr(client, route.method)(url, body, format="json")

    status, listed = expected_outcome(route, case, role, target)
    assert response.status_code == status, (
        f"{route.id} as {role} on {target} team: expected {status}, got {response.status_code}: "
        f"{getattr(response, 'data', None)}"
    )
    if status >= 400:
        body = response.json()
        assert set(body["error"]) >= {"code", "message", "fields"} and body["error"]["message"]
    if listed is not None and obj is not None:
        assert case.listed(response, obj) == listed, f"{route.id} as {role}: object listed should be {listed}"
