"""The transition mechanism every state machine shares: a table of allowed moves, and one function that checks
the row's current status against it and writes the new status (with its other fields) and its audit event in
one transaction.

An app's transitions.py holds its table and a thin `<entity>_transition` on top of `transition()`; nothing
else writes a status column (tests/core/test_status_writes.py checks it).
"""
from django.db import transaction

from apps.core.errors import Conflict

from .services import audit_record


def sources(allowed: dict[str, set[str]], to: str) -> set[str]:
    """The statuses from which `to` may be reached."""
    return {from_ for from_, targets in allowed.items() if to in targets}


def transition(*, row, to: str, allowed: dict[str, set[str]], action: str = "", actor=None, team=None,
               expected: set[str] | None = None, fields: dict | None = None, changes: dict | None = None,
               field: str = "status", conflict: str | None = None) -> str | None:
    """Move `row` to `to` if its current status (read under a row lock) allows it (and is in `expected`,
    when given), writing `fields` with it and, when `action` is given, auditing it in the same transaction (a
    move without an action is a progress record of the row's own: a runner pass starting or finishing).

    Returns the status it moved from. A refused move (the row is gone, or its status forbids it: another writer
    moved it first) writes nothing and returns None, or with `conflict` (the row's name for people, "Sync run
    #3") raises a 409 saying what the row is now. `row` is updated in memory on success."""
    model = type(row)
    seen = getattr(row, field)
    with transaction.atomic():
        # FOR NO KEY UPDATE, the lock the UPDATE below takes anyway: a plain FOR UPDATE also blocks the key-share
        # locks foreign-key checks take, so a transaction inserting a row that refers to this one (checked at its
        # COMMIT, while it holds the audit chain lock) and this one (waiting for that lock) deadlocked. OF self and
        # no ordering: a model ordered through a relation (a revision by its deployment, i.e. by team) would join
        # and lock the team's row as well, and two drives deadlocked on it against the audit chain lock.
        from_ = (model.objects.select_for_update(no_key=True, of=("self",)).filter(pk=row.pk).order_by()
                 .values_list(field, flat=True).first())
        if from_ is None or to not in allowed.get(from_, set()) or (expected is not None and from_ not in expected):
            if conflict is not None:
                _refuse(model, field, name=conflict, seen=seen, current=from_, to=to)
            return None
        values = {field: to, **(fields or {})}
        model.objects.filter(pk=row.pk).update(**values)
        computed = [name for name, value in values.items() if hasattr(value, "resolve_expression")]
        for name, value in values.items():
            if name not in computed:
                setattr(row, name, value)
        if computed:
            row.refresh_from_db(fields=computed)
        if action:
            audit_record(actor=actor, action=action, target=row, team=team,
                         changes={field: [from_, to], **(changes or {})})
    return from_


def _refuse(model, field: str, *, name: str, seen: str, current: str | None, to: str):
    labels = dict(model._meta.get_field(field).flatchoices)

    def label(status):
        return str(labels.get(status, status)).lower()

    if current is None:
        raise Conflict(f"{name} is gone; reload.")
    if current != seen:
        raise Conflict(f"{name} changed meanwhile; it is now {label(current)}. Reload and try again.",
                       extra={"status": current})
    raise Conflict(f"{name} is {label(current)}; it can't become {label(to)}.", extra={"status": current})
