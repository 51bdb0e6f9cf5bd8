"""Registry sync requests and model ownership: queue a sync for the runner (or run one here), assign a model to a team."""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import runner
from apps.core.errors import Conflict
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.models import Team
from apps.teams.selectors import require_capability

from ..choices import SyncStatus, SyncTrigger, TeamSource
from ..models import RegisteredModel, SyncRun
from ..transitions import sync_run_transition

SYNC_TOPIC = "registry.sync"  # outbox topic of "Sync now": a wake-up hint for the runner
SYNC_KIND = "registry.sync"  # the runner's work kind (apps/registry/runner.py), on the bulk queue
_SYNC_QUEUE_LOCK = 7_351_011  # serialises queueing, so at most one pass is pending


def _since_last_watermark() -> int | None:
    return (SyncRun.objects.filter(status=SyncStatus.SUCCEEDED, watermark__isnull=False)
            .order_by("-started_at").values_list("watermark", flat=True).first())


def sync_run_now(*, actor, trigger: str = SyncTrigger.MANUAL, team: Team | None = None, full: bool = False,
                 changed_only: bool = False) -> SyncRun:
    """Sync in this process, outside the runner (tests, bench, demo seed). The beat and "Sync now" queue a pass
    for the runner instead (sync_run_scheduled, sync_request).

    `changed_only`: a watermark pass from the last pass's watermark (a complete pass when there is none yet).
    """
    from ..sync import sync_registry

    run = SyncRun.objects.create(trigger=trigger, team=team, full=full, status=SyncStatus.RUNNING,
                                 since_watermark=_since_last_watermark() if changed_only else None,
                                 requested_by=actor if getattr(actor, "is_authenticated", False) else None)
    return sync_registry(run=run)


def _pending() -> SyncRun | None:
    """The pass waiting for (or being worked on by) the runner; an in-process pass has no lease and is not one."""
    return (SyncRun.objects.filter(Q(status=SyncStatus.QUEUED) | Q(status=SyncStatus.RUNNING, lease_until__isnull=False))
            .order_by("pk").first())


