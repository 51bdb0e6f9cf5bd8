"""The monitoring state machines.

Alerts: open ──► acknowledged ──► resolved, or open ──► resolved.
Runs, driven by the runner (apps/core/runner.py):

    queued ──► running ──► succeeded | not_enough_data
      ▲ │        │ attempt failed, or its worker died (lease expired): back to queued, retried after a backoff
      │ ▼        ▼
    needs_attention   out of attempts, with the last error; Retry (audited) queues it again

`failed` is what runs ended as before the runner (no attempt retried them); no new run ends there."""
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict

from .choices import AlertStatus as S
from .choices import RenderStatus as F
from .choices import RunStatus as R
from .models import Alert, MonitorRun, ReportRender

ALLOWED: dict[str, set[str]] = {
    S.OPEN: {S.ACKNOWLEDGED, S.RESOLVED},
    S.ACKNOWLEDGED: {S.RESOLVED},
    S.RESOLVED: set(),
}


def alert_transition(*, alert: Alert, to: str, actor, comment: str = "") -> Alert:
    """Compare-and-set the status; zero rows means someone moved it first (409, nothing changed)."""
    from_ = alert.status
    if to not in ALLOWED.get(from_, set()):
        raise Conflict(f"Alert {alert.pk} is already {from_}; it cannot become {to}.", extra={"status": from_})
    now = timezone.now()
    user = actor if getattr(actor, "is_authenticated", False) else None
    fields = ({"acknowledged_at": now, "acknowledged_by": user, "acknowledge_comment": comment} if to == S.ACKNOWLEDGED
              else {"resolved_at": now, "resolved_by": user, "resolve_comment": comment})
    updated = Alert.objects.filter(pk=alert.pk, status=from_).update(status=to, **fields)
    if updated == 0:
        current = Alert.objects.filter(pk=alert.pk).values_list("status", flat=True).first()
        raise Conflict(f"Alert {alert.pk} was changed meanwhile (it is now {current}); reload and try again.",
                       extra={"status": current})
    alert.refresh_from_db()
    verb = "acknowledge" if to == S.ACKNOWLEDGED else "resolve"
    audit_record(actor=actor, action=f"monitoring.alert.{verb}", target=alert,
                 changes={"status": [from_, to], "comment": [None, comment]})
    return alert


RUN_ALLOWED: dict[str, set[str]] = {
    R.QUEUED: {R.RUNNING, R.NEEDS_ATTENTION},
    R.RUNNING: {R.QUEUED, R.SUCCEEDED, R.NOT_ENOUGH_DATA, R.NEEDS_ATTENTION},
    R.NEEDS_ATTENTION: {R.QUEUED},
}


@transaction.atomic
def run_transition(*, run: MonitorRun, from_: str, to: str, action: str, changes: dict | None = None,
                   actor=None, **fields) -> bool:
    """Compare-and-set a run's status with `fields`, and write its audit event in the same transaction.
    False (nothing written) when the run is no longer `from_`: another worker or sweep moved it first."""
    if to not in RUN_ALLOWED.get(from_, set()):
        raise Conflict(f"Run {run.pk} cannot go from {from_} to {to}.", extra={"status": from_})
    if MonitorRun.objects.filter(pk=run.pk, status=from_).update(status=to, **fields) == 0:
        return False
    audit_record(actor=actor, action=action, target=run, team=run.monitor.team,
                 changes={"status": [from_, to], **(changes or {})})
    return True


RENDER_ALLOWED: dict[str, set[str]] = {
    F.QUEUED: {F.DONE, F.NEEDS_ATTENTION},
    F.NEEDS_ATTENTION: {F.QUEUED},
}


def render_transition(render: ReportRender, *, to: str, actor=None, action: str = "",
                      changes: dict | None = None) -> ReportRender:
    """Compare-and-set a full report render's status, in the caller's transaction. Giving up and retrying are
    audited (`action`); a render that is done shows as the run's report."""
    from_ = render.status
    if to not in RENDER_ALLOWED.get(from_, set()):
        raise Conflict(f"The full report of run {render.run_id} is {from_}; it can't become {to}.")
    fields = {"finished_at": timezone.now()} if to == F.DONE else {}
    if not ReportRender.objects.filter(pk=render.pk, status=from_).update(status=to, **fields):
        raise Conflict(f"The full report of run {render.run_id} changed meanwhile; reload and try again.")
    render.refresh_from_db()
    if action:
        audit_record(actor=actor, action=action, target=render, team=render.run.monitor.team,
                     changes={"status": [from_, to], **(changes or {})})
    return render
