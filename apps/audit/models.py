from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """An append-only, hash-chained, keyed record of one state change.

    Foreign keys carry no database constraint: deleting a user or team must never rewrite history
    (the table refuses UPDATE, DELETE and TRUNCATE, see migrations 0002 and 0003).
    """

    occurred_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    team = models.ForeignKey(
        "teams.Team", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    changes = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 of `hash` under the key named by key_id, held outside the database (apps/audit/chain.py).
    key_id = models.CharField(max_length=32)
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["team", "occurred_at"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"


class AuditCheckpoint(models.Model):
    """A signed tree head: the chain had `size` events ending in `head_hash` at `signed_at`.

    Signed with Ed25519 (key outside the database, named by key_id) and also appended to a file sink outside
    the database, so deleting recent events, or every event, is detected against it. Append-only too.
    """

    size = models.BigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    head_event_id = models.BigIntegerField()
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size} events, head {self.head_hash[:12]}… signed {self.signed_at:%Y-%m-%d %H:%M:%S}"
