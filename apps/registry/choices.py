from django.db import models


class MlflowPresence(models.TextChoices):
    """What the last sync saw in MLflow: removed objects stay here, flagged, never silently dropped."""

    PRESENT = "present", "In MLflow"
    DELETED = "deleted", "Deleted in MLflow"


class TeamSource(models.TextChoices):
    TAG = "tag", "From the model's `team` tag in MLflow"
    ASSIGNED = "assigned", "Assigned by a team admin"
    NONE = "none", "Not assigned"


class PolicySource(models.TextChoices):
    """Which policy decided a promotion request (its snapshot says what the rules were)."""

    TEAM = "team", "Team policy within the platform floor"
    FLOOR = "floor", "Platform floor (the team has no policy for this environment)"
    NONE = "none", "No policy (unprotected environment, nothing to approve)"


class SyncStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NEEDS_ATTENTION = "needs_attention", "Needs attention: the sync kept failing"


class SyncTrigger(models.TextChoices):
    BEAT = "beat", "Scheduled"
    MANUAL = "manual", "Sync now"


class GateKind(models.TextChoices):
    METRIC = "metric", "Metric threshold"
    TAG = "tag", "Required tag"
    ARTIFACT = "artifact", "Required artifact"
    NO_REGRESSION = "no_regression", "No regression vs the alias holder"


class GateOp(models.TextChoices):
    GE = ">=", ">="
    LE = "<=", "<="
    GT = ">", ">"
    LT = "<", "<"


class PromotionStatus(models.TextChoices):
    REQUESTED = "requested", "Waiting for approval"
    APPROVED = "approved", "Approved, publishing to MLflow"
    NEEDS_ATTENTION = "needs_attention", "Needs attention: publishing to MLflow failed"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class PromotionKind(models.TextChoices):
    PROMOTE = "promote", "Promote (set alias)"
    REVOKE = "revoke", "Revoke (remove alias)"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"


class AliasSource(models.TextChoices):
    CONTROL_PLANE = "control_plane", "Control plane"
    OUTSIDE = "outside", "Changed outside the control plane"
