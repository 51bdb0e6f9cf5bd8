import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.audit.checkpoints import read_checkpoint_file, sink_path
from apps.audit.chain import HASHED_FIELDS
from apps.audit.keys import load_public_key, public_key_id
from apps.audit.selectors import audit_chain_verify
from apps.audit.verify import ChainReport, verify_chain

_EXPORT_FIELDS = ("id", "prev_hash", "hash", *HASHED_FIELDS)


class Command(BaseCommand):
    help = ("Verify the audit log: the hash chain, every row's MAC and the signed checkpoints (in the database "
            "and the sink file). With --export, verify an exported JSON Lines file offline, without the database "
            "or the HMAC key, against signed checkpoints. Prints every break; exit status 1 when any.")

    def add_arguments(self, parser):
        parser.add_argument("--export", type=Path, help="An unfiltered JSONL export (Audit → Export JSONL)")
        parser.add_argument("--checkpoints", type=Path,
                            help="Checkpoints JSONL for --export (default: the configured sink file)")
        parser.add_argument("--public-key", action="append", default=[],
                            help="Checkpoint signing public key for --export: a PEM file, or base64 of the raw "
                                 "32 bytes (repeat for rotated keys). `manage.py audit_public_key` prints it.")

    def handle(self, *args, export=None, checkpoints=None, public_key=(), **options):
        if export is None:
            report, what = audit_chain_verify(), "audit events verified"
        else:
            report, what = self.verify_export(export, checkpoints, public_key), "exported audit events verified offline"
        for warning in report.warnings:
            self.stderr.write(f"WARNING: {warning}")
        if not report.ok:
            lines = "\n".join(f"  - {problem}" for problem in report.breaks)
            hint = ("\nAn export filtered by team, actor, action or time is not a whole chain: verify an unfiltered "
                    "export made by a platform admin." if export is not None else "")
            raise CommandError(f"BROKEN: {len(report.breaks)} problems in {report.checked} events:\n{lines}{hint}")
        self.stdout.write(self.style.SUCCESS(f"OK: {report.checked} {what}; {self.anchoring(report)}"))

    @staticmethod
    def anchoring(report: ChainReport) -> str:
        latest = report.latest_checkpoint
        if latest is None:
            return "no signed checkpoint yet"
        return (f"{report.checkpoints} signed checkpoints, the latest covers {latest['size']} events "
                f"(signed at {latest['signed_at']}); {report.unsigned_tail} events after it are not yet signed")

    def verify_export(self, export: Path, checkpoints: Path | None, public_keys: list[str]) -> ChainReport:
        if not public_keys:
            raise CommandError("--export needs --public-key: the checkpoint signing key to trust")
        try:
            keys = [load_public_key(text) for text in public_keys]
        except ValueError as exc:
            raise CommandError(f"--public-key: not an Ed25519 public key ({exc})") from exc
        checkpoints = checkpoints or sink_path()
        if checkpoints is None or not checkpoints.is_file():
            raise CommandError(f"No checkpoints file at {checkpoints}: pass --checkpoints FILE (the sink file)")
        try:
            records = read_checkpoint_file(checkpoints)
            rows = self.read_export(export)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        return verify_chain(rows, checkpoints=records, public_keys={public_key_id(k): k for k in keys},
                            hmac_keys=None)

    @staticmethod
    def read_export(path: Path) -> list[dict]:
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [name for name in _EXPORT_FIELDS if name not in row]
            if missing:
                raise ValueError(f"{path}:{number} lacks {', '.join(missing)}: export it again as JSONL")
            rows.append(row)
        return sorted(rows, key=lambda row: row["id"])
