from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.deployments.choices import ClusterKind
from apps.deployments.models import Cluster, ClusterNamespace, Deployment, DeploymentRevision, Job


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
    kubeconfig = serializers.CharField(required=False, allow_blank=True, write_only=True)
    token = serializers.CharField(required=False, allow_blank=True, write_only=True)
    ca_cert = serializers.CharField(required=False, allow_blank=True, write_only=True)


class ClusterCredentialsSerializer(StrictInputSerializer):
    api_url = serializers.URLField(max_length=500, required=False)
    kubeconfig = serializers.CharField(required=False, allow_blank=True, write_only=True)
    token = serializers.CharField(required=False, allow_blank=True, write_only=True)
    ca_cert = serializers.CharField(required=False, allow_blank=True, write_only=True)


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
    rollback_of = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = DeploymentRevision
        fields = ["id", "deployment", "number", "model_version", "strategy", "resources", "manifests", "reason",
                  "rollback_of", "break_glass_reason", "status", "message", "actor_label", "created_at",
                  "apply_requested_at", "ready_at"]

    def get_model_version(self, obj) -> dict:
        return {"id": obj.model_version_id, "model": obj.model_version.model.name, "version": obj.model_version.version}


class DeploymentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    current_revision = serializers.SlugRelatedField(slug_field="number", read_only=True)
    stable_revision = serializers.SlugRelatedField(slug_field="number", read_only=True)
    warm_revision = serializers.SlugRelatedField(slug_field="number", read_only=True)
    break_glass = serializers.JSONField(read_only=True, allow_null=True,
                                        help_text="{revision, reason, by} while a break-glass rollback serves")
    served_traffic = serializers.JSONField(read_only=True, help_text=(
        "The split the cluster reports serving, read back from the applied objects: {mechanism, split, shadow, "
        "exact, ready, note, observed_at}; `traffic` is the one requested"))
    siblings = serializers.SerializerMethodField(help_text="The same spec on other clusters, with their served splits")

    class Meta:
        model = Deployment
        fields = ["id", "team", "name", "model", "environment", "cluster", "namespace", "status", "status_message",
                  "break_glass",
                  "current_revision", "stable_revision", "warm_revision", "warm_until", "rollout_step", "traffic",
                  "shadow", "served_traffic", "siblings", "endpoint_url", "drift", "last_reconciled_at",
                  "created_at", "updated_at"]

    def get_siblings(self, obj) -> list[dict]:
        from apps.deployments.services.siblings import deployment_siblings

        return [{"id": d.pk, "name": d.name, "cluster": d.cluster.name, "status": d.status,
                 "served_traffic": d.served_traffic} for d in deployment_siblings(deployment=obj)]


class DeploymentCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField(help_text="Team slug")
    name = serializers.SlugField(max_length=40)
    model_version = serializers.IntegerField(help_text="Model version id (registry)")
    environment = serializers.SlugField()
    cluster = serializers.SlugField()
    namespace = serializers.SlugField(required=False, allow_blank=True)
    resources = serializers.DictField(required=False, help_text="{cpu, memory, gpu_type, gpu_count, replicas, autoscaling}")
    strategy = serializers.DictField(required=False, help_text="{kind: rolling|canary|blue_green|shadow|ab, ...}")


class DeploySerializer(StrictInputSerializer):
    model_version = serializers.IntegerField()
    resources = serializers.DictField(required=False)
    strategy = serializers.DictField(required=False)


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
                  "message", "attempt", "logs_url", "manifest", "created_at", "started_at", "finished_at"]


class JobCreateSerializer(StrictInputSerializer):
    team = serializers.SlugField()
    cluster = serializers.SlugField()
    image = serializers.CharField(max_length=500)
    command = serializers.ListField(child=serializers.CharField(), allow_empty=False)
    gpu_type = serializers.CharField(required=False, allow_blank=True, default="")
    gpu_count = serializers.IntegerField(required=False, default=0, min_value=0, max_value=16)
    environment = serializers.SlugField(required=False, default="staging")
    namespace = serializers.SlugField(max_length=63, required=False, help_text="One of the team's namespaces on the "
                                                                               "cluster (default: the environment's)")
