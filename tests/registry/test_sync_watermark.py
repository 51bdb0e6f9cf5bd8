"""The watermark pass, the fallback sweep behind the webhooks: only models whose MLflow `last_updated_timestamp`
moved since the last pass are read; with nothing changed it writes nothing."""
import time

from django.db.models import Max

from apps.audit.models import AuditEvent
from apps.registry.models import ModelVersion, RegisteredModel
from apps.registry.services import sync_run_now


def _last_writes():
    return (RegisteredModel.objects.aggregate(at=Max("last_synced_at"))["at"],
            ModelVersion.objects.aggregate(at=Max("last_synced_at"))["at"], AuditEvent.objects.count())


def test_watermark_pass_with_nothing_changed_touches_nothing(synced):
    complete = sync_run_now(actor=None)
    assert complete.since_watermark is None and complete.watermark
    before = _last_writes()
    started = time.perf_counter()
    run = sync_run_now(actor=None, changed_only=True)
    elapsed = time.perf_counter() - started
    assert run.status == "succeeded" and run.since_watermark == complete.watermark
    assert run.watermark >= complete.watermark
    assert run.counts["models"] == 0 and run.counts["versions_fetched"] == 0
    assert _last_writes() == before, "a pass with nothing changed wrote rows or audit events"
    assert elapsed < 2.0, f"the no-change watermark pass took {elapsed:.2f}s"


def test_watermark_pass_finds_a_new_version(register_version, unique_name, mlflow_uri, team):
    name = unique_name("moved")
    register_version(name, {"accuracy": 0.8})
    quiet = unique_name("quiet")
    register_version(quiet, {"accuracy": 0.7})
    sync_run_now(actor=None)
    quiet_synced_at = RegisteredModel.objects.get(name=quiet).last_synced_at
    register_version(name, {"accuracy": 0.9})
    run = sync_run_now(actor=None, changed_only=True)
    assert run.since_watermark is not None and run.watermark >= run.since_watermark
    assert run.counts["models"] == 1 and run.counts["versions_fetched"] == 1
    assert ModelVersion.objects.get(model__name=name, version=2).metrics == {"accuracy": 0.9}
    assert RegisteredModel.objects.get(name=quiet).last_synced_at == quiet_synced_at


def test_first_changed_only_pass_lists_everything(register_version, unique_name, mlflow_uri, team):
    name = unique_name("first")
    register_version(name, {"accuracy": 0.8})
    run = sync_run_now(actor=None, changed_only=True)
    assert run.since_watermark is None and run.watermark
    assert RegisteredModel.objects.filter(name=name).exists()


def test_scheduled_pass_is_a_watermark_pass_until_a_complete_one_is_due(synced, settings):
    from apps.registry.services import sync_run_scheduled

    sync_run_now(actor=None)
    assert sync_run_scheduled().since_watermark is not None
    settings.REGISTRY_COMPLETE_SYNC_SECONDS = 0
    assert sync_run_scheduled().since_watermark is None


def test_a_read_older_than_the_one_written_does_not_overwrite_it(register_version, unique_name, mlflow_uri, team):
    """A sweep that listed MLflow before a webhook's sync of the same model skips that model's write."""
    from django.utils import timezone
    from mlflow import MlflowClient

    from apps.registry import mlflow_api, sync

    name = unique_name("stale")
    register_version(name, {"accuracy": 0.8})
    client = MlflowClient(mlflow_uri)
    listed_at = timezone.now()
    stale_model = client.get_registered_model(name)
    stale_versions = list(mlflow_api.iter_model_versions(client, name))
    client.set_registered_model_alias(name, "staging", "1")
    sync.sync_model(name=name)  # what the webhook does, after the sweep's read
    counts = {k: 0 for k in ("models", "models_new", "versions", "versions_fetched", "versions_deleted",
                             "aliases_changed_outside", "team_tag_conflicts")}
    sync._write_model(stale_model, listed=stale_versions, fetched={}, teams={"fraud": team}, counts=counts,
                      listed_at=listed_at)
    assert counts["models_stale"] == 1 and counts["models"] == 0
    assert RegisteredModel.objects.get(name=name).aliases == {"staging": 1}
