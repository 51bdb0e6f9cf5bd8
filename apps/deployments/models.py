import socket

from django.conf import settings
from django.db import models

from apps.core.lifecycle import Archivable
from apps.core.runner import LeasedWork

from .choices import ClusterKind, DeploymentStatus, JobStatus, ProcessRole, RevisionReason, RevisionStatus


class Cluster(Archivable):
    """A deployment target shared by teams; platform admins register it.

    Kubernetes credentials are stored Fernet-encrypted (see crypto.py) and never leave through the API.
    """

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=20, choices=ClusterKind.choices)
    description = models.CharField(max_length=200, blank=True)
    api_url = models.URLField(max_length=500, blank=True)
    credentials_encrypted = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # "kubeconfig" or "token": what the encrypted blob holds (never the blob itself).
    credentials_kind = models.CharField(max_length=20, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.CharField(max_length=1000, blank=True)
    kserve_available = models.BooleanField(null=True, blank=True,
                                           help_text="Whether the InferenceService CRD was served at the last check")
    gateway_api_available = models.BooleanField(null=True, blank=True,
                                                help_text="Whether gateway.networking.k8s.io/v1 HTTPRoute was served "
                                                          "at the last check")
    # The Gateway every deployment's HTTPRoute attaches to (its parentRef); empty: no Gateway API routing.
    gateway_namespace = models.CharField(max_length=63, blank=True)
    gateway_name = models.CharField(max_length=253, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class ClusterNamespace(models.Model):
    """The namespace a team deploys into on a cluster for one environment."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="namespaces")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="cluster_namespaces")
    environment = models.ForeignKey("registry.Environment", on_delete=models.PROTECT, related_name="+")
    namespace = models.SlugField(max_length=63)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster__name", "team__slug", "environment__rank"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "team", "environment"], name="cluster_ns_unique_team_env"),
            models.UniqueConstraint(fields=["cluster", "namespace"], name="cluster_ns_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace}"


class Deployment(LeasedWork):
    """A named, long-lived serving endpoint of one registered model in one environment.

    Desired state lives in the row; the runner's rollout drive (kind deployments.rollout, rollout.py) converges
    the cluster to it. Every service that changes desired state bumps `desired_generation`; a drive that has
    converged on a generation records it as `observed_generation`. desired > observed is what makes a
    deployment due; the LeasedWork fields hold the drive's lease, attempts and last error."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="deployments")
    name = models.SlugField(max_length=50)
    model = models.ForeignKey("registry.RegisteredModel", on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey("registry.Environment", on_delete=models.PROTECT, related_name="deployments")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="deployments")
    namespace = models.SlugField(max_length=63)
    status = models.CharField(max_length=30, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    status_message = models.CharField(max_length=2000, blank=True)
    # The revision the current rollout is bringing in, and the one serving before it.
    current_revision = models.ForeignKey("DeploymentRevision", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    stable_revision = models.ForeignKey("DeploymentRevision", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    # Index into the canary steps of the current revision's strategy (-1 before the first step).
    rollout_step = models.IntegerField(default=-1)
    # {revision id (str): percent} and the shadow mirror {"revision": id, "percent": n} as routed now.
    traffic = models.JSONField(default=dict, blank=True)
    shadow = models.JSONField(default=dict, blank=True)
    # The previous stable revision, kept warm (running, unrouted) until warm_until for instant rollback.
    warm_revision = models.ForeignKey("DeploymentRevision", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    warm_until = models.DateTimeField(null=True, blank=True)
    endpoint_url = models.CharField(max_length=500, blank=True)
    drift = models.JSONField(default=dict, blank=True, help_text="Differences seen by the last reconcile")
    # The split the cluster reports serving, read back from the applied route / InferenceService / pods
    # (mechanism, split, shadow, exact, note, observed_at); `traffic` is what was asked for.
    served_traffic = models.JSONField(default=dict, blank=True)
    # The same spec on another cluster: siblings point at the deployment they were copied from (one level).
    sibling_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="siblings")
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every state change, so concurrent writers compare-and-set on it.
    lock_version = models.PositiveIntegerField(default=0)
    desired_generation = models.PositiveIntegerField(default=1, help_text="Bumped by every change of desired state")
    observed_generation = models.PositiveIntegerField(default=0,
                                                      help_text="The desired generation the last drive converged on")
    # Where Retry takes a deployment that needs attention: the status it had when its drive gave up.
    resume_status = models.CharField(max_length=30, choices=DeploymentStatus.choices, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="deployment_unique_team_name")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def break_glass(self) -> dict | None:
        """Set while the revision rolling out or serving went out by break glass (a version no longer approved)."""
        for revision in (self.current_revision, self.stable_revision):
            if revision is not None and revision.break_glass_reason:
                return {"revision": revision.number, "reason": revision.break_glass_reason, "by": revision.actor_label}
        return None


class DeploymentRevision(models.Model):
    """One apply: the full manifests, model version, strategy and resources, who and when. Immutable
    except for its progress fields (status, message, timestamps)."""

    IMMUTABLE_FIELDS = ("deployment_id", "number", "model_version_id", "strategy", "resources", "manifests",
                        "created_by_id", "reason", "rollback_of_id", "break_glass_reason")

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="revisions")
    strategy = models.JSONField(default=dict)
    resources = models.JSONField(default=dict)
    manifests = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=20, choices=RevisionReason.choices, default=RevisionReason.DEPLOY)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    help_text="For a rollback: the earlier revision whose manifests were re-applied")
    # A team admin rolled back to a version no longer approved for the environment; why, in their words.
    break_glass_reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=RevisionStatus.choices, default=RevisionStatus.PENDING)
    message = models.CharField(max_length=2000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    actor_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    apply_requested_at = models.DateTimeField(null=True, blank=True, help_text="When the apply reached the cluster")
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment", "-number"]
        constraints = [models.UniqueConstraint(fields=["deployment", "number"], name="revision_unique_number")]

    def __str__(self) -> str:
        return f"{self.deployment} r{self.number}"


class DeploymentDraft(models.Model):
    """A wizard in progress: what the user picked so far, so the wizard can be resumed."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="deployment_drafts")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    step = models.PositiveSmallIntegerField(default=1)
    submitted_deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL,
                                             related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]


class Job(LeasedWork):
    """Training or batch work dispatched to a cluster as a Kubernetes Job (or a local process)."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="jobs")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="jobs")
    namespace = models.SlugField(max_length=63)
    name = models.SlugField(max_length=63)
    image = models.CharField(max_length=500)
    command = models.JSONField(default=list)
    gpu_type = models.CharField(max_length=50, blank=True)
    gpu_count = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING)
    message = models.CharField(max_length=2000, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="Run of the job (a retry after failing is a new run)")
    # Dispatch is the runner's work (kind deployments.job_dispatch): a pending job is due; the LeasedWork fields
    # count the tries at submitting this run to the cluster.
    manifest = models.JSONField(default=dict, blank=True)
    logs_url = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["cluster", "namespace", "name"], name="job_unique_name")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class LocalProcess(models.Model):
    """A process the local driver started (a model server for a revision, or a deployment's router).

    Pid and port are recorded so a restarted worker can adopt what is still healthy and clean up the rest.
    """

    role = models.CharField(max_length=10, choices=ProcessRole.choices)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="local_processes")
    revision = models.ForeignKey(DeploymentRevision, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="local_processes")
    # The worker host that started it: adoption after a restart only judges this host's processes.
    host = models.CharField(max_length=255, default=socket.gethostname)
    # Empty between the claim (the row is inserted first) and the spawn that records it.
    pid = models.PositiveIntegerField(null=True, blank=True)
    port = models.PositiveIntegerField()
    pid_file = models.CharField(max_length=500, blank=True)
    log_file = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "role", "revision"]
        constraints = [models.UniqueConstraint(fields=["deployment", "role", "revision"], name="local_process_unique",
                                               nulls_distinct=False)]

    def __str__(self) -> str:
        return f"{self.role} {self.deployment} pid={self.pid} port={self.port}"
