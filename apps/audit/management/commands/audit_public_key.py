from django.core.management.base import BaseCommand

from apps.audit.keys import public_key_pem, signing_key


class Command(BaseCommand):
    help = "Print the public key (PEM) that verifies audit checkpoints, for `audit_verify --export --public-key`."

    def handle(self, *args, **options):
        self.stdout.write(public_key_pem(signing_key().public_key()), ending="")
