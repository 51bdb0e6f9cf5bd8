from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Register (or update) the control plane's webhook in MLflow's registry, from MLFLOW_WEBHOOK_URL and "
            "MLFLOW_WEBHOOK_SECRET. Safe to run at every start-up; the secret is never printed.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="Overrides MLFLOW_WEBHOOK_URL")
        parser.add_argument("--if-configured", action="store_true",
                            help="For start-up scripts: without MLFLOW_WEBHOOK_URL and MLFLOW_WEBHOOK_SECRET, say so "
                                 "and succeed (the scheduled passes still sync)")

    def handle(self, *args, **options):
        from apps.registry import mlflow_api, webhooks

        url = options["url"] or settings.MLFLOW_WEBHOOK_URL
        if options["if_configured"] and not (url and settings.MLFLOW_WEBHOOK_SECRET):
            self.stdout.write("MLflow webhook not registered: MLFLOW_WEBHOOK_URL and MLFLOW_WEBHOOK_SECRET are not "
                              "both set; the scheduled sync passes alone keep the registry current.")
            return
        if not url:
            raise CommandError("Set MLFLOW_WEBHOOK_URL to this server's /api/v1/registry/mlflow-webhook/ as MLflow "
                               "reaches it.")
        if not settings.MLFLOW_WEBHOOK_SECRET:
            raise CommandError("Set MLFLOW_WEBHOOK_SECRET (a long random string); MLflow signs deliveries with it.")
        from mlflow.exceptions import MlflowException

        try:
            webhook_id, outcome = mlflow_api.webhook_ensure(name=webhooks.WEBHOOK_NAME, url=url,
                                                            events=webhooks.EVENTS,
                                                            secret=settings.MLFLOW_WEBHOOK_SECRET)
        except MlflowException as exc:
            raise CommandError(f"MLflow refused the webhook: {exc.message} (MLflow accepts only https URLs to public "
                               f"addresses unless its server runs with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https "
                               f"and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true)") from exc
        self.stdout.write(self.style.SUCCESS(f"MLflow webhook {webhooks.WEBHOOK_NAME} ({webhook_id}) {outcome}: "
                                             f"{url}, events {', '.join(webhooks.EVENTS)}"))
