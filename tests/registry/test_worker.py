"""Sync now and publishing through the outbox and a real Celery worker process (the wiring, end to end)."""
import time

import pytest

from apps.registry import services
from apps.registry.choices import PromotionStatus, SyncStatus
from apps.registry.models import Environment, PromotionRequest, RegisteredModel, SyncRun
from tests.factories import member


def wait_for(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def environments(transactional_db):
    for name, rank in (("staging", 10), ("production", 20)):  # flushed by transactional_db
        Environment.objects.get_or_create(name=name, defaults={"rank": rank})


def test_sync_now_and_publish_through_a_worker(mlflow_uri, register_version, unique_name, environments,
                                               celery_worker_process, private_broker, team):
    from mlflow import MlflowClient

    name = unique_name("worker")
    register_version(name, {"accuracy": 0.93})
    engineer = member(team, "ml_engineer", "eng")
    run = services.sync_request(actor=engineer, team=team)
    wait_for(lambda: SyncRun.objects.get(pk=run.pk).status not in (SyncStatus.QUEUED, SyncStatus.RUNNING))
    run.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED and run.counts["versions"] >= 1 and run.progress.startswith("done")
    version = RegisteredModel.objects.get(name=name).versions.get()

    request = services.promotion_request(actor=engineer, version=version, environment="staging")
    assert request.status == PromotionStatus.APPROVED  # no staging policy for this team
    wait_for(lambda: PromotionRequest.objects.get(pk=request.pk).status == PromotionStatus.PUBLISHED)
    assert MlflowClient(mlflow_uri).get_model_version_by_alias(name, "staging").version == "1"
