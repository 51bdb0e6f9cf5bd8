from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "occurred_at", "actor_label", "team", "action", "object_type", "object_id"]
    list_filter = ["action"]
    search_fields = ["actor_label", "object_id", "request_id"]

