from rest_framework import serializers

from apps.outbox.models import OutboxMessage


class OutboxMessageSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = OutboxMessage
        fields = ["id", "topic", "payload", "dedup_key", "team", "request_id", "status", "attempts",
                  "next_attempt_at", "last_error", "created_at", "published_at"]
