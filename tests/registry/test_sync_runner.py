"""Registry sync on the runner (kind registry.sync, bulk queue): the beat and "Sync now" queue a pass (at most one
pending), the runner claims it, a dead worker's pass is reclaimed, and a pass out of attempts needs attention,
on the registry page and the dashboard, until someone who may operate retries it (audited)."""
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.registry import services
from apps.registry.choices import SyncStatus
from apps.registry.models import RegisteredModel, SyncRun


def actions_of(run) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="registry.syncrun", object_id=str(run.pk))
                .order_by("id").values_list("action", flat=True))


def test_the_beat_queues_one_pass_and_a_dead_workers_pass_is_reclaimed(mlflow_uri, register_version, unique_name,
                                                                         people, team):
    name = unique_name("runner-sync")
    register_version(name, {"accuracy": 0.9})
    run = services.sync_run_scheduled()
    assert run.status == SyncStatus.QUEUED and run.since_watermark is None  # no complete pass yet
    assert services.sync_run_scheduled().pk == run.pk  # at most one pending
    assert services.sync_request(actor=people["dave"], team=team).pk == run.pk  # Sync now shows the pending one

    # A worker claims it and dies: its lease runs out and the next pass of the runner takes the run over.
    lease = runner.claim(runner.kind_get(services.SYNC_KIND), owner="dead-worker")
    assert lease.pk == run.pk
    SyncRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert runner.tick(services.SYNC_KIND) == {"done": 1}
    run.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED and run.attempts == 2 and not run.lease_owner
    assert run.progress.startswith("done") and RegisteredModel.objects.filter(name=name).exists()
    assert runner.tick(services.SYNC_KIND) == {}  # nothing due
    assert services.sync_run_scheduled().pk != run.pk  # the next beat queues a new (watermark) pass
    assert SyncRun.objects.filter(status=SyncStatus.QUEUED).get().since_watermark is not None


def test_a_pass_out_of_attempts_needs_attention_until_retried(settings, people, team):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    run = services.sync_request(actor=people["dave"], team=team)
    assert runner.tick(services.SYNC_KIND) == {"retry": 1}
    run.refresh_from_db()
    assert run.status == SyncStatus.QUEUED and run.attempts == 1 and run.next_attempt_at and run.last_error
    # The other attempts fail alike (each waits out MLflow's client retries, so they are skipped here).
    SyncRun.objects.filter(pk=run.pk).update(attempts=runner.kind_get(services.SYNC_KIND).max_attempts,
                                             next_attempt_at=timezone.now())
    assert runner.tick(services.SYNC_KIND) == {"needs_attention": 1}
    run.refresh_from_db()
    assert run.status == SyncStatus.NEEDS_ATTENTION and "Connection" in run.last_error
    assert actions_of(run)[-1] == "registry.sync.needs_attention"

    page = Client()
    page.force_login(people["dave"])
    body = page.get("/registry/").content.decode()
    assert f'id="sync-attention-{run.pk}"' in body and "Retry" in body
    home = page.get("/").content.decode()
    assert "Registry sync" in home and f"Sync #{run.pk}" in home
    viewer = Client()
    viewer.force_login(people["vera"])
    viewer.post(f"/registry/sync/{run.pk}/retry/", {"team": team.slug})  # a viewer may not: refused, said why
    assert SyncRun.objects.get(pk=run.pk).status == SyncStatus.NEEDS_ATTENTION
    assert page.post(f"/registry/sync/{run.pk}/retry/", {"team": team.slug}).status_code == 302
    run.refresh_from_db()
    assert (run.status, run.attempts, run.last_error) == (SyncStatus.QUEUED, 0, "")
    assert actions_of(run)[-1] == "registry.sync.retry"
