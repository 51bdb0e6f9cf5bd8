"""The runner: background work is a row, not a message.

An entity that needs work (a promotion to publish, a monitor run to compute, a webhook to deliver) carries
`lease_owner`, `lease_until`, `attempts`, `next_attempt_at` and `last_error` (LeasedWork). Each app registers a
WorkKind: which rows are due, the handler that does the work, what to do when attempts run out. The runner
claims one due row at a time in a short transaction with FOR UPDATE SKIP LOCKED (two runners never take the
same row, and neither waits for the other), runs the handler outside any transaction, and records the outcome:

- the handler records its result through the entity's transition() inside `lease.holding()`, which locks the
  row only while it is still ours: a runner whose lease was taken over writes nothing (LeaseLost);
- a failure keeps `last_error` and makes the row due again after a backoff;
- out of attempts (or a PermanentFailure) → `on_exhausted`, the entity's transition to needs_attention, visible
  with its last error until someone retries it;
- a worker that dies leaves a lease that expires: the next pass reclaims the row (the lost attempt counts).

Celery runs the runner (apps/core/tasks.py): `runner.tick` on each kind's queue, a beat sweep that ticks every
kind with due rows, and on-commit kicks (`wake`). Those are hints only: losing one delays work until the next
sweep, it never loses work, because the rows are the record of what is due.

apps/core imports no domain app: kinds register themselves from their app's `runner.py`, imported by the app's
AppConfig.ready().
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

logger = logging.getLogger(__name__)

CONTROL = "control"
BULK = "bulk"


class LeasedWork(models.Model):
    """The fields the runner needs on an entity with background work (its status stays the entity's own)."""

    lease_owner = models.CharField(max_length=100, blank=True, default="",
                                   help_text="The runner working on this row now (empty: nobody)")
    lease_until = models.DateTimeField(null=True, blank=True,
                                       help_text="Past this time a silent runner is presumed dead; the row is reclaimed")
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts in the current round (Retry starts anew)")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not due before (backoff); empty: due now")
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True


# A handler's return value: the row's work goes on in other tasks under this lease (a fan-out), which extend it as
# they progress; the last of them finishes the work with `resume`. If they stop, the lease expires and the row is
# reclaimed like one whose worker died.
HANDED_OFF = "handed_off"


class LeaseLost(Exception):
    """Another runner took this row over (our lease expired): stop, and write nothing."""


class PermanentFailure(Exception):
    """Raised by a handler for an error that retrying cannot fix: the row needs attention at once."""


def exponential_backoff(attempts: int) -> timedelta:
    """2, 4, 8 … seconds after each failed attempt, at most ten minutes."""
    return timedelta(seconds=min(2 ** max(attempts, 1), 600))


@dataclass(frozen=True)
class WorkKind:
    """One kind of background work.

    `due()` returns the rows whose state needs work (e.g. promotions approved but not published); the runner
    adds the lease and backoff conditions. `handler(lease)` does the work (outside any transaction) and records
    its result inside `lease.holding()`. `on_exhausted(row, error)` runs inside a transaction with the row locked
    and moves the entity to its needs-attention state through its transition (which audits it)."""

    name: str
    model: type[models.Model]
    due: Callable[[], models.QuerySet]
    handler: Callable[["Lease"], Any]
    on_exhausted: Callable[[models.Model, str], Any]
    max_attempts: int = 10
    lease_seconds: int = 120
    queue: str = CONTROL
    backoff: Callable[[int], timedelta] = exponential_backoff
    batch: int = 50


_KINDS: dict[str, WorkKind] = {}


def register(kind: WorkKind) -> WorkKind:
    if kind.queue not in (CONTROL, BULK):
        raise ValueError(f"Work kind {kind.name}: queue must be {CONTROL!r} or {BULK!r}, not {kind.queue!r}.")
    known = _KINDS.get(kind.name)
    if known is not None and known.model is not kind.model:
        raise ValueError(f"Work kind {kind.name} is already registered for {known.model.__name__}.")
    _KINDS[kind.name] = kind
    return kind


def kind_get(name: str) -> WorkKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"No work kind named {name!r}; known: {', '.join(sorted(_KINDS)) or 'none'}.") from None


