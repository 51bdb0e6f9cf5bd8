"""NVML sample ingest: validate a batch, count what is refused, COPY the rest into the monthly partition.

A batch id makes ingest idempotent: the batch row is inserted first (ON CONFLICT DO NOTHING) in the same
transaction as the COPY, so a retried post finds it and writes nothing; a failed COPY leaves no batch row
and the agent's retry goes through.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import Counter

from apps.core.errors import InvalidInput

SAMPLE_COLUMNS = ("ts", "cluster_id", "node", "gpu_index", "gpu_uuid", "gpu_name", "util_gpu", "mem_used_mb",
                  "mem_total_mb", "power_w", "processes", "batch_id")
MAX_BATCH = 50_000
# Lock key for partition DDL, so two ingests creating the same month don't collide.
_PARTITION_LOCK = 7_351_006

SAMPLES_ACCEPTED = Counter("costs_gpu_samples_accepted_total", "NVML samples stored")
SAMPLES_REJECTED = Counter("costs_gpu_samples_rejected_total", "NVML samples refused", ["reason"])
BATCHES_DUPLICATE = Counter("costs_gpu_sample_batches_duplicate_total", "Sample batches posted again")


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    duplicate: bool
    accepted: int
    rejected_future: int
    rejected_past: int

    def as_dict(self) -> dict:
        return asdict(self)


def partition_name(month: datetime) -> str:
    return f"costs_gpusample_y{month.year:04d}m{month.month:02d}"


def _month_floor(ts: datetime) -> datetime:
    return ts.astimezone(dt_timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + (month.month == 12), month=month.month % 12 + 1)


def ensure_partitions(start: datetime, end: datetime) -> list[str]:
    """Create the monthly partitions covering [start, end] that don't exist yet; returns their names."""
    created = []
    month = _month_floor(start)
    with connection.cursor() as cursor:
        while month <= end:
            name = partition_name(month)
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if not cursor.fetchone()[0]:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PARTITION_LOCK])
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF costs_gpusample '
                    f"FOR VALUES FROM (%s) TO (%s)", [month, _next_month(month)])
                created.append(name)
            month = _next_month(month)
    return created


def _parse_ts(value, index: int) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidInput(f"Sample {index}: ts is not a finite number.", fields={"samples": [f"{index}: ts"]})
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise InvalidInput(f"Sample {index}: ts must be epoch seconds or an ISO 8601 time with a zone, got {value!r}.",
                       fields={"samples": [f"{index}: ts"]})


def _number(sample: dict, key: str, index: int, *, default=None, low=0.0, high=None) -> float:
    value = sample.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low \
            or (high is not None and value > high):
        bound = f" between {low:g} and {high:g}" if high is not None else f" ≥ {low:g}"
        raise InvalidInput(f"Sample {index}: {key} must be a number{bound}, got {value!r}.",
                           fields={"samples": [f"{index}: {key}"]})
    return float(value)


def _rows(samples: list, *, cluster_id: int, node: str, batch_id: str, now: datetime):
    """Yield COPY rows; count rows outside the accepted time window instead of storing them."""
    import json

    latest = now + timedelta(seconds=settings.COSTS_SAMPLE_MAX_FUTURE_SECONDS)
    earliest = now - timedelta(days=settings.COSTS_SAMPLE_MAX_AGE_DAYS)
    counts = {"future": 0, "past": 0, "min": None, "max": None}
    rows = []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise InvalidInput(f"Sample {index} must be an object.", fields={"samples": [f"{index}: not an object"]})
        ts = _parse_ts(sample.get("ts"), index)
        if ts > latest:
            counts["future"] += 1
            continue
        if ts < earliest:
            counts["past"] += 1
            continue
        gpu_index = sample.get("gpu_index")
        if not isinstance(gpu_index, int) or isinstance(gpu_index, bool) or not 0 <= gpu_index < 1024:
            raise InvalidInput(f"Sample {index}: gpu_index must be a whole number from 0, got {gpu_index!r}.",
                               fields={"samples": [f"{index}: gpu_index"]})
        processes = sample.get("processes")
        if processes is not None and not isinstance(processes, list):
            raise InvalidInput(f"Sample {index}: processes must be a list of {{pid, used_mb}}.",
                               fields={"samples": [f"{index}: processes"]})
        rows.append((
            ts, cluster_id, node, gpu_index, str(sample.get("gpu_uuid", ""))[:100], str(sample.get("gpu_name", ""))[:100],
            _number(sample, "util", index, high=100), _number(sample, "mem_used_mb", index),
            _number(sample, "mem_total_mb", index), _number(sample, "power_w", index, default=0),
            json.dumps(processes) if processes else None, batch_id,
        ))
        counts["min"] = ts if counts["min"] is None or ts < counts["min"] else counts["min"]
        counts["max"] = ts if counts["max"] is None or ts > counts["max"] else counts["max"]
    return rows, counts


def _existing(cursor, batch_uuid: str) -> IngestResult | None:
    cursor.execute("SELECT accepted, rejected_future, rejected_past FROM costs_samplebatch WHERE batch_id = %s",
                   [batch_uuid])
    row = cursor.fetchone()
    if row is None:
        return None
    BATCHES_DUPLICATE.inc()
    return IngestResult(batch_uuid, True, *row)


@transaction.atomic
def samples_ingest(*, cluster, node: str, batch_id, samples: list, now: datetime | None = None) -> IngestResult:
    """Store one agent batch. A malformed sample fails the whole batch (400 naming it); samples too far in
    the future or past are counted and dropped; a batch id seen before stores nothing and says duplicate."""
    try:
        batch_uuid = str(uuid.UUID(str(batch_id)))
    except ValueError:
        raise InvalidInput(f"batch_id must be a UUID, got {batch_id!r}.", fields={"batch_id": ["not a UUID"]})
    if not isinstance(samples, list):
        raise InvalidInput("samples must be a list.", fields={"samples": ["not a list"]})
    if len(samples) > MAX_BATCH:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH} samples; got {len(samples)}. Split it.",
                           fields={"samples": ["too many"]})
    now = now or timezone.now()
    with connection.cursor() as cursor:
        # A retried batch is answered before its samples are parsed; ON CONFLICT below covers a concurrent twin.
        duplicate = _existing(cursor, batch_uuid)
        if duplicate is not None:
            return duplicate
    rows, counts = _rows(samples, cluster_id=cluster.pk, node=node, batch_id=batch_uuid, now=now)

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO costs_samplebatch (batch_id, cluster_id, node, received_at, accepted, rejected_future,
                                              rejected_past, min_ts, max_ts)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (batch_id) DO NOTHING RETURNING id""",
            [batch_uuid, cluster.pk, node, now, len(rows), counts["future"], counts["past"], counts["min"],
             counts["max"]])
        if cursor.fetchone() is None:
            return _existing(cursor, batch_uuid)
        if rows:
            ensure_partitions(counts["min"], counts["max"])
            with cursor.cursor.copy(f"COPY costs_gpusample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    SAMPLES_ACCEPTED.inc(len(rows))
    if counts["future"]:
        SAMPLES_REJECTED.labels("future").inc(counts["future"])
    if counts["past"]:
        SAMPLES_REJECTED.labels("past").inc(counts["past"])
    return IngestResult(batch_uuid, False, len(rows), counts["future"], counts["past"])
