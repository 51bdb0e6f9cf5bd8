"""The costs state machines: GPU reservations, and (at the end) the runner's rollup runs.

The GPU reservation state machine: reserved ──► consumed (the work's pods run: it became a ledger
allocation) | released (failed, aborted, torn down, or timed out). Both ends are final.

A timeout is audited on its own (`reservation_expire`). Consuming and releasing happen in bulk, inside the
deployment or job transition that causes them, which is audited: `reservations_move` checks the table and
compare-and-sets on `reserved`, and writes no audit event of its own.
"""
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.transitions import sources, transition

from .choices import ReservationStatus as S
from .choices import RollupStatus
from .models import GpuReservation, RollupRun

ALLOWED: dict[str, set[str]] = {
    S.RESERVED: {S.CONSUMED, S.RELEASED},
    S.CONSUMED: set(),
    S.RELEASED: set(),
}


def reservations_move(reservations: QuerySet, *, to: str, reason: str) -> int:
    """Move every reservation of `reservations` still in a status that allows `to`; returns how many moved."""
    return reservations.filter(status__in=sources(ALLOWED, to)).update(status=to, closed_at=timezone.now(),
                                                                      close_reason=reason[:200])


def reservation_expire(*, reservation: GpuReservation, reason: str) -> bool:
    """A reservation whose work never started in time is released, audited; False when it moved first."""
    return transition(row=reservation, to=S.RELEASED, allowed=ALLOWED, action="costs.reservation.expire",
                      team=reservation.team, fields={"closed_at": timezone.now(), "close_reason": reason[:200]},
                      changes={"gpus": [reservation.gpu_count, 0], "reason": [None, reason]}) is not None


# The rollup run state machine (the runner rolls up; apps/costs/rollup.py). A run called in process
# (rollup_incremental without a run: tests, the demo seed) is created running.
#
#     queued ──claim──▶ running ──▶ succeeded
#       ▲ │               │ an attempt failed: queued again; the runner keeps its error, retries after a backoff
#       │ └───────┬───────┘
#  retry│         ▼ out of attempts
#       └── needs_attention (audited both ways)
ROLLUP_ALLOWED: dict[str, set[str]] = {
    RollupStatus.QUEUED: {RollupStatus.RUNNING, RollupStatus.NEEDS_ATTENTION},
    RollupStatus.RUNNING: {RollupStatus.RUNNING, RollupStatus.QUEUED, RollupStatus.SUCCEEDED,
                           RollupStatus.NEEDS_ATTENTION},
    RollupStatus.NEEDS_ATTENTION: {RollupStatus.QUEUED},
}


def rollup_run_transition(run: RollupRun, *, to: str, actor=None, action: str = "", changes: dict | None = None,
                          fields: dict | None = None) -> RollupRun:
    """Move a rollup run from the status it was read in (else 409), in the caller's transaction. Moves into and
    out of needs_attention are audited (`action`); starting and finishing are the run's own record."""
    transition(row=run, to=to, allowed=ROLLUP_ALLOWED, expected={run.status}, action=action, actor=actor,
               fields=fields, changes=changes, conflict=f"Rollup #{run.pk}")
    return run
