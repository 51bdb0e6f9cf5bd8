from rest_framework import serializers

from apps.core.api.fields import harden


class StrictInputSerializer(serializers.Serializer):
    """Input serializer that refuses fields it does not know, so a typo is an error, not a silent no-op, and
    whose fields are strict and bounded (apps.core.api.fields.harden), in validation and in the schema alike."""

    def get_fields(self):
        return {name: harden(field) for name, field in super().get_fields().items()}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, f in self.fields.items() if not f.read_only})
            if unknown:
                allowed = ", ".join(sorted(n for n, f in self.fields.items() if not f.read_only))
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Allowed fields: {allowed}."] for name in unknown}
                )
        return super().to_internal_value(data)

    @classmethod
    def validated(cls, data) -> dict:
        """Validate request data and return the cleaned dict (raises the standard 400 on bad input)."""
        serializer = cls(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)
