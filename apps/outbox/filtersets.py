import django_filters

from .models import OutboxMessage


class OutboxMessageFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")

    class Meta:
        model = OutboxMessage
        fields = ["status", "topic", "team"]
