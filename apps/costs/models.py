from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.lifecycle import Archivable
from apps.core.runner import LeasedWork

from .choices import AllocationSource, PricingClass, ReservationStatus, RollupStatus, UsageKind


class GpuType(Archivable):
    """A GPU model (or MIG profile of one) offered by a cluster, with how many the cluster has."""

    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.CASCADE, related_name="gpu_types")
    name = models.CharField(max_length=64, help_text="e.g. A100-80GB, H100-80GB, L4, A100-80GB-1g.10gb")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="mig_profiles",
                               help_text="The full GPU this MIG profile is carved from")
    mig_profile = models.CharField(max_length=32, blank=True, help_text="MIG profile such as 1g.10gb")
    memory_gb = models.PositiveIntegerField(default=0)
    capacity = models.PositiveIntegerField(default=0, help_text="How many of this type the cluster has in all")
    # The unallocated-capacity line counts the capacity only from here on, so a type added on 1 December adds
    # no idle capacity to November. Capacity can't be edited afterwards (the admin is read-only).
    capacity_from = models.DateTimeField(default=timezone.now, help_text="When the capacity came into service")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster__name", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="costs_gputype_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} on {self.cluster.name}"


class GpuPrice(models.Model):
    """Hourly price of one GPU of a type in a pricing class, valid over [effective_from, effective_to)."""

    gpu_type = models.ForeignKey(GpuType, on_delete=models.CASCADE, related_name="prices")
    pricing_class = models.CharField(max_length=20, choices=PricingClass.choices, default=PricingClass.ON_DEMAND)
    hourly_price = models.DecimalField(max_digits=12, decimal_places=4)
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Open-ended when empty")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gpu_type", "pricing_class", "effective_from"]
        constraints = [
            models.CheckConstraint(condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
                                   name="costs_gpuprice_period_positive"),
            models.CheckConstraint(condition=Q(hourly_price__gte=0), name="costs_gpuprice_not_negative"),
            # The service checks first and says which period clashes; this is the last line of defence.
            ExclusionConstraint(
                name="costs_gpuprice_no_overlap",
                expressions=[
                    ("gpu_type", RangeOperators.EQUAL),
                    ("pricing_class", RangeOperators.EQUAL),
                    (models.Func(models.F("effective_from"), models.F("effective_to"), models.Value("[)"),
                                 function="tstzrange", output_field=DateTimeRangeField()), RangeOperators.OVERLAPS),
                ],
            ),
        ]


class ResourceRate(models.Model):
    """CPU and memory hourly rates of a cluster, from a date on (the latest one before a moment applies)."""

    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.CASCADE, related_name="resource_rates")
    cpu_core_hour = models.DecimalField(max_digits=12, decimal_places=6)
    memory_gb_hour = models.DecimalField(max_digits=12, decimal_places=6)
    effective_from = models.DateTimeField()

    class Meta:
        ordering = ["cluster", "effective_from"]
        constraints = [models.UniqueConstraint(fields=["cluster", "effective_from"], name="costs_rate_unique_start")]


