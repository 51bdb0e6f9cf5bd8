"""Alerts opened by runs, their lifecycle, and the rollback / retrain actions taken from them."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, DomainError, InvalidInput
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability
from apps.teams.services import webhooks_notify

from ..choices import AlertKind, AlertStatus, ColumnRole, RunStatus
from ..models import Alert, Monitor, MonitorRun
from ..transitions import alert_transition
from .monitors import RETRAIN_JOB_KEYS


def _evaluate_alerts(run: MonitorRun) -> None:
    monitor = run.monitor
    if run.status != RunStatus.SUCCEEDED:
        return
    crossings = []
    if run.dataset_drift:
        drifted = list(run.features.filter(drifted=True, role=ColumnRole.FEATURE).values_list("column", flat=True)[:10])
        crossings.append((AlertKind.DATASET_DRIFT,
                          f"Dataset drift on '{monitor.name}': {run.drifted_count}/{run.feature_count} features drifted",
                          f"Drift share {run.drift_share:.0%} ≥ {monitor.drift_share:.0%} in the window "
                          f"{run.window_start:%Y-%m-%d %H:%M} – {run.window_end:%Y-%m-%d %H:%M} UTC. "
                          f"Drifted: {', '.join(drifted)}."))
    if run.prediction_drifted:
        crossings.append((AlertKind.PREDICTION_DRIFT, f"Prediction drift on '{monitor.name}'",
                          f"The prediction distribution moved (score {run.prediction_score:.4g})."))
    limit = monitor.auto_rollback_error_rate
    if limit is not None and run.error_rate is not None and run.error_rate > limit:
        crossings.append((AlertKind.ERROR_RATE, f"Error rate {run.error_rate:.1%} on '{monitor.name}'",
                          f"Above the policy limit of {limit:.1%}."))
    for kind, title, message in crossings:
        alert = Alert.objects.select_for_update().filter(monitor=monitor, kind=kind).exclude(
            status=AlertStatus.RESOLVED).first()
        if alert:
            # Dedup: the same unresolved condition bumps the open alert instead of opening another.
            if alert.last_run_id != run.pk:
                alert.occurrences += 1
                alert.last_run = run
                alert.last_seen_at = timezone.now()
                alert.message = message
                alert.save(update_fields=["occurrences", "last_run", "last_seen_at", "message"])
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(team=monitor.team, monitor=monitor, kind=kind, title=title[:300],
                                             message=message, first_run=run, last_run=run)
        except IntegrityError:
            continue  # a concurrent run opened it first
        audit_record(actor=None, action="monitoring.alert.open", target=alert,
                     changes={"kind": [None, kind], "run": [None, run.pk], "title": [None, title]})
        webhooks_notify(team=monitor.team, event="monitoring.alert", text=f":warning: {title}. {message}",
                        data={"alert_id": alert.pk, "monitor": monitor.name, "kind": kind, "run_id": run.pk,
                              "report": f"/monitoring/runs/{run.pk}/report/"},
                        key=f"alert:{alert.pk}:open")
    _maybe_auto_rollback(run)


def _maybe_auto_rollback(run: MonitorRun) -> None:
    """Policy: drift share ≥ X for K consecutive windows, or error rate above Y. Off by default."""
    monitor = run.monitor
    if not monitor.auto_rollback or not monitor.deployment_id:
        return
    recent = list(MonitorRun.objects.filter(monitor=monitor, status=RunStatus.SUCCEEDED, trigger=run.trigger)
                  .order_by("-window_end", "-id")[:monitor.auto_rollback_windows])
    reason = None
    if len(recent) == monitor.auto_rollback_windows and all(
            r.drift_share is not None and r.drift_share >= monitor.auto_rollback_drift_share for r in recent):
        reason = (f"drift share ≥ {monitor.auto_rollback_drift_share:.0%} for {monitor.auto_rollback_windows} "
                  f"consecutive windows")
    elif monitor.auto_rollback_error_rate is not None and (run.error_rate or 0) > monitor.auto_rollback_error_rate:
        reason = f"error rate {run.error_rate:.1%} above {monitor.auto_rollback_error_rate:.1%}"
    if not reason:
        return
    if Monitor.objects.filter(pk=monitor.pk, auto_rollback=True).update(auto_rollback=False) == 0:
        return  # fired already; the policy disarms itself until someone re-enables it
    audit_record(actor=None, action="monitoring.monitor.auto_rollback_fired", target=monitor,
                 changes={"reason": [None, reason], "run": [None, run.pk], "auto_rollback": [True, False]})
    alert = Alert.objects.filter(monitor=monitor).exclude(status=AlertStatus.RESOLVED).order_by("-opened_at").first()
    try:
        with transaction.atomic():
            _rollback(actor=None, monitor=monitor, alert=alert, reason=f"Auto-rollback by monitor '{monitor.name}': {reason}")
    except DomainError as exc:
        audit_record(actor=None, action="monitoring.monitor.auto_rollback_failed", target=monitor,
                     changes={"error": [None, exc.message]})


@transaction.atomic
def alert_acknowledge(*, actor, alert: Alert, comment: str = "") -> Alert:
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    return alert_transition(alert=alert, to=AlertStatus.ACKNOWLEDGED, actor=actor, comment=comment)


@transaction.atomic
def alert_resolve(*, actor, alert: Alert, comment: str) -> Alert:
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    if not comment.strip():
        raise InvalidInput("Say how the alert was resolved (a comment is required).", fields={"comment": ["Required."]})
    return alert_transition(alert=alert, to=AlertStatus.RESOLVED, actor=actor, comment=comment)


def _deployments_service(name: str):
    try:
        from apps.deployments import services as deployment_services
    except ImportError:
        deployment_services = None
    fn = getattr(deployment_services, name, None)
    if fn is None:
        raise Conflict(f"This action needs the deployments service ({name}), which is not installed yet.")
    return fn


def _rollback(*, actor, monitor: Monitor, alert: Alert | None, reason: str):
    if monitor.deployment_id is None:
        raise Conflict(f"No deployment linked to monitor '{monitor.name}'; link its deployment to roll back from here.")
    rollback = _deployments_service("deployment_rollback")
    # Only while the deployment still serves the version this monitor watches: once rolled back, the same
    # alert (or a second click) is a 409 instead of a rollback to the drifted version.
    result = rollback(actor=actor, deployment=monitor.deployment, reason=reason,
                      only_while_serving=monitor.model_version)
    # Revisions are named by their deployment-scoped number everywhere people read them (r4, not row 17).
    record = {"action": "rollback", "at": timezone.now().isoformat(), "by": getattr(actor, "username", "system"),
              "deployment": monitor.deployment_id, "revision": result.number,
              "rollback_of": result.rollback_of.number if result.rollback_of_id else None}
    if alert is not None:
        Alert.objects.filter(pk=alert.pk).update(actions=alert.actions + [record])
        alert.actions = alert.actions + [record]
    audit_record(actor=actor, action="monitoring.alert.rollback" if alert else "monitoring.monitor.rollback",
                 target=alert or monitor, team=monitor.team,
                 changes={"deployment": [None, monitor.deployment_id], "reason": [None, reason],
                          "revision": [None, record["revision"]]})
    return result


@transaction.atomic
def alert_rollback(*, actor, alert: Alert):
    """"Roll back" from an alert: the deployments rollback service, with the alert as the reason."""
    require_capability(user=actor, team=alert.team, capability=Capability.OPERATE)
    if alert.status == AlertStatus.RESOLVED:
        raise Conflict(f"Alert {alert.pk} is resolved; open the dashboard to roll back for another reason.")
    return _rollback(actor=actor, monitor=alert.monitor, alert=alert, reason=f"Monitoring alert #{alert.pk}: {alert.title}")


@transaction.atomic
def monitor_rollback(*, actor, monitor: Monitor, reason: str = ""):
    """"Roll back" from the dashboard."""
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    return _rollback(actor=actor, monitor=monitor, alert=None,
                     reason=reason or f"Rolled back from the '{monitor.name}' drift dashboard")


@transaction.atomic
def alert_retrain(*, actor, alert: Alert | None = None, monitor: Monitor | None = None):
    """"Retrain": dispatch the monitor's configured training Job through the deployments service."""
    monitor = monitor or alert.monitor
    require_capability(user=actor, team=monitor.team, capability=Capability.OPERATE)
    if not monitor.retrain_job:
        raise Conflict(f"Monitor '{monitor.name}' has no retraining Job configured; set retrain_job "
                       f"(cluster, image, command) on the monitor first.")
    dispatch = _deployments_service("job_dispatch")
    from apps.deployments.models import Cluster

    reason = f"Monitoring alert #{alert.pk}: {alert.title}" if alert else f"Retrain from monitor '{monitor.name}'"
    options = {k: v for k, v in monitor.retrain_job.items() if k in RETRAIN_JOB_KEYS}
    cluster = Cluster.objects.filter(name=options.pop("cluster", "")).first()
    if cluster is None:
        raise Conflict(f"The retraining Job of monitor '{monitor.name}' names cluster "
                       f"'{monitor.retrain_job.get('cluster', '')}', which does not exist; fix retrain_job.")
    job = dispatch(actor=actor, team=monitor.team, cluster=cluster, **options)
    record = {"action": "retrain", "at": timezone.now().isoformat(), "by": getattr(actor, "username", "system"),
              "job": getattr(job, "pk", None)}
    if alert is not None:
        Alert.objects.filter(pk=alert.pk).update(actions=alert.actions + [record])
    audit_record(actor=actor, action="monitoring.retrain", target=alert or monitor, team=monitor.team,
                 changes={"job": [None, record["job"]], "reason": [None, reason]})
    return job
