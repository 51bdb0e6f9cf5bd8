from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.runner import LeasedWork

from .choices import (AliasSource, Decision, GateKind, GateOp, MlflowPresence, PolicySource, PromotionKind,
                      PromotionStatus, SyncStatus, SyncTrigger, TeamSource)


class Environment(models.Model):
    """A promotion target (staging, production, ...); its name is the MLflow alias a promotion sets."""

    name = models.SlugField(max_length=50, unique=True)
    description = models.CharField(max_length=200, blank=True)
    rank = models.PositiveSmallIntegerField(default=0, help_text="Order in the promotion path")

    class Meta:
        ordering = ["rank", "name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModel(models.Model):
    """A registered model as synced from MLflow (the registry of record)."""

    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="registered_models",
                             help_text="The owner: placed by the `team` tag while unowned, moved only by admins")
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    presence = models.CharField(max_length=20, choices=MlflowPresence.choices, default=MlflowPresence.PRESENT)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    team_source = models.CharField(max_length=20, choices=TeamSource.choices, default=TeamSource.NONE)
    # Aliases as MLflow reported them at the last sync ({alias: version}); the sync compares against it
    # to spot alias moves made directly in MLflow.
    aliases = models.JSONField(default=dict, blank=True)
    # Set by the sync when MLflow's `team` tag disagrees with the owner (the tag never moves an owned model).
    team_tag_warning = models.CharField(max_length=300, blank=True)
    # When the MLflow read behind the last write began: a webhook sync and a sweep may read the same model
    # concurrently, and the write of the older read is skipped so it never undoes the newer one.
    mlflow_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One version of a registered model with the lineage and metrics of the run that produced it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    # Copies of model.team and model.name, kept by save() and by the services that change a model's team:
    # the team-filtered version list (the API's hottest read) is then one index range scan, no join or sort.
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    model_name = models.CharField(max_length=255, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1000, blank=True, help_text="Model URI as registered (models:/m-..., runs:/...)")
    artifact_uri = models.CharField(max_length=1000, blank=True, help_text="Where MLflow stores the model files")
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    run_tags = models.JSONField(default=dict, blank=True)
    artifacts = models.JSONField(default=list, blank=True, help_text="Top-level artifact paths of the source run")
    description = models.TextField(blank=True)
    datasets = models.JSONField(default=list, blank=True, help_text="[{name, digest, source, context}]")
    git_commit = models.CharField(max_length=64, blank=True)
    signature = models.JSONField(null=True, blank=True)
    creator = models.CharField(max_length=150, blank=True, help_text="MLflow user id of who registered it")
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    aliases = models.JSONField(default=list, blank=True, help_text="Aliases this version holds in MLflow now")
    mlflow_status = models.CharField(max_length=30, blank=True)
    presence = models.CharField(max_length=20, choices=MlflowPresence.choices, default=MlflowPresence.PRESENT)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_name", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique")]
        indexes = [models.Index("team", "model_name", models.F("version").desc(), name="version_team_list_idx")]

    def save(self, *args, **kwargs):
        if self.model_id is not None:
            self.team_id, self.model_name = self.model.team_id, self.model.name
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "team", "model_name"}
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class SyncRun(LeasedWork):
    """One pass over the MLflow registry (scheduled or "Sync now"), with its progress and counts.

    The scheduled and "Sync now" passes are the runner's (kind registry.sync): queued, claimed, retried with
    backoff, needs attention when out of attempts. `sync_run_now` (tests, bench, demo seed) runs one in process,
    unleased: running → succeeded | failed."""

    trigger = models.CharField(max_length=20, choices=SyncTrigger.choices)
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             help_text="The team of whoever pressed Sync now (scheduled runs have none)")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    status = models.CharField(max_length=20, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    full = models.BooleanField(default=False, help_text="Re-read every version, not only the changed ones")
    # The watermark pass lists only models whose MLflow `last_updated_timestamp` (ms) is at or after
    # `since_watermark` (null: every model was listed); `watermark` is the newest timestamp this pass saw,
    # where the next watermark pass starts.
    since_watermark = models.BigIntegerField(null=True, blank=True)
    watermark = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.CharField(max_length=200, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    # [{model_id, model, owner, tag}]: `team` tags that disagree with the owner; the API shows each reader
    # only the models of their teams.
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]


class PolicyFloor(models.Model):
    """What platform admins require of every team's promotions into an environment.

    A team policy may only tighten it; the effective policy merges the two (see selectors.effective_policy).
    In a protected environment a team must have its own policy, and nothing is approved without an approval.
    """

    environment = models.OneToOneField(Environment, on_delete=models.PROTECT, related_name="floor")
    protected = models.BooleanField(default=False)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_roles = models.JSONField(default=list, help_text="The only roles team policies may let approve")
    gates = models.JSONField(default=list, blank=True, help_text="Gates every team's promotions must pass")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment__rank"]

    def __str__(self) -> str:
        return f"floor → {self.environment}"

    def as_dict(self) -> dict:
        return {"environment": self.environment.name, "protected": self.protected,
                "approvals_required": self.approvals_required, "approver_roles": self.approver_roles,
                "gates": self.gates}


class ApprovalPolicy(models.Model):
    """What a promotion of a team's model into an environment needs: approvals, approver roles, gates, expiry."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="approval_policies")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="policies")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_roles = models.JSONField(default=list, help_text="Roles whose members may approve")
    expiry_hours = models.PositiveIntegerField(default=72)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "environment__rank"]
        constraints = [models.UniqueConstraint(fields=["team", "environment"], name="policy_team_env_unique")]

    def __str__(self) -> str:
        return f"{self.team} → {self.environment}"


class QualityGate(models.Model):
    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="gates")
    kind = models.CharField(max_length=20, choices=GateKind.choices)
    metric = models.CharField(max_length=200, blank=True)
    op = models.CharField(max_length=2, choices=GateOp.choices, blank=True)
    threshold = models.FloatField(null=True, blank=True,
                                  help_text="Metric gates: the bound; no-regression gates: the tolerated regression")
    name = models.CharField(max_length=300, blank=True, help_text="Required tag key or artifact path")

    class Meta:
        ordering = ["id"]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "metric": self.metric, "op": self.op, "threshold": self.threshold,
                "name": self.name}


class PromotionRequest(LeasedWork):
    """A request to move an environment's alias to a version (or to remove it), and its whole decision trail."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="promotion_requests")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="promotion_requests")
    kind = models.CharField(max_length=20, choices=PromotionKind.choices, default=PromotionKind.PROMOTE)
    status = models.CharField(max_length=20, choices=PromotionStatus.choices, default=PromotionStatus.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    # The effective policy (floor merged with the team's) as it was when requested: later edits don't change
    # the rules of a pending request.
    policy = models.JSONField(default=dict, blank=True)
    policy_source = models.CharField(max_length=10, choices=PolicySource.choices, default=PolicySource.TEAM)
    gate_results = models.JSONField(default=list, blank=True)
    gates_passed = models.BooleanField(default=True)
    override_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    override_reason = models.TextField(blank=True)
    override_at = models.DateTimeField(null=True, blank=True)
    previous_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+", help_text="Who held the alias when it was published")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # Publishing is the runner's work (apps/core/runner.py, kind "registry.publish"): an approved request is due;
    # attempts, backoff and the last error are the LeasedWork fields.
    # What is approved is these bytes: "sha256:<hex>" over the manifest {relative path: sha256} of every
    # artifact file, computed when the request was made (see artifacts.py). Every apply re-checks it.
    artifact_digest = models.CharField(max_length=80, blank=True)
    artifact_manifest = models.JSONField(default=dict, blank=True)
    # Ed25519 signature by the platform key over {model, version, environment, digest} (artifacts.py): a digest
    # edited in the database no longer verifies.
    artifact_signature = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="promotion_status_expiry_idx")]
        constraints = [
            # One open request per version and environment: a second one would race the first.
            models.UniqueConstraint(fields=["version", "environment"], condition=Q(status="requested"),
                                    name="one_open_request_per_version_env"),
        ]

    @property
    def model(self):
        return self.version.model

    @property
    def decided_by(self) -> str:
        """Which policy decided the request, in words (the model page and the request timeline show it)."""
        rules = self.policy or {}
        if self.kind == PromotionKind.REVOKE:
            return "alias removal by an approver (no policy)"
        if self.policy_source == PolicySource.NONE:
            return "no policy (nothing to approve)"
        what = (f"{rules.get('approvals_required', 0)} approval(s) from "
                f"{', '.join(rules.get('approver_roles') or []) or 'nobody'}")
        if self.policy_source == PolicySource.FLOOR:
            return f"platform floor: {what}"
        raised = rules.get("raised_by_floor") or []
        return f"team policy: {what}" + (f" (raised by the platform floor: {', '.join(raised)})" if raised else "")

    def __str__(self) -> str:
        return f"#{self.pk} {self.version} → {self.environment} [{self.status}]"


class Approval(models.Model):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=20)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    artifact_digest = models.CharField(max_length=80, blank=True, help_text="The artifact digest this decision saw")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="one_decision_per_user")]

    @property
    def team_id(self):
        return self.request.team_id

    @property
    def team(self):
        return self.request.team


class AliasHolding(models.Model):
    """Which version held a model's alias from when to when (the alias history MLflow doesn't keep)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_holdings")
    alias = models.CharField(max_length=100)
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version_number = models.PositiveIntegerField()
    since = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=AliasSource.choices, default=AliasSource.CONTROL_PLANE)
    request = models.ForeignKey(PromotionRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    approved_by = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    ended_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["model__name", "alias", "-since"]
        constraints = [
            models.UniqueConstraint(fields=["model", "alias"], condition=Q(until__isnull=True),
                                    name="one_current_alias_holder"),
        ]

    @property
    def team_id(self):
        return self.model.team_id

    @property
    def team(self):
        return self.model.team
