from django.db import models


class ClusterKind(models.TextChoices):
    LOCAL = "local", "Local processes (no cluster)"
    KUBERNETES = "kubernetes", "Kubernetes"
