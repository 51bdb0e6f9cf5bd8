import functools

from celery import shared_task
from django.db import transaction

from .models import TaskReceipt
from .services import PermanentFailure, outbox_publish_due


def idempotent_task(name: str, *, on_exhausted=None, **options):
    """A Celery task fed by the outbox: acks late, retries with backoff, and does its work once per dedup key.

    The receipt is written in the same transaction as the task's database effects, so a task that
    fails leaves no receipt (and is retried), and a redelivered message finds the receipt and stops.
    External calls inside the task must themselves be idempotent (set-alias, server-side apply).

    Nothing gives up silently: when the last retry fails, or the body raises PermanentFailure (retrying can't
    help), `on_exhausted(error=..., **payload)` records the failure on the entity (its needs-attention state).
    """
    options = {
        "acks_late": True,
        "autoretry_for": (Exception,),
        "retry_backoff": True,
        "retry_backoff_max": 600,
        "retry_jitter": True,
        "max_retries": 10,
        **options,
    }

    def decorator(fn):
        @shared_task(name=name, bind=True, **options)
        @functools.wraps(fn)
        def task(self, *, dedup_key: str, **payload):
            try:
                with transaction.atomic():
                    _, created = TaskReceipt.objects.get_or_create(dedup_key=dedup_key, defaults={"task_name": name})
                    if not created:
                        return {"status": "duplicate", "dedup_key": dedup_key}
                    result = fn(**payload)
            except Exception as exc:
                if on_exhausted is None or not (isinstance(exc, PermanentFailure)
                                                or self.request.retries >= self.max_retries):
                    raise
                error = f"{type(exc).__name__}: {exc}"[:2000]
                on_exhausted(error=error, **payload)
                return {"status": "gave_up", "dedup_key": dedup_key, "error": error}
            return {"status": "done", "dedup_key": dedup_key, "result": result}

        return task

    return decorator


@shared_task(name="outbox.sweep", acks_late=True)
def sweep_task():
    """Beat job: publish whatever the on-commit kick missed (Redis was down, the process died)."""
    return outbox_publish_due()
