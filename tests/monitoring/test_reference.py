"""Reference data: uploaded or inline, schema inferred and editable, bad files refused."""
import io

import pandas as pd

from apps.monitoring.models import ReferenceColumn

from . import factories as f

URL = "/api/v1/monitoring/references/"


def test_upload_infers_schema_and_prepares_columns(client_for, engineer, team):
    version = f.model_version(team)
    buffer = io.BytesIO()
    f.frame(50).to_csv(buffer, index=False)
    buffer.seek(0)
    buffer.name = "train.csv"
    response = client_for(engineer).post(URL, {"model_version": version.pk, "source": "upload", "file": buffer,
                                               "prediction": "prediction"}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["row_count"] == 50 and body["source"] == "upload"
    assert {c["name"]: (c["kind"], c["role"]) for c in body["schema"]} == {
        "amount": ("numeric", "feature"), "age": ("numeric", "feature"), "country": ("categorical", "feature"),
        "channel": ("categorical", "feature"), "prediction": ("categorical", "prediction")}  # 0/1 class labels
    amount = ReferenceColumn.objects.get(reference_id=body["id"], name="amount")
    assert len(bytes(amount.sorted_values)) == 50 * 8


def test_schema_edit_changes_kind_and_role(client_for, engineer, team):
    version = f.model_version(team)
    ref = f.reference(team, version, pd.DataFrame({"a": [1, 2, 3, 1], "b": ["x", "y", "x", "y"], "p": [0, 1, 0, 1]}),
                      prediction=None)
    schema = [{"name": "a", "kind": "categorical", "role": "feature"}, {"name": "b", "kind": "categorical", "role": "feature"},
              {"name": "p", "kind": "numeric", "role": "target"}]
    response = client_for(engineer).post(f"{URL}{ref.pk}/schema/", {"schema": schema}, format="json")
    assert response.status_code == 200, response.json()
    assert ReferenceColumn.objects.get(reference=ref, name="a").counts == {"1": 2, "2": 1, "3": 1}
    wrong = client_for(engineer).post(f"{URL}{ref.pk}/schema/", {"schema": [
        {"name": "b", "kind": "numeric", "role": "feature"}]}, format="json")
    assert wrong.status_code == 400 and "not numbers" in wrong.json()["error"]["message"]
    unknown = client_for(engineer).post(f"{URL}{ref.pk}/schema/", {"schema": [
        {"name": "zzz", "kind": "numeric", "role": "feature"}]}, format="json")
    assert unknown.status_code == 400 and "not in the reference data" in unknown.json()["error"]["message"]


def test_empty_or_unsupported_reference_is_400(client_for, engineer, team):
    version = f.model_version(team)
    client = client_for(engineer)
    empty = client.post(URL, {"model_version": version.pk, "rows": []}, format="json")
    assert empty.status_code == 400
    buffer = io.BytesIO(b"{}")
    buffer.name = "data.json"
    bad = client.post(URL, {"model_version": version.pk, "source": "upload", "file": buffer}, format="multipart")
    assert bad.status_code == 400 and "upload a .csv or .parquet" in bad.json()["error"]["message"]


def test_mlflow_reference_without_run_is_409(client_for, engineer, team):
    version = f.model_version(team)
    response = client_for(engineer).post(URL, {"model_version": version.pk, "source": "mlflow"}, format="json")
    assert response.status_code == 409 and "no MLflow run" in response.json()["error"]["message"]
