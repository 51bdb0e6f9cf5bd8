from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.registry.choices import GateKind, GateOp
from apps.registry.models import (AliasHolding, Approval, ApprovalPolicy, ModelVersion, PolicyFloor,
                                  PromotionRequest, RegisteredModel, SyncRun)
from apps.teams.choices import Role


class RegisteredModelSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "team", "team_source", "team_tag_warning", "description", "tags", "aliases",
                  "presence", "mlflow_created_at", "mlflow_updated_at", "last_synced_at"]


class ModelVersionListSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    model_id = serializers.IntegerField(read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True, default=None)

    class Meta:
        model = ModelVersion
        fields = ["id", "model", "model_id", "team", "version", "aliases", "metrics", "creator", "git_commit",
                  "mlflow_created_at", "presence"]


class ModelVersionSerializer(ModelVersionListSerializer):
    class Meta(ModelVersionListSerializer.Meta):
        fields = ModelVersionListSerializer.Meta.fields + [
            "run_id", "source", "artifact_uri", "params", "tags", "run_tags", "datasets", "artifacts",
            "signature", "description", "mlflow_status", "mlflow_updated_at", "last_synced_at"]


class GateSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=GateKind.choices)
    metric = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    op = serializers.ChoiceField(choices=GateOp.choices, required=False, allow_blank=True, default="")
    threshold = serializers.FloatField(required=False, allow_null=True, default=None)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class ApprovalPolicySerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    gates = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalPolicy
        fields = ["id", "team", "environment", "approvals_required", "approver_roles", "expiry_hours", "gates",
                  "updated_at"]

    def get_gates(self, obj) -> list[dict]:
        return [g.as_dict() for g in obj.gates.all()]


class ApprovalPolicyCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    environment = serializers.SlugField()
    approvals_required = serializers.IntegerField(min_value=0, max_value=10, default=1)
    approver_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    expiry_hours = serializers.IntegerField(min_value=1, max_value=24 * 90, default=72)
    gates = GateSerializer(many=True, required=False)


class ApprovalPolicyUpdateSerializer(StrictInputSerializer):
    approvals_required = serializers.IntegerField(min_value=0, max_value=10, required=False)
    approver_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    expiry_hours = serializers.IntegerField(min_value=1, max_value=24 * 90, required=False)
    gates = GateSerializer(many=True, required=False)


class PolicyFloorSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = PolicyFloor
        fields = ["id", "environment", "protected", "approvals_required", "approver_roles", "gates", "updated_at"]


class PolicyFloorCreateSerializer(StrictInputSerializer):
    environment = serializers.SlugField()
    protected = serializers.BooleanField(default=False)
    approvals_required = serializers.IntegerField(min_value=0, max_value=10, default=1)
    approver_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    gates = GateSerializer(many=True, required=False)


class PolicyFloorUpdateSerializer(StrictInputSerializer):
    protected = serializers.BooleanField(required=False)
    approvals_required = serializers.IntegerField(min_value=0, max_value=10, required=False)
    approver_roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False)
    gates = GateSerializer(many=True, required=False)


class ApprovalSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Approval
        fields = ["user", "role", "decision", "comment", "artifact_digest", "created_at"]


class PromotionRequestSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    # A model version is named (model, version number), as in MLflow; its row id only as model_version_id.
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True, help_text="MLflow version number")
    model_version_id = serializers.IntegerField(source="version_id", read_only=True)
    environment = serializers.CharField(source="environment.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    override_by = serializers.CharField(source="override_by.username", read_only=True, default=None)
    previous_version = serializers.IntegerField(source="previous_version.version", read_only=True, default=None)
    # The runner's last_error under the name API clients have read since publishing could need attention.
    publish_error = serializers.CharField(source="last_error", read_only=True)

    class Meta:
        model = PromotionRequest
        fields = ["id", "team", "model", "version", "model_version_id", "environment", "kind", "status",
                  "status_display", "requested_by", "comment", "policy", "policy_source", "gate_results",
                  "gates_passed", "approvals",
                  "override_by", "override_reason", "override_at", "previous_version", "created_at", "expires_at",
                  "decided_at", "published_at", "attempts", "next_attempt_at", "last_error", "publish_error",
                  "artifact_digest",
                  "artifact_manifest"]


class PromotionCreateSerializer(StrictInputSerializer):
    environment = serializers.SlugField()
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class DecisionSerializer(StrictInputSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class OverrideSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=2000)


class AssignTeamSerializer(StrictInputSerializer):
    team = serializers.SlugField()


class RevokeAliasSerializer(StrictInputSerializer):
    environment = serializers.SlugField()
    reason = serializers.CharField(max_length=2000)


class SyncRequestSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    full = serializers.BooleanField(default=False)


class SyncRunSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True, default=None)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = SyncRun
        fields = ["id", "trigger", "team", "requested_by", "status", "full", "since_watermark", "watermark",
                  "started_at", "finished_at", "progress", "counts", "warnings", "error"]

    def get_warnings(self, obj) -> list[dict]:
        """Only the warnings about models the reader's teams own (a run's report is seen across teams)."""
        from apps.registry.selectors import sync_run_warnings

        request = self.context.get("request")
        return sync_run_warnings(run=obj, user=request.user) if request else []


class MlflowWebhookResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["synced", "ignored"])
    model = serializers.CharField(allow_null=True)


class AliasHoldingSerializer(serializers.ModelSerializer):
    request = serializers.IntegerField(source="request_id", read_only=True)
    version = serializers.IntegerField(source="version_number", read_only=True, help_text="MLflow version number")

    class Meta:
        model = AliasHolding
        fields = ["id", "alias", "version", "since", "until", "source", "request", "approved_by", "reason",
                  "ended_by"]


def alias_holding_row(h: AliasHolding) -> dict:
    return {"model": h.model.name, "alias": h.alias, "version": h.version_number,
            "since": h.since.isoformat(), "until": h.until.isoformat() if h.until else "",
            "source": h.source, "changed_outside_control_plane": h.source == "outside",
            "request_id": h.request_id or "", "approved_by": ",".join(h.approved_by or []), "reason": h.reason,
            "ended_by": h.ended_by}


ALIAS_HISTORY_COLUMNS = ["model", "alias", "version", "since", "until", "source", "changed_outside_control_plane",
                         "request_id", "approved_by", "reason", "ended_by"]
