from django.db.models import QuerySet

from apps.teams.selectors import team_ids_for

from .chain import HASHED_FIELDS
from .checkpoints import checkpoint_record, read_checkpoint_file, sink_path
from .keys import hmac_keys, verifying_keys
from .models import AuditCheckpoint, AuditEvent
from .verify import ChainBreak, ChainReport, verify_chain


def audit_event_list(*, user) -> QuerySet[AuditEvent]:
    """Events of the teams the user belongs to; platform-level events (no team) only for platform admins."""
    queryset = AuditEvent.objects.all()
    ids = team_ids_for(user=user)
    if ids is None:
        return queryset
    return queryset.filter(team_id__in=ids)


def audit_chain_verify(*, chunk_size: int = 5000) -> ChainReport:
    """Recompute the chain and every MAC; check it against every signed checkpoint in the database and in the
    sink file outside it. Reports every break."""
    db_checkpoints = [checkpoint_record(c) for c in AuditCheckpoint.objects.order_by("size")]
    path = sink_path()
    sink_problem, sink_checkpoints = None, []
    if path is not None and path.exists():
        try:
            sink_checkpoints = read_checkpoint_file(path)
        except ValueError as exc:
            sink_problem = f"The checkpoint sink is damaged: {exc}"
    in_db = {c["signature"] for c in db_checkpoints}
    in_sink = {c["signature"] for c in sink_checkpoints}
    rows = (AuditEvent.objects.order_by("id").values("id", "prev_hash", "hash", "key_id", "mac", *HASHED_FIELDS)
            .iterator(chunk_size=chunk_size))
    sink_only = [c for c in sink_checkpoints if c["signature"] not in in_db]
    report = verify_chain(rows, checkpoints=db_checkpoints + sink_only, public_keys=verifying_keys(),
                          hmac_keys=hmac_keys())
    if sink_problem:
        report.breaks.append(ChainBreak(None, sink_problem))
    for record in sink_only:
        report.breaks.append(ChainBreak(None, f"The checkpoint of {record['size']} events signed at "
                                              f"{record['signed_at']} is in the sink but missing from the database"))
    missing_from_sink = len(in_db - in_sink)
    if missing_from_sink and path is not None:
        report.warnings.append(f"{missing_from_sink} checkpoints in the database are not in the sink {path} "
                               "(an append failed, or the sink was moved)")
    return report
