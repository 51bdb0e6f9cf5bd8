from django.db import models


class MlflowPresence(models.TextChoices):
    """What the last sync saw in MLflow: removed objects stay here, flagged, never silently dropped."""

    PRESENT = "present", "In MLflow"
    DELETED = "deleted", "Deleted in MLflow"
