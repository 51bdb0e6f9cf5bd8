from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self):
        from . import runner  # noqa: F401  registers the runner's work kinds
