"""Reference data from the model version's MLflow run: a logged CSV/Parquet artifact."""
import pytest

from apps.registry.models import ModelVersion, RegisteredModel

from . import factories as f


@pytest.mark.mlflow
def test_reference_from_the_runs_artifact(client_for, engineer, team, mlflow_uri, tmp_path):
    import mlflow

    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_experiment("monitoring-reference-test")
    path = tmp_path / "reference.parquet"
    f.frame(120).to_parquet(path, index=False)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(path), artifact_path="data")
    model = RegisteredModel.objects.create(name="mlflow-ref-model", team=team)
    version = ModelVersion.objects.create(model=model, version=1, run_id=run.info.run_id)

    response = client_for(engineer).post("/api/v1/monitoring/references/", {
        "model_version": version.pk, "source": "mlflow", "prediction": "prediction"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["source"] == "mlflow" and body["row_count"] == 120
    assert body["source_detail"] == f"runs:/{run.info.run_id}/data/reference.parquet"
    assert {c["name"]: c["role"] for c in body["schema"]}["prediction"] == "prediction"

    missing = client_for(engineer).post("/api/v1/monitoring/references/", {
        "model_version": version.pk, "source": "mlflow", "artifact_path": "data/nope.csv"}, format="json")
    assert missing.status_code == 409 and "Could not fetch 'data/nope.csv'" in missing.json()["error"]["message"]
