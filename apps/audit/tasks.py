from celery import shared_task


@shared_task(name="audit.checkpoint")
def checkpoint_task() -> dict:
    """Beat job: sign the chain's head if events were added since the last checkpoint (idempotent)."""
    from .services import audit_checkpoint_create

    checkpoint = audit_checkpoint_create()
    return {"size": checkpoint.size if checkpoint else None}
