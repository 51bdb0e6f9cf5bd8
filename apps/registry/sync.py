"""Reads registered models and versions from MLflow (the registry of record) into the control plane.

Incremental: every version is listed (cheap: one paged search per model), but the run, its datasets and
the model signature are fetched only for versions that are new or whose `last_updated_timestamp` moved
(or all of them with `full=True`). Models and versions gone from MLflow are flagged `deleted`, never
dropped: promotion history and audit events keep pointing at them. Alias moves made directly in MLflow
are recorded in the alias history as "changed outside the control plane".

No lock across the network: each model is read from MLflow first (its changed versions' runs and signatures,
outside any transaction), then written in one short transaction of its own, which takes the model's row lock
and the audit chain lock only for its own writes. Every other audited write in the product proceeds while a
sync waits on MLflow.

Ownership is authority, not a tag: the `team` tag (writable by anyone who can write to MLflow) places a model
nobody owns yet; it never moves an owned one. A tag that disagrees with the owner becomes a warning on the model
and in the run's report; moving a model is `services.model_assign_team`, for admins of both teams.

Three ways in, one write path (`_write_model`):
- `sync_model`: one model by name, called by MLflow's registry webhooks (apps/registry/webhooks.py), so a change
  in MLflow shows here within a second or two;
- the watermark pass (`run.since_watermark` set; the scheduled sweep): only models whose `last_updated_timestamp`
  moved since the last pass's watermark, read newest first until it is passed. MLflow moves that timestamp when
  a version is created, updated or deleted and when the model is edited, not for tag or alias changes: those
  come by webhook;
- the complete pass (no watermark; "Sync now", the first pass, and the hourly scheduled one): lists every model
  and version, so it also sees what neither a webhook nor the timestamp tells (deleted models, model tags).
Whichever read a model last wins: a write whose read began before the one already written is skipped.
"""
import logging
import time
from datetime import datetime, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import runner
from apps.teams.models import Team

from . import mlflow_api
from .choices import AliasSource, MlflowPresence, SyncStatus, TeamSource
from .models import AliasHolding, ModelVersion, RegisteredModel, SyncRun
from .services import team_tag_warning
from .transitions import sync_run_transition

logger = logging.getLogger(__name__)

# The watermark is the MLflow timestamp below which a pass has seen every change: the time its reading began,
# less this margin, because MLflow stamps `last_updated_timestamp` before its transaction commits and its clock may
# run a little behind ours. So each pass re-reads the last minute (unchanged models are skipped without a write);
# a change stamped earlier than that and committed later still is found by the hourly complete pass.
WATERMARK_MARGIN_MS = 60_000


def _ts(millis) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=dt_timezone.utc) if millis else None


def _progress(run: SyncRun, text: str, counts: dict, lease: runner.Lease | None = None) -> None:
    if lease is not None:
        lease.check(progress=text[:200], counts=counts)  # the heartbeat; LeaseLost stops a pass taken over
        return
    SyncRun.objects.filter(pk=run.pk).update(progress=text[:200], counts=counts)


def sync_registry(*, run: SyncRun, lease: runner.Lease | None = None) -> SyncRun:
    """Run one sync pass, recording progress and counts on `run`; raises on error, after marking the run failed
    (in process) or queued again with its error (a runner's pass, `lease` given: the runner retries it)."""
    counts = {"models": 0, "models_new": 0, "models_deleted": 0, "versions": 0, "versions_fetched": 0,
              "versions_deleted": 0, "aliases_changed_outside": 0, "team_tag_conflicts": 0}
    warnings: list[dict] = []
    try:
        c = mlflow_api.client()
        watermark = int(time.time() * 1000) - WATERMARK_MARGIN_MS
        if run.since_watermark is not None:
            watermark = max(watermark, _watermark_pass(c, run=run, counts=counts, warnings=warnings, lease=lease))
            _succeed(run, counts=counts, warnings=warnings, watermark=watermark)
            run.refresh_from_db()
            return run
        seen_models = set()
        teams = {t.slug: t for t in Team.objects.all()}
        listed_at = timezone.now()
        mlflow_models = list(mlflow_api.iter_registered_models(c))
        _progress(run, f"listing versions of {len(mlflow_models)} models", counts, lease)
        by_model: dict[str, list] = {}
        for mv in mlflow_api.iter_all_model_versions(c):
            by_model.setdefault(mv.name, []).append(mv)
        for index, rm in enumerate(mlflow_models, 1):
            seen_models.add(rm.name)
            listed = by_model.get(rm.name, [])
            fetched = _fetch_changed_versions(c, rm, listed=listed, full=run.full)
            model = _write_model(rm, listed=listed, fetched=fetched, teams=teams, counts=counts, listed_at=listed_at)
            if model.team_tag_warning:
                warnings.append({"model_id": model.pk, "model": model.name, "owner": model.team.slug,
                                 "tag": model.tags.get("team", "")})
            # No model names here: every signed-in user sees the latest run's progress, whatever their team.
            _progress(run, f"{index}/{len(mlflow_models)} models", counts, lease)
        with transaction.atomic():
            # A model a webhook synced after the listing is newer than this pass knows.
            gone = RegisteredModel.objects.filter(presence=MlflowPresence.PRESENT).exclude(name__in=seen_models)
            for model in gone.exclude(mlflow_read_at__gt=listed_at):
                _mark_model_deleted(model)
                counts["models_deleted"] += 1
        _succeed(run, counts=counts, warnings=warnings, watermark=watermark)
    except runner.LeaseLost:
        raise  # another runner has the run now: write nothing
    except Exception as exc:
        ended = {"finished_at": timezone.now()} if lease is None else {}
        sync_run_transition(run, to=SyncStatus.FAILED if lease is None else SyncStatus.QUEUED,
                            fields={"counts": counts, "warnings": warnings,
                                    "error": f"{type(exc).__name__}: {exc}"[:2000], **ended})
        raise
    run.refresh_from_db()
    return run


