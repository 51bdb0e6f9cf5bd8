"""Team admins manage members; every change is audited in the same transaction."""
import pytest

from apps.audit.models import AuditEvent
from apps.teams.models import Membership
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db


def test_team_admin_adds_changes_and_removes_a_member(client_for, team, team_admin):
    UserFactory(username="newbie")
    client = client_for(team_admin)
    created = client.post("/api/v1/memberships/", {"team": team.slug, "username": "newbie", "role": "viewer"},
                          format="json")
    assert created.status_code == 201
    membership_id = created.json()["id"]
    assert client.patch(f"/api/v1/memberships/{membership_id}/", {"role": "approver"},
                        format="json").json()["role"] == "approver"
    assert client.delete(f"/api/v1/memberships/{membership_id}/").status_code == 204
    assert not Membership.objects.filter(user__username="newbie").exists()
    events = list(AuditEvent.objects.order_by("id").values_list("action", "changes", "actor_label", "team_id"))
    assert events == [
        ("membership.add", {"user": [None, "newbie"], "role": [None, "viewer"]}, "tadmin", team.pk),
        ("membership.change_role", {"role": ["viewer", "approver"]}, "tadmin", team.pk),
        ("membership.remove", {"user": ["newbie", None], "role": ["approver", None]}, "tadmin", team.pk),
    ]


def test_viewer_cannot_add_members_and_nothing_changes(client_for, team):
    viewer = member(team, "viewer", "vera")
    UserFactory(username="newbie")
    response = client_for(viewer).post("/api/v1/memberships/", {"team": team.slug, "username": "newbie",
                                                                "role": "team_admin"}, format="json")
    assert response.status_code == 403
    assert "'viewer'" in response.json()["error"]["message"]
    assert not Membership.objects.filter(user__username="newbie").exists()
    assert not AuditEvent.objects.exists()


def test_unknown_user(client_for, team, team_admin):
    response = client_for(team_admin).post("/api/v1/memberships/", {"team": team.slug, "username": "ghost",
                                                                    "role": "viewer"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "No user named 'ghost'."


def test_platform_admin_creates_teams(client_for, platform_admin, team_admin):
    assert client_for(platform_admin).post("/api/v1/teams/", {"slug": "vision", "name": "Vision"},
                                           format="json").status_code == 201
    denied = client_for(team_admin).post("/api/v1/teams/", {"slug": "nlp", "name": "NLP"}, format="json")
    assert denied.status_code == 403
    duplicate = client_for(platform_admin).post("/api/v1/teams/", {"slug": "vision", "name": "V"}, format="json")
    assert duplicate.status_code == 409
