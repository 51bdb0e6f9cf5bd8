from rest_framework import serializers

from apps.core.api.serializers import StrictInputSerializer
from apps.monitoring import drift
from apps.monitoring.choices import Window
from apps.monitoring.models import Alert, FeatureDrift, Monitor, MonitorRun, PredictionBatch, ReferenceDataset


class SchemaColumnSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])
    role = serializers.ChoiceField(choices=["feature", "prediction", "target"])


class ReferenceSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version_id")
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ReferenceDataset
        fields = ["id", "team", "model_version", "name", "source", "source_detail", "schema", "row_count", "created_at"]


class ReferenceCreateSerializer(StrictInputSerializer):
    model_version = serializers.IntegerField()
    name = serializers.CharField(max_length=200, required=False, default="")
    source = serializers.ChoiceField(choices=["rows", "mlflow", "upload"], default="rows",
                                     help_text="rows: inline JSON rows; mlflow: the version's run artifact; "
                                               "upload: multipart 'file' (CSV or Parquet)")
    rows = serializers.ListField(child=serializers.DictField(), required=False,
                                 help_text="Reference rows as objects {column: value}")
    artifact_path = serializers.CharField(required=False, allow_blank=True)
    prediction = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    target = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    schema = SchemaColumnSerializer(many=True, required=False)
    file = serializers.FileField(required=False)


class SchemaUpdateSerializer(StrictInputSerializer):
    schema = SchemaColumnSerializer(many=True)


class MonitorSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.IntegerField(source="model_version_id")
    reference = serializers.IntegerField(source="reference_id", allow_null=True)
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    open_alerts = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Monitor
        fields = ["id", "team", "name", "model_version", "deployment", "reference", "window", "features",
                  "numeric_method", "categorical_method", "numeric_threshold", "categorical_threshold", "drift_share",
                  "prediction_drift", "min_rows", "enabled", "auto_rollback", "auto_rollback_drift_share",
                  "auto_rollback_windows", "auto_rollback_error_rate", "retrain_job", "exact_max_rows",
                  "raw_retention_days", "summary_retention_days", "state", "last_run_at", "open_alerts", "created_at"]


class _MonitorOptions(StrictInputSerializer):
    reference = serializers.IntegerField(required=False, allow_null=True)
    deployment = serializers.IntegerField(required=False, allow_null=True)
    window = serializers.ChoiceField(choices=Window.choices, required=False)
    features = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    numeric_method = serializers.ChoiceField(choices=drift.NUMERIC_METHODS, required=False)
    categorical_method = serializers.ChoiceField(choices=drift.CATEGORICAL_METHODS, required=False)
    numeric_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0)
    categorical_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0)
    drift_share = serializers.FloatField(required=False, min_value=0.01, max_value=1)
    prediction_drift = serializers.BooleanField(required=False)
    min_rows = serializers.IntegerField(required=False, min_value=1)
    enabled = serializers.BooleanField(required=False)
    retrain_job = serializers.DictField(required=False)
    exact_max_rows = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="Above this many rows a window is tested from partition summaries (sketch mode); empty: the default")
    raw_retention_days = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                  help_text="Days raw log partitions are kept; empty: the default")
    summary_retention_days = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                      help_text="Days partition summaries are kept; empty: the default")


class MonitorCreateSerializer(_MonitorOptions):
    team = serializers.SlugField()
    name = serializers.SlugField(max_length=60)
    model_version = serializers.IntegerField()


class MonitorUpdateSerializer(_MonitorOptions):
    pass


class RunRequestSerializer(StrictInputSerializer):
    window_start = serializers.DateTimeField(required=False)
    window_end = serializers.DateTimeField(required=False)


class AutoRollbackSerializer(StrictInputSerializer):
    enabled = serializers.BooleanField()
    drift_share = serializers.FloatField(required=False, min_value=0.01, max_value=1)
    windows = serializers.IntegerField(required=False, min_value=1, max_value=100)
    error_rate = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)


class ReasonSerializer(StrictInputSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class RollbackStartedSerializer(serializers.Serializer):
    """What a rollback from monitoring started: the new revision and the one it goes back to, by number."""

    status = serializers.SerializerMethodField()
    deployment = serializers.IntegerField(source="deployment_id")
    revision = serializers.IntegerField(source="number", help_text="The new revision's number (rN)")
    rollback_of = serializers.IntegerField(source="rollback_of.number", allow_null=True,
                                           help_text="The number of the revision it serves again")

    def get_status(self, revision) -> str:
        return "rollback started"


class FeatureDriftSerializer(serializers.ModelSerializer):
    class Meta:
        model = FeatureDrift
        fields = ["column", "role", "kind", "method", "score", "score_kind", "threshold", "drifted", "status",
                  "reference_count", "current_count", "null_count", "notes"]


class RunSerializer(serializers.ModelSerializer):
    monitor = serializers.IntegerField(source="monitor_id")
    features = FeatureDriftSerializer(many=True, read_only=True)
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = MonitorRun
        fields = ["id", "monitor", "window_start", "window_end", "trigger", "status", "progress", "progress_message",
                  "message", "state", "reference_rows", "current_rows", "feature_count", "drifted_count", "drift_share",
                  "dataset_drift", "prediction_score", "prediction_drifted", "performance", "latency_p50",
                  "latency_p95", "error_rate", "duration_s", "drift_mode", "rank_error", "created_at", "finished_at",
                  "features", "report_url", "attempts", "last_error", "next_attempt_at"]

    def get_report_url(self, run) -> str | None:
        return f"/api/v1/monitoring/runs/{run.pk}/report/" if hasattr(run, "report") else None


class AlertSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    monitor = serializers.IntegerField(source="monitor_id")
    first_run = serializers.IntegerField(source="first_run_id")
    last_run = serializers.IntegerField(source="last_run_id")
    acknowledged_by = serializers.StringRelatedField()
    resolved_by = serializers.StringRelatedField()

    class Meta:
        model = Alert
        fields = ["id", "team", "monitor", "kind", "status", "title", "message", "first_run", "last_run", "occurrences",
                  "opened_at", "last_seen_at", "acknowledged_by", "acknowledged_at", "acknowledge_comment",
                  "resolved_by", "resolved_at", "resolve_comment", "actions"]


class CommentSerializer(StrictInputSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class BatchSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.IntegerField(source="model_version_id")

    class Meta:
        model = PredictionBatch
        fields = ["id", "team", "model_version", "batch_id", "source", "received", "accepted", "rejected",
                  "rejections", "examples", "created_at"]


class BatchCreateSerializer(StrictInputSerializer):
    model_version = serializers.IntegerField(required=False, help_text="Defaults to the version the deployment serves")
    deployment = serializers.IntegerField(required=False, allow_null=True)
    batch_id = serializers.CharField(max_length=200)
    # No per-row field: the parser already checked every value, services.validate_rows checks each row (a JSONField
    # child would re-encode every row, ~15 % of a batch's ingest time).
    rows = serializers.ListField(required=False)
    file = serializers.FileField(required=False)


class LabelItemSerializer(serializers.Serializer):
    request_id = serializers.CharField(max_length=200)
    label = serializers.JSONField()


class LabelsSerializer(StrictInputSerializer):
    model_version = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.JSONField(), allow_empty=False)
