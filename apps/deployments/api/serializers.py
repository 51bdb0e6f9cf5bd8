from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.deployments.choices import ClusterKind, StrategyKind
from apps.deployments.models import Cluster, ClusterNamespace, Deployment, DeploymentRevision, Job
from apps.deployments.spec import CPU_RE, MEMORY_RE


# A kubeconfig with embedded certificates is a few KiB; 256 KiB leaves room and bounds what is encrypted and stored.
MAX_CREDENTIAL = 256 * 1024


class ClusterSerializer(serializers.ModelSerializer):
    """Credentials never leave: only whether they are set and of which kind."""

    gateway = serializers.SerializerMethodField(help_text="namespace/name of the cluster's Gateway, or empty")

    class Meta:
        model = Cluster
        fields = ["id", "name", "kind", "description", "api_url", "credentials_kind", "has_credentials",
                  "last_checked_at", "last_check_ok", "last_check_message", "kserve_available",
                  "gateway_api_available", "gateway", "created_at",
                  "archived_at"]

    def get_gateway(self, obj) -> str:
        return f"{obj.gateway_namespace}/{obj.gateway_name}" if obj.gateway_name else ""


class ClusterGatewaySerializer(StrictInputSerializer):
    gateway = serializers.CharField(max_length=320, allow_blank=True,
                                    help_text="namespace/name of the Gateway deployments' HTTPRoutes attach to; "
                                              "empty to unset")


class ClusterCreateSerializer(StrictInputSerializer):
    name = serializers.SlugField(max_length=63)
    kind = serializers.ChoiceField(choices=ClusterKind.choices)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    api_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    kubeconfig = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=MAX_CREDENTIAL)
    token = serializers.CharField(required=False, allow_blank=True, write_only=True)
    ca_cert = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=MAX_CREDENTIAL)


class ClusterCredentialsSerializer(StrictInputSerializer):
    api_url = serializers.URLField(max_length=500, required=False)
    kubeconfig = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=MAX_CREDENTIAL)
    token = serializers.CharField(required=False, allow_blank=True, write_only=True)
    ca_cert = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=MAX_CREDENTIAL)


class NamespaceSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ClusterNamespace
        fields = ["id", "cluster", "team", "environment", "namespace", "created_at"]


class NamespaceCreateSerializer(StrictInputSerializer):
    cluster = serializers.SlugField()
    team = serializers.SlugField()
    environment = serializers.SlugField()
    namespace = serializers.SlugField(max_length=63)


class RevisionSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    rollback_of = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    workload_revision = serializers.SerializerMethodField(help_text=(
        "Number of the revision whose workload serves this one: itself, or for a rollback or re-apply the "
        "earlier revision whose warm workload it runs again"))

    class Meta:
        model = DeploymentRevision
        fields = ["id", "deployment", "number", "model_version", "strategy", "resources", "manifests", "reason",
                  "rollback_of", "workload_revision", "break_glass_reason", "status", "message", "actor_label", "created_at",
                  "apply_requested_at", "ready_at"]

    def get_workload_revision(self, obj) -> int:
        return obj.rollback_of.number if obj.rollback_of_id else obj.number

    def get_model_version(self, obj) -> dict:
        return {"id": obj.model_version_id, "model": obj.model_version.model.name, "version": obj.model_version.version}


class DeploymentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    current_revision = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    stable_revision = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    warm_revision = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    break_glass = serializers.JSONField(read_only=True, allow_null=True,
                                        help_text="{revision, reason, by} while a break-glass rollback serves")
    served_traffic = serializers.JSONField(read_only=True, help_text=(
        "The split the cluster reports serving, read back from the applied objects: {mechanism, split, shadow, "
        "exact, ready, note, observed_at}; `traffic` is the one requested"))
    siblings = serializers.SerializerMethodField(help_text="The same spec on other clusters, with their served splits")
    traffic = serializers.JSONField(read_only=True, help_text=(
        "The requested split by revision number ({\"3\": 100}): the deployment's own numbering, as in X-Revision"))
    workload_revisions = serializers.SerializerMethodField(help_text=(
        "For each routed revision that runs an earlier revision's workload (a rollback): {revision: that "
        "revision}, e.g. {\"3\": 1} while r3 serves on r1's workload"))

    class Meta:
        model = Deployment
        fields = ["id", "team", "name", "model", "environment", "cluster", "namespace", "status", "status_message",
                  "break_glass",
                  "current_revision", "stable_revision", "warm_revision", "warm_until", "rollout_step", "traffic",
                  "workload_revisions", "shadow", "served_traffic", "siblings", "endpoint_url", "drift", "last_reconciled_at",
                  "desired_generation", "observed_generation", "attempts", "next_attempt_at", "last_error",
                  "created_at", "updated_at"]

    def get_workload_revisions(self, obj) -> dict[str, int]:
        from apps.deployments.selectors import routed_workloads

        return routed_workloads(obj)

    def get_siblings(self, obj) -> list[dict]:
        from apps.deployments.services.siblings import deployment_siblings

        return [{"id": d.pk, "name": d.name, "cluster": d.cluster.name, "status": d.status,
                 "served_traffic": d.served_traffic} for d in deployment_siblings(deployment=obj)]


