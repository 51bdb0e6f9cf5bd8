"""Monitors: create, update, the auto-rollback policy and their beat schedule."""
from __future__ import annotations

import json

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import drift
from ..choices import ColumnRole, Window
from ..models import Monitor


RETRAIN_JOB_KEYS = ("cluster", "image", "command", "gpu_type", "gpu_count", "environment", "namespace")
MONITOR_FIELDS = ("window", "features", "numeric_method", "categorical_method", "numeric_threshold",
                  "categorical_threshold", "drift_share", "prediction_drift", "min_rows", "enabled", "retrain_job",
                  "exact_max_rows", "raw_retention_days", "summary_retention_days")


def _validate_monitor(monitor: Monitor) -> None:
    if monitor.numeric_method not in drift.NUMERIC_METHODS:
        raise InvalidInput(f"numeric_method must be one of {', '.join(drift.NUMERIC_METHODS)}.",
                           fields={"numeric_method": ["Unknown method."]})
    if monitor.categorical_method not in drift.CATEGORICAL_METHODS:
        raise InvalidInput(f"categorical_method must be one of {', '.join(drift.CATEGORICAL_METHODS)}.",
                           fields={"categorical_method": ["Unknown method."]})
    if not 0 < monitor.drift_share <= 1:
        raise InvalidInput("drift_share must be in (0, 1].", fields={"drift_share": ["Out of range."]})
    if monitor.reference_id:
        if monitor.reference.model_version_id != monitor.model_version_id:
            raise InvalidInput("The reference data belongs to another model version.", fields={"reference": ["Wrong version."]})
        names = {c["name"] for c in monitor.reference.columns(ColumnRole.FEATURE)}
        unknown = sorted(set(monitor.features) - names)
        if unknown:
            raise InvalidInput(f"Unknown features: {', '.join(unknown)}; the reference has {', '.join(sorted(names))}.",
                               fields={"features": [f"Unknown: {', '.join(unknown)}."]})
    unknown_job = set(monitor.retrain_job or {}) - set(RETRAIN_JOB_KEYS)
    if unknown_job:
        raise InvalidInput(f"retrain_job has unknown keys {', '.join(sorted(unknown_job))}; allowed: "
                           f"{', '.join(RETRAIN_JOB_KEYS)}.", fields={"retrain_job": ["Unknown keys."]})
    if monitor.deployment_id and monitor.deployment.team_id != monitor.team_id:
        raise NotFound(f"Deployment {monitor.deployment_id} not found.")
    _validate_retrain_namespace(monitor)


def _validate_retrain_namespace(monitor: Monitor) -> None:
    """A retraining Job runs in one of the team's namespaces on its cluster; refused at save as at dispatch."""
    job = monitor.retrain_job or {}
    if not job.get("namespace"):
        return
    from apps.deployments.models import Cluster
    from apps.deployments.services import job_namespace

    cluster = Cluster.objects.filter(name=str(job.get("cluster") or "")).first()
    if cluster is None:
        raise InvalidInput(f"retrain_job names namespace {job['namespace']} on cluster '{job.get('cluster', '')}', "
                           f"which does not exist; name the cluster the job runs on.",
                           fields={"retrain_job": ["Unknown cluster."]})
    job_namespace(cluster=cluster, team=monitor.team, environment=job.get("environment"), namespace=job["namespace"])