def _succeed(run: SyncRun, *, counts: dict, warnings: list, watermark: int) -> None:
    done = f"done: {counts['models']} models, {counts['versions']} versions"
    sync_run_transition(run, to=SyncStatus.SUCCEEDED, fields={
        "finished_at": timezone.now(), "counts": counts, "warnings": warnings, "progress": done,
        "watermark": watermark})


def _watermark_pass(c, *, run: SyncRun, counts: dict, warnings: list, lease: runner.Lease | None = None) -> int:
    """Sync the models whose `last_updated_timestamp` is at or after `run.since_watermark`; returns that watermark.

    With nothing changed this is one page of MLflow's model search and one query here: no write at all.
    """
    listed_at = timezone.now()
    since = run.since_watermark
    moved = []
    for rm in mlflow_api.iter_registered_models_newest_first(c):
        if (rm.last_updated_timestamp or 0) < since:
            break
        moved.append(rm)
    known = {name: (presence, updated) for name, presence, updated in RegisteredModel.objects.filter(
        name__in=[rm.name for rm in moved]).values_list("name", "presence", "mlflow_updated_at")}
    changed = [rm for rm in moved
               if known.get(rm.name) != (MlflowPresence.PRESENT, _ts(rm.last_updated_timestamp))]
    counts["models_listed"] = len(moved)
    if not changed:
        return since
    teams = {t.slug: t for t in Team.objects.all()}
    for index, rm in enumerate(changed, 1):
        listed = list(mlflow_api.iter_model_versions(c, rm.name))
        fetched = _fetch_changed_versions(c, rm, listed=listed, full=run.full)
        model = _write_model(rm, listed=listed, fetched=fetched, teams=teams, counts=counts, listed_at=listed_at)
        if model.team_tag_warning:
            warnings.append({"model_id": model.pk, "model": model.name, "owner": model.team.slug,
                             "tag": model.tags.get("team", "")})
        _progress(run, f"{index}/{len(changed)} changed models", counts, lease)
    return since


def sync_model(*, name: str) -> RegisteredModel | None:
    """Sync one model by name (a webhook said it changed): read MLflow outside any transaction, then write.

    A model gone from MLflow is flagged deleted. Returns the model, or None when MLflow and we both lack it.
    """
    counts = {"models": 0, "models_new": 0, "models_stale": 0, "versions": 0, "versions_fetched": 0,
              "versions_deleted": 0, "aliases_changed_outside": 0, "team_tag_conflicts": 0}
    c = mlflow_api.client()
    read_at = timezone.now()
    rm = mlflow_api.registered_model_or_none(c, name)
    if rm is None:
        with transaction.atomic():
            model = RegisteredModel.objects.select_for_update(of=("self",)).filter(name=name).first()
            if model is not None and model.presence == MlflowPresence.PRESENT and not _newer_read_written(model,
                                                                                                        read_at):
                _mark_model_deleted(model)
        return model
    listed = list(mlflow_api.iter_model_versions(c, name))
    fetched = _fetch_changed_versions(c, rm, listed=listed, full=False)
    teams = {t.slug: t for t in Team.objects.all()}
    try:
        return _write_model(rm, listed=listed, fetched=fetched, teams=teams, counts=counts, listed_at=read_at)
    except IntegrityError:
        # Two deliveries for a model new to us (model created, version created) raced to insert it; the
        # other one won. Write again: this time the row is there to lock.
        return _write_model(rm, listed=listed, fetched=fetched, teams=teams, counts=counts, listed_at=read_at)


