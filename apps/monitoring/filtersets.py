import django_filters

from apps.core.filters import BoundedIsoDateTimeFilter

from .models import Alert, Monitor, MonitorRun, PredictionBatch, ReferenceDataset


class MonitorFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")

    class Meta:
        model = Monitor
        fields = ["team", "state", "model_version", "deployment", "enabled"]


class RunFilterSet(django_filters.FilterSet):
    since = BoundedIsoDateTimeFilter(field_name="window_start", lookup_expr="gte")
    until = BoundedIsoDateTimeFilter(field_name="window_end", lookup_expr="lte")

    class Meta:
        model = MonitorRun
        fields = ["monitor", "status", "state", "trigger", "since", "until"]


class AlertFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")

    class Meta:
        model = Alert
        fields = ["team", "monitor", "status", "kind"]


class BatchFilterSet(django_filters.FilterSet):
    class Meta:
        model = PredictionBatch
        fields = ["model_version", "deployment", "batch_id", "source"]


class ReferenceFilterSet(django_filters.FilterSet):
    class Meta:
        model = ReferenceDataset
        fields = ["model_version", "source"]
