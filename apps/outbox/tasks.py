import functools

from celery import shared_task
from django.db import transaction

from .models import TaskReceipt
from .services import outbox_publish_due


def idempotent_task(name: str, **options):
    """A Celery task fed by the outbox: acks late, retries with backoff, and does its work once per dedup key.

    The receipt is written in the same transaction as the task's database effects, so a task that
    fails leaves no receipt (and is retried), and a redelivered message finds the receipt and stops.
    External calls inside the task must themselves be idempotent (set-alias, server-side apply).

    Work that must never give up silently belongs on the runner (apps/core/runner.py) instead: its rows keep
    their attempts and last error, and end in a visible needs-attention state.
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
            with transaction.atomic():
                _, created = TaskReceipt.objects.get_or_create(dedup_key=dedup_key, defaults={"task_name": name})
                if not created:
                    return {"status": "duplicate", "dedup_key": dedup_key}
                result = fn(**payload)
            return {"status": "done", "dedup_key": dedup_key, "result": result}

        return task

    return decorator


@shared_task(name="outbox.sweep", acks_late=True)
def sweep_task():
    """Beat job: publish whatever the on-commit kick missed (Redis was down, the process died)."""
    return outbox_publish_due()
