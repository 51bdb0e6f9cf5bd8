"""The demo seed serves fraud-classifier v1, then rolls v2 out as a canary to 100 %: a live endpoint answering
predictions, and an earlier revision to roll back to."""
import pytest
import requests
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.demo import seed as demo
from apps.deployments.demo import NAME, seed_deployment
from apps.deployments.services import deployment_rollback
from apps.deployments.models import Deployment

pytestmark = pytest.mark.mlflow


def test_demo_deployment_serves_predictions(db, mlflow_uri, local_dir, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    if client.search_registered_models(filter_string=f"name='{demo.MODEL_NAME}'"):
        client.delete_registered_model(demo.MODEL_NAME)
    call_command("seed_demo")  # against a test database the deployment is created but not driven
    deployment = Deployment.objects.get(name=NAME)
    assert deployment.status == "pending" and deployment.current_revision.model_version.version == 1

    lines = []
    seed_deployment(log=lines.append, version_number=1, drive=True)
    assert "found" in lines[0], lines
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 100}

    lines = []
    seed_deployment(log=lines.append, version_number=2, drive=True)
    assert "canary" in lines[0] and "answered 200" in lines[1], lines
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"2": 100}
    assert deployment.current_revision.model_version.version == 2
    response = requests.post(deployment.endpoint_url, json={"dataframe_records": [dict.fromkeys(
        _columns(), 10.0)]}, timeout=30)
    assert response.status_code == 200 and response.json()["predictions"][0] in (0, 1)
    assert AuditEvent.objects.filter(action="deployment.create", actor_label="dave").exists()
    assert AuditEvent.objects.filter(action="deployment.promote", actor_label="dave").count() == 2

    dave = deployment.revisions.first().created_by
    revision = deployment_rollback(actor=dave, deployment=deployment, reason="demo check")
    assert revision.model_version.version == 1


def _columns():
    from sklearn.datasets import load_breast_cancer

    return list(load_breast_cancer(as_frame=True).frame.drop(columns="target").columns)
