from django.core.management.base import BaseCommand

from apps.audit.services import audit_checkpoint_create


class Command(BaseCommand):
    help = "Sign a checkpoint of the audit chain's head now (the beat job does this every few minutes)."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint_create()
        if checkpoint is None:
            self.stdout.write("No new audit events since the last checkpoint: nothing to sign.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Signed {checkpoint}"))
