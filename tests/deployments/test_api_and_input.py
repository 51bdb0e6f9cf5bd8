"""The one-shot API and bad input: each a clear 4xx/409 in the standard error shape, nothing applied."""
import pytest

from apps.deployments.models import Deployment, DeploymentRevision
from apps.outbox.models import OutboxMessage
from apps.registry.models import ApprovalPolicy
from tests.deployments.factories import gpu_quota, model_version

URL = "/api/v1/deployments/deployments/"


@pytest.fixture
def body(team, staging, local):
    version = model_version(team, version=1)
    return {"team": team.slug, "name": "fraud", "model_version": version.pk, "environment": "staging",
            "cluster": "local", "resources": {"cpu": "500m", "memory": "512Mi", "replicas": 1},
            "strategy": {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100}]}}


def test_one_call_creates_the_deployment_its_revision_and_the_dispatch(client_for, engineer, body):
    response = client_for(engineer).post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "pending" and data["current_revision"] == 1 and data["namespace"] == "fraud-staging"
    revision = DeploymentRevision.objects.get(deployment_id=data["id"])
    assert revision.strategy["steps"][0] == {"weight": 10, "pause": True}
    assert revision.manifests[0]["kind"] == "LocalModelServer" and revision.actor_label == "eng"
    # The dispatch is the row itself: due for the runner's rollout drive (the wake-up after commit is a hint).
    from apps.core import runner
    from apps.deployments.rollout import ROLLOUT_KIND

    assert runner.due_count(ROLLOUT_KIND) == 1


def test_preview_shows_gates_admission_manifests_and_diff(client_for, engineer, body):
    response = client_for(engineer).post(URL + "preview/", body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["approved"] is True and data["gates"] == []
    assert data["admission"]["allowed"] is True
    assert data["manifests"][0]["modelUri"] == "models:/fraud-classifier/1"
    assert "+++ new" in data["diff"]
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("change, status, needle", [
    ({"resources": {"cpu": "2 GPUs", "memory": "1Gi"}}, 400, "cpu must be"),
    ({"resources": {"cpu": "1", "memory": "1Gi", "gpu_count": "2 GPUs", "gpu_type": "a100-80gb"}}, 400, "gpu_count"),
    ({"resources": {"cpu": "1", "memory": "1Gi", "replicas": -1}}, 400, "replicas must be between"),
    ({"resources": {"cpu": "-1", "memory": "1Gi"}}, 400, "cpu must be"),
    ({"resources": {"cpu": "1", "memory": "lots"}}, 400, "memory must be"),
    ({"strategy": {"kind": "canary", "steps": [{"weight": 10}, {"weight": 50}]}}, 400, "must end at 100"),
    ({"strategy": {"kind": "canary", "steps": [{"weight": 50}, {"weight": 10}, {"weight": 100}]}}, 400, "must increase"),
    ({"strategy": {"kind": "teleport"}}, 400, "Unknown strategy"),
    ({"cluster": "nowhere"}, 404, "Cluster 'nowhere' not found"),
    ({"environment": "moon"}, 404, "Environment 'moon' not found"),
    ({"model_version": 999999}, 404, "Model version 999999 not found"),
    ({"colour": "blue"}, 400, "Unknown field"),
])
def test_bad_input_is_a_clear_error_and_nothing_is_applied(client_for, engineer, body, change, status, needle):
    response = client_for(engineer).post(URL, {**body, **change}, format="json")
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert needle in error["message"] or needle in str(error["fields"]), error
    assert not Deployment.objects.exists() and not OutboxMessage.objects.exists()


def test_unapproved_version_is_refused(client_for, engineer, body, team, staging):
    ApprovalPolicy.objects.create(team=team, environment=staging, approvals_required=1, approver_roles=["approver"])
    response = client_for(engineer).post(URL, body, format="json")
    assert response.status_code == 409
    assert "not approved for staging" in response.json()["error"]["message"]
    assert not Deployment.objects.exists()


def test_resources_beyond_quota_are_a_409_from_admission(client_for, engineer, body, team, local):
    gpu_quota(cluster=local, team=team, guaranteed=1)
    body["resources"] = {"cpu": "1", "memory": "1Gi", "gpu_type": "a100-80gb", "gpu_count": 2}
    response = client_for(engineer).post(URL, body, format="json")
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert "do not fit" in error["message"]
    assert not Deployment.objects.exists()


def test_deploy_promote_and_rollback_verbs(client_for, engineer, team):
    from tests.deployments.factories import deployment_in

    deployment = deployment_in(team, "awaiting_promotion")
    client = client_for(engineer)
    response = client.post(f"{URL}{deployment.pk}/promote/")
    assert response.status_code == 200 and response.json()["status"] == "healthy"
    assert response.json()["traffic"] == {"2": 100}
    response = client.post(f"{URL}{deployment.pk}/promote/")
    assert response.status_code == 409 and "only a rollout waiting for promotion" in response.json()["error"]["message"]
    response = client.post(f"{URL}{deployment.pk}/rollback/", {"reason": "bad latency", "to_revision": 1}, format="json")
    assert response.status_code == 201 and response.json()["rollback_of"] == 1
    response = client.post(f"{URL}{deployment.pk}/rollback/", {"reason": "again"}, format="json")
    assert response.status_code == 409 and "rollback is already being applied" in response.json()["error"]["message"]
    response = client.get(f"{URL}{deployment.pk}/revisions/")
    assert [r["number"] for r in response.json()["results"]] == [3, 2, 1]
