"""Hourly and daily rollups of GPU usage, cost and utilization.

`rollup_window(start, end)` rebuilds every rollup row of the hours in [start, end) (and of the days they
touch) from the allocation ledger, the price catalog and the raw NVML samples: DELETE then INSERT in one
transaction, so re-running a window gives the same rows and readers never see half a window.
The beat queues a RollupRun for the runner (kind costs.rollup, at most one pending; `rollup_attempt`), which picks
the window: the trailing hours since the last run, extended back to the earliest sample batch or allocation that
changed since then (late samples, back-dated stops). `rollup_incremental()` does the same in process.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core import runner
from apps.core.errors import Conflict

from .choices import RollupStatus
from .closing import adjustments_post, closed_months, first_open_moment
from .models import RollupRun
from .transitions import rollup_run_transition

logger = logging.getLogger(__name__)

_ROLLUP_LOCK = 7_351_007
HOUR = timedelta(hours=1)


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    floored = floor_hour(ts)
    return floored if floored == ts else floored + HOUR


UTILIZATION_HOURLY = """
INSERT INTO costs_utilizationhourly (hour, cluster_id, node, gpu_index, samples, avg_util, avg_mem_used_mb,
                                     mem_total_mb, avg_power_w)
SELECT date_trunc('hour', ts), cluster_id, node, gpu_index, count(*), avg(util_gpu), avg(mem_used_mb),
       max(mem_total_mb), avg(power_w)
FROM costs_gpusample WHERE ts >= %(start)s AND ts < %(end)s
GROUP BY 1, 2, 3, 4
"""

# Allocation × hour segments, costed against every price period they overlap (a mid-hour price change is
# split exactly), with CPU/memory at the resource rate in force at the segment's start, and idle time from
# the measured utilization that hour of the very GPUs the allocation held (node + NVML indexes). An allocation
# whose GPUs are unknown, or any of whose GPUs has no samples that hour, has no idle figure (NULL: "no
# telemetry"); so has a row that adds up such an allocation, rather than one understated or borrowed.
USAGE_HOURLY = """
WITH hours AS (
    SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour') AS h
), segs AS (
    SELECT a.id, a.team_id, a.cluster_id, a.gpu_type_id, a.model_version_id, a.deployment_id, a.gpu_count,
           a.cpu_cores, a.memory_gb, a.pricing_class, a.node, a.gpu_indexes, hours.h AS hour,
           GREATEST(a.started_at, hours.h) AS s,
           LEAST(COALESCE(a.stopped_at, %(now)s), %(now)s, hours.h + interval '1 hour') AS e
    FROM costs_gpuallocation a
    JOIN hours ON a.started_at < hours.h + interval '1 hour' AND COALESCE(a.stopped_at, %(now)s) > hours.h
), costed AS (
    SELECT segs.*,
           EXTRACT(EPOCH FROM (e - s)) / 3600.0 AS frac,
           COALESCE((SELECT SUM(p.hourly_price * EXTRACT(EPOCH FROM
                        LEAST(segs.e, COALESCE(p.effective_to, 'infinity')) - GREATEST(segs.s, p.effective_from)) / 3600.0)
                     FROM costs_gpuprice p
                     WHERE p.gpu_type_id = segs.gpu_type_id AND p.pricing_class = segs.pricing_class
                       AND p.effective_from < segs.e AND COALESCE(p.effective_to, 'infinity') > segs.s), 0) AS price_hours,
           (SELECT r.cpu_core_hour * segs.cpu_cores + r.memory_gb_hour * segs.memory_gb FROM costs_resourcerate r
            WHERE r.cluster_id = segs.cluster_id AND r.effective_from <= segs.s
            ORDER BY r.effective_from DESC LIMIT 1) AS other_rate,
           (SELECT CASE WHEN COUNT(DISTINCT u.gpu_index) = cardinality(segs.gpu_indexes) THEN AVG(u.avg_util) END
            FROM costs_utilizationhourly u
            WHERE segs.node <> '' AND cardinality(segs.gpu_indexes) > 0 AND u.cluster_id = segs.cluster_id
              AND u.node = segs.node AND u.hour = segs.hour AND u.gpu_index = ANY(segs.gpu_indexes)) AS util
    FROM segs WHERE e > s
)
INSERT INTO costs_usagehourly (hour, kind, team_id, cluster_id, gpu_type_id, model_version_id, deployment_id,
                               gpu_hours, gpu_cost, other_cost, idle_gpu_hours, idle_cost)
