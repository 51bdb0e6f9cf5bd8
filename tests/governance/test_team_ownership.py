"""Team ownership is authority, not a tag: MLflow's `team` tag places an unowned model and never moves an owned one;
moving a model takes a team admin of both teams (or a platform admin)."""
import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.registry.choices import TeamSource
from apps.registry.models import RegisteredModel
from apps.registry.services import sync_run_now
from tests.factories import MembershipFactory, member
from tests.registry.conftest import register_version, unique_name  # noqa: F401 (fixtures)

API = "/api/v1/registry"


@pytest.fixture
def tagged_model(register_version, unique_name, mlflow_uri, team, other_team):  # noqa: F811
    """A model logged without a `team` tag, then tagged `fraud` in MLflow; returns (name, MlflowClient)."""
    from mlflow import MlflowClient

    name = unique_name("owned")
    register_version(name, {"accuracy": 0.9}, team=None)
    sync_run_now(actor=None)
    assert RegisteredModel.objects.get(name=name).team is None
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    client.set_registered_model_tag(name, "team", team.slug)
    sync_run_now(actor=None)
    return name, client


def test_team_tag_never_moves_an_owned_model(tagged_model, team, other_team, client_for):
    name, mlflow = tagged_model
    model = RegisteredModel.objects.get(name=name)
    assert model.team == team and model.team_source == TeamSource.TAG and not model.team_tag_warning

    mlflow.set_registered_model_tag(name, "team", other_team.slug)  # anyone with MLflow write access can do this
    run = sync_run_now(actor=None, team=team)
    model.refresh_from_db()
    assert model.team == team and set(model.versions.values_list("team", flat=True)) == {team.pk}
    assert "`team` tag says 'search', but the model belongs to 'fraud'" in model.team_tag_warning
    assert run.counts["team_tag_conflicts"] >= 1
    assert {"model_id": model.pk, "model": name, "owner": "fraud", "tag": "search"} in run.warnings
    event = AuditEvent.objects.filter(action="registry.model.sync_changed", object_id=str(model.pk)).latest("id")
    assert event.changes == {"team_tag_warning": ["", model.team_tag_warning]}

    fraud_viewer, search_admin = member(team, "viewer"), member(other_team, "team_admin")
    api = client_for(fraud_viewer)
    assert api.get(f"{API}/models/{model.pk}/").json()["team_tag_warning"] == model.team_tag_warning
    assert name in [w["model"] for w in api.get(f"{API}/sync-runs/{run.pk}/").json()["warnings"]]
    assert client_for(search_admin).get(f"{API}/models/{model.pk}/").status_code == 404  # the tag grants nothing
    page = Client()
    page.force_login(fraud_viewer)
    assert "the tag does not move an owned model" in page.get(f"/registry/models/{model.pk}/").content.decode()


def test_moving_a_model_takes_an_admin_of_both_teams(tagged_model, team, other_team, client_for, platform_admin):
    name, _ = tagged_model
    model = RegisteredModel.objects.get(name=name)
    fraud_admin, search_admin = member(team, "team_admin"), member(other_team, "team_admin")
    both = member(team, "team_admin")
    MembershipFactory(team=other_team, user=both, role="team_admin")
    url = f"{API}/models/{model.pk}/assign-team/"

    response = client_for(fraud_admin).post(url, {"team": other_team.slug}, format="json")
    assert response.status_code == 404 and "Team 'search' not found" in response.json()["error"]["message"]
    assert client_for(search_admin).post(url, {"team": other_team.slug}, format="json").status_code == 404
    fraud_approver_search_admin = member(team, "approver")
    MembershipFactory(team=other_team, user=fraud_approver_search_admin, role="team_admin")
    response = client_for(fraud_approver_search_admin).post(url, {"team": other_team.slug}, format="json")
    assert response.status_code == 403 and "'administer'" in response.json()["error"]["message"]
    model.refresh_from_db()
    assert model.team == team and not AuditEvent.objects.filter(action="registry.model.move_team").exists()

    response = client_for(both).post(url, {"team": other_team.slug}, format="json")
    assert response.status_code == 200 and response.json()["team"] == "search"
    assert response.json()["team_source"] == TeamSource.ASSIGNED
    model.refresh_from_db()
    assert model.team == other_team and set(model.versions.values_list("team", flat=True)) == {other_team.pk}
    event = AuditEvent.objects.get(action="registry.model.move_team")
    assert event.actor == both and event.changes == {"team": ["fraud", "search"]}
    # The MLflow tag still says fraud: a warning now, and the next sync doesn't move the model back.
    assert "says 'fraud'" in model.team_tag_warning
    run = sync_run_now(actor=None, team=team)
    model.refresh_from_db()
    assert model.team == other_team and "says 'fraud'" in model.team_tag_warning
    # The sync report shows each reader only the warnings about their own teams' models.
    report = client_for(member(team, "viewer")).get(f"{API}/sync-runs/{run.pk}/").json()
    assert name not in [w["model"] for w in report["warnings"]]
    assert name in [w["model"] for w in client_for(both).get(f"{API}/sync-runs/{run.pk}/").json()["warnings"]]

    response = client_for(platform_admin).post(url, {"team": team.slug}, format="json")
    assert response.status_code == 200 and response.json()["team_tag_warning"] == ""
