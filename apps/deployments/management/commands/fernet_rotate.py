"""Re-encrypt every secret stored at rest with the first key of CONTROLPLANE_FERNET_KEYS.

Rotation: prepend a new key (`NEW,OLD`), run this, then drop the old key.
"""
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.deployments.services import credentials_rotate
from apps.teams.services import webhooks_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt cluster credentials and webhook URLs/secrets with the first CONTROLPLANE_FERNET_KEYS key."

    def handle(self, *args, **options):
        with transaction.atomic():
            clusters, webhooks = credentials_rotate(), webhooks_reencrypt()
        self.stdout.write(f"Re-encrypted {clusters} cluster credential(s) and {webhooks} webhook(s).")
