"""Jobs stay in their team's namespaces: a job (or a monitor's retraining job) runs with the control plane's
cluster credentials, so a namespace is accepted only if it is one of the team's namespaces on that cluster.
Refused with 400 naming the allowed ones, at monitor-settings save time and at dispatch time; nothing stored."""
import pytest

from apps.deployments.models import Job
from apps.monitoring.models import Monitor
from apps.outbox.models import OutboxMessage
from tests.deployments.factories import environment, kube_cluster
from tests.factories import member
from tests.monitoring import factories as mf

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/deployments/jobs/"


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "eng")


@pytest.fixture
def cluster(team, other_team):
    environment("staging")
    kube_cluster(team=other_team)  # search-staging belongs to the other team
    return kube_cluster(team=team)  # fraud-staging


def _job(team, **extra):
    return {"team": team.slug, "cluster": "kind", "image": "registry.local/train:1", "command": ["python", "t.py"],
            **extra}


@pytest.mark.parametrize("namespace", ["kube-system", "search-staging"])
def test_job_outside_the_teams_namespaces_is_refused(client_for, engineer, team, cluster, namespace):
    response = client_for(engineer).post(JOBS, _job(team, namespace=namespace), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert f"only in its own namespaces, not {namespace}" in error["message"]
    assert "its namespaces there are fraud-staging" in error["message"]
    assert error["allowed_namespaces"] == ["fraud-staging"]
    assert not Job.objects.exists() and not OutboxMessage.objects.exists()


def test_job_in_its_own_namespace_or_derived_is_accepted(client_for, engineer, team, cluster):
    client = client_for(engineer)
    explicit = client.post(JOBS, _job(team, namespace="fraud-staging"), format="json")
    derived = client.post(JOBS, _job(team), format="json")
    assert explicit.status_code == derived.status_code == 201, (explicit.json(), derived.json())
    assert set(Job.objects.values_list("namespace", flat=True)) == {"fraud-staging"}


def test_retrain_job_namespace_is_checked_when_the_monitor_is_saved(client_for, engineer, team, cluster):
    monitor = mf.monitor(team)
    url = f"/api/v1/monitoring/monitors/{monitor.pk}/"
    job = {"cluster": "kind", "image": "registry.local/train:1", "command": ["python", "t.py"]}
    refused = client_for(engineer).patch(url, {"retrain_job": {**job, "namespace": "kube-system"}}, format="json")
    assert refused.status_code == 400, refused.json()
    assert "its namespaces there are fraud-staging" in refused.json()["error"]["message"]
    assert Monitor.objects.get(pk=monitor.pk).retrain_job in ({}, None)
    accepted = client_for(engineer).patch(url, {"retrain_job": {**job, "namespace": "fraud-staging"}}, format="json")
    assert accepted.status_code == 200, accepted.json()
    assert Monitor.objects.get(pk=monitor.pk).retrain_job["namespace"] == "fraud-staging"


def test_retrain_job_namespace_is_checked_again_at_dispatch(client_for, engineer, team, cluster):
    # Saved before the rule existed (or written around the service): dispatch refuses it all the same.
    monitor = mf.monitor(team, retrain_job={"cluster": "kind", "image": "registry.local/train:1",
                                            "command": ["python", "t.py"], "namespace": "kube-system"})
    alert = mf.alert(monitor)
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/retrain/", format="json")
    assert response.status_code == 400, response.json()
    assert "not kube-system" in response.json()["error"]["message"]
    assert not Job.objects.exists()
