"""The monitoring state machines.

Alerts: open ──► acknowledged ──► resolved, or open ──► resolved.
Runs, driven by the runner (apps/core/runner.py):

    queued ──► running ──► succeeded | not_enough_data
      ▲ │        │ attempt failed, or its worker died (lease expired): back to queued, retried after a backoff
      │ ▼        ▼
    needs_attention   out of attempts, with the last error; Retry (audited) queues it again

`failed` is what runs ended as before the runner (no attempt retried them); no new run ends there."""
from django.utils import timezone

from apps.audit.transitions import transition

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
    """Move the alert from the status it was read in; someone moved it first, or the table forbids it: 409."""
    now = timezone.now()
    user = actor if getattr(actor, "is_authenticated", False) else None
    fields = ({"acknowledged_at": now, "acknowledged_by": user, "acknowledge_comment": comment} if to == S.ACKNOWLEDGED
              else {"resolved_at": now, "resolved_by": user, "resolve_comment": comment})
    verb = "acknowledge" if to == S.ACKNOWLEDGED else "resolve"
    transition(row=alert, to=to, allowed=ALLOWED, expected={alert.status}, action=f"monitoring.alert.{verb}",
               actor=actor, fields=fields, changes={"comment": [None, comment]}, conflict=f"Alert {alert.pk}")
    return alert


RUN_ALLOWED: dict[str, set[str]] = {
    R.QUEUED: {R.RUNNING, R.NEEDS_ATTENTION},
    R.RUNNING: {R.QUEUED, R.SUCCEEDED, R.NOT_ENOUGH_DATA, R.NEEDS_ATTENTION},
    R.NEEDS_ATTENTION: {R.QUEUED},
}


def run_transition(*, run: MonitorRun, from_: str, to: str, action: str, changes: dict | None = None,
                   actor=None, **fields) -> bool:
    """Move a run from `from_` to `to` with `fields`, audited in the same transaction. False (nothing written)
    when the run is no longer `from_`: another worker or sweep moved it first."""
    return transition(row=run, to=to, allowed=RUN_ALLOWED, expected={from_}, action=action, actor=actor,
                      team=run.monitor.team, fields=fields, changes=changes) is not None


RENDER_ALLOWED: dict[str, set[str]] = {
    F.QUEUED: {F.DONE, F.NEEDS_ATTENTION},
    F.NEEDS_ATTENTION: {F.QUEUED},
}


def render_transition(render: ReportRender, *, to: str, actor=None, action: str = "",
                      changes: dict | None = None) -> ReportRender:
    """Move a full report render from the status it was read in (else 409), in the caller's transaction. Giving
    up and retrying are audited (`action`); a render that is done shows as the run's report."""
    transition(row=render, to=to, allowed=RENDER_ALLOWED, expected={render.status}, action=action, actor=actor,
               team=render.run.monitor.team, fields={"finished_at": timezone.now()} if to == F.DONE else {},
               changes=changes, conflict=f"The full report of run {render.run_id}")
    return render
