from django.contrib import admin

from .models import Alert, Monitor, MonitorRun, PredictionBatch, ReferenceDataset


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model_version", "deployment", "window", "state", "enabled", "auto_rollback"]
    list_filter = ["state", "window", "enabled"]
    readonly_fields = ["state", "last_run_at", "schedule"]


@admin.register(MonitorRun)
class MonitorRunAdmin(admin.ModelAdmin):
    list_display = ["id", "monitor", "window_start", "window_end", "status", "state", "drift_share", "current_rows"]
    list_filter = ["status", "state", "trigger"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["id", "monitor", "kind", "status", "occurrences", "opened_at"]
    list_filter = ["status", "kind"]

    def has_change_permission(self, request, obj=None):
        return False  # state changes go through the services (audited)


@admin.register(PredictionBatch)
class PredictionBatchAdmin(admin.ModelAdmin):
    list_display = ["batch_id", "model_version", "source", "received", "accepted", "rejected", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReferenceDataset)
class ReferenceDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model_version", "source", "row_count", "created_at"]
    exclude = ["sample_parquet", "full_parquet"]
