from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"

    def ready(self):
        from . import runner  # noqa: F401  registers the runner's work kinds
