import pytest

from tests.deployments.factories import environment, local_cluster, model_version
from tests.factories import member


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "eng")


@pytest.fixture
def staging(db):
    return environment("staging")


@pytest.fixture
def local(db):
    return local_cluster()


@pytest.fixture
def local_dir(settings, tmp_path):
    settings.DEPLOYMENTS_LOCAL_DIR = tmp_path / "local"
    settings.DEPLOYMENTS_READY_TIMEOUT_SECONDS = 90
    yield settings.DEPLOYMENTS_LOCAL_DIR
    # Never leave model servers running after a test.
    from apps.deployments.models import LocalProcess
    from workers.drivers.local import kill

    for row in LocalProcess.objects.all():
        kill(row.pid)


@pytest.fixture(scope="session")
def registered_models(mlflow_server):
    """Two versions of a tiny sklearn model registered in the test MLflow server (once per session).
    Version 1 always predicts 0, version 2 always predicts 1, so a response tells which one answered."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.dummy import DummyClassifier

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    for constant in (0, 1):
        model = DummyClassifier(strategy="constant", constant=constant).fit(x, [0, 1, constant])
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="deploy-test-model",
                                     pip_requirements=["scikit-learn"])
    return "deploy-test-model"


@pytest.fixture
def versions(team, registered_models, mlflow_uri):
    return [model_version(team, name=registered_models, version=n) for n in (1, 2)]


ROWS = {"dataframe_split": {"columns": ["a", "b"], "data": [[0.1, 0.2]]}}
