import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.demo import seed


class Command(BaseCommand):
    help = ("Create the demo users, teams and the fraud-classifier model in MLflow. Safe to re-run: what "
            "exists is left alone. Refused when CONTROLPLANE_ENV=production.")

    def add_arguments(self, parser):
        parser.add_argument("--skip-mlflow", action="store_true", help="Only the users and teams.")

    def handle(self, *args, skip_mlflow: bool, **options):
        # Read at run time, like the settings read it at start-up: demo users share one known password.
        if os.environ.get("CONTROLPLANE_ENV", "local") == "production":
            raise CommandError("seed_demo refuses to run with CONTROLPLANE_ENV=production: the demo users share a "
                               "published password. Seed a local or staging database instead.")
        self.stdout.write("Demo users and teams:")
        seed.seed_accounts(log=self.stdout.write)
        if not skip_mlflow:
            self.stdout.write(f"Demo model in MLflow at {settings.MLFLOW_TRACKING_URI}:")
            try:
                seed.seed_mlflow(tracking_uri=settings.MLFLOW_TRACKING_URI, log=self.stdout.write)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Demo data ready; every demo user's password is {seed.DEMO_PASSWORD}"))
