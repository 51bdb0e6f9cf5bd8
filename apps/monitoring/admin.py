"""Monitors are editable here; runs, alerts and batches are read-only (state changes go through the audited services)."""
from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin

from .models import Alert, Monitor, MonitorRun, PredictionBatch, ReferenceDataset


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model_version", "deployment", "window", "state", "enabled", "auto_rollback"]
    list_filter = ["state", "window", "enabled"]
    readonly_fields = ["state", "last_run_at", "schedule"]


@admin.register(MonitorRun)
class MonitorRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "monitor", "window_start", "window_end", "status", "state", "drift_share", "current_rows"]
    list_filter = ["status", "state", "trigger"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "monitor", "kind", "status", "occurrences", "opened_at"]
    list_filter = ["status", "kind"]


@admin.register(PredictionBatch)
class PredictionBatchAdmin(ReadOnlyAdmin):
    list_display = ["batch_id", "model_version", "source", "received", "accepted", "rejected", "created_at"]


@admin.register(ReferenceDataset)
class ReferenceDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model_version", "source", "row_count", "created_at"]
    exclude = ["sample_parquet", "full_parquet"]
