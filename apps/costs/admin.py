"""Read-mostly admin views; changes to catalog, quotas and budgets go through the audited services (API/UI)."""
from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin

from .models import BudgetAlert, Cohort, GpuAllocation, GpuDevice, GpuPrice, GpuType, NodeToken, Quota, SampleBatch


@admin.register(GpuType)
class GpuTypeAdmin(ReadOnlyAdmin):
    list_display = ["name", "cluster", "mig_profile", "memory_gb", "capacity"]
    list_filter = ["cluster"]


@admin.register(GpuPrice)
class GpuPriceAdmin(ReadOnlyAdmin):
    list_display = ["gpu_type", "pricing_class", "hourly_price", "effective_from", "effective_to"]
    list_filter = ["pricing_class"]


@admin.register(Quota)
class QuotaAdmin(ReadOnlyAdmin):
    list_display = ["team", "gpu_type", "guaranteed", "borrow_limit", "cohort", "monthly_gpu_hours"]


@admin.register(GpuAllocation)
class GpuAllocationAdmin(ReadOnlyAdmin):
    list_display = ["id", "team", "cluster", "gpu_type", "gpu_count", "borrowed", "source", "started_at", "stopped_at"]
    list_filter = ["source", "cluster"]


@admin.register(SampleBatch)
class SampleBatchAdmin(ReadOnlyAdmin):
    list_display = ["batch_id", "cluster", "node", "received_at", "accepted", "rejected_future", "rejected_past"]


@admin.register(NodeToken)
class NodeTokenAdmin(ReadOnlyAdmin):
    list_display = ["cluster", "node", "prefix", "created_at", "last_used_at", "revoked_at"]


admin.site.register([Cohort, GpuDevice, BudgetAlert], ReadOnlyAdmin)
