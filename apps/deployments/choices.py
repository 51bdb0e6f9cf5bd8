from django.db import models


class ClusterKind(models.TextChoices):
    LOCAL = "local", "Local processes (no cluster)"
    KUBERNETES = "kubernetes", "Kubernetes"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending dispatch"
    PROGRESSING = "progressing", "Rolling out"
    AWAITING_PROMOTION = "awaiting_promotion", "Waiting for promotion"
    PAUSED = "paused", "Paused"
    HEALTHY = "healthy", "Healthy"
    FAILED = "failed", "Failed"
    DEGRADED = "degraded", "Degraded (objects missing or drifted)"
    TORN_DOWN = "torn_down", "Torn down (serves nothing; history kept)"
    NEEDS_ATTENTION = "needs_attention", "Needs attention (the drive ran out of attempts)"


class RevisionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLYING = "applying", "Applying"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"
    ABORTED = "aborted", "Aborted"
    ARTIFACT_CHANGED = "artifact_changed", "Refused: not the approved artifacts"


class RevisionReason(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"
    REAPPLY = "reapply", "Re-apply (drift)"


class StrategyKind(models.TextChoices):
    ROLLING = "rolling", "Rolling update"
    CANARY = "canary", "Canary"
    BLUE_GREEN = "blue_green", "Blue/green"
    SHADOW = "shadow", "Shadow"
    AB = "ab", "A/B/n split"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"  # the cluster never took it: out of attempts


class ProcessRole(models.TextChoices):
    SERVER = "server", "Model server"
    ROUTER = "router", "Router"