def kinds() -> list[WorkKind]:
    return [_KINDS[name] for name in sorted(_KINDS)]


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass
class Lease:
    """Our hold on one row while we work on it."""

    kind: WorkKind
    pk: Any
    owner: str
    attempt: int
    # Set when the claim found the row out of attempts (its last attempt lost its worker): give up, don't run.
    exhausted_error: str = ""
    _rows: models.QuerySet = field(init=False, repr=False)

    def __post_init__(self):
        self._rows = self.kind.model.objects.filter(pk=self.pk, lease_owner=self.owner)

    def row(self) -> models.Model:
        """The row, fresh (raises LeaseLost when the row is no longer ours)."""
        row = self._rows.first()
        if row is None:
            raise LeaseLost(f"{self.kind.name} #{self.pk}: the lease of {self.owner} was taken over.")
        return row

    def extend(self, **fields) -> bool:
        """Heartbeat: push the lease forward (writing `fields` with it, e.g. progress). False when another runner
        took the row: the handler must stop."""
        return bool(self._rows.update(lease_until=timezone.now() + timedelta(seconds=self.kind.lease_seconds),
                                      **fields))

    def check(self, **fields) -> None:
        """Extend the lease (with `fields`), or raise LeaseLost."""
        if not self.extend(**fields):
            raise LeaseLost(f"{self.kind.name} #{self.pk}: the lease of {self.owner} was taken over.")

    @contextmanager
    def holding(self):
        """A transaction holding the row locked, entered only while the lease is still ours: the one place a
        handler writes its result. Nobody can claim the row while it is locked, so the write is fenced."""
        with transaction.atomic():
            # OF self, by pk: an entity ordered through a relation (a deployment by team) must not lock that too.
            row = self._rows.select_for_update(of=("self",)).order_by("pk").first()
            if row is None:
                raise LeaseLost(f"{self.kind.name} #{self.pk}: the lease of {self.owner} was taken over.")
            yield row

    def release(self) -> bool:
        """Let go of the row after the work is recorded (a success clears the last error and the backoff)."""
        return bool(self._rows.update(lease_owner="", lease_until=None, next_attempt_at=None, last_error=""))


def _due(kind: WorkKind, now) -> models.QuerySet:
    return kind.due().filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                             Q(lease_until__isnull=True) | Q(lease_until__lt=now))


def claim(kind: WorkKind, *, ids=None, owner: str | None = None) -> Lease | None:
    """Claim one due row: lease it to `owner` and count the attempt, in one short transaction.

    SKIP LOCKED makes racing runners take different rows (or nothing) instead of waiting for each other; a
    row whose lease expired (its runner died) is due again, and the lost attempt is recorded as its error."""
    owner = owner or runner_identity()
    now = timezone.now()
    with transaction.atomic():
        rows = _due(kind, now)
        if ids is not None:
            rows = rows.filter(pk__in=list(ids))
        picked = (rows.select_for_update(skip_locked=True, of=("self",))
                  .order_by(F("next_attempt_at").asc(nulls_first=True), "pk")
                  .values("pk", "attempts", "lease_owner", "lease_until", "last_error").first())
        if picked is None:
            return None
        error = picked["last_error"]
        if picked["lease_owner"]:
            error = (f"Attempt {picked['attempts']} lost its runner ({picked['lease_owner']}); its lease expired at "
                     f"{picked['lease_until']:%Y-%m-%d %H:%M:%S} UTC.")
            logger.warning("Reclaiming an expired lease", extra={"kind": kind.name, "pk": picked["pk"],
                                                                 "owner": picked["lease_owner"]})
        out_of_attempts = picked["attempts"] >= kind.max_attempts
        attempt = picked["attempts"] if out_of_attempts else picked["attempts"] + 1
        kind.model.objects.filter(pk=picked["pk"]).update(
            lease_owner=owner, lease_until=now + timedelta(seconds=kind.lease_seconds), attempts=attempt,
            last_error=error)
    return Lease(kind=kind, pk=picked["pk"], owner=owner, attempt=attempt,
                 exhausted_error=(error or "Out of attempts.") if out_of_attempts else "")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _record_failure(lease: Lease, error: str, *, give_up: bool) -> str:
    """Keep the error and back off, or (out of attempts / permanent) hand the row to on_exhausted."""
    kind = lease.kind
    try:
        with lease.holding() as row:
            if give_up or row.attempts >= kind.max_attempts:
                kind.model.objects.filter(pk=row.pk).update(lease_owner="", lease_until=None, next_attempt_at=None,
                                                            last_error=error)
                row.refresh_from_db()
                kind.on_exhausted(row, error)
                outcome = "needs_attention"
            else:
                kind.model.objects.filter(pk=row.pk).update(
                    lease_owner="", lease_until=None, last_error=error,
                    next_attempt_at=timezone.now() + kind.backoff(row.attempts))
                outcome = "retry"
    except LeaseLost:
        return "lease_lost"
    log = logger.error if outcome == "needs_attention" else logger.warning
    log("Background work failed", extra={"kind": kind.name, "pk": lease.pk, "attempt": lease.attempt,
                                         "outcome": outcome, "error": error})
    return outcome


