"""NVML sample ingest: validate a batch, count what is refused, COPY the rest into the monthly partition.

A batch id makes ingest idempotent: the batch row is inserted first (ON CONFLICT DO NOTHING) in the same
transaction as the COPY, so a retried post finds it and writes nothing; a failed COPY leaves no batch row
and the agent's retry goes through.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import asdict, dataclass
from operator import attrgetter
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from typing import Annotated

import msgspec
from prometheus_client import Counter

from apps.core.errors import InvalidInput

SAMPLE_COLUMNS = ("ts", "cluster_id", "node", "gpu_index", "util_gpu", "mem_used_mb", "mem_total_mb", "power_w",
                  "batch_id")
PROCESS_COLUMNS = ("ts", "cluster_id", "node", "gpu_index", "pid", "used_mb", "batch_id")
MAX_BATCH = 50_000
# Lock key for partition DDL, so two ingests creating the same month don't collide.
_PARTITION_LOCK = 7_351_006

_LIMIT = 3.4e38  # what a PostgreSQL real holds


class ProcessIn(msgspec.Struct, forbid_unknown_fields=True):
    pid: Annotated[int, msgspec.Meta(ge=0)]
    used_mb: Annotated[float, msgspec.Meta(ge=0, le=_LIMIT)] = 0.0


class SampleIn(msgspec.Struct, forbid_unknown_fields=True):
    """One NVML reading. Validated by msgspec in C: at hundreds of thousands of samples a second a Python
    check per field would be most of the ingest time."""

    ts: float | str  # epoch seconds (what the agent sends) or ISO 8601 with a zone
    gpu_index: Annotated[int, msgspec.Meta(ge=0, lt=1024)]
    util: Annotated[float, msgspec.Meta(ge=0, le=100)]
    mem_used_mb: Annotated[float, msgspec.Meta(ge=0, le=_LIMIT)]
    mem_total_mb: Annotated[float, msgspec.Meta(ge=0, le=_LIMIT)]
    power_w: Annotated[float, msgspec.Meta(ge=0, le=_LIMIT)] = 0.0
    gpu_uuid: Annotated[str, msgspec.Meta(max_length=100)] = ""
    gpu_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    processes: list[ProcessIn] | None = None


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """The body agents POST to /api/v1/costs/samples/."""

    batch_id: uuid.UUID
    samples: Annotated[list[SampleIn], msgspec.Meta(max_length=MAX_BATCH)]
    node: Annotated[str, msgspec.Meta(max_length=253)] = ""
    cluster: Annotated[str, msgspec.Meta(max_length=63)] = ""


_PATH = re.compile(r"`\$(?:\.samples)?\[(\d+)\](?:\.(\w+))?")


def _invalid(exc: msgspec.ValidationError | msgspec.DecodeError) -> InvalidInput:
    """msgspec's error ("Expected `float` <= 100.0 - at `$.samples[1].util`") in our words and shape."""
    text = str(exc)
    detail, _, where = text.partition(" - at ")
    match = _PATH.search(f"`{where}" if where and not where.startswith("`") else where)
    if match:
        index, field = match.group(1), match.group(2)
        message = f"Sample {index}: {field + ': ' if field else ''}{detail}."
        return InvalidInput(message, fields={"samples": [message]})
    field = where.strip("`").removeprefix("$.").split(".")[0].split("[")[0] if where else ""
    if isinstance(exc, msgspec.DecodeError) or not field or field == "$":
        return InvalidInput(f"Invalid sample batch: {text}. Send a JSON object {{batch_id, samples: [...]}}.",
                            fields={"samples": [text]} if not field or field == "$" else {field: [text]})
    return InvalidInput(f"{field}: {detail}.", fields={field: [detail]})


def batch_decode(body: bytes) -> BatchIn:
    """Decode and validate a posted batch in one pass (400 naming the sample and field on bad input)."""
    try:
        return msgspec.json.decode(body, type=BatchIn)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _invalid(exc) from None


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


PARTITIONED_TABLES = ("costs_gpusample", "costs_gpuprocess")