SELECT hour, 'allocated', team_id, cluster_id, gpu_type_id, model_version_id, deployment_id,
       SUM(gpu_count * frac), SUM(gpu_count * price_hours), SUM(COALESCE(other_rate, 0) * frac),
       CASE WHEN bool_and(util IS NOT NULL) THEN SUM(gpu_count * frac * (1 - util / 100.0)) END,
       CASE WHEN bool_and(util IS NOT NULL) THEN SUM(gpu_count * price_hours * (1 - util / 100.0)) END
FROM costed
GROUP BY hour, team_id, cluster_id, gpu_type_id, model_version_id, deployment_id
"""

# Capacity nobody held, per GPU type and hour, at the on-demand price in force. In the rare hour a price period
# starts or ends inside, each part is costed at its own price: what the capacity was worth over the hour less
# what the allocations of that type held of it, valued the same way (a mid-hour price change splits exactly).
# Capacity counts from its type's capacity_from (a type added on 1 December adds no idle capacity to November).
UNALLOCATED_HOURLY = """
WITH hours AS (
    SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour') AS h
), on_demand AS (
    SELECT gpu_type_id, hourly_price, effective_from AS s, COALESCE(effective_to, 'infinity') AS e
    FROM costs_gpuprice WHERE pricing_class = 'on_demand'
), capacity AS (
    SELECT hours.h AS hour, g.id AS gpu_type_id, g.cluster_id, g.capacity,
           GREATEST(hours.h, g.capacity_from) AS s, LEAST(hours.h + interval '1 hour', %(now)s) AS e
    FROM costs_gputype g CROSS JOIN hours
    WHERE g.capacity > 0 AND hours.h < %(now)s AND g.capacity_from < hours.h + interval '1 hour'
), used AS (
    SELECT hour, gpu_type_id, SUM(gpu_hours) AS gpu_hours FROM costs_usagehourly
    WHERE kind = 'allocated' AND hour >= %(start)s AND hour < %(end)s GROUP BY 1, 2
)
INSERT INTO costs_usagehourly (hour, kind, team_id, cluster_id, gpu_type_id, model_version_id, deployment_id,
                               gpu_hours, gpu_cost, other_cost, idle_gpu_hours, idle_cost)
SELECT c.hour, 'unallocated', NULL, c.cluster_id, c.gpu_type_id, NULL, NULL, free.hours,
       CASE WHEN EXISTS (SELECT 1 FROM on_demand p WHERE p.gpu_type_id = c.gpu_type_id
                           AND (p.s > c.hour AND p.s < c.e OR p.e > c.hour AND p.e < c.e))
       THEN (c.capacity * (SELECT SUM(p.hourly_price * EXTRACT(EPOCH FROM LEAST(c.e, p.e) - GREATEST(c.s, p.s)))
                           FROM on_demand p WHERE p.gpu_type_id = c.gpu_type_id AND p.s < c.e AND p.e > c.s)
             - COALESCE((SELECT SUM(a.gpu_count * p.hourly_price * EXTRACT(EPOCH FROM
                                    LEAST(COALESCE(a.stopped_at, %(now)s), c.e, p.e) - GREATEST(a.started_at, c.hour, p.s)))
                         FROM costs_gpuallocation a
                         JOIN on_demand p ON p.gpu_type_id = a.gpu_type_id
                          AND p.s < LEAST(COALESCE(a.stopped_at, %(now)s), c.e) AND p.e > GREATEST(a.started_at, c.hour)
                         WHERE a.gpu_type_id = c.gpu_type_id AND a.started_at < c.e
                           AND COALESCE(a.stopped_at, %(now)s) > c.hour), 0)) / 3600.0
       ELSE free.hours * COALESCE((SELECT p.hourly_price FROM on_demand p
                                   WHERE p.gpu_type_id = c.gpu_type_id AND p.s <= c.hour AND p.e > c.hour LIMIT 1), 0)
       END,
       0, NULL, NULL
