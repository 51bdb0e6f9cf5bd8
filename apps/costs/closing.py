"""Closed months and the adjustments line.

A platform admin closes a month once it has ended: its rollups are rebuilt one last time and from then on the
rollup never rewrites its hours or days, so the figures finance signed off stay as they are. Late data that
would change them (late NVML samples, back-dated allocations or stops, back-dated prices or rates) is caught
whenever a rollup window touches the closed month: the whole month is recomputed inside a savepoint that is
rolled back, and the difference between that and what was closed (plus the adjustments already booked for it)
is booked as `adjustment` rows on the first day of the next open month, one row per
(kind, team, cluster, GPU type, model version, deployment), audited as `costs.month.adjust`.
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.teams.choices import Capability, PlatformRole
from apps.teams.selectors import require_platform_role

from .choices import UsageKind
from .models import CostMonth, UsageDaily

KEY = ("team_id", "cluster_id", "gpu_type_id", "model_version_id", "deployment_id")
AMOUNTS = ("gpu_hours", "gpu_cost", "other_cost", "idle_gpu_hours", "idle_cost")
NULLABLE = ("idle_gpu_hours", "idle_cost")  # empty where no NVML data covered the usage
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=dt_timezone.utc)


def next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def month_parse(raw: str) -> date:
    """`YYYY-MM` → its first day; anything else is a 400."""
    match = _MONTH.match(raw or "")
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise InvalidInput(f"'{raw}' is not a month: use YYYY-MM, e.g. 2026-11.", fields={"month": ["invalid"]})
    return date(int(match[1]), int(match[2]), 1)


def closed_months(*, start: datetime, end: datetime) -> set[date]:
    """The closed months that [start, end) overlaps."""
    first, last = start.date().replace(day=1), (end - timedelta(microseconds=1)).date()
    return set(CostMonth.objects.filter(month__gte=first, month__lte=last).values_list("month", flat=True))


def first_open_moment(at: datetime) -> datetime:
    """`at`, or the start of the first open month after it when its month is closed."""
    month = at.date().replace(day=1)
    closed = set(CostMonth.objects.filter(month__gte=month).values_list("month", flat=True))
    if month not in closed:
        return at
    while month in closed:
        month = next_month(month)
    return _at(month)


def month_list(*, user, now: datetime | None = None) -> list[dict]:
    """Every month from the first with usage to the current one, newest first, with its state."""
    require_platform_role(user=user, role=PlatformRole.FINANCE)
    today = (now or timezone.now()).date()
    closed = {m.month: m for m in CostMonth.objects.select_related("closed_by")}
    earliest = UsageDaily.objects.order_by("day").values_list("day", flat=True).first() or today
    first = min([earliest.replace(day=1), *closed])
    months, month = [], first
    while month <= today:
        entry = closed.get(month)
        months.append({"month": f"{month:%Y-%m}", "state": "closed" if entry else "open",
                       "closed_at": entry.closed_at if entry else None,
                       "closed_by": entry.closed_by.username if entry and entry.closed_by else None,
                       "closable": entry is None and next_month(month) <= today})
        month = next_month(month)
    return months[::-1]


@transaction.atomic
def month_close(*, actor, month: date, now: datetime | None = None) -> CostMonth:
    """Rebuild the month's rollups once more and freeze them. Only a month that has ended; twice → 409."""
    from .rollup import rollup_lock, rollup_window

    # Platform admins and finance; through an API token, an admin-scoped one (a platform-level write).
    require_platform_role(user=actor, role=PlatformRole.FINANCE, capability=Capability.ADMINISTER)
    now = now or timezone.now()
    if next_month(month) > now.date():
        raise InvalidInput(f"{month:%B %Y} has not ended yet; a month can be closed from the 1st of the next one.",
                           fields={"month": ["not ended"]})
    rollup_lock()
    existing = CostMonth.objects.filter(month=month).first()
    if existing is not None:
        raise Conflict(f"{month:%B %Y} was closed already, at {existing.closed_at:%Y-%m-%d %H:%M} UTC; its "
                       "figures don't change any more (late data goes to the adjustments line).",
                       fields={"month": ["already closed"]})
    rollup_window(start=_at(month), end=_at(next_month(month)), now=now)
    closed = CostMonth.objects.create(month=month, closed_at=now, closed_by=actor)
    totals = _totals(month)
    audit_record(actor=actor, action="costs.month.close", target=closed, changes={
        "state": ["open", "closed"],
        "total_cost": [None, str(sum((t["gpu_cost"] + t["other_cost"] for t in totals.values()), Decimal(0)))]})
    return closed


