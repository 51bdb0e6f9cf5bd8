"""The transition mechanism state machines share: a table of allowed moves, and one function that checks the
row's current status against it and writes the new status and its audit event in one transaction.

An app's transitions.py holds its table and a thin `<entity>_transition` on top of `transition()`; nothing
else writes a status column (tests/core/test_status_writes.py checks it).
"""
from django.db import transaction

from .services import audit_record


def sources(allowed: dict[str, set[str]], to: str) -> set[str]:
    """The statuses from which `to` may be reached."""
    return {from_ for from_, targets in allowed.items() if to in targets}


def transition(*, row, to: str, allowed: dict[str, set[str]], action: str, actor=None, team=None,
               expected: set[str] | None = None, fields: dict | None = None, changes: dict | None = None,
               field: str = "status") -> str | None:
    """Move `row` to `to` if its current status (read under a row lock) allows it (and is in `expected`,
    when given), writing `fields` with it and auditing `action` in the same transaction. Returns the status
    it moved from; None when the row is gone or its status forbids the move (another writer moved it first),
    with nothing written. `row` is updated in memory on success."""
    model = type(row)
    with transaction.atomic():
        # FOR NO KEY UPDATE, the lock the UPDATE below takes anyway: a plain FOR UPDATE also blocks the key-share
        # locks foreign-key checks take, so a transaction inserting a row that refers to this one (checked at its
        # COMMIT, while it holds the audit chain lock) and this one (waiting for that lock) deadlocked.
        from_ = (model.objects.select_for_update(no_key=True).filter(pk=row.pk)
                 .values_list(field, flat=True).first())
        if from_ is None or to not in allowed.get(from_, set()) or (expected is not None and from_ not in expected):
            return None
        values = {field: to, **(fields or {})}
        model.objects.filter(pk=row.pk).update(**values)
        for name, value in values.items():
            setattr(row, name, value)
        audit_record(actor=actor, action=action, target=row, team=team, changes={field: [from_, to], **(changes or {})})
    return from_
