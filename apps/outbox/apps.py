from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "apps.outbox"
    label = "outbox"

    def ready(self):
        from . import signals  # noqa: F401  (binds the request id to task execution)