class AutoscalingSerializer(StrictInputSerializer):
    min = serializers.IntegerField(min_value=1, max_value=100, required=False)
    max = serializers.IntegerField(min_value=1, max_value=100, required=False)
    target_cpu = serializers.IntegerField(min_value=1, max_value=100, required=False, help_text="Percent")


class ResourcesSerializer(StrictInputSerializer):
    """What one model server asks for; apps.deployments.spec checks the rest (quantities, gpu_type with a count)."""

    cpu = serializers.RegexField(CPU_RE.pattern, max_length=20, required=False,
                                 help_text="Kubernetes CPU quantity: '500m' or '2' (at most 1024 cores)",
                                 error_messages={"invalid": "cpu must be a Kubernetes CPU quantity such as '500m' or "
                                                            "'2' (at most 1024 cores)."})
    memory = serializers.RegexField(MEMORY_RE.pattern, max_length=30, required=False,
                                    help_text="Kubernetes memory quantity: '512Mi', '2Gi' (at most 16Ti)",
                                    error_messages={"invalid": "memory must be a quantity such as '512Mi' or '2Gi' "
                                                               "(at most 16Ti)."})
    gpu_type = serializers.CharField(max_length=50, required=False, allow_blank=True)
    gpu_count = serializers.IntegerField(min_value=0, max_value=16, required=False)
    replicas = serializers.IntegerField(min_value=1, max_value=100, required=False,
                                        error_messages={"min_value": "replicas must be between 1 and 100.",
                                                        "max_value": "replicas must be between 1 and 100."})
    autoscaling = AutoscalingSerializer(required=False, allow_null=True)


class CanaryStepSerializer(StrictInputSerializer):
    weight = serializers.IntegerField(min_value=1, max_value=100, help_text="Percent of traffic; steps increase to 100")
    pause = serializers.BooleanField(required=False, help_text="Wait for a promote before the next step")


class AbVariantSerializer(StrictInputSerializer):
    revision = serializers.CharField(max_length=10, help_text='A revision number of this deployment, or "new"')
    weight = serializers.IntegerField(min_value=0, max_value=100)


class StrategySerializer(StrictInputSerializer):
    """One object for every kind; each kind takes only its own fields (canary: steps, blue_green: auto_switch,
    shadow: percent, ab: variants)."""

    kind = serializers.ChoiceField(choices=StrategyKind.choices, error_messages={
        "invalid_choice": f"Unknown strategy {{input!r}}; choose one of {', '.join(StrategyKind.values)}."})
    steps = CanaryStepSerializer(many=True, required=False, max_length=20)
    auto_switch = serializers.BooleanField(required=False)
    percent = serializers.IntegerField(min_value=1, max_value=100, required=False)
    variants = AbVariantSerializer(many=True, required=False, max_length=20)


def _plain(value):
    """Nested validated data as plain dicts and lists (what apps.deployments.spec and the JSON columns take)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class DeploymentCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField(help_text="Team slug")
    name = serializers.SlugField(max_length=40)
    model_version = serializers.IntegerField(help_text="Model version id (registry)")
    environment = serializers.SlugField()
    cluster = serializers.SlugField()
    namespace = serializers.SlugField(required=False, allow_blank=True)
    resources = ResourcesSerializer(required=False)
    strategy = StrategySerializer(required=False)

    def validate(self, attrs):
        return _plain(attrs)


class DeploySerializer(StrictInputSerializer):
    model_version = serializers.IntegerField()
    resources = ResourcesSerializer(required=False)
    strategy = StrategySerializer(required=False)

    def validate(self, attrs):
        return _plain(attrs)


class ReplicateSerializer(StrictInputSerializer):
    cluster = serializers.SlugField(help_text="The other cluster (name)")
    name = serializers.SlugField(max_length=40, required=False, allow_blank=True, default="",
                                 help_text="Default: <name>-<cluster>")


class RollbackSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, default="Rolled back from the API")
    to_revision = serializers.IntegerField(required=False, min_value=1, help_text="Revision number (default: the "
                                                                                  "last stable one)")
    break_glass_reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="",
                                               help_text="Team admins: roll back to a version no longer approved "
                                                         "for the environment, and say why (audited, flagged)")


class JobSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "team", "cluster", "namespace", "name", "image", "command", "gpu_type", "gpu_count", "status",
                  "message", "attempt", "logs_url", "manifest", "created_at", "started_at", "finished_at",
                  "attempts", "next_attempt_at", "last_error"]


class JobCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.SlugField()
    image = serializers.CharField(max_length=500)
    command = serializers.ListField(child=serializers.CharField(max_length=10_000), allow_empty=False, max_length=200)
    gpu_type = serializers.CharField(required=False, allow_blank=True, default="", max_length=50)
    gpu_count = serializers.IntegerField(required=False, default=0, min_value=0, max_value=16)
    environment = serializers.SlugField(required=False, default="staging")
    namespace = serializers.SlugField(max_length=63, required=False, help_text="One of the team's namespaces on the "
                                                                               "cluster (default: the environment's)")
