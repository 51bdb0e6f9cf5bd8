from datetime import date

from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.core.errors import InvalidInput

from ..choices import PricingClass
from ..models import GpuPrice, GpuType, NodeToken, Quota

# Three years of daily rollups: longer ranges are split by the caller.
MAX_REPORT_DAYS = 1096
# Bounds far above any real cluster, well inside the columns (and the cost arithmetic) they end in.
MAX_GPUS = 100_000
MAX_HOURS = 10 * 366 * 24


class AdmissionRequestSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.CharField(max_length=63)
    gpu_type = serializers.CharField(max_length=64, allow_blank=True, help_text='"" with gpu_count 0: CPU-only')
    gpu_count = serializers.IntegerField(min_value=0, max_value=MAX_GPUS)
    hours = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0, max_value=MAX_HOURS,
                                   help_text="How long the work runs, for the cost estimate (at most ten years)")
    pricing_class = serializers.ChoiceField(choices=PricingClass.choices, default=PricingClass.ON_DEMAND)


class AdmissionDecisionSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    gpu_type = serializers.CharField()
    requested = serializers.IntegerField()
    guaranteed = serializers.IntegerField()
    borrow_limit = serializers.IntegerField()
    in_use = serializers.IntegerField()
    borrowed = serializers.IntegerField()
    fits = serializers.IntegerField()
    hourly_cost = serializers.DecimalField(max_digits=14, decimal_places=4)
    monthly_cost_estimate = serializers.DecimalField(max_digits=14, decimal_places=2)
    budget_remaining_gpu_hours = serializers.FloatField(allow_null=True)


class QuotaSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    cluster = serializers.CharField(source="gpu_type.cluster.name", read_only=True)
    gpu_type = serializers.CharField(source="gpu_type.name", read_only=True)
    cohort = serializers.CharField(source="cohort.name", read_only=True, allow_null=True)
    in_use = serializers.SerializerMethodField()
    headroom = serializers.SerializerMethodField(help_text="Guaranteed GPUs not in use now")

    class Meta:
        model = Quota
        fields = ["id", "team", "cluster", "gpu_type", "guaranteed", "borrow_limit", "cohort", "monthly_gpu_hours",
                  "in_use", "headroom", "updated_at"]

    def get_in_use(self, quota) -> int:
        from ..services import _in_use

        if not hasattr(quota, "_in_use"):
            quota._in_use = _in_use(team_id=quota.team_id, gpu_type_id=quota.gpu_type_id)
        return quota._in_use

    def get_headroom(self, quota) -> int:
        return max(quota.guaranteed - self.get_in_use(quota), 0)


class QuotaSetSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.CharField(max_length=63)
    gpu_type = serializers.CharField(max_length=64)
    guaranteed = serializers.IntegerField(min_value=0, max_value=MAX_GPUS,
                                          error_messages={"min_value": "guaranteed can't be negative."})
    borrow_limit = serializers.IntegerField(default=0, min_value=0, max_value=MAX_GPUS,
                                            error_messages={"min_value": "borrow_limit can't be negative."})
    cohort = serializers.SlugField(required=False, allow_null=True, default=None, max_length=63)
    monthly_gpu_hours = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, allow_null=True,
                                                 default=None, min_value=0)


class GpuTypeSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    parent = serializers.CharField(source="parent.name", read_only=True, allow_null=True)

    class Meta:
        model = GpuType
        fields = ["id", "cluster", "name", "parent", "mig_profile", "memory_gb", "capacity", "capacity_from",
                  "archived_at"]


class GpuTypeCreateSerializer(StrictInputSerializer):
    cluster = serializers.CharField(max_length=63)
    name = serializers.CharField(max_length=64)
    memory_gb = serializers.IntegerField(default=0, min_value=0, max_value=100_000)
    capacity = serializers.IntegerField(default=0, min_value=0, max_value=MAX_GPUS)
    parent = serializers.CharField(max_length=64, default="", allow_blank=True)
    mig_profile = serializers.CharField(max_length=32, default="", allow_blank=True)
    capacity_from = serializers.DateTimeField(required=False, default=None, allow_null=True,
                                              help_text="When the capacity came into service; default now")


