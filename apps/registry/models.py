from django.db import models

from .choices import MlflowPresence


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
                             help_text="From the model's `team` tag in MLflow, or assigned by a team admin")
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    mlflow_updated_at = models.DateTimeField(null=True, blank=True)
    presence = models.CharField(max_length=20, choices=MlflowPresence.choices, default=MlflowPresence.PRESENT)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One version of a registered model with the lineage and metrics of the run that produced it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=1000, blank=True, help_text="Model URI as registered (models:/m-..., runs:/...)")
    artifact_uri = models.CharField(max_length=1000, blank=True, help_text="Where MLflow stores the model files")
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    datasets = models.JSONField(default=list, blank=True, help_text="[{name, digest, source, context}]")
    git_commit = models.CharField(max_length=64, blank=True)
    signature = models.JSONField(null=True, blank=True)
    creator = models.CharField(max_length=150, blank=True, help_text="MLflow user id of who registered it")
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    aliases = models.JSONField(default=list, blank=True, help_text="Aliases this version holds in MLflow now")
    mlflow_status = models.CharField(max_length=30, blank=True)
    presence = models.CharField(max_length=20, choices=MlflowPresence.choices, default=MlflowPresence.PRESENT)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model__name", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_unique")]

    @property
    def team(self):
        return self.model.team

    @property
    def team_id(self):
        return self.model.team_id

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"
