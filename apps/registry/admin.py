"""Django admin: environments are added here; the rest is read-only (changes go through the audited services)."""
from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin

from .models import (AliasHolding, ApprovalPolicy, Environment, ModelVersion, PolicyFloor, PromotionRequest,
                     RegisteredModel, SyncRun)


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "rank", "description"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "team", "team_source", "presence", "last_synced_at"]
    search_fields = ["name"]
    list_filter = ["presence", "team"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["model_name", "version", "team", "creator", "presence", "mlflow_created_at"]
    search_fields = ["model_name"]
    list_select_related = ["team"]


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ReadOnlyAdmin):
    list_display = ["team", "environment", "approvals_required", "expiry_hours", "updated_at"]


@admin.register(PolicyFloor)
class PolicyFloorAdmin(ReadOnlyAdmin):
    list_display = ["environment", "protected", "approvals_required", "updated_at"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "environment", "kind", "status", "requested_by", "created_at"]
    list_filter = ["status", "environment"]


@admin.register(AliasHolding)
class AliasHoldingAdmin(ReadOnlyAdmin):
    list_display = ["model", "alias", "version_number", "since", "until", "source"]


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "trigger", "status", "started_at", "finished_at", "progress"]
