from django.conf import settings
from django.db import models

from apps.core.runner import LeasedWork

from .choices import AlertKind, AlertStatus, MonitorState, ReferenceSource, RenderStatus, RunStatus, Window


class ReferenceDataset(models.Model):
    """The data a monitor compares against, with its (inferred, editable) schema.

    Columns are stored once, prepared for drift runs (see ReferenceColumn); a row-aligned sample is
    kept for the Evidently HTML report.
    """

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="reference_datasets")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="reference_datasets")
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=ReferenceSource.choices)
    source_detail = models.CharField(max_length=1000, blank=True, help_text="File name or MLflow artifact URI")
    # [{"name": ..., "kind": numeric|categorical, "role": feature|prediction|target}]
    schema = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    sample_parquet = models.BinaryField(null=True, blank=True, editable=False)
    # All rows, kept when there are more than the sample holds but few enough for a full-data report.
    full_parquet = models.BinaryField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def columns(self, role: str | None = None) -> list[dict]:
        return [c for c in self.schema if role is None or c["role"] == role]


class ReferenceColumn(models.Model):
    """One reference column ready for drift: numeric values sorted (float64, NaN/inf dropped) or
    categorical value counts. Sorting once here saves every run from sorting the reference."""

    reference = models.ForeignKey(ReferenceDataset, on_delete=models.CASCADE, related_name="column_data")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    sorted_values = models.BinaryField(null=True, blank=True)
    counts = models.JSONField(null=True, blank=True)
    null_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reference", "name"], name="reference_column_unique")]


class Monitor(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="monitors")
    name = models.SlugField(max_length=60)
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="monitors")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="monitors")
    reference = models.ForeignKey(ReferenceDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="monitors")
    window = models.CharField(max_length=10, choices=Window.choices, default=Window.DAILY)
    features = models.JSONField(default=list, blank=True, help_text="Columns watched; empty means every feature")
    numeric_method = models.CharField(max_length=20, default="auto")
    categorical_method = models.CharField(max_length=20, default="auto")
    numeric_threshold = models.FloatField(null=True, blank=True)
    categorical_threshold = models.FloatField(null=True, blank=True)
    drift_share = models.FloatField(default=0.5, help_text="Share of drifting features that makes the dataset drift")
    prediction_drift = models.BooleanField(default=True)
    min_rows = models.PositiveIntegerField(default=50, help_text="Fewer rows in a window means 'not enough data'")
    enabled = models.BooleanField(default=True)
    schedule = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    # Optional auto-rollback policy: off by default.
    auto_rollback = models.BooleanField(default=False)
    auto_rollback_drift_share = models.FloatField(default=0.5)
    auto_rollback_windows = models.PositiveSmallIntegerField(default=3)
    auto_rollback_error_rate = models.FloatField(null=True, blank=True)
    # The training Job "Retrain" dispatches: {"cluster": name, "image": ..., "command": [...], "gpu_type": ..., "gpu_count": n}
    retrain_job = models.JSONField(default=dict, blank=True)
    # Drift at scale (empty: the MONITORING_* settings): above exact_max_rows a window is tested from partition
    # summaries (sketch mode); raw log partitions older than raw_retention_days are dropped, summaries kept for
    # summary_retention_days (the longest of the model version's monitors wins).
    exact_max_rows = models.PositiveBigIntegerField(null=True, blank=True)
    raw_retention_days = models.PositiveIntegerField(null=True, blank=True)
    summary_retention_days = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=MonitorState.choices, default=MonitorState.NO_DATA)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="monitor_unique_team_name")]

    def __str__(self) -> str:
        return self.name


class MonitorRun(LeasedWork):
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="runs")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    trigger = models.CharField(max_length=20, default="schedule")  # schedule | manual | demo
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=2000, blank=True)
    reference_rows = models.PositiveIntegerField(default=0)
    current_rows = models.PositiveIntegerField(default=0)
    feature_count = models.PositiveIntegerField(default=0)
    drifted_count = models.PositiveIntegerField(default=0)
    drift_share = models.FloatField(null=True, blank=True)
    dataset_drift = models.BooleanField(default=False)
    prediction_score = models.FloatField(null=True, blank=True)
    prediction_drifted = models.BooleanField(null=True, blank=True)
    # {"labelled_rows": n, "accuracy": .., "f1": ..} or {"mae": .., "rmse": ..}
    performance = models.JSONField(default=dict, blank=True)
    latency_p50 = models.FloatField(null=True, blank=True)
    latency_p95 = models.FloatField(null=True, blank=True)
    error_rate = models.FloatField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=MonitorState.choices, default=MonitorState.NO_DATA)
    duration_s = models.FloatField(null=True, blank=True)
    # exact: tests on the window's rows; sketch: on merged partition summaries, KS/Wasserstein within rank_error
    drift_mode = models.CharField(max_length=10, blank=True)
    rank_error = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Run by the runner (apps/core/runner.py, kind "monitoring.run"): a queued run is claimed under a lease its
    # worker extends with every progress step; a run whose worker died is reclaimed when the lease expires.

    class Meta:
        ordering = ["-window_start", "-id"]
        indexes = [models.Index(fields=["monitor", "window_start"]),
                   models.Index(fields=["status", "lease_until"], name="monitoring_run_lease_idx")]

    @property
    def team(self):
        return self.monitor.team

    @property
    def team_id(self):
        return self.monitor.team_id