class Cohort(models.Model):
    """Teams whose quotas lend unused guaranteed GPUs to each other (Kueue's cohort)."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Quota(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="gpu_quotas")
    gpu_type = models.ForeignKey(GpuType, on_delete=models.CASCADE, related_name="quotas")
    guaranteed = models.PositiveIntegerField(default=0)
    borrow_limit = models.PositiveIntegerField(default=0, help_text="GPUs the team may borrow from its cohort")
    cohort = models.ForeignKey(Cohort, null=True, blank=True, on_delete=models.SET_NULL, related_name="quotas")
    monthly_gpu_hours = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True,
                                            help_text="GPU-hour budget per calendar month; empty means none")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "gpu_type__name"]
        constraints = [models.UniqueConstraint(fields=["team", "gpu_type"], name="costs_quota_unique_team_type")]

    @property
    def cluster(self):
        return self.gpu_type.cluster


class GpuAllocation(models.Model):
    """One interval during which `gpu_count` GPUs of a type were held; open while stopped_at is empty."""

    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="Empty: unattributed (found on a cluster without a team label)")
    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.PROTECT, related_name="+")
    gpu_type = models.ForeignKey(GpuType, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations")
    gpu_count = models.PositiveIntegerField(default=0)
    borrowed = models.PositiveIntegerField(default=0, help_text="GPUs taken from the cohort pool; reclaimable")
    cpu_cores = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    memory_gb = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    pricing_class = models.CharField(max_length=20, choices=PricingClass.choices, default=PricingClass.ON_DEMAND)
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    deployment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    revision_id = models.BigIntegerField(null=True, blank=True, db_index=True,
                                         help_text="The deployment revision whose workload this interval costs")
    node = models.CharField(max_length=253, blank=True, help_text="Node it ran on, when known (joins NVML data)")
    # The GPUs it held on `node` (NVML indexes, and uuids / MIG instance when the driver or pod reports them):
    # idle time is computed from these GPUs' own samples; without them the idle figure is empty (no telemetry).
    gpu_indexes = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    gpu_uuids = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    mig_instance = models.CharField(max_length=64, blank=True, help_text="MIG instance (e.g. MIG-<uuid>), when known")
    source = models.CharField(max_length=20, choices=AllocationSource.choices, default=AllocationSource.CONTROL_PLANE)
    external_uid = models.CharField(max_length=100, blank=True, help_text="Pod uid for collector-found work")
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["team", "started_at"]), models.Index(fields=["stopped_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(stopped_at__isnull=True) | Q(stopped_at__gte=models.F("started_at")),
                                   name="costs_allocation_stops_after_start"),
            models.UniqueConstraint(fields=["cluster", "external_uid"], condition=~Q(external_uid=""),
                                    name="costs_allocation_unique_pod"),
        ]

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


class GpuReservation(models.Model):
    """GPUs admitted to a deployment revision or a job but not yet in the usage ledger (Kueue's quota reservation).

    Written in the transaction that admits the work, under the team's quota row lock, so concurrent admissions
    can't overbook. While `reserved` it counts against the quota like usage; it becomes usage (`consumed`)
    when the ledger interval opens, and is `released` on failure, abort, teardown or timeout. `expires_at`
    is the timeout for work whose pods never started; it is cleared once they run.
    """

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="+")
    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.PROTECT, related_name="+")
    gpu_type = models.ForeignKey(GpuType, on_delete=models.PROTECT, related_name="reservations")
    gpu_count = models.PositiveIntegerField()
    borrowed = models.PositiveIntegerField(default=0, help_text="GPUs of the reservation taken from the cohort pool")
    deployment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    revision_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=ReservationStatus.choices, default=ReservationStatus.RESERVED)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Released if the work has not started by then")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["gpu_type", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(gpu_count__gt=0), name="costs_reservation_gpus_positive"),
            models.CheckConstraint(condition=Q(deployment_id__isnull=False) | Q(job_id__isnull=False),
                                   name="costs_reservation_has_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.gpu_count} × {self.gpu_type.name} for {self.team} ({self.status})"


class NodeToken(models.Model):
    """Credential an NVML agent on one node posts samples with (`Bearer nt_<prefix>_<secret>`)."""

    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.CASCADE, related_name="+")
    node = models.CharField(max_length=253)
    # The node's GPUs are indexes 0..gpu_count-1: a sample for any other index is refused.
    gpu_count = models.PositiveSmallIntegerField(default=0)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "node"]


class SampleBatch(models.Model):
    """One batch posted by an agent. Its id makes a retried post a no-op; it counts what was refused."""

    batch_id = models.UUIDField(unique=True)
    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.CASCADE, related_name="+")
    node = models.CharField(max_length=253)
    received_at = models.DateTimeField(db_index=True)
    accepted = models.PositiveIntegerField(default=0)
    rejected_future = models.PositiveIntegerField(default=0)
    rejected_past = models.PositiveIntegerField(default=0)
    min_ts = models.DateTimeField(null=True)
    max_ts = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-received_at"]


class UsageHourly(models.Model):
    """GPU usage and cost per hour and attribution key. Rebuilt per window by the rollup job."""

    hour = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=UsageKind.choices, default=UsageKind.ALLOCATED)
    team = models.ForeignKey("teams.Team", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="+")
    gpu_type = models.ForeignKey(GpuType, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    model_version = models.ForeignKey("registry.ModelVersion", null=True, on_delete=models.DO_NOTHING,
                                      db_constraint=False, related_name="+")
    deployment_id = models.BigIntegerField(null=True)
    gpu_hours = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    gpu_cost = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    other_cost = models.DecimalField(max_digits=16, decimal_places=6, default=0, help_text="CPU + memory")
    idle_gpu_hours = models.DecimalField(max_digits=16, decimal_places=6, null=True)
    idle_cost = models.DecimalField(max_digits=16, decimal_places=6, null=True,
                                    help_text="Empty when no NVML data covers the hour")

    class Meta:
        indexes = [models.Index(fields=["hour"]), models.Index(fields=["team", "hour"])]


class UsageDaily(models.Model):
    day = models.DateField()
    kind = models.CharField(max_length=20, choices=UsageKind.choices, default=UsageKind.ALLOCATED)
    team = models.ForeignKey("teams.Team", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="+")
    gpu_type = models.ForeignKey(GpuType, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    model_version = models.ForeignKey("registry.ModelVersion", null=True, on_delete=models.DO_NOTHING,
                                      db_constraint=False, related_name="+")
    deployment_id = models.BigIntegerField(null=True)
    gpu_hours = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    gpu_cost = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    other_cost = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    idle_gpu_hours = models.DecimalField(max_digits=16, decimal_places=6, null=True)
    idle_cost = models.DecimalField(max_digits=16, decimal_places=6, null=True)
    # Only on `adjustment` rows (written by apps.costs.closing, never rebuilt by the rollup): the closed month
    # they correct and the kind of the figures they correct (allocated or unallocated).
    adjusts_month = models.DateField(null=True, blank=True)
    adjusts_kind = models.CharField(max_length=20, blank=True, db_default="", choices=UsageKind.choices)

    class Meta:
        indexes = [models.Index(fields=["day"]), models.Index(fields=["team", "day"])]


class UtilizationRollup(models.Model):
    """Per node and GPU, from the NVML samples; `UtilizationHourly` and `UtilizationDaily` add the period."""

    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="+")
    node = models.CharField(max_length=253)
    gpu_index = models.SmallIntegerField()
    samples = models.PositiveIntegerField()
    avg_util = models.FloatField()
    avg_mem_used_mb = models.FloatField()
    mem_total_mb = models.FloatField()
    avg_power_w = models.FloatField()

    class Meta:
        abstract = True


class UtilizationHourly(UtilizationRollup):
    hour = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["hour"]), models.Index(fields=["cluster", "node", "hour"])]


class UtilizationDaily(UtilizationRollup):
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["day"])]


class RollupRun(LeasedWork):
    """When the rollup job last ran and which window it rebuilt; the next run starts from here.

    The beat queues one for the runner (kind costs.rollup, at most one pending), which picks the window when it
    starts; out of attempts it needs attention (dashboard, costs page) until a platform admin retries it."""

    status = models.CharField(max_length=20, choices=RollupStatus.choices, default=RollupStatus.QUEUED)
    started_at = models.DateTimeField(help_text="When it was queued, then when its window was picked")
    finished_at = models.DateTimeField(null=True)
    window_start = models.DateTimeField(null=True, help_text="Empty until the run starts")
    window_end = models.DateTimeField(null=True)
    usage_rows = models.PositiveIntegerField(default=0)
    utilization_rows = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]


class TeamBudget(models.Model):
    team = models.OneToOneField("teams.Team", on_delete=models.CASCADE, related_name="cost_budget")
    monthly_amount = models.DecimalField(max_digits=14, decimal_places=2)
    thresholds = models.JSONField(default=list, help_text="Percentages that alert, e.g. [50, 80, 100]")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug"]


class TeamBudgetPeriod(models.Model):
    """A team's budget from a month on: the amount of month M is the latest period starting at or before M, so
    changing a budget keeps the old amount for the months before the change."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="First day of the first month it applies to")
    monthly_amount = models.DecimalField(max_digits=14, decimal_places=2)
    thresholds = models.JSONField(default=list)

    class Meta:
        ordering = ["team", "-month"]
        constraints = [models.UniqueConstraint(fields=["team", "month"], name="costs_budgetperiod_unique_month")]


class CostMonth(models.Model):
    """A closed month: its rollup rows are never rebuilt again; late changes become adjustments."""

    month = models.DateField(unique=True, help_text="First day of the month")
    closed_at = models.DateTimeField()
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-month"]


class BudgetAlert(models.Model):
    """Sent once per team, month and threshold (the unique constraint is what makes it once)."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="First day of the month")
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(max_digits=14, decimal_places=2)
    budget = models.DecimalField(max_digits=14, decimal_places=2)
    forecast = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-month", "-threshold"]
        constraints = [models.UniqueConstraint(fields=["team", "month", "threshold"], name="costs_alert_once")]


class GpuDevice(models.Model):
    """The GPUs an agent has reported: kept once per node and index, not repeated on every sample."""

    cluster = models.ForeignKey("deployments.Cluster", on_delete=models.CASCADE, related_name="+")
    node = models.CharField(max_length=253)
    gpu_index = models.SmallIntegerField()
    uuid = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=100, blank=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["cluster", "node", "gpu_index"]
        constraints = [models.UniqueConstraint(fields=["cluster", "node", "gpu_index"], name="costs_gpudevice_unique")]
