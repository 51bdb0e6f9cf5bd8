"""Celery entry points of the runner (apps/core/runner.py): Celery runs it, the rows say what is due."""
from celery import shared_task

from . import runner


@shared_task(name="runner.tick", acks_late=True)
def tick_task(*, kind: str, ids: list | None = None):
    """Work through the due rows of one kind. Sent to the kind's queue by `runner.wake` and the sweep; a
    duplicate or stale tick is harmless (it finds nothing due, or claims other rows)."""
    return runner.tick(kind, ids=ids)


@shared_task(name="runner.sweep", acks_late=True)
def sweep_task():
    """Beat: tick every kind that has due rows (including expired leases), each on its own queue. This is what
    makes a lost wake-up hint a delay and not a loss."""
    sent = {}
    for kind in runner.kinds():
        due = runner.due_count(kind.name)
        if due:
            tick_task.apply_async(kwargs={"kind": kind.name}, queue=kind.queue, retry=False)
            sent[kind.name] = due
    return sent


@shared_task(name="core.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys_task():
    """Beat: forget Idempotency-Key answers after their 24 hours (apps/core/api/idempotency.py)."""
    from .api.idempotency import idempotency_purge

    return idempotency_purge()
