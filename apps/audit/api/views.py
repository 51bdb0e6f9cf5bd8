from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from apps.audit.filtersets import AuditEventFilterSet
from apps.audit.selectors import audit_event_list
from apps.core.api.views import ScopedReadOnlyViewSet
from apps.core.errors import InvalidInput
from apps.core.export import export_format, export_response

from .serializers import EXPORT_COLUMNS, AuditEventSerializer, audit_event_row


class AuditEventViewSet(ScopedReadOnlyViewSet):
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    capabilities = {"list": "view", "retrieve": "view"}

    def select(self, *, user):
        return audit_event_list(user=user).select_related("team")


def filtered_audit_events(request):
    """Selector + filters shared by the API export and the UI export."""
    filterset = AuditEventFilterSet(request.GET, queryset=audit_event_list(user=request.user).select_related("team"))
    if not filterset.is_valid():
        fields = {k: [str(m) for m in v] for k, v in filterset.errors.items()}
        raise InvalidInput("Invalid filter: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()),
                           fields=fields)
    return filterset.qs


def audit_export_response(request):
    fmt = export_format(request.GET.get("format"))
    events = filtered_audit_events(request).order_by("id")
    return export_response(events, fmt=fmt, columns=EXPORT_COLUMNS, to_row=audit_event_row, filename="audit")


class AuditExportView(APIView):
    capabilities = {"get": "view"}

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"], description="Default csv")]
        + [OpenApiParameter(name, str) for name in ["team", "actor", "action", "object_type", "object_id"]]
        + [OpenApiParameter(name, OpenApiTypes.DATETIME) for name in ["since", "until"]],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    def get(self, request):
        """Stream the audit events you may see, oldest first, as CSV or JSON Lines."""
        return audit_export_response(request)