def _totals(month: date, *, adjustments: bool = False) -> dict[tuple, dict]:
    """The month's rollup figures per (kind, key); with `adjustments`, the adjustments booked for it instead."""
    if adjustments:
        rows = UsageDaily.objects.filter(kind=UsageKind.ADJUSTMENT, adjusts_month=month)
        kind = "adjusts_kind"
    else:
        rows = UsageDaily.objects.filter(day__gte=month, day__lt=next_month(month),
                                         kind__in=[UsageKind.ALLOCATED, UsageKind.UNALLOCATED])
        kind = "kind"
    grouped = rows.values(kind, *KEY).annotate(**{f"sum_{a}": Sum(a) for a in AMOUNTS})
    return {(row[kind], *(row[k] for k in KEY)): {a: row[f"sum_{a}"] for a in AMOUNTS} for row in grouped}


def adjustments_post(*, month: date, now: datetime) -> list[UsageDaily]:
    """Book what a closed month's figures would be now minus what was closed and adjusted so far.

    Runs inside the rollup's transaction, under its lock."""
    from .rollup import rebuild

    savepoint = transaction.savepoint()
    with connection.cursor() as cursor:
        rebuild(cursor, start=_at(month), end=_at(next_month(month)), now=now)
    recomputed = _totals(month)
    transaction.savepoint_rollback(savepoint)
    booked = _totals(month)
    for key, amounts in _totals(month, adjustments=True).items():
        row = booked.setdefault(key, {a: None for a in AMOUNTS})
        for a in AMOUNTS:
            if amounts[a] is not None:
                row[a] = (row[a] or Decimal(0)) + amounts[a]
    target = next_month(month)
    while CostMonth.objects.filter(month=target).exists():
        target = next_month(target)
    rows = []
    for key in recomputed.keys() | booked.keys():
        new, old = recomputed.get(key, {}), booked.get(key, {})
        delta = {a: (new.get(a) or Decimal(0)) - (old.get(a) or Decimal(0)) for a in AMOUNTS}
        if not any(delta.values()):
            continue
        for a in NULLABLE:
            if new.get(a) is None and old.get(a) is None:
                delta[a] = None
        rows.append(UsageDaily(day=target, kind=UsageKind.ADJUSTMENT, adjusts_month=month, adjusts_kind=key[0],
                               **dict(zip(KEY, key[1:])), **delta))
    if rows:
        UsageDaily.objects.bulk_create(rows)
        closed = CostMonth.objects.get(month=month)
        audit_record(actor=None, action="costs.month.adjust", target=closed, changes={
            "booked_in": [None, f"{target:%Y-%m}"], "rows": [None, len(rows)],
            "gpu_cost": [None, str(sum(r.gpu_cost for r in rows))],
            "other_cost": [None, str(sum(r.other_cost for r in rows))]})
    return rows


_deferred = threading.local()


@contextmanager
def recompute_once():
    """Inside, catalog changes note the window their back-dating touches instead of rebuilding it each; on the
    way out one rebuild covers the union, in the same transaction. For setting up a whole catalog at once: the
    demo's 4 GPU types with their prices and rates rebuilt 35 days of rollups 17 times, 9 s of the seed."""
    with transaction.atomic():
        _deferred.windows = windows = []
        try:
            yield
        finally:
            _deferred.windows = None
        if windows:
            recompute_since(start=min(start for start, _ in windows), end=max(end for _, end in windows))


def recompute_since(*, start: datetime, end: datetime | None = None) -> None:
    """A back-dated catalog change (price or rate) is applied at once: open months it touches are rebuilt, closed
    ones get adjustments (inside recompute_once: at its end). Call rollup_lock() before the change's first audit
    event (lock order)."""
    from .rollup import rollup_window

    now = timezone.now()
    windows = getattr(_deferred, "windows", None)
    if windows is not None:
        windows.append((start, min(end or now, now)))
        return
    if start < now:
        rollup_window(start=start, end=min(end or now, now) + timedelta(microseconds=1), now=now)
