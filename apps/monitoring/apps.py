from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self):
        from django.core import checks

        from . import logstorage, runner  # noqa: F401  runner registers its work kinds

        checks.register(logstorage.store_check, "monitoring")
