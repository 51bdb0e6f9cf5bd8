"""The GPU reservation state machine: reserved ──► consumed (the work's pods run: it became a ledger
allocation) | released (failed, aborted, torn down, or timed out). Both ends are final.

A timeout is audited on its own (`reservation_expire`). Consuming and releasing happen in bulk, inside the
deployment or job transition that causes them, which is audited: `reservations_move` checks the table and
compare-and-sets on `reserved`, and writes no audit event of its own.
"""
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.transitions import sources, transition

from .choices import ReservationStatus as S
from .models import GpuReservation

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
