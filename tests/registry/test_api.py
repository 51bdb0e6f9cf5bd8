"""API reads and the writes not covered elsewhere: version list filters and shape, team assignment, Sync now."""
from apps.audit.models import AuditEvent
from apps.outbox.models import OutboxMessage
from apps.registry.choices import SyncStatus, TeamSource
from apps.registry.models import SyncRun
from tests.factories import MembershipFactory, TeamFactory, member
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory

API = "/api/v1/registry"


def test_version_list_is_team_scoped_and_filtered(team, other_team, people, client_for):
    mine = ModelVersionFactory(model=RegisteredModelFactory(team=team, name="fraud-a"), aliases=["production"])
    ModelVersionFactory(model=RegisteredModelFactory(team=team, name="fraud-b"))
    theirs = ModelVersionFactory(model=RegisteredModelFactory(team=other_team, name="search-a"))
    client = client_for(people["vera"])
    body = client.get(f"{API}/versions/", {"page_size": 50}).json()
    assert body["count"] == 2 and theirs.pk not in [r["id"] for r in body["results"]]
    row = client.get(f"{API}/versions/", {"search": "fraud-a"}).json()["results"][0]
    assert row == {"id": mine.pk, "model": "fraud-a", "model_id": mine.model_id, "team": team.slug,
                   "version": mine.version, "aliases": ["production"], "metrics": mine.metrics,
                   "creator": mine.creator, "git_commit": "", "mlflow_created_at": None, "presence": "present"}
    assert client.get(f"{API}/versions/", {"alias": "production"}).json()["count"] == 1
    assert client.get(f"{API}/versions/", {"team": other_team.slug}).json()["count"] == 0
    assert client.get(f"{API}/versions/{theirs.pk}/").status_code == 404


def test_team_admin_assigns_an_unowned_model(team, people, client_for):
    model = RegisteredModelFactory(team=None, team_source=TeamSource.NONE, name="orphan")
    assert client_for(people["dave"]).get(f"{API}/models/{model.pk}/").status_code == 404
    admin = client_for(people["admin"])
    response = admin.post(f"{API}/models/{model.pk}/assign-team/", {"team": team.slug}, format="json")
    assert response.status_code == 200 and response.json()["team"] == team.slug
    assert response.json()["team_source"] == "assigned"
    assert AuditEvent.objects.filter(action="registry.model.assign_team", object_id=str(model.pk)).exists()
    tagged = RegisteredModelFactory(team=team, team_source=TeamSource.TAG, tags={"team": team.slug})
    both = member(team, "team_admin", "both-admin")
    MembershipFactory(team=TeamFactory(slug="other"), user=both, role="team_admin")
    response = client_for(both).post(f"{API}/models/{tagged.pk}/assign-team/", {"team": "other"}, format="json")
    # Ownership is authority, not the tag: admins of both teams move it; the stale tag becomes a warning.
    assert response.status_code == 200 and response.json()["team"] == "other"
    assert "`team` tag says 'fraud'" in response.json()["team_tag_warning"]


def test_sync_now_queues_a_run(team, people, client_for):
    response = client_for(people["dave"]).post(f"{API}/sync/", {"team": team.slug}, format="json")
    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["id"])
    assert run.status == SyncStatus.QUEUED and run.requested_by == people["dave"]
    assert OutboxMessage.objects.filter(topic="registry.sync", payload={"run_id": run.pk}).exists()
    again = client_for(people["dave"]).post(f"{API}/sync/", {"team": team.slug}, format="json")
    assert again.json()["id"] == run.pk  # one pass at a time
    assert client_for(people["vera"]).post(f"{API}/sync/", {"team": team.slug}, format="json").status_code == 403
