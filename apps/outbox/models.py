import uuid

from django.db import models

from .choices import OutboxStatus


class OutboxMessage(models.Model):
    """A side effect written in the business transaction and published to Celery after commit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=200, help_text="Celery task name that handles the message")
    payload = models.JSONField(default=dict)
    dedup_key = models.CharField(max_length=255, unique=True)
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.topic} [{self.status}] {self.dedup_key}"


class TaskReceipt(models.Model):
    """Proof that the work for a dedup key was done; a redelivered message finds it and does nothing."""

    dedup_key = models.CharField(max_length=255, primary_key=True)
    task_name = models.CharField(max_length=200)
    processed_at = models.DateTimeField(auto_now_add=True)
