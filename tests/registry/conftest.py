"""MLflow fixtures: tiny real sklearn models logged to the session's MLflow server.

Models registered here persist for the whole test session (MLflow is not rolled back between tests);
tests that mutate MLflow (aliases, deletions) use a model of their own via `register_version`.
"""
import uuid
import warnings

import pytest

from tests.factories import member

GIT_COMMIT = "3f5e2c1d9a8b7c6d5e4f30211a2b3c4d5e6f7a8b"


def _log_version(tracking_uri: str, *, name: str, metrics: dict, team: str | None = "fraud", C: float = 1.0,
                 artifacts: dict | None = None, dataset: str = "iris") -> str:
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={"team": team} if team else {})
    mlflow.set_experiment("registry-tests")
    frame = (load_iris if dataset == "iris" else load_breast_cancer)(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(C=C, max_iter=2000).fit(x, y)
    with mlflow.start_run(tags={"mlflow.source.git.commit": GIT_COMMIT}):
        mlflow.log_params({"C": C, "model": "LogisticRegression"})
        mlflow.log_metrics(metrics)
        mlflow.log_input(mlflow.data.from_pandas(frame, name=dataset, targets="target"), context="training")
        for path, text in (artifacts or {}).items():
            mlflow.log_text(text, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = infer_signature(x.head(), model.predict(x.head()))
            info = mlflow.sklearn.log_model(model, name="model", signature=signature, registered_model_name=name,
                                            pip_requirements=["scikit-learn"])
    return str(info.registered_model_version)


@pytest.fixture
def register_version(mlflow_uri):
    """register_version(name, metrics, team="fraud", ...) → version number, logged to the real MLflow server."""
    def register(name: str, metrics: dict, **kwargs) -> str:
        return _log_version(mlflow_uri, name=name, metrics=metrics, **kwargs)
    return register


@pytest.fixture
def unique_name():
    return lambda prefix="model": f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def shared_models(mlflow_server):
    """Two versions of one fraud model (v1 weaker, v2 stronger, v2 with a model card) and one search model."""
    name = f"iris-classifier-{uuid.uuid4().hex[:6]}"
    _log_version(mlflow_server.url, name=name, C=0.01,
                 metrics={"accuracy": 0.85, "latency_p95_ms": 12.0, "fairness_gap": 0.03})
    _log_version(mlflow_server.url, name=name, C=1.0, artifacts={"model_card.md": "# Iris classifier"},
                 metrics={"accuracy": 0.95, "latency_p95_ms": 14.0, "fairness_gap": 0.02})
    other = f"cancer-ranker-{uuid.uuid4().hex[:6]}"
    _log_version(mlflow_server.url, name=other, team="search", dataset="cancer", metrics={"accuracy": 0.97})
    return {"fraud": name, "search": other}


@pytest.fixture
def synced(shared_models, mlflow_uri, team, other_team):
    """The shared models synced into the control plane; returns {"model": RegisteredModel, "v1", "v2"}."""
    from apps.registry.models import RegisteredModel
    from apps.registry.services import sync_run_now

    sync_run_now(actor=None, trigger="manual")
    model = RegisteredModel.objects.get(name=shared_models["fraud"])
    return {"model": model, "v1": model.versions.get(version=1), "v2": model.versions.get(version=2),
            "other": RegisteredModel.objects.get(name=shared_models["search"])}


@pytest.fixture
def own_model(register_version, unique_name, mlflow_uri, team):
    """A model of our own (aliases get set on it), two versions, synced."""
    from apps.registry.models import RegisteredModel
    from apps.registry.services import sync_run_now

    name = unique_name("promo")
    register_version(name, {"accuracy": 0.85, "latency_p95_ms": 10.0})
    register_version(name, {"accuracy": 0.95, "latency_p95_ms": 12.0}, artifacts={"model_card.md": "# card"})
    sync_run_now(actor=None)
    model = RegisteredModel.objects.get(name=name)
    return {"model": model, "v1": model.versions.get(version=1), "v2": model.versions.get(version=2)}


@pytest.fixture
def people(team):
    """A fraud team with every role, two approvers among them."""
    return {
        "admin": member(team, "team_admin", "alice"),
        "bob": member(team, "approver", "bob"),
        "carol": member(team, "approver", "carol"),
        "dave": member(team, "ml_engineer", "dave"),
        "vera": member(team, "viewer", "vera"),
    }