class GpuPriceSerializer(serializers.ModelSerializer):
    gpu_type = serializers.CharField(source="gpu_type.name", read_only=True)
    cluster = serializers.CharField(source="gpu_type.cluster.name", read_only=True)

    class Meta:
        model = GpuPrice
        fields = ["id", "cluster", "gpu_type", "pricing_class", "hourly_price", "effective_from", "effective_to"]


class GpuPriceCreateSerializer(StrictInputSerializer):
    cluster = serializers.CharField(max_length=63)
    gpu_type = serializers.CharField(max_length=64)
    pricing_class = serializers.ChoiceField(choices=PricingClass.choices, default=PricingClass.ON_DEMAND)
    hourly_price = serializers.DecimalField(max_digits=12, decimal_places=4, min_value=0)
    effective_from = serializers.DateTimeField()
    effective_to = serializers.DateTimeField(required=False, allow_null=True, default=None)
    close_previous = serializers.BooleanField(default=False)


class SampleBatchSerializer(StrictInputSerializer):
    batch_id = serializers.UUIDField()
    node = serializers.CharField(max_length=253, required=False, default="")
    cluster = serializers.CharField(max_length=63, required=False, default="",
                                    help_text="Platform admins posting by hand; agents' tokens name their cluster")
    # Documentation only: the view validates with apps.costs.ingest.BatchIn (msgspec), which is much faster.
    samples = serializers.ListField(child=serializers.DictField(), help_text=(
        "[{ts (epoch seconds or ISO 8601), gpu_index, util (0-100), mem_used_mb, mem_total_mb, power_w, gpu_uuid, "
        "gpu_name, processes: [{pid, used_mb}]}]"))


class IngestResultSerializer(serializers.Serializer):
    batch_id = serializers.CharField()
    duplicate = serializers.BooleanField()
    accepted = serializers.IntegerField()
    rejected_future = serializers.IntegerField()
    rejected_past = serializers.IntegerField()


class FocusQuerySerializer(StrictInputSerializer):
    text_input = True  # query parameters
    month = serializers.RegexField(r"^\d{4}-\d{2}$", help_text="YYYY-MM: the billing period")
    format = serializers.ChoiceField(choices=["csv", "parquet"], default="csv")
    team = serializers.SlugField(required=False)

    def validate_month(self, value: str) -> date:
        year, month = (int(part) for part in value.split("-"))
        if year < 2000 or not 1 <= month <= 12:
            raise serializers.ValidationError("month must look like 2026-11 (a month from 2000-01 on).")
        return date(year, month, 1)


class NodeTokenCreateSerializer(StrictInputSerializer):
    cluster = serializers.CharField(max_length=63)
    node = serializers.CharField(max_length=253)
    gpu_count = serializers.IntegerField(min_value=0, max_value=1024,
                                         help_text="GPUs on the node; samples may name indexes 0..gpu_count-1")


class NodeTokenSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name")

    class Meta:
        model = NodeToken
        fields = ["id", "cluster", "node", "gpu_count", "prefix", "created_at", "last_used_at", "revoked_at"]


class ReportQuerySerializer(StrictInputSerializer):
    text_input = True  # query parameters
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    month = serializers.RegexField(r"^\d{4}-\d{2}$", required=False, help_text="YYYY-MM instead of start/end")
    group_by = serializers.CharField(default="team", max_length=100,
                                     help_text="team, model, version, deployment, gpu_type or day; several joined by "
                                               "commas for a multi-dimension report, e.g. team,model,deployment")
    team = serializers.SlugField(required=False)
    cluster = serializers.CharField(required=False, max_length=63)
    share_unallocated = serializers.BooleanField(default=False)

    def validate_group_by(self, value: str) -> str:
        from ..selectors import group_by_dimensions

        try:
            return ",".join(group_by_dimensions(value))
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.message) from None
    format = serializers.ChoiceField(choices=["json", "csv", "jsonl"], default="json")
    page = serializers.IntegerField(required=False)

    def validate_month(self, value: str) -> str:
        year, month = (int(part) for part in value.split("-"))
        if year < 2000 or not 1 <= month <= 12:
            raise serializers.ValidationError("month must look like 2026-11 (a month from 2000-01 on).")
        return value

    def validate(self, attrs: dict) -> dict:
        # A bounded period: reports read daily rollups, and an open-ended range (…9999-12-31) is a typo, not a query.
        start, end = attrs.get("start"), attrs.get("end")
        if attrs.get("month") and (start or end):
            raise serializers.ValidationError({"month": ["Give either month or start/end, not both."]})
        if start and end:
            if start > end:
                raise serializers.ValidationError({"end": [f"end ({end}) is before the start ({start})."]})
            if (end - start).days >= MAX_REPORT_DAYS:
                raise serializers.ValidationError(
                    {"end": [f"A report covers at most {MAX_REPORT_DAYS} days; split the period."]})
        for name in ("start", "end"):
            if attrs.get(name) and attrs[name].year < 2000:
                raise serializers.ValidationError({name: ["Give a date from 2000-01-01 on."]})
        return attrs


class BudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    monthly_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    thresholds = serializers.ListField(child=serializers.IntegerField())
    updated_at = serializers.DateTimeField()


class BudgetSetSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    monthly_amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    thresholds = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=1000), required=False,
                                       default=None, allow_null=True, max_length=20,
                                       help_text="Percentages of the budget that alert, e.g. [50, 80, 100]")


class CostMonthSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")
    state = serializers.ChoiceField(choices=["open", "closed"])
    closed_at = serializers.DateTimeField(allow_null=True)
    closed_by = serializers.CharField(allow_null=True)
    closable = serializers.BooleanField(help_text="Open and ended: a platform admin may close it")


class BudgetAlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    month = serializers.DateField()
    threshold = serializers.IntegerField()
    spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    budget = serializers.DecimalField(max_digits=14, decimal_places=2)
    forecast = serializers.DecimalField(max_digits=14, decimal_places=2)
    created_at = serializers.DateTimeField()


class AllocationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug", allow_null=True)
    cluster = serializers.CharField(source="cluster.name")
    gpu_type = serializers.CharField(source="gpu_type.name", allow_null=True)
    gpu_count = serializers.IntegerField()
    borrowed = serializers.IntegerField()
    cpu_cores = serializers.DecimalField(max_digits=8, decimal_places=2)
    memory_gb = serializers.DecimalField(max_digits=10, decimal_places=2)
    pricing_class = serializers.CharField()
    model_version_id = serializers.IntegerField(allow_null=True)
    deployment_id = serializers.IntegerField(allow_null=True)
    job_id = serializers.IntegerField(allow_null=True)
    revision_id = serializers.IntegerField(allow_null=True)
    node = serializers.CharField()
    gpu_indexes = serializers.ListField(child=serializers.IntegerField(),
                                        help_text="NVML indexes on `node`; empty: unknown, so no idle figure")
    gpu_uuids = serializers.ListField(child=serializers.CharField())
    mig_instance = serializers.CharField()
    source = serializers.CharField()
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)


class NodeTokenCreatedSerializer(NodeTokenSerializer):
    token = serializers.CharField(help_text="Shown once; the agent sends it as Authorization: Bearer <token>")

    class Meta(NodeTokenSerializer.Meta):
        fields = [*NodeTokenSerializer.Meta.fields, "token"]


class ReportRowSerializer(serializers.Serializer):
    """Amounts are decimal strings, as in the CSV and JSONL exports: exact, never floats."""

    key = serializers.CharField()
    label = serializers.CharField()
    team = serializers.CharField(help_text="Empty when the row spans teams")
    model = serializers.CharField()
    version = serializers.CharField()
    deployment = serializers.CharField()
    currency = serializers.CharField(help_text="ISO 4217 (COSTS_CURRENCY)")
    gpu_hours = serializers.DecimalField(max_digits=16, decimal_places=3)
    gpu_cost = serializers.DecimalField(max_digits=16, decimal_places=2)
    other_cost = serializers.DecimalField(max_digits=16, decimal_places=2)
    idle_gpu_hours = serializers.DecimalField(max_digits=16, decimal_places=3, allow_null=True)
    idle_cost = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)
    shared_unallocated = serializers.DecimalField(max_digits=16, decimal_places=2)
    total_cost = serializers.DecimalField(max_digits=16, decimal_places=2)
    predictions = serializers.IntegerField(allow_null=True)
    cost_per_1k_predictions = serializers.DecimalField(max_digits=16, decimal_places=4, allow_null=True)


class ReportSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.CharField()
    results = ReportRowSerializer(many=True)