def _newer_read_written(model: RegisteredModel, read_at) -> bool:
    return model.mlflow_read_at is not None and model.mlflow_read_at > read_at


def _team_from_tags(tags: dict, teams: dict) -> Team | None:
    return teams.get((tags or {}).get("team", ""))


def _fetch_changed_versions(c, rm, *, listed: list, full: bool) -> dict[int, dict]:
    """MLflow details of the listed versions that are new or changed since the last pass (network, no transaction).

    {version number: {"run": run_details, "model": model_details}}; the write applies them to the rows.
    """
    known = {number: (presence, status, updated) for number, presence, status, updated in
             ModelVersion.objects.filter(model__name=rm.name).values_list(
                 "version", "presence", "mlflow_status", "mlflow_updated_at")}
    fetched = {}
    for mv in listed:
        number = int(mv.version)
        before = known.get(number)
        if (full or before is None or before != (MlflowPresence.PRESENT, mv.status or "",
                                                  _ts(mv.last_updated_timestamp))):
            details = mlflow_api.run_details(c, mv.run_id or "")
            fetched[number] = {"run": details,
                               "model": mlflow_api.model_details(c, mv) if (mv.run_id or mv.source) else {}}
    return fetched


@transaction.atomic
def _write_model(rm, *, listed: list, fetched: dict[int, dict], teams: dict, counts: dict,
                 listed_at) -> RegisteredModel:
    """Write one model and its versions from what was read of MLflow; no network call in here."""
    now = timezone.now()
    tags = dict(rm.tags or {})
    model = RegisteredModel.objects.select_for_update(of=("self",)).select_related("team").filter(name=rm.name).first()
    created = model is None
    if not created and _newer_read_written(model, listed_at):
        counts["models_stale"] = counts.get("models_stale", 0) + 1
        return model
    if created:
        model = RegisteredModel(name=rm.name)
        counts["models_new"] += 1
    before_team, before_presence, before_warning = model.team_id, model.presence, model.team_tag_warning
    if model.team_id is None:
        tag_team = _team_from_tags(tags, teams)
        if tag_team is not None:
            model.team, model.team_source = tag_team, TeamSource.TAG
    model.team_tag_warning = team_tag_warning(model=model, tag=tags.get("team", ""))
    if model.team_tag_warning:
        counts["team_tag_conflicts"] += 1
    model.description = rm.description or ""
    model.tags = tags
    model.mlflow_created_at = _ts(rm.creation_timestamp)
    model.mlflow_updated_at = _ts(rm.last_updated_timestamp)
    model.presence = MlflowPresence.PRESENT
    model.last_synced_at = now
    model.mlflow_read_at = listed_at
    mlflow_aliases = {alias: int(version) for alias, version in (rm.aliases or {}).items()}
    if model.pk:
        # An alias the control plane moved after this pass listed MLflow: our record is newer than what we saw.
        touched = AliasHolding.objects.filter(model=model).filter(Q(since__gte=listed_at) | Q(until__gte=listed_at))
        for holding in touched.order_by("since"):
            mlflow_aliases.pop(holding.alias, None)
            if holding.until is None:
                mlflow_aliases[holding.alias] = holding.version_number
    previous_aliases = dict(model.aliases or {})
    model.aliases = mlflow_aliases
    model.save()
    counts["models"] += 1
    if not created and (before_team != model.team_id or before_presence != model.presence
                        or before_warning != model.team_tag_warning):
        audit_record(actor=None, action="registry.model.sync_changed", target=model, team=model.team,
                     changes={k: v for k, v in {"team_id": [before_team, model.team_id],
                                                "presence": [before_presence, model.presence],
                                                "team_tag_warning": [before_warning, model.team_tag_warning]}.items()
                              if v[0] != v[1]})

    if not created and before_team != model.team_id:
        ModelVersion.objects.filter(model=model).update(team=model.team)
    existing = {v.version: v for v in ModelVersion.objects.filter(model=model)}
    for v in existing.values():
        v.model = model  # save() copies the model's team and name; don't load the model once per version
    seen = set()
    for mv in listed:
        number = int(mv.version)
        seen.add(number)
        version = existing.get(number) or ModelVersion(model=model, version=number)
        before = _listed_fields(version)
        # A version that changed after the fetch (another pass got there first) keeps its old details and its old
        # `mlflow_updated_at`, so the next pass fetches it.
        changed = number in fetched
        version.tags = dict(mv.tags or {})
        # search results don't carry aliases; the registered model's alias map does.
        version.aliases = sorted(alias for alias, held in mlflow_aliases.items() if held == number)
        version.run_id = mv.run_id or ""
        version.source = mv.source or ""
        version.creator = mv.user_id or ""
        version.description = mv.description or ""
        version.mlflow_created_at = _ts(mv.creation_timestamp)
        version.mlflow_status = mv.status or ""
        version.presence = MlflowPresence.PRESENT
        version.last_synced_at = now
        if changed:
            details = fetched[number]["run"]
            version.metrics = details.get("metrics", {})
            version.params = details.get("params", {})
            version.run_tags = details.get("tags", {})
            version.datasets = details.get("datasets", [])
            version.artifacts = details.get("artifacts", [])
            version.git_commit = version.run_tags.get("mlflow.source.git.commit", "")
            model_info = fetched[number]["model"]
            version.artifact_uri = model_info.get("artifact_uri") or details.get("artifact_uri", "")
            version.signature = model_info.get("signature")
            version.mlflow_updated_at = _ts(mv.last_updated_timestamp)
            counts["versions_fetched"] += 1
        if changed or _listed_fields(version) != before:
            # Unchanged rows are not rewritten: a sync of 100k quiet versions stays cheap.
            version.save()
        existing[number] = version
        counts["versions"] += 1
    ModelVersion.objects.filter(model=model, version__in=seen).update(last_synced_at=now)
    for number, version in existing.items():
        if number not in seen and version.presence != MlflowPresence.DELETED:
            version.presence = MlflowPresence.DELETED
            version.aliases = []
            version.save(update_fields=["presence", "aliases"])
            counts["versions_deleted"] += 1
    _reconcile_aliases(model, mlflow_aliases, previous_aliases, existing, counts)
    return model


