"""Registry sync requests and model ownership: run or queue a sync, assign a model to a team."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.models import Team
from apps.teams.selectors import require_capability

from ..choices import SyncStatus, SyncTrigger, TeamSource
from ..models import RegisteredModel, SyncRun

SYNC_TOPIC = "registry.sync"


def sync_run_now(*, actor, trigger: str = SyncTrigger.MANUAL, team: Team | None = None, full: bool = False,
                 changed_only: bool = False) -> SyncRun:
    """Sync in this process (beat job, tests, demo seed). The API's "Sync now" goes through sync_request.

    `changed_only`: a watermark pass from the last pass's watermark (a complete pass when there is none yet).
    """
    from ..sync import sync_registry

    since = None
    if changed_only:
        since = (SyncRun.objects.filter(status=SyncStatus.SUCCEEDED, watermark__isnull=False)
                 .order_by("-started_at").values_list("watermark", flat=True).first())
    run = SyncRun.objects.create(trigger=trigger, team=team, full=full, since_watermark=since,
                                 requested_by=actor if getattr(actor, "is_authenticated", False) else None)
    return sync_registry(run=run)


def sync_run_scheduled() -> SyncRun:
    """The beat job: a watermark pass, or a complete one when none succeeded for REGISTRY_COMPLETE_SYNC_SECONDS."""
    recent = timezone.now() - timedelta(seconds=settings.REGISTRY_COMPLETE_SYNC_SECONDS)
    complete_due = not SyncRun.objects.filter(status=SyncStatus.SUCCEEDED, since_watermark__isnull=True,
                                              started_at__gte=recent).exists()
    return sync_run_now(actor=None, trigger=SyncTrigger.BEAT, changed_only=not complete_due)


@transaction.atomic
def sync_request(*, actor, team: Team, full: bool = False) -> SyncRun:
    """"Sync now": record the run, let a worker do it (progress shows on the run)."""
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    running = SyncRun.objects.filter(status=SyncStatus.RUNNING, started_at__gte=timezone.now() - timedelta(minutes=10))
    run = running.first()
    if run is not None:
        return run  # one pass at a time: pressing twice shows the pass already under way
    run = SyncRun.objects.create(trigger=SyncTrigger.MANUAL, team=team, requested_by=actor, full=full,
                                 progress="queued")
    audit_record(actor=actor, action="registry.sync.request", target=run, team=team, changes={"full": [None, full]})
    outbox_enqueue(topic=SYNC_TOPIC, payload={"run_id": run.pk}, dedup_key=f"registry-sync:{run.pk}", team=team)
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