FROM capacity c
LEFT JOIN used u ON u.hour = c.hour AND u.gpu_type_id = c.gpu_type_id
CROSS JOIN LATERAL (SELECT c.capacity * EXTRACT(EPOCH FROM (c.e - c.s)) / 3600.0 - COALESCE(u.gpu_hours, 0)
                    AS hours) free
WHERE free.hours > 0.000001
"""

# A day with an hour of no telemetry has no idle figure either (the idle of the other hours would understate it).
USAGE_DAILY = """
INSERT INTO costs_usagedaily (day, kind, team_id, cluster_id, gpu_type_id, model_version_id, deployment_id,
                              gpu_hours, gpu_cost, other_cost, idle_gpu_hours, idle_cost)
SELECT (hour AT TIME ZONE 'UTC')::date, kind, team_id, cluster_id, gpu_type_id, model_version_id, deployment_id,
       SUM(gpu_hours), SUM(gpu_cost), SUM(other_cost),
       CASE WHEN bool_and(idle_cost IS NOT NULL) THEN SUM(idle_gpu_hours) END,
       CASE WHEN bool_and(idle_cost IS NOT NULL) THEN SUM(idle_cost) END
FROM costs_usagehourly WHERE hour >= %(day_start)s AND hour < %(day_end)s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

UTILIZATION_DAILY = """
INSERT INTO costs_utilizationdaily (day, cluster_id, node, gpu_index, samples, avg_util, avg_mem_used_mb,
                                    mem_total_mb, avg_power_w)
SELECT (hour AT TIME ZONE 'UTC')::date, cluster_id, node, gpu_index, SUM(samples),
       SUM(avg_util * samples) / SUM(samples), SUM(avg_mem_used_mb * samples) / SUM(samples), MAX(mem_total_mb),
       SUM(avg_power_w * samples) / SUM(samples)
FROM costs_utilizationhourly WHERE hour >= %(day_start)s AND hour < %(day_end)s
GROUP BY 1, 2, 3, 4
"""


@transaction.atomic
def rollup_window(*, start: datetime, end: datetime, now: datetime | None = None) -> dict:
    """Rebuild the rollups of [start, end), widened to whole hours, and of the whole days it touches.

    Hours of a closed month are never rebuilt: what they would be now is compared with what was closed, and the
    difference is booked as adjustment rows in the next open month (apps.costs.closing)."""
    now = now or timezone.now()
    start, end = floor_hour(start), ceil_hour(end)
    result = {"window_start": start, "window_end": end, "usage_rows": 0, "utilization_rows": 0}
    if end <= start:
        return result
    with connection.cursor() as cursor:
        rollup_lock()
        closed = closed_months(start=start, end=end)
        for part_start, part_end in month_parts(start=start, end=end):
            if part_start.date().replace(day=1) in closed:
                continue
            usage_rows, utilization_rows = rebuild(cursor, start=part_start, end=part_end, now=now)
            result["usage_rows"] += usage_rows
            result["utilization_rows"] += utilization_rows
    for month in sorted(closed):
        adjustments_post(month=month, now=now)
    return result


