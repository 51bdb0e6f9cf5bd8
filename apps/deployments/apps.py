from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "apps.deployments"
    label = "deployments"

    def ready(self):
        from . import runner  # noqa: F401  registers the runner's work kinds
