from django.core.management.base import BaseCommand, CommandError

from apps.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Recompute the audit log's hash chain; print OK or the first broken row (exit status 1)."

    def handle(self, *args, **options):
        report = audit_chain_verify()
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"OK: {report.checked} audit events verified"))
            return
        raise CommandError(
            f"BROKEN at audit event {report.broken.event_id}: {report.broken.reason}. "
            f"{report.checked} events before it verified."
        )