def _listed_fields(version: ModelVersion) -> tuple:
    return (version.tags, version.aliases, version.run_id, version.source, version.creator, version.description,
            version.mlflow_created_at, version.mlflow_status, version.presence)


def _reconcile_aliases(model, mlflow_aliases: dict, previous: dict, versions: dict, counts: dict) -> None:
    """Compare MLflow's aliases with the alias history; a difference was made outside the control plane."""
    now = timezone.now()
    current = {h.alias: h for h in AliasHolding.objects.select_for_update().filter(model=model, until__isnull=True)}

    for alias, number in mlflow_aliases.items():
        holding = current.get(alias)
        if holding is not None and holding.version_number == number:
            continue
        if holding is not None:
            holding.until, holding.ended_by = now, "changed outside the control plane (seen by sync)"
            holding.save(update_fields=["until", "ended_by"])
        version = versions.get(number)
        AliasHolding.objects.create(model=model, alias=alias, version=version if version and version.pk else None,
                                    version_number=number, since=now, source=AliasSource.OUTSIDE,
                                    reason="Changed outside the control plane (seen by sync)")
        audit_record(actor=None, action="registry.alias.changed_outside", target=model, team=model.team,
                     changes={f"alias:{alias}": [holding.version_number if holding else previous.get(alias), number]})
        counts["aliases_changed_outside"] += 1
    for alias, holding in current.items():
        if alias not in mlflow_aliases:
            holding.until, holding.ended_by = now, "removed outside the control plane (seen by sync)"
            holding.save(update_fields=["until", "ended_by"])
            audit_record(actor=None, action="registry.alias.changed_outside", target=model, team=model.team,
                         changes={f"alias:{alias}": [holding.version_number, None]})
            counts["aliases_changed_outside"] += 1


def _mark_model_deleted(model: RegisteredModel) -> None:
    model.presence = MlflowPresence.DELETED
    model.last_synced_at = timezone.now()
    model.save(update_fields=["presence", "last_synced_at"])
    model.versions.update(presence=MlflowPresence.DELETED, aliases=[])
    AliasHolding.objects.filter(model=model, until__isnull=True).update(
        until=timezone.now(), ended_by="model deleted or renamed in MLflow")
    audit_record(actor=None, action="registry.model.deleted_in_mlflow", target=model, team=model.team,
                 changes={"presence": [MlflowPresence.PRESENT, MlflowPresence.DELETED]})
