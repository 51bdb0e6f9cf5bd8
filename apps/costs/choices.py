from django.db import models


class PricingClass(models.TextChoices):
    ON_DEMAND = "on_demand", "On-demand"
    SPOT = "spot", "Spot"
    RESERVED = "reserved", "Reserved"


class AllocationSource(models.TextChoices):
    CONTROL_PLANE = "control_plane", "Dispatched by the control plane"
    KUBERNETES = "kubernetes", "Found on the cluster by the pod collector"
    DEMO = "demo", "Demo seed"


class ReservationStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved (admitted, counts against the quota)"
    CONSUMED = "consumed", "Became usage (an allocation in the ledger)"
    RELEASED = "released", "Released (failed, aborted, torn down or timed out)"


class RollupStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    NEEDS_ATTENTION = "needs_attention", "Needs attention: the rollup kept failing"


class UsageKind(models.TextChoices):
    ALLOCATED = "allocated", "Allocated to a team (or unattributed when no team)"
    UNALLOCATED = "unallocated", "Cluster capacity nobody held"
    ADJUSTMENT = "adjustment", "Correction to a closed month, booked in the next open month"


BUDGET_THRESHOLDS = (50, 80, 100)