def run_lease(lease: Lease, *, handler: Callable[[Lease], Any] | None = None) -> str:
    """Run the handler for a claimed row and record the outcome: done, retry, needs_attention or lease_lost.
    `handler` replaces the kind's own for this call (an app running one row now with its own options)."""
    if lease.exhausted_error:
        return _record_failure(lease, lease.exhausted_error, give_up=True)
    try:
        outcome = (handler or lease.kind.handler)(lease)
    except LeaseLost:
        logger.warning("Lease lost; the handler stopped", extra={"kind": lease.kind.name, "pk": lease.pk})
        return "lease_lost"
    except PermanentFailure as exc:
        return _record_failure(lease, str(exc)[:2000] or _error_text(exc), give_up=True)
    except Exception as exc:  # any failure is kept on the row and retried; none is lost in a log
        logger.exception("Handler failed", extra={"kind": lease.kind.name, "pk": lease.pk})
        return _record_failure(lease, _error_text(exc), give_up=False)
    if outcome == HANDED_OFF:
        return HANDED_OFF
    lease.release()
    return "done"


def resume(name: str, *, pk, owner: str, attempt: int, handler: Callable[[Lease], Any]) -> str:
    """Finish work a handler handed off (HANDED_OFF) under `owner`'s lease: take the lease over (once: of several
    tasks racing here one wins, the others get lease_lost) and run `handler` like run_lease."""
    kind = kind_get(name)
    successor = f"{owner[:90]}/resumed"
    if not kind.model.objects.filter(pk=pk, lease_owner=owner).update(
            lease_owner=successor, lease_until=timezone.now() + timedelta(seconds=kind.lease_seconds)):
        return "lease_lost"
    return run_lease(Lease(kind=kind, pk=pk, owner=successor, attempt=attempt), handler=handler)


def tick(name: str, *, ids=None, limit: int | None = None, owner: str | None = None) -> dict:
    """Work through due rows of one kind, one claim at a time (so no claimed row waits behind another while its
    lease runs out), until none is due or `limit` rows were handled. `ids` narrows it to those rows (a hint)."""
    kind = kind_get(name)
    limit = limit or kind.batch
    counts: Counter = Counter()
    while sum(counts.values()) < limit:
        lease = claim(kind, ids=ids, owner=owner)
        if lease is None:
            break
        counts[run_lease(lease)] += 1
    return dict(counts)


def due_count(name: str) -> int:
    return _due(kind_get(name), timezone.now()).count()


def wake(name: str, *, ids=None) -> None:
    """After the current transaction commits, ask a worker to tick `name` (for `ids`). A hint: if the broker is
    down it is dropped, and the beat sweep does the work a little later."""
    kind = kind_get(name)
    payload = {"kind": kind.name, **({"ids": list(ids)} if ids is not None else {})}

    def send():
        from .tasks import tick_task

        tick_task.apply_async(kwargs=payload, queue=kind.queue, retry=False)

    transaction.on_commit(send, robust=True)


@transaction.atomic
def retry_now(*, row: models.Model, fields: dict | None = None) -> None:
    """Make a row due again with a fresh round of attempts (the entity's Retry service calls this next to its
    transition out of needs_attention, in the same transaction)."""
    type(row).objects.filter(pk=row.pk).update(attempts=0, next_attempt_at=None, lease_owner="", lease_until=None,
                                               **(fields or {}))
