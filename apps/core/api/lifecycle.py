"""Archive, restore and delete on the API for catalogue objects (teams, clusters, GPU types), one shape for all.

Lists show active objects; `?archived=true` lists the archived ones. The viewset names its services."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.errors import InvalidInput

ARCHIVED_PARAM = OpenApiParameter("archived", OpenApiTypes.BOOL, description="true: only archived objects; "
                                  "false (default): only active ones")


class ArchivableViewSetMixin:
    # Checked before the object is looked up (permission before state): a caller who may not archive at all
    # hears 403, not whether the object exists. The viewset sets it, e.g. to require_platform_admin.
    lifecycle_guard = None

    def set_archived(self, *, actor, obj, archived: bool):
        raise NotImplementedError

    def delete_object(self, *, actor, obj) -> None:
        raise NotImplementedError

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if self.action != "list":
            return queryset
        raw = self.request.query_params.get("archived", "false")
        if raw not in ("true", "false"):
            raise InvalidInput(f"archived must be true or false, not '{raw[:50]}'.",
                               fields={"archived": ["Use true or false."]})
        return queryset.filter(archived_at__isnull=raw == "false")

    @extend_schema(parameters=[ARCHIVED_PARAM])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def archive(self, request, **kwargs):
        self.lifecycle_guard(user=request.user)
        obj = self.set_archived(actor=request.user, obj=self.get_object(), archived=True)
        return Response(self.get_serializer(obj).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def restore(self, request, **kwargs):
        self.lifecycle_guard(user=request.user)
        obj = self.set_archived(actor=request.user, obj=self.get_object(), archived=False)
        return Response(self.get_serializer(obj).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, **kwargs):
        self.lifecycle_guard(user=request.user)
        self.delete_object(actor=request.user, obj=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
