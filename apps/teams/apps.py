from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"

    def ready(self):
        from . import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
