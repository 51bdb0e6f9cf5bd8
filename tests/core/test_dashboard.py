"""The dashboard gathers what needs the user's attention, only from their own teams."""
import pytest
from django.db import transaction

from apps.audit.services import audit_record
from tests.deployments.factories import deployment_in
from tests.factories import TeamFactory, member

pytestmark = pytest.mark.django_db


def test_dashboard_shows_my_teams_deployments_and_activity_only(client):
    mine, theirs = TeamFactory(slug="fraud"), TeamFactory(slug="search")
    user = member(mine, "viewer", "vera")
    deployment_in(mine, "healthy", name="fraud-scorer")
    deployment_in(theirs, "failed", name="search-ranker")
    with transaction.atomic():
        audit_record(actor=None, action="fraud.thing", object_type="x", object_id=1, team=mine)
        audit_record(actor=None, action="search.thing", object_type="x", object_id=2, team=theirs)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "fraud-scorer" in page and "search-ranker" not in page
    assert "fraud.thing" in page and "search.thing" not in page
    assert "Nothing waits for you." in page and "No open alerts." in page


def test_dashboard_for_a_user_without_teams(client):
    user = member(TeamFactory(slug="other"), "viewer", "lonely")
    user.memberships.all().delete()
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "You are not in a team yet." in page
    assert "No deployments yet." in page


def test_approver_sees_the_request_waiting_for_them_and_the_requester_does_not(client, django_capture_on_commit_callbacks):
    from apps.registry import services
    from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

    team = TeamFactory(slug="fraud")
    bob, dave = member(team, "approver", "bob"), member(team, "ml_engineer", "dave")
    policy(team, approvals=1, roles=("approver",))
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team, name="fraud-classifier"), version=3)
    with django_capture_on_commit_callbacks():
        services.promotion_request(actor=dave, version=version, environment="production")
    client.force_login(bob)
    assert "fraud-classifier v3 → production" in client.get("/").content.decode()
    client.force_login(dave)
    assert "Nothing waits for you." in client.get("/").content.decode()