class FeatureDrift(models.Model):
    run = models.ForeignKey(MonitorRun, on_delete=models.CASCADE, related_name="features")
    column = models.CharField(max_length=200)
    role = models.CharField(max_length=20, default="feature")
    kind = models.CharField(max_length=20)
    method = models.CharField(max_length=20, blank=True)
    score = models.FloatField(null=True, blank=True)
    score_kind = models.CharField(max_length=10, blank=True, help_text="p_value or distance")
    threshold = models.FloatField(null=True, blank=True)
    drifted = models.BooleanField(default=False)
    status = models.CharField(max_length=20, default="ok", help_text="ok or not_enough_data")
    reference_count = models.PositiveIntegerField(default=0)
    current_count = models.PositiveIntegerField(default=0)
    null_count = models.PositiveIntegerField(default=0)
    notes = models.CharField(max_length=1000, blank=True)
    distribution = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "-drifted", "column"]


class RunReport(models.Model):
    """The Evidently HTML report of a run, gzip-compressed."""

    run = models.OneToOneField(MonitorRun, on_delete=models.CASCADE, related_name="report")
    html_gz = models.BinaryField()
    sampled = models.BooleanField(default=True)
    reference_rows = models.PositiveIntegerField(default=0)
    current_rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class ReportRender(LeasedWork):
    """A full-data report asked for on a run: the runner renders it (kind monitoring.report) and it replaces the
    run's sampled RunReport. Out of attempts it needs attention; asking for the full report again retries it."""

    run = models.ForeignKey(MonitorRun, on_delete=models.CASCADE, related_name="report_renders")
    status = models.CharField(max_length=20, choices=RenderStatus.choices, default=RenderStatus.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    @property
    def team(self):
        return self.run.monitor.team

    @property
    def team_id(self):
        return self.run.monitor.team_id


class Alert(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="monitoring_alerts")
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    status = models.CharField(max_length=20, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    title = models.CharField(max_length=300)
    message = models.TextField(blank=True)
    first_run = models.ForeignKey(MonitorRun, null=True, on_delete=models.SET_NULL, related_name="+")
    last_run = models.ForeignKey(MonitorRun, null=True, on_delete=models.SET_NULL, related_name="+")
    occurrences = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_comment = models.TextField(blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolve_comment = models.TextField(blank=True)
    actions = models.JSONField(default=list, blank=True, help_text="Rollbacks / retrains taken from this alert")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # Dedup: at most one unresolved alert per monitor and kind; later crossings bump it.
            models.UniqueConstraint(fields=["monitor", "kind"], condition=~models.Q(status="resolved"),
                                    name="alert_one_unresolved_per_kind"),
        ]


class PredictionBatch(models.Model):
    """One ingested batch; its id makes a retried upload idempotent."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="prediction_batches")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="prediction_batches")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    batch_id = models.CharField(max_length=200)
    source = models.CharField(max_length=20)  # json | csv | parquet
    received = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # {"column": {"reason": count}} and the first few rejected rows with their reason
    rejections = models.JSONField(default=dict, blank=True)
    examples = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "batch_id"], name="prediction_batch_unique")]


class PredictionLabel(models.Model):
    """Ground truth that arrives after the prediction, joined to the log by request id."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    request_id = models.CharField(max_length=200)
    value = models.CharField(max_length=200)
    value_num = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "request_id"], name="prediction_label_unique")]


class PredictionFile(models.Model):
    """One Parquet file of the columnar prediction log (apps/monitoring/columnar.py): the rows of one ingest batch
    that fall in one UTC day. Written in the ingest's transaction, so readers only see files of committed
    batches; a rolled-back ingest leaves a file that no row names."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    batch_pk = models.BigIntegerField()
    path = models.CharField(max_length=1000, unique=True)  # relative to MONITORING_LOG_ROOT
    rows = models.PositiveIntegerField()
    ts_min = models.DateTimeField()
    ts_max = models.DateTimeField()
    columns = models.JSONField(default=dict)  # feature name -> "float64" | "string", so reads need no footers
    # False while the file's rows still have to be merged into their day's summaries (a background task after the
    # ingest commits: services/partition_summaries.files_summarize); True when merged or when no monitor watched.
    summarized = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["model_version", "day"], name="prediction_file_version_day"),
                   models.Index(fields=["model_version"], condition=models.Q(summarized=False),
                                name="prediction_file_unsummarized")]


class PartitionSummary(models.Model):
    """The mergeable summary (apps/monitoring/summaries.py) of one partition (UTC day) of a model version's log,
    binned on one reference's bins. Built at ingest (each written file merged in the background) or, when missing or stale (its row
    count is not the partition's), by a sketch-mode run. Outlives the partition's raw rows (retention)."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    reference = models.ForeignKey(ReferenceDataset, on_delete=models.CASCADE, related_name="partition_summaries")
    key = models.CharField(max_length=40)  # the log partition's key (columnar.Partition.key)
    start = models.DateTimeField()
    end = models.DateTimeField()
    rows = models.PositiveBigIntegerField(default=0)
    payload = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reference", "key"], name="partition_summary_unique")]
        indexes = [models.Index(fields=["model_version", "end"], name="partition_summary_version_end")]
