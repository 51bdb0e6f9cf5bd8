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
