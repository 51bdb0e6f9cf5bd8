from rest_framework import serializers

from apps.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "occurred_at", "actor_label", "actor_id", "team", "action", "object_type", "object_id",
                  "changes", "request_id", "client_ip", "prev_hash", "hash", "team_id", "key_id", "mac"]
        read_only_fields = fields


EXPORT_COLUMNS = AuditEventSerializer.Meta.fields


def audit_event_row(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_label": event.actor_label,
        "actor_id": event.actor_id,
        "team": event.team.slug if event.team_id and event.team else None,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "changes": event.changes,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        # What `audit_verify --export` needs to recompute the chain offline.
        "team_id": event.team_id,
        "key_id": event.key_id,
        "mac": event.mac,
    }