def _sync_schedule(monitor: Monitor) -> None:
    """One django-celery-beat PeriodicTask per monitor, enabled with it."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    minute_hour = ("5", "*") if monitor.window == Window.HOURLY else ("15", "0")
    crontab, _ = CrontabSchedule.objects.get_or_create(minute=minute_hour[0], hour=minute_hour[1], day_of_week="*",
                                                       day_of_month="*", month_of_year="*", timezone="UTC")
    task = monitor.schedule or PeriodicTask(name=f"monitoring: monitor {monitor.pk}")
    task.task = "monitoring.schedule_monitor"
    task.crontab = crontab
    task.kwargs = json.dumps({"monitor_id": monitor.pk})
    task.enabled = monitor.enabled
    task.save()
    if monitor.schedule_id != task.pk:
        Monitor.objects.filter(pk=monitor.pk).update(schedule=task)
        monitor.schedule = task


@transaction.atomic
def monitor_create(*, actor, team, name: str, model_version, reference=None, deployment=None, **options) -> Monitor:
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if model_version.model.team_id != team.pk:
        raise NotFound(f"Model version {model_version.pk} not found in team '{team.slug}'.")
    unknown = set(options) - set(MONITOR_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown monitor options: {', '.join(sorted(unknown))}.")
    import re

    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,60}", name or ""):
        raise InvalidInput("Name the monitor with letters, digits, '-' or '_' (at most 60).", fields={"name": ["Not a slug."]})
    if Monitor.objects.filter(team=team, name=name).exists():
        raise Conflict(f"Team '{team.slug}' already has a monitor named '{name}'.")
    monitor = Monitor(team=team, name=name, model_version=model_version, reference=reference, deployment=deployment,
                      created_by=actor if getattr(actor, "is_authenticated", False) else None, **options)
    _validate_monitor(monitor)
    monitor.save()
    _sync_schedule(monitor)
    audit_record(actor=actor, action="monitoring.monitor.create", target=monitor,
                 changes={"name": [None, name], "model_version": [None, str(model_version)],
                          "deployment": [None, deployment.pk if deployment else None],
                          **{k: [None, getattr(monitor, k)] for k in MONITOR_FIELDS}})
    return monitor


@transaction.atomic
def monitor_update(*, actor, monitor: Monitor, **changes) -> Monitor:
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    allowed = set(MONITOR_FIELDS) | {"reference", "deployment"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"Unknown monitor options: {', '.join(sorted(unknown))}.")
    before = {k: getattr(monitor, k) for k in changes}
    for key, value in changes.items():
        setattr(monitor, key, value)
    _validate_monitor(monitor)
    monitor.save()
    _sync_schedule(monitor)
    diff = {k: [_plain(before[k]), _plain(getattr(monitor, k))] for k in changes if before[k] != getattr(monitor, k)}
    audit_record(actor=actor, action="monitoring.monitor.update", target=monitor, changes=diff)
    return monitor


@transaction.atomic
def monitor_set_auto_rollback(*, actor, monitor: Monitor, enabled: bool, drift_share: float | None = None,
                              windows: int | None = None, error_rate: float | None = None) -> Monitor:
    """The auto-rollback policy is a team-admin decision (it acts on production without a human)."""
    require_capability(user=actor, team=monitor.team, capability=Capability.ADMINISTER)
    if enabled and not monitor.deployment_id:
        raise Conflict(f"Monitor '{monitor.name}' has no deployment linked; link one before enabling auto-rollback.")
    before = {"auto_rollback": monitor.auto_rollback, "auto_rollback_drift_share": monitor.auto_rollback_drift_share,
              "auto_rollback_windows": monitor.auto_rollback_windows,
              "auto_rollback_error_rate": monitor.auto_rollback_error_rate}
    monitor.auto_rollback = enabled
    if drift_share is not None:
        if not 0 < drift_share <= 1:
            raise InvalidInput("drift_share must be in (0, 1].", fields={"drift_share": ["Out of range."]})
        monitor.auto_rollback_drift_share = drift_share
    if windows is not None:
        if windows < 1:
            raise InvalidInput("windows must be at least 1.", fields={"windows": ["Too small."]})
        monitor.auto_rollback_windows = windows
    if error_rate is not None:
        monitor.auto_rollback_error_rate = error_rate
    monitor.save(update_fields=list(before))
    after = {k: getattr(monitor, k) for k in before}
    audit_record(actor=actor, action="monitoring.monitor.auto_rollback_policy", target=monitor,
                 changes={k: [before[k], after[k]] for k in before if before[k] != after[k]})
    return monitor


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    return value
