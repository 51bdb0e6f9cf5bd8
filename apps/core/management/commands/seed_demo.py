from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core import demo


class Command(BaseCommand):
    help = ("Create the demo users, teams and the fraud-classifier model in MLflow. Safe to re-run: what "
            "exists is left alone.")

    def add_arguments(self, parser):
        parser.add_argument("--skip-mlflow", action="store_true", help="Only the users and teams.")

    def handle(self, *args, skip_mlflow: bool, **options):
        self.stdout.write("Demo users and teams:")
        demo.seed_accounts(log=self.stdout.write)
        if not skip_mlflow:
            self.stdout.write(f"Demo model in MLflow at {settings.MLFLOW_TRACKING_URI}:")
            try:
                demo.seed_mlflow(tracking_uri=settings.MLFLOW_TRACKING_URI, log=self.stdout.write)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Demo data ready; every demo user's password is {demo.DEMO_PASSWORD}"))
