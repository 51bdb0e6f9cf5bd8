"""Compaction of the columnar prediction log: a closed day's per-batch Parquet files rewritten as one file, and files
no manifest row names (replaced ones, rolled-back ingests) deleted once old enough."""
from __future__ import annotations

import secrets

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection

from .columnar import BASE_COLUMNS, stored_schema, unified_types
from .logstorage import store


def compact_day(*, model_version_id: int, key: str) -> int:
    """Rewrite one day partition's files as a single file with the same rows (clients posting small batches leave
    many small files, and every file costs a read its footer and a request). Returns the files replaced.

    The new file's manifest row replaces the old ones in one transaction; the old files stay on disk until
    sweep_orphans removes them, so a read that listed them just before still finds them."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from django.db import transaction

    from .models import PredictionFile
    from .services import partition_summaries

    day = date.fromisoformat(key)
    target = store()
    with transaction.atomic():
        files = list(PredictionFile.objects.select_for_update().filter(model_version_id=model_version_id, day=day)
                     .order_by("pk"))
        if len(files) < 2:
            return 0
        types = unified_types(files)
        schema = stored_schema(types)
        dataset = ds.dataset([target.path(f.path) for f in files], schema=schema, format="parquet",
                             filesystem=target.filesystem)
        relative = f"{connection.settings_dict['NAME']}/v{model_version_id}/{key}/compacted-{secrets.token_hex(4)}.parquet"
        with pq.ParquetWriter(target.path(relative), schema, filesystem=target.filesystem) as writer:
            for batch in dataset.to_batches():  # streamed: memory bounded by a row group, not by the day
                writer.write_batch(batch)
        PredictionFile.objects.filter(pk__in=[f.pk for f in files]).delete()
        PredictionFile.objects.create(model_version_id=model_version_id, day=day, batch_pk=0, path=relative,
                                      rows=sum(f.rows for f in files), ts_min=min(f.ts_min for f in files),
                                      ts_max=max(f.ts_max for f in files), summarized=True,
                                      columns={n: t for n, t in types.items() if n not in BASE_COLUMNS})
    # The day's summaries count the same rows, but a stale one gets rebuilt once from the new file.
    transaction.on_commit(lambda: partition_summaries.partition_compacted(model_version_id=model_version_id, key=key))
    return len(files)


def sweep_orphans(*, older_than: timedelta) -> int:
    """Delete files no manifest row names (replaced by a compaction, or left by a rolled-back ingest) once they
    are older than `older_than`; returns the files deleted."""
    import time

    import pyarrow.fs as pafs

    from .models import PredictionFile

    target = store()
    prefix = target.path(connection.settings_dict["NAME"])
    try:
        found = target.filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return 0
    cutoff_ns = time.time_ns() - int(older_than.total_seconds() * 1e9)
    candidates = {info.path[len(target.base) + 1 if target.base else 0:]: info for info in found
                  if info.type == pafs.FileType.File and info.path.endswith(".parquet") and info.mtime_ns is not None
                  and info.mtime_ns < cutoff_ns}
    known = set(PredictionFile.objects.filter(path__in=list(candidates)).values_list("path", flat=True))
    orphans = [candidates[path].path for path in candidates if path not in known]
    for path in orphans:
        target.filesystem.delete_file(path)
    return len(orphans)


def compact_closed_days(*, now: datetime, orphan_age: timedelta = timedelta(hours=1)) -> dict:
    """Beat: merge log files still unsummarized (a lost hint) into their days' summaries, compact every day
    partition before today (UTC) that has several files, then sweep orphans."""
    from django.db.models import Count

    from .models import PredictionFile
    from .services.partition_summaries import files_summarize

    summarized = files_summarize()

    today = now.astimezone(dt_timezone.utc).date()
    days = (PredictionFile.objects.filter(day__lt=today).values("model_version_id", "day")
            .annotate(files=Count("pk")).filter(files__gt=1))
    replaced = sum(compact_day(model_version_id=d["model_version_id"], key=d["day"].isoformat()) for d in days)
    return {"files_summarized": summarized, "files_replaced": replaced,
            "orphans_deleted": sweep_orphans(older_than=orphan_age)}
