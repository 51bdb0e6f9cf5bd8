import django_filters
from django.apps import apps

from apps.core.filters import BoundedIsoDateTimeFilter

from .models import AuditEvent


class AuditEventFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", label="Team slug")
    actor = django_filters.CharFilter(field_name="actor__username", label="Actor username")
    action = django_filters.CharFilter(method="filter_action", label="Action, or a prefix ending in '.' (registry.)")
    object_type = django_filters.ChoiceFilter(choices=lambda: [(m._meta.label_lower, m._meta.label_lower)
                                                               for m in sorted(apps.get_models(),
                                                                               key=lambda m: m._meta.label_lower)],
                                              label="Object type: app.model, e.g. deployments.deployment")
    object_id = django_filters.CharFilter()
    since = BoundedIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = BoundedIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["team", "actor", "action", "object_type", "object_id", "since", "until"]

    def filter_action(self, queryset, name, value):
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)