def _sync_queue(*, trigger: str, team: Team | None, actor, full: bool, complete: bool) -> tuple[SyncRun, bool]:
    """Queue a pass for the runner, or widen the one already queued (at most one is pending). Returns (the run,
    whether it is new). Widening: a complete pass or a full re-read asked for now is what the queued pass does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_QUEUE_LOCK])
    run = _pending()
    if run is not None:
        if run.status == SyncStatus.QUEUED and ((complete and run.since_watermark is not None) or (full and not run.full)):
            SyncRun.objects.filter(pk=run.pk).update(full=run.full or full,
                                                     since_watermark=None if complete else run.since_watermark)
            run.refresh_from_db()
        return run, False
    run = SyncRun.objects.create(trigger=trigger, team=team, full=full, status=SyncStatus.QUEUED, progress="queued",
                                 since_watermark=None if complete else _since_last_watermark(),
                                 requested_by=actor if getattr(actor, "is_authenticated", False) else None)
    runner.wake(SYNC_KIND, ids=[run.pk])
    return run, True


@transaction.atomic
def sync_run_scheduled() -> SyncRun:
    """The beat job: queue a watermark pass for the runner, or a complete one when none succeeded for
    REGISTRY_COMPLETE_SYNC_SECONDS (nothing new when a pass is already pending)."""
    recent = timezone.now() - timedelta(seconds=settings.REGISTRY_COMPLETE_SYNC_SECONDS)
    complete_due = not SyncRun.objects.filter(status=SyncStatus.SUCCEEDED, since_watermark__isnull=True,
                                              started_at__gte=recent).exists()
    return _sync_queue(trigger=SyncTrigger.BEAT, team=None, actor=None, full=False, complete=complete_due)[0]


@transaction.atomic
def sync_request(*, actor, team: Team, full: bool = False) -> SyncRun:
    """"Sync now": queue a complete pass for the runner (progress shows on the run); pressing again while one is
    pending shows that one."""
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    run, new = _sync_queue(trigger=SyncTrigger.MANUAL, team=team, actor=actor, full=full, complete=True)
    if new:
        audit_record(actor=actor, action="registry.sync.request", target=run, team=team,
                     changes={"full": [None, full]})
        outbox_enqueue(topic=SYNC_TOPIC, payload={"run_id": run.pk}, dedup_key=f"registry-sync:{run.pk}", team=team)
    return run


def sync_attempt(lease: runner.Lease) -> dict:
    """The runner's handler: mark the pass running, then read MLflow outside any transaction (sync.py writes each
    model in its own short one), heartbeating the lease with the progress. An error raises (the run is queued
    again with it, and the runner retries after a backoff)."""
    from ..sync import sync_registry

    with lease.holding() as run:
        run = sync_run_transition(run, to=SyncStatus.RUNNING, fields={"progress": "starting", "error": ""})
    return sync_registry(run=run, lease=lease).counts


def sync_gave_up(run: SyncRun, error: str) -> SyncRun:
    """The runner's on_exhausted (in its transaction, the run locked): the pass needs attention, with its last
    error, on the registry page and the dashboard, until someone who may operate retries it."""
    return sync_run_transition(run, to=SyncStatus.NEEDS_ATTENTION, action="registry.sync.needs_attention",
                               changes={"attempts": [None, run.attempts], "error": [None, error]},
                               fields={"error": error, "finished_at": timezone.now()})


@transaction.atomic
def sync_retry(*, actor, run: SyncRun, team: Team) -> SyncRun:
    """Retry a pass that needs attention: a fresh round of attempts (audited; OPERATE on `team`, as Sync now)."""
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    run = SyncRun.objects.select_for_update().get(pk=run.pk)
    if run.status != SyncStatus.NEEDS_ATTENTION:
        raise Conflict(f"Sync run #{run.pk} is {SyncStatus(run.status).label.lower()}; only a pass that needs "
                       f"attention can be retried.")
    run = sync_run_transition(run, to=SyncStatus.QUEUED, actor=actor, action="registry.sync.retry",
                              changes={"error": [run.last_error, None]},
                              fields={"finished_at": None, "progress": "queued", "error": ""})
    runner.retry_now(row=run, fields={"last_error": ""})
    runner.wake(SYNC_KIND, ids=[run.pk])
    run.refresh_from_db()
    return run


@transaction.atomic
def model_assign_team(*, actor, model: RegisteredModel, team: Team) -> RegisteredModel:
    """Give an unowned model to a team, or move an owned one: a team admin of both teams (or a platform admin).

    Ownership is authority: the MLflow `team` tag only places unowned models and never moves an owned one.
    """
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    model = RegisteredModel.objects.select_for_update(of=("self",)).select_related("team").get(pk=model.pk)
    if model.team_id is not None and model.team_id != team.pk:
        require_capability(user=actor, team=model.team, capability=Capability.ADMINISTER)
    before = model.team.slug if model.team else None
    model.team, model.team_source = team, TeamSource.ASSIGNED
    model.team_tag_warning = team_tag_warning(model=model, tag=(model.tags or {}).get("team", ""))
    model.save(update_fields=["team", "team_source", "team_tag_warning"])
    model.versions.update(team=team)
    action = "registry.model.move_team" if before not in (None, team.slug) else "registry.model.assign_team"
    audit_record(actor=actor, action=action, target=model, team=team, changes={"team": [before, team.slug]})
    return model


def team_tag_warning(*, model: RegisteredModel, tag: str) -> str:
    """The warning shown when MLflow's `team` tag disagrees with the owner ("" when it agrees or is absent)."""
    if not tag or model.team is None or tag == model.team.slug:
        return ""
    return (f"MLflow's `team` tag says '{tag}', but the model belongs to '{model.team.slug}'; the tag does not "
            f"move an owned model. Fix the tag in MLflow, or ask admins of both teams to move the model.")
