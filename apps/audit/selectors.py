from dataclasses import dataclass
from typing import Iterator

from django.db.models import QuerySet

from apps.teams.selectors import team_ids_for

from .chain import GENESIS_HASH, event_hash
from .models import AuditEvent


def audit_event_list(*, user) -> QuerySet[AuditEvent]:
    """Events of the teams the user belongs to; platform-level events (no team) only for platform admins."""
    queryset = AuditEvent.objects.all()
    ids = team_ids_for(user=user)
    if ids is None:
        return queryset
    return queryset.filter(team_id__in=ids)


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def audit_chain_verify(*, chunk_size: int = 5000) -> ChainReport:
    """Recompute the chain from the first row; report the first row whose link or content doesn't match."""
    expected_prev = GENESIS_HASH
    checked = 0
    rows: Iterator[AuditEvent] = AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size)
    for event in rows:
        if event.prev_hash != expected_prev:
            return ChainReport(checked, ChainBreak(event.id, "its prev_hash does not match the row before it "
                                                             "(a row was deleted, inserted or reordered)"))
        computed = event_hash(event, expected_prev)
        if computed != event.hash:
            return ChainReport(checked, ChainBreak(event.id, "its content does not match its hash (the row was altered)"))
        expected_prev = event.hash
        checked += 1
    return ChainReport(checked, None)