def rollup_lock() -> None:
    """Held until the transaction ends: rollups, month closes and catalog recomputes run one at a time.
    Take it before any audit event in the same transaction (the audit chain lock comes second everywhere)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROLLUP_LOCK])


def month_parts(*, start: datetime, end: datetime):
    """[start, end) cut at the first of each month (UTC), so each part lies in one month."""
    while start < end:
        first = start.replace(day=1, hour=0)
        following = (first + timedelta(days=32)).replace(day=1)
        yield start, min(end, following)
        start = following


def rebuild(cursor, *, start: datetime, end: datetime, now: datetime) -> tuple[int, int]:
    """DELETE then INSERT the rollup rows of the whole hours [start, end) and of the days they touch (adjustment
    rows excepted: they are booked, not derived). Returns (usage rows, utilization rows)."""
    day_start = start.replace(hour=0)
    day_end = end.replace(hour=0)
    if day_end < end:
        day_end += timedelta(days=1)
    params = {"start": start, "end": end, "now": now, "day_start": day_start, "day_end": day_end}
    days = {"day_start": day_start.date(), "day_end": day_end.date()}
    cursor.execute("DELETE FROM costs_utilizationhourly WHERE hour >= %(start)s AND hour < %(end)s", params)
    cursor.execute(UTILIZATION_HOURLY, params)
    utilization_rows = cursor.rowcount
    cursor.execute("DELETE FROM costs_usagehourly WHERE hour >= %(start)s AND hour < %(end)s", params)
    cursor.execute(USAGE_HOURLY, params)
    usage_rows = cursor.rowcount
    cursor.execute(UNALLOCATED_HOURLY, params)
    usage_rows += cursor.rowcount
    cursor.execute("DELETE FROM costs_usagedaily WHERE day >= %(day_start)s AND day < %(day_end)s "
                   "AND kind <> 'adjustment'", days)
    cursor.execute(USAGE_DAILY, params)
    cursor.execute("DELETE FROM costs_utilizationdaily WHERE day >= %(day_start)s AND day < %(day_end)s", days)
    cursor.execute(UTILIZATION_DAILY, params)
    return usage_rows, utilization_rows


def _dirty_since(since: datetime | None) -> datetime | None:
    """Earliest moment touched by sample batches and allocations changed since `since` (None: everything)."""
    from .models import GpuAllocation, SampleBatch

    batches = SampleBatch.objects.filter(min_ts__isnull=False)
    allocations = GpuAllocation.objects.all()
    if since is not None:
        batches = batches.filter(received_at__gte=since)
        allocations = allocations.filter(updated_at__gte=since)
    candidates = [batches.order_by("min_ts").values_list("min_ts", flat=True).first(),
                  allocations.order_by("started_at").values_list("started_at", flat=True).first()]
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None


def _window_start(now: datetime) -> datetime:
    """Where the next rollup starts: the earliest change since the last finished run (at least the trailing
    hours), caught up from where the last run stopped when the job didn't run for a while."""
    last = RollupRun.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
    lookback = now - timedelta(hours=settings.COSTS_ROLLUP_LOOKBACK_HOURS)
    oldest = now - timedelta(days=settings.COSTS_SAMPLE_MAX_AGE_DAYS)
    dirty = _dirty_since(last.started_at if last else None)
    start = min(lookback, dirty) if dirty else lookback
    if last is not None:
        # If the job didn't run for a while (beat down), catch up from where the last run stopped.
        start = max(min(start, last.window_end - HOUR), oldest)
    # A closed month was rebuilt as it closed: it is recomputed for late data in it, not for the trailing hours.
    open_start = first_open_moment(start)
    if dirty is None or dirty >= open_start:
        start = max(start, open_start)
    return start


def _finish(run: RollupRun, result: dict) -> None:
    rollup_run_transition(run, to=RollupStatus.SUCCEEDED, fields={
        "window_start": result["window_start"], "window_end": result["window_end"],
        "usage_rows": result["usage_rows"], "utilization_rows": result["utilization_rows"],
        "finished_at": timezone.now()})
    logger.info("Cost rollup rebuilt %s → %s", run.window_start, run.window_end,
                extra={"usage_rows": run.usage_rows, "utilization_rows": run.utilization_rows})


