from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"

    def ready(self):
        from . import schema  # noqa: F401  (registers the node token scheme with drf-spectacular)
