"""A publish sets the MLflow alias once, however often it is retried: when MLflow took the alias but the answer
was lost (a 5xx after the write), the retry finds the alias already there and does not set it again.

MLflow is reached through the harness's fault-injecting proxy, which counts the alias sets MLflow accepted
(tests/chaos drives the same through workers, kills and restarts)."""
import pytest

from apps.registry import mlflow_api
from tests.harness.fault_proxy import FaultProxy

ALIAS_PATH = "/registered-models/alias"


def test_an_alias_set_retried_after_mlflow_took_it_is_set_once(register_version, unique_name, mlflow_uri, settings):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = unique_name("once")
    register_version(name, {"accuracy": 0.9})
    with FaultProxy(mlflow_uri) as proxy:
        settings.MLFLOW_TRACKING_URI = proxy.url
        proxy.fail_after_next(503, path=ALIAS_PATH)
        with pytest.raises(MlflowException):  # the caller hears 503; MLflow has the alias all the same
            mlflow_api.set_alias(name=name, alias="staging", version=1, tags={"controlplane.approval_id": "7"})
        mlflow_api.set_alias(name=name, alias="staging", version=1, tags={"controlplane.approval_id": "7"})
        sets = proxy.succeeded("POST", ALIAS_PATH)
    assert len(sets) == 1, sets
    client = MlflowClient(mlflow_uri)
    assert client.get_model_version_by_alias(name, "staging").version == "1"
    assert client.get_model_version(name, "1").tags["controlplane.approval_id"] == "7"


def test_an_alias_held_by_another_version_moves(register_version, unique_name, mlflow_uri, settings):
    from mlflow import MlflowClient

    name = unique_name("moves")
    register_version(name, {"accuracy": 0.9})
    register_version(name, {"accuracy": 0.95})
    mlflow_api.set_alias(name=name, alias="staging", version=1, tags={})
    mlflow_api.set_alias(name=name, alias="staging", version=2, tags={})
    assert MlflowClient(mlflow_uri).get_model_version_by_alias(name, "staging").version == "2"
