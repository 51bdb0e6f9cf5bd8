from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer

from ..choices import PricingClass
from ..models import GpuPrice, GpuType, Quota


class AdmissionRequestSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.CharField(max_length=63)
    gpu_type = serializers.CharField(max_length=64, allow_blank=True, help_text='"" with gpu_count 0: CPU-only')
    gpu_count = serializers.IntegerField()
    hours = serializers.FloatField(required=False, allow_null=True, default=None)
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

    class Meta:
        model = Quota
        fields = ["id", "team", "cluster", "gpu_type", "guaranteed", "borrow_limit", "cohort", "monthly_gpu_hours",
                  "updated_at"]


class QuotaSetSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.CharField(max_length=63)
    gpu_type = serializers.CharField(max_length=64)
    guaranteed = serializers.IntegerField()
    borrow_limit = serializers.IntegerField(default=0)
    cohort = serializers.SlugField(required=False, allow_null=True, default=None)
    monthly_gpu_hours = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, allow_null=True,
                                                 default=None)


class GpuTypeSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    parent = serializers.CharField(source="parent.name", read_only=True, allow_null=True)

    class Meta:
        model = GpuType
        fields = ["id", "cluster", "name", "parent", "mig_profile", "memory_gb", "capacity"]


class GpuTypeCreateSerializer(StrictInputSerializer):
    cluster = serializers.CharField(max_length=63)
    name = serializers.CharField(max_length=64)
    memory_gb = serializers.IntegerField(default=0)
    capacity = serializers.IntegerField(default=0)
    parent = serializers.CharField(max_length=64, default="", allow_blank=True)
    mig_profile = serializers.CharField(max_length=32, default="", allow_blank=True)


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
    hourly_price = serializers.DecimalField(max_digits=12, decimal_places=4)
    effective_from = serializers.DateTimeField()
    effective_to = serializers.DateTimeField(required=False, allow_null=True, default=None)
    close_previous = serializers.BooleanField(default=False)


class SampleBatchSerializer(StrictInputSerializer):
    batch_id = serializers.UUIDField()
    node = serializers.CharField(max_length=253, required=False, default="")
    cluster = serializers.CharField(max_length=63, required=False, default="",
                                    help_text="Platform admins posting by hand; agents' tokens name their cluster")
    # Validated sample by sample in apps.costs.ingest (a serializer per sample is too slow for big batches).
    samples = serializers.JSONField()


class IngestResultSerializer(serializers.Serializer):
    batch_id = serializers.CharField()
    duplicate = serializers.BooleanField()
    accepted = serializers.IntegerField()
    rejected_future = serializers.IntegerField()
    rejected_past = serializers.IntegerField()


class NodeTokenCreateSerializer(StrictInputSerializer):
    cluster = serializers.CharField(max_length=63)
    node = serializers.CharField(max_length=253)
