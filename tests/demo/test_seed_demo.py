import importlib.util
import re
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from mlflow import MlflowClient

from apps.audit.models import AuditEvent
from apps.demo import seed as demo
from apps.teams.models import Membership, Team


def login_request():
    # Logins go through django-axes, which needs the request (its client address) to count failures.
    return RequestFactory().post("/login/")


@pytest.fixture
def mlflow_client(mlflow_uri):
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    # The MLflow server lives for the whole session; start from a registry without the demo model.
    if client.search_registered_models(filter_string=f"name='{demo.MODEL_NAME}'"):
        client.delete_registered_model(demo.MODEL_NAME)
    return client


@pytest.mark.mlflow
def test_seed_demo_creates_everything_once(db, mlflow_client, capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out

    assert "created  team fraud" in first and "created  MLflow fraud-classifier version 2" in first
    assert "created" not in second

    User = get_user_model()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert authenticate(login_request(), username="admin", password="demo-pass-2026") == admin

    assert dict(Team.objects.values_list("slug", "name")) == {"fraud": "Fraud detection", "search": "Search ranking"}
    roles = {(m.team.slug, m.user.username): m.role for m in Membership.objects.select_related("team", "user")}
    assert roles == {
        ("fraud", "alice"): "team_admin", ("fraud", "bob"): "approver", ("fraud", "carol"): "approver",
        ("fraud", "dave"): "ml_engineer", ("fraud", "vera"): "viewer",
        ("search", "sam"): "team_admin", ("search", "erin"): "ml_engineer",
    }
    for username in ("alice", "bob", "carol", "dave", "vera", "sam", "erin"):
        user = authenticate(login_request(), username=username, password="demo-pass-2026")
        assert user is not None and not user.is_superuser

    finance = authenticate(login_request(), username="fiona", password="demo-pass-2026")
    assert list(finance.platform_role_grants.values_list("role", flat=True)) == ["finance"]
    assert AuditEvent.objects.filter(action="platform_role.grant", actor=admin).count() == 1

    # Written once, by the admin, through the team services.
    team_events = AuditEvent.objects.filter(action="team.create")
    assert sorted(team_events.values_list("changes__slug", flat=True)) == [[None, "fraud"], [None, "search"]]
    membership_events = AuditEvent.objects.filter(action="membership.add")
    assert membership_events.count() == 7
    assert set(team_events.values_list("actor_label", flat=True)) == {"admin"}
    assert set(membership_events.values_list("actor_label", flat=True)) == {"admin"}

    model = mlflow_client.get_registered_model(demo.MODEL_NAME)
    assert model.tags["team"] == "fraud"
    from apps.registry.models import RegisteredModel

    ours = RegisteredModel.objects.get(name=demo.MODEL_NAME)
    assert (ours.team.slug, ours.get_team_source_display()) == ("fraud", "From the model's `team` tag in MLflow")
    versions = sorted(mlflow_client.search_model_versions(f"name='{demo.MODEL_NAME}'"), key=lambda v: int(v.version))
    assert [v.version for v in versions] == ["1", "2"]
    runs = [mlflow_client.get_run(v.run_id) for v in versions]
    assert runs[0].info.run_id != runs[1].info.run_id
    for run in runs:
        assert {"accuracy", "f1", "latency_p95_ms", "fairness_gap"} <= set(run.data.metrics)
        assert re.fullmatch(r"[0-9a-f]{40}", run.data.tags["mlflow.source.git.commit"])
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["breast-cancer"]
    assert runs[0].data.params["C"] != runs[1].data.params["C"]
    assert runs[0].data.metrics["accuracy"] < runs[1].data.metrics["accuracy"]
    assert runs[0].data.metrics["f1"] < runs[1].data.metrics["f1"]


def test_seed_demo_refuses_in_production(db, monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_ENV", "production")
    with pytest.raises(CommandError, match="seed_demo refuses to run with CONTROLPLANE_ENV=production"):
        call_command("seed_demo", "--skip-mlflow")
    assert not get_user_model().objects.exists()
    assert not Team.objects.exists()


def test_devstack_prints_the_seeded_logins():
    path = Path(__file__).resolve().parents[2] / "scripts" / "devstack.py"
    spec = importlib.util.spec_from_file_location("devstack", path)
    devstack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(devstack)

    seeded = [(demo.ADMIN_USERNAME, "platform admin")] + [
        (username, f"{slug}: {role}") for slug, _, members in demo.TEAMS for username, role in members] + [
        (demo.FINANCE_USERNAME, "finance: every team's costs")]
    assert devstack.DEMO_LOGINS == seeded
    assert devstack.DEMO_PASSWORD == demo.DEMO_PASSWORD
