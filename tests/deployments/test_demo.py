"""The demo seed serves fraud-classifier v2 on the local target: a live endpoint answering predictions."""
import pytest
import requests
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.core import demo
from apps.deployments.demo import NAME, seed_deployments
from apps.deployments.models import Deployment

pytestmark = pytest.mark.mlflow


def test_demo_deployment_serves_predictions(db, mlflow_uri, local_dir, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    if client.search_registered_models(filter_string=f"name='{demo.MODEL_NAME}'"):
        client.delete_registered_model(demo.MODEL_NAME)
    call_command("seed_demo")  # against a test database the deployment is created but not driven
    deployment = Deployment.objects.get(name=NAME)
    assert deployment.status == "pending" and deployment.current_revision.strategy["kind"] == "canary"

    lines = []
    seed_deployments(log=lines.append, drive=True)
    assert "found" in lines[0] and "answered 200" in lines[1], lines
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.traffic == {"1": 100}
    response = requests.post(deployment.endpoint_url, json={"dataframe_records": [dict.fromkeys(
        _columns(), 10.0)]}, timeout=30)
    assert response.status_code == 200 and response.json()["predictions"][0] in (0, 1)
    assert AuditEvent.objects.filter(action="deployment.create", actor_label="dave").exists()


def _columns():
    from sklearn.datasets import load_breast_cancer

    return list(load_breast_cancer(as_frame=True).frame.drop(columns="target").columns)
