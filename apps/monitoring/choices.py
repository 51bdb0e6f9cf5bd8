from django.db import models


class ColumnKind(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"


class ColumnRole(models.TextChoices):
    FEATURE = "feature", "Feature"
    PREDICTION = "prediction", "Prediction"
    TARGET = "target", "Target (label)"


class Window(models.TextChoices):
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"


class MonitorState(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    DRIFTING = "drifting", "Drifting"
    NO_DATA = "no_data", "No data"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    NOT_ENOUGH_DATA = "not_enough_data", "Not enough data"
    FAILED = "failed", "Failed"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class AlertKind(models.TextChoices):
    DATASET_DRIFT = "dataset_drift", "Dataset drift"
    PREDICTION_DRIFT = "prediction_drift", "Prediction drift"
    ERROR_RATE = "error_rate", "Error rate"


class ReferenceSource(models.TextChoices):
    UPLOAD = "upload", "Uploaded file"
    MLFLOW = "mlflow", "MLflow run artifact"
    LOGS = "logs", "Prediction logs"


class RenderStatus(models.TextChoices):
    """A full-data Evidently report asked for on a run, rendered by the runner (kind monitoring.report)."""
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
