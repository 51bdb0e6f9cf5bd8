from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"

    def ready(self):
        from . import runner, schema  # noqa: F401  (registers the runner's work kinds; the token scheme with drf-spectacular)