def rollup_incremental(*, now: datetime | None = None) -> dict:
    """Roll up in this process, outside the runner (tests, demo seed): from the earliest change since the last
    run. The beat queues a run for the runner instead (rollup_queue, rollup_attempt)."""
    now = now or timezone.now()
    start = _window_start(now)
    run = RollupRun.objects.create(started_at=now, status=RollupStatus.RUNNING, window_start=floor_hour(start),
                                   window_end=ceil_hour(now))
    result = rollup_window(start=start, end=now + timedelta(microseconds=1), now=now)
    with transaction.atomic():
        _finish(run, result)
    return result


# --- on the runner (kind costs.rollup, bulk queue) ----------------------------------------------------------------

ROLLUP_KIND = "costs.rollup"
_QUEUE_LOCK = 7_351_012  # serialises queueing, so at most one rollup is pending


def _pending() -> RollupRun | None:
    """The run waiting for (or being worked on by) the runner; one run in process has no lease and is not one."""
    return (RollupRun.objects.filter(Q(status=RollupStatus.QUEUED)
                                     | Q(status=RollupStatus.RUNNING, lease_until__isnull=False))
            .order_by("pk").first())


@transaction.atomic
def rollup_queue() -> RollupRun:
    """The beat: queue a rollup for the runner, unless one is pending (it picks its window when it starts, so
    the pending one covers everything the beat would have asked for)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_QUEUE_LOCK])
    return _pending() or RollupRun.objects.create(started_at=timezone.now(), status=RollupStatus.QUEUED)


def rollup_attempt(lease: runner.Lease) -> dict:
    """The runner's handler: pick the window, rebuild it (one transaction, database only), check budgets against
    the fresh numbers, then record the run under the lease. A failure raises: the runner retries after a backoff
    (a rebuild is idempotent, so a repeated one does no harm)."""
    from .budgets import budgets_check

    now = timezone.now()
    with lease.holding() as run:
        rollup_run_transition(run, to=RollupStatus.RUNNING, fields={"started_at": now})
    try:
        start = _window_start(now)
        lease.check(window_start=floor_hour(start), window_end=ceil_hour(now))
        result = rollup_window(start=start, end=now + timedelta(microseconds=1), now=now)
        alerts = budgets_check()
    except Exception as exc:
        if not isinstance(exc, runner.LeaseLost):
            with lease.holding() as run:  # queued again: the runner keeps the error and retries after a backoff
                rollup_run_transition(run, to=RollupStatus.QUEUED)
        raise
    with lease.holding() as run:
        _finish(run, result)
    return {**result, "alerts": len(alerts)}


def rollup_gave_up(run: RollupRun, error: str) -> RollupRun:
    """The runner's on_exhausted (in its transaction, the run locked): the rollup needs attention, with its last
    error, on the dashboard and the costs page, until a platform admin retries it."""
    return rollup_run_transition(run, to=RollupStatus.NEEDS_ATTENTION, action="costs.rollup.needs_attention",
                                 changes={"attempts": [None, run.attempts], "error": [None, error]},
                                 fields={"finished_at": timezone.now()})


@transaction.atomic
def rollup_retry(*, actor, run: RollupRun) -> RollupRun:
    """Retry a rollup that needs attention: a fresh round of attempts (platform admins; audited)."""
    from apps.teams.selectors import require_platform_admin

    require_platform_admin(user=actor)
    run = RollupRun.objects.select_for_update().get(pk=run.pk)
    if run.status != RollupStatus.NEEDS_ATTENTION:
        raise Conflict(f"Rollup #{run.pk} is {RollupStatus(run.status).label.lower()}; only a rollup that needs "
                       f"attention can be retried.")
    run = rollup_run_transition(run, to=RollupStatus.QUEUED, actor=actor, action="costs.rollup.retry",
                                changes={"error": [run.last_error, None]}, fields={"finished_at": None})
    runner.retry_now(row=run, fields={"last_error": ""})
    runner.wake(ROLLUP_KIND, ids=[run.pk])
    run.refresh_from_db()
    return run
