from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"

    def ready(self):
        from . import runner, schema  # noqa: F401  (the runner's work kinds; the node token scheme for drf-spectacular)