def partition_name(month: datetime, table: str = "costs_gpusample") -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


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
            for table in PARTITIONED_TABLES:
                name = partition_name(month, table)
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
                if not cursor.fetchone()[0]:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PARTITION_LOCK])
                    cursor.execute(
                        f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {table} '
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


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds: binary COPY counts from there
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_BINARY_TRAILER = b"\xff\xff"


def _epoch_seconds(raw: list):
    """Sample times as float seconds: agents send epoch numbers (vectorised); ISO strings are parsed one by one."""
    import numpy as np

    if str in set(map(type, raw)):
        raw = [value if type(value) is float else _parse_ts(value, index).timestamp()
               for index, value in enumerate(raw)]
    ts = np.asarray(raw, dtype=np.float64)
    bad = ~np.isfinite(ts) | (np.abs(ts) > 1e11)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInput(f"Sample {index}: ts is not a usable time.", fields={"samples": [f"{index}: ts"]})
    return ts


def _columns(samples: list[SampleIn], *, now: datetime) -> dict:
    """The batch as numpy columns, split into kept / too-new / too-old samples."""
    import numpy as np

    n = len(samples)
    ts = _epoch_seconds(list(map(attrgetter("ts"), samples)))
    latest = (now + timedelta(seconds=settings.COSTS_SAMPLE_MAX_FUTURE_SECONDS)).timestamp()
    earliest = (now - timedelta(days=settings.COSTS_SAMPLE_MAX_AGE_DAYS)).timestamp()
    future, past = ts > latest, ts < earliest
    used = np.fromiter(map(attrgetter("mem_used_mb"), samples), dtype=np.float32, count=n)
    total = np.fromiter(map(attrgetter("mem_total_mb"), samples), dtype=np.float32, count=n)
    impossible = used > total
    if impossible.any():
        index = int(np.argmax(impossible))
        message = (f"Sample {index}: mem_used_mb ({samples[index].mem_used_mb:g}) is more than mem_total_mb "
                   f"({samples[index].mem_total_mb:g}).")
        raise InvalidInput(message, fields={"samples": [message]})
    # map(attrgetter) keeps the per-sample loop in C.
    return {
        "ts": ts,
        "gpu": np.fromiter(map(attrgetter("gpu_index"), samples), dtype=np.int16, count=n),
        "util": np.fromiter(map(attrgetter("util"), samples), dtype=np.float32, count=n),
        "used": used,
        "total": total,
        "power": np.fromiter(map(attrgetter("power_w"), samples), dtype=np.float32, count=n),
        "keep": ~(future | past), "future": int(future.sum()), "past": int(past.sum()),
    }


def _binary_copy_payload(cols: dict, *, cluster_id: int, node: str, batch_uuid: str) -> tuple[bytes, int]:
    """The kept samples as one COPY BINARY stream, built by numpy: each tuple is fixed-width within a batch
    (the node name is the same on every row), so the whole batch is one structured array."""
    import numpy as np

    keep = cols["keep"]
    n = int(keep.sum())
    node_bytes = node.encode()
    dtype = np.dtype([
        ("nfields", ">i2"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("cluster_len", ">i4"), ("cluster", ">i8"),
        ("node_len", ">i4"), ("node", f"S{len(node_bytes)}"),
        ("gpu_len", ">i4"), ("gpu", ">i2"),
        ("util_len", ">i4"), ("util", ">f4"),
        ("used_len", ">i4"), ("used", ">f4"),
        ("total_len", ">i4"), ("total", ">f4"),
        ("power_len", ">i4"), ("power", ">f4"),
        ("batch_len", ">i4"), ("batch", "S16"),
    ])
    rows = np.empty(n, dtype=dtype)
    rows["nfields"] = 9
    rows["ts_len"], rows["cluster_len"], rows["node_len"], rows["gpu_len"] = 8, 8, len(node_bytes), 2
    rows["util_len"] = rows["used_len"] = rows["total_len"] = rows["power_len"] = 4
    rows["batch_len"] = 16
    rows["ts"] = np.round(cols["ts"][keep] * 1_000_000).astype(np.int64) - _PG_EPOCH_US
    rows["cluster"] = cluster_id
    rows["node"] = node_bytes
    rows["gpu"] = cols["gpu"][keep]
    for name in ("util", "used", "total", "power"):
        rows[name] = cols[name][keep]
    rows["batch"] = uuid.UUID(batch_uuid).bytes
    return _BINARY_HEADER + rows.tobytes() + _BINARY_TRAILER, n


def _process_lines(samples: list[SampleIn], cols: dict, *, cluster_id: int, node: str,
                   batch_uuid: str) -> list[str]:
    """COPY text lines for per-process GPU memory (only samples that carry processes)."""
    lines = []
    node_text = node.translate(_COPY_ESCAPES)
    keep = cols["keep"]
    for index, sample in enumerate(samples):
        if not sample.processes or not keep[index]:
            continue
        ts = datetime.fromtimestamp(float(cols["ts"][index]), dt_timezone.utc).isoformat()
        for process in sample.processes:
            lines.append(f"{ts}\t{cluster_id}\t{node_text}\t{sample.gpu_index}\t{process.pid}\t{process.used_mb}\t"
                         f"{batch_uuid}\n")
    return lines


# (cluster id, node, gpu index) → (uuid, name, when written): a device row is rewritten only when it changed or
# every DEVICE_REFRESH_SECONDS, not by every batch (filled on commit, so a rolled-back write is retried).
_DEVICES_WRITTEN: dict[tuple, tuple] = {}
DEVICE_REFRESH_SECONDS = 600


def _devices(samples: list[SampleIn]) -> dict[int, tuple[str, str]]:
    seen: dict[int, tuple[str, str]] = {}
    for sample in samples:
        if sample.gpu_index not in seen:
            seen[sample.gpu_index] = (sample.gpu_uuid, sample.gpu_name)
    return seen


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
    if samples and not isinstance(samples[0], SampleIn):
        try:  # callers in Python (demo, tests) pass dicts: the same C validation as a posted body
            samples = msgspec.convert(samples, list[SampleIn])
        except msgspec.ValidationError as exc:
            raise _invalid(exc) from None
    if samples:
        cols = _columns(samples, now=now)
        processes = _process_lines(samples, cols, cluster_id=cluster.pk, node=node, batch_uuid=batch_uuid)
        payload, accepted = _binary_copy_payload(cols, cluster_id=cluster.pk, node=node, batch_uuid=batch_uuid)
        kept = cols["ts"][cols["keep"]]
        first = datetime.fromtimestamp(float(kept.min()), dt_timezone.utc) if accepted else None
        last = datetime.fromtimestamp(float(kept.max()), dt_timezone.utc) if accepted else None
        future, past = cols["future"], cols["past"]
    else:
        processes, payload, accepted, first, last, future, past = [], b"", 0, None, None, 0, 0

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO costs_samplebatch (batch_id, cluster_id, node, received_at, accepted, rejected_future,
                                              rejected_past, min_ts, max_ts)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (batch_id) DO NOTHING RETURNING id""",
            [batch_uuid, cluster.pk, node, now, accepted, future, past, first, last])
        if cursor.fetchone() is None:
            return _existing(cursor, batch_uuid)
        if accepted:
            ensure_partitions(first, last)
            with cursor.cursor.copy(f"COPY costs_gpusample ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN "
                                    f"(FORMAT BINARY)") as copy:
                copy.write(payload)
            if processes:
                with cursor.cursor.copy(f"COPY costs_gpuprocess ({', '.join(PROCESS_COLUMNS)}) FROM STDIN") as copy:
                    copy.write("".join(processes))
            for gpu, (gpu_uuid, name) in _devices(samples).items():
                key = (cluster.pk, node, gpu)
                known = _DEVICES_WRITTEN.get(key)
                if known and known[:2] == (gpu_uuid, name) and (now - known[2]).total_seconds() < DEVICE_REFRESH_SECONDS:
                    continue
                transaction.on_commit(lambda key=key, value=(gpu_uuid, name, now): _DEVICES_WRITTEN.__setitem__(key, value))
                cursor.execute(
                    """INSERT INTO costs_gpudevice (cluster_id, node, gpu_index, uuid, name, last_seen_at)
                       VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (cluster_id, node, gpu_index)
                       DO UPDATE SET uuid = EXCLUDED.uuid, name = EXCLUDED.name, last_seen_at = EXCLUDED.last_seen_at""",
                    [cluster.pk, node, gpu, gpu_uuid, name, last])
    SAMPLES_ACCEPTED.inc(accepted)
    if future:
        SAMPLES_REJECTED.labels("future").inc(future)
    if past:
        SAMPLES_REJECTED.labels("past").inc(past)
    return IngestResult(batch_uuid, False, accepted, future, past)
