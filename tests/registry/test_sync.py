"""Sync against the real MLflow server: lineage kept per version, teams from tags, deletions flagged,
alias moves made in MLflow recorded as outside the control plane."""
from apps.audit.models import AuditEvent
from apps.registry.choices import AliasSource, MlflowPresence, SyncStatus, TeamSource
from apps.registry.models import AliasHolding, RegisteredModel, SyncRun
from apps.registry.services import sync_run_now
from tests.registry.conftest import GIT_COMMIT


def test_sync_keeps_lineage_metrics_and_team(synced, team):
    model, v1, v2 = synced["model"], synced["v1"], synced["v2"]
    assert model.team == team and model.team_source == TeamSource.TAG
    assert synced["other"].team.slug == "search"
    assert v1.metrics["accuracy"] == 0.85 and v2.metrics["accuracy"] == 0.95
    assert v2.params["C"] == "1.0"
    assert v2.git_commit == GIT_COMMIT
    assert v2.run_id and v2.artifact_uri
    assert v2.datasets[0]["name"] == "iris" and v2.datasets[0]["digest"] and v2.datasets[0]["context"] == "training"
    assert v2.signature and "inputs" in v2.signature
    assert "model_card.md" in v2.artifacts
    assert v2.mlflow_created_at is not None and v2.presence == MlflowPresence.PRESENT
    run = SyncRun.objects.latest("started_at")
    assert run.status == SyncStatus.SUCCEEDED and run.counts["versions"] >= 3


def test_second_sync_fetches_only_changed_versions(synced):
    run = sync_run_now(actor=None)
    assert run.counts["versions_fetched"] == 0
    assert run.counts["versions"] >= 3


def test_deleted_model_is_flagged_not_dropped(register_version, unique_name, mlflow_uri, team):
    from mlflow import MlflowClient

    name = unique_name("doomed")
    register_version(name, {"accuracy": 0.9})
    sync_run_now(actor=None)
    MlflowClient(mlflow_uri).delete_registered_model(name)
    sync_run_now(actor=None)
    model = RegisteredModel.objects.get(name=name)
    assert model.presence == MlflowPresence.DELETED
    assert model.versions.get().presence == MlflowPresence.DELETED
    assert AuditEvent.objects.filter(action="registry.model.deleted_in_mlflow", object_id=str(model.pk)).exists()


def test_alias_set_directly_in_mlflow_is_recorded_as_outside(register_version, unique_name, mlflow_uri, team):
    from mlflow import MlflowClient

    name = unique_name("outside")
    register_version(name, {"accuracy": 0.9})
    MlflowClient(mlflow_uri).set_registered_model_alias(name, "staging", "1")
    sync_run_now(actor=None)
    model = RegisteredModel.objects.get(name=name)
    holding = AliasHolding.objects.get(model=model, alias="staging", until__isnull=True)
    assert holding.source == AliasSource.OUTSIDE and holding.version_number == 1
    assert model.versions.get(version=1).aliases == ["staging"]
    MlflowClient(mlflow_uri).delete_registered_model_alias(name, "staging")
    sync_run_now(actor=None)
    holding.refresh_from_db()
    assert holding.until is not None and "outside" in holding.ended_by


def test_sync_failure_marks_the_run_failed(settings, db):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    try:
        sync_run_now(actor=None)
    except Exception:
        pass
    run = SyncRun.objects.latest("started_at")
    assert run.status == SyncStatus.FAILED and run.error


def test_sync_that_read_mlflow_before_a_publish_does_not_undo_it(register_version, unique_name, mlflow_uri, team,
                                                                 people):
    """A long pass lists MLflow, then a promotion publishes: the pass must not call the alias 'outside'."""
    from django.utils import timezone
    from mlflow import MlflowClient

    from apps.outbox.models import OutboxMessage
    from apps.registry import mlflow_api, services, sync
    from apps.registry.tasks import publish_promotion_task

    name = unique_name("race")
    register_version(name, {"accuracy": 0.9})
    sync_run_now(actor=None)
    client = MlflowClient(mlflow_uri)
    listed_at = timezone.now()
    stale_model = client.get_registered_model(name)
    stale_versions = [mv for mv in mlflow_api.iter_model_versions(client, name)]
    version = RegisteredModel.objects.get(name=name).versions.get()
    request = services.promotion_request(actor=people["dave"], version=version, environment="staging")
    message = OutboxMessage.objects.get(dedup_key=f"registry-publish:{request.pk}")
    publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True)
    counts = {k: 0 for k in ("models", "models_new", "versions", "versions_fetched", "versions_deleted",
                             "aliases_changed_outside")}
    sync._write_model(stale_model, listed=stale_versions, fetched={}, teams={"fraud": team}, counts=counts,
                      listed_at=listed_at)
    version.refresh_from_db()
    assert version.aliases == ["staging"] and counts["aliases_changed_outside"] == 0
    assert not AliasHolding.objects.filter(model=version.model, source=AliasSource.OUTSIDE).exists()
