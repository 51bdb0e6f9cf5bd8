"""Partition summaries in the database (PartitionSummary): merged at ingest, rebuilt from a partition's rows when
missing or stale, and merged into a window for sketch mode (apps/monitoring/summaries.py has the maths).

A summary is fresh for a partition when it was built on the same reference bins and counts the partition's rows
(`rows`). Ingest writes its files marked unsummarized and asks (outbox, after commit) for a background merge
(files_summarize), which merges each file and clears its mark in one transaction: decoding, merging and
re-encoding 20 columns' KLL sketches took 14 % of an ingest request, and the request needn't wait for it. Until
then, and for anything else (a monitor created after the data came in, a reference re-prepared, a lost merge), a
sketch-mode run that finds a summary stale rebuilds it. Reading a partition to summarize it streams a batch at a
time, so a task's memory is bounded by a batch, whatever the partition's size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Length

from .. import columnar, engine, summaries
from ..choices import ColumnKind, ColumnRole
from ..logstorage import store
from ..models import Monitor, PartitionSummary, PredictionFile, ReferenceDataset

READ_BYTES = 32 * 1024 * 1024  # column data per batch while summarizing a partition
WRITE_AMPLIFICATION = 4  # at ingest, a stored summary is rewritten only for a file at least a quarter its size


def summarized_columns(reference: ReferenceDataset) -> dict[str, str]:
    """Column name → kind for what a summary covers: every feature and the prediction (as engine.PREDICTION)."""
    kinds = {}
    for col in reference.schema:
        if col["role"] == ColumnRole.FEATURE:
            kinds[col["name"]] = col["kind"]
        elif col["role"] == ColumnRole.PREDICTION:
            kinds[engine.PREDICTION] = col["kind"]
    return kinds


def reference_edges(reference_id: int) -> dict[str, np.ndarray | None]:
    """Each numeric reference column's bins, from its size and first/last sorted values only (no blob read)."""
    edges = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, length(sorted_values), substring(sorted_values from 1 for 8), "
                       "substring(sorted_values from greatest(length(sorted_values) - 7, 1) for 8) "
                       "FROM monitoring_referencecolumn WHERE reference_id = %s AND kind = %s",
                       [reference_id, ColumnKind.NUMERIC])
        for name, size, first, last in cursor.fetchall():
            n = (size or 0) // 8
            edges[name] = None if n == 0 else summaries.sturges_edges(
                np.frombuffer(bytes(first), np.float64)[0], np.frombuffer(bytes(last), np.float64)[0], n)
    return edges


def _edges_for(reference: ReferenceDataset, kinds: dict[str, str]) -> dict:
    by_name = reference_edges(reference.pk)
    prediction = next((c["name"] for c in reference.schema if c["role"] == ColumnRole.PREDICTION), None)
    if prediction is not None and prediction in by_name:
        by_name[engine.PREDICTION] = by_name[prediction]
    return {name: by_name.get(name) for name, kind in kinds.items() if kind == ColumnKind.NUMERIC}


def _stored_shape(table, kinds: dict[str, str]):
    """A table as the log stores it (prediction / prediction_num columns), the prediction under engine.PREDICTION."""
    kind = kinds.get(engine.PREDICTION)
    source = "prediction_num" if kind == ColumnKind.NUMERIC else "prediction"
    if kind and engine.PREDICTION not in table.column_names and source in table.column_names:
        table = table.append_column(engine.PREDICTION, table.column(source))
    return table


def _references(model_version_id: int):
    return ReferenceDataset.objects.filter(
        pk__in=Monitor.objects.filter(model_version_id=model_version_id, reference__isnull=False)
        .values("reference_id"))


def summaries_kept(model_version_id: int) -> bool:
    """Whether written log files are to be merged into summaries: some monitor of the version has a reference."""
    return _references(model_version_id).exists()


def files_summarize_request(*, model_version_id: int, batch_pk: int) -> None:
    """In the ingest's transaction: ask for its files to be merged once it commits (a hint: the files' own
    `summarized` flag is what says what is due, and the hourly compaction beat merges what a lost hint left)."""
    from apps.outbox.services import outbox_enqueue

    outbox_enqueue(topic="monitoring.summarize_log", payload={"model_version_id": model_version_id},
                   dedup_key=f"monitoring-summarize:{connection.settings_dict['NAME']}:{batch_pk}")


def files_summarize(*, model_version_id: int | None = None, per_transaction: int = 20) -> int:
    """Merge unsummarized log files (of one version, or all) into their days' summaries; returns the files merged.

    Files are locked SKIP LOCKED and marked in the transaction that merges them, so two workers never merge a
    file twice and a crash leaves it for the next try. A compaction waits for the lock, and its new file is born
    summarized (partition_compacted rebuilds a stale day)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = store()
    merged = 0
    while True:
        with transaction.atomic():
            due = PredictionFile.objects.select_for_update(skip_locked=True).filter(summarized=False)
            if model_version_id is not None:
                due = due.filter(model_version_id=model_version_id)
            files = list(due.order_by("model_version_id", "day", "pk")[:per_transaction])
            if not files:
                return merged
            days: dict[tuple, list] = {}
            for file in files:
                days.setdefault((file.model_version_id, file.day), []).append(file)
            for (version_id, day), group in days.items():
                table = pa.concat_tables([pq.read_table(target.path(f.path), filesystem=target.filesystem)
                                          for f in group], promote_options="default")
                start, end = columnar.day_bounds(day)
                merge_file_rows(model_version_id=version_id, key=day.isoformat(), start=start, end=end, table=table)
            PredictionFile.objects.filter(pk__in=[f.pk for f in files]).update(summarized=True)
            merged += len(files)


def merge_file_rows(*, model_version_id: int, key: str, start, end, table) -> None:
    """Merge rows written to partition `key` (one or more new files of it) into its summary for every reference
    the version's monitors use.

    Called by files_summarize with the files still unsummarized, so a summary that counts exactly the day's
    summarized files' rows gets these added; one that already counts them too (rebuilt from the partition by a run
    meanwhile) or that is stale anyway is left alone. A summary more than WRITE_AMPLIFICATION times the files' raw
    size is not rewritten for them either: a day's summary weighs up to ~45 KB per numeric column, and rewriting it
    for every 100-row batch would write far more than the rows. Such a summary is then stale (its row count is
    short) and the next sketch-mode run, or the day's compaction (partition_compacted), rebuilds it once."""
    raw_bytes = table.num_rows * max(table.num_columns, 1) * 8
    sizes = dict(PartitionSummary.objects.filter(model_version_id=model_version_id, key=key)
                 .annotate(size=Length("payload")).values_list("reference_id", "size"))
    for reference in _references(model_version_id):
        if sizes.get(reference.pk, 0) > WRITE_AMPLIFICATION * raw_bytes:
            continue
        with transaction.atomic():
            row = PartitionSummary.objects.select_for_update().filter(reference=reference, key=key).first()
            if row is None and _merged_rows(model_version_id, key) == 0:  # the day's first files: start its summary
                PartitionSummary.objects.bulk_create(
                    [PartitionSummary(model_version_id=model_version_id, reference=reference, key=key, start=start,
                                      end=end, rows=0, payload=summaries.Summary().to_bytes())],
                    ignore_conflicts=True)
                row = PartitionSummary.objects.select_for_update().get(reference=reference, key=key)
            # Read under the summary's lock: a concurrent merge of this day commits its marks with its summary.
            if row is None or row.rows != _merged_rows(model_version_id, key):
                continue  # it counts other rows than the merged files' (stale, or rebuilt with these): left alone
            kinds = summarized_columns(reference)
            added = summaries.summarize(_stored_shape(table, kinds), kinds=kinds, edges=_edges_for(reference, kinds),
                                        k=summaries.kll_k())
            try:
                merged = summaries.Summary.from_bytes(row.payload).merge(added)
            except ValueError:  # built on other bins (a re-prepared reference): keep this file's rows only, which
                merged = added  # is stale (rows ≠ the partition's) unless the file is the whole partition
            row.rows, row.payload = merged.rows, merged.to_bytes()
            row.save(update_fields=["rows", "payload", "updated_at"])


def _merged_rows(model_version_id: int, key: str) -> int:
    """Rows of the day's files already merged into its summaries (or born summarized)."""
    return PredictionFile.objects.filter(model_version_id=model_version_id, day=date.fromisoformat(key),
                                         summarized=True).aggregate(rows=Sum("rows"))["rows"] or 0


def partition_compacted(*, model_version_id: int, key: str) -> None:
    """A partition's files were rewritten (compaction): rebuild its summaries that are stale, once per reference."""
    lo, hi = columnar.day_bounds(date.fromisoformat(key))
    part = next((p for p in columnar.partitions(model_version_id=model_version_id, start=lo, end=hi)
                 if p.key == key), None)
    if part is None:
        return
    stored = dict(PartitionSummary.objects.filter(model_version_id=model_version_id, key=key)
                  .values_list("reference_id", "rows"))
    for reference in _references(model_version_id):
        if stored.get(reference.pk) != part.rows:
            partition_summary_build(model_version_id=model_version_id, reference=reference, partition=part)


def partition_summarize(*, model_version_id: int, reference: ReferenceDataset, partition, start=None,
                        end=None) -> summaries.Summary:
    """Summarize a partition's rows (those in [start, end) when given), streamed a batch of READ_BYTES at a time
    and the batches' summaries merged: a map task's memory stays the same whatever the day's size (it held a whole
    column of the day: 958–997 MiB per worker at 14.3M-row days)."""
    kinds = summarized_columns(reference)
    edges = _edges_for(reference, kinds)
    out = summaries.Summary()
    for table in columnar.read_partition_batches(
            model_version_id=model_version_id, key=partition.key, start=start, end=end,
            numeric=[n for n, kind in kinds.items() if kind == ColumnKind.NUMERIC],
            categorical=[n for n, kind in kinds.items() if kind == ColumnKind.CATEGORICAL],
            batch_rows=max(1024, READ_BYTES // (8 * max(len(kinds), 1)))):
        out.merge(summaries.summarize(table, kinds=kinds, edges=edges, k=summaries.kll_k()))
        del table
    return out


def partition_summary_build(*, model_version_id: int, reference: ReferenceDataset, partition) -> summaries.Summary:
    """Rebuild and store a whole partition's summary (a sketch-mode run's map step; idempotent)."""
    summary = partition_summarize(model_version_id=model_version_id, reference=reference, partition=partition)
    PartitionSummary.objects.update_or_create(
        reference=reference, key=partition.key,
        defaults={"model_version_id": model_version_id, "start": partition.start, "end": partition.end,
                  "rows": summary.rows, "payload": summary.to_bytes()})
    return summary


@dataclass
class WindowPlan:
    """How a sketch-mode window is covered: partitions with a fresh stored summary, partitions to (re)build, and
    partitions the window cuts (summarized from their rows in the window, not stored)."""

    fresh: dict = field(default_factory=dict)  # key -> PartitionSummary (archived ones too: raw rows dropped)
    missing: list = field(default_factory=list)
    cut: list = field(default_factory=list)

    @property
    def partitions(self) -> int:
        return len(self.fresh) + len(self.missing) + len(self.cut)


def window_plan(*, model_version_id: int, reference: ReferenceDataset, start, end) -> WindowPlan:
    plan = WindowPlan()
    parts = columnar.partitions(model_version_id=model_version_id, start=start, end=end)
    plan.fresh = archived(reference=reference, start=start, end=end, live=parts)
    stored = {s.key: s for s in PartitionSummary.objects.filter(reference=reference, key__in=[p.key for p in parts])}
    for part in parts:
        if part.start < start or part.end > end:
            plan.cut.append(part)
        elif part.key in stored and stored[part.key].rows == part.rows:
            plan.fresh[part.key] = stored[part.key]
        else:
            plan.missing.append(part)
    return plan


def archived(*, reference: ReferenceDataset, start, end, live: list) -> dict:
    """Summaries of whole partitions inside [start, end) whose raw rows retention dropped (not among `live`)."""
    return {s.key: s for s in PartitionSummary.objects.filter(reference=reference, start__gte=start, end__lte=end)
            .exclude(key__in=[p.key for p in live])}


def archived_rows(*, model_version_id: int, reference: ReferenceDataset, start, end) -> int:
    live = columnar.partitions(model_version_id=model_version_id, start=start, end=end)
    return sum(s.rows for s in archived(reference=reference, start=start, end=end, live=live).values())


def window_summary(*, model_version_id: int, reference: ReferenceDataset, start, end, progress=None) -> summaries.Summary:
    """The merged summary of [start, end): stored summaries where fresh, the rest built now (and stored when whole)."""
    plan = window_plan(model_version_id=model_version_id, reference=reference, start=start, end=end)
    merged = summaries.Summary()
    for i, row in enumerate(plan.fresh.values()):
        merged.merge(summaries.Summary.from_bytes(row.payload))
    todo = plan.missing + plan.cut
    for i, part in enumerate(todo):
        if part in plan.missing:
            merged.merge(partition_summary_build(model_version_id=model_version_id, reference=reference, partition=part))
        else:
            merged.merge(partition_summarize(model_version_id=model_version_id, reference=reference, partition=part,
                                             start=max(start, part.start), end=min(end, part.end)))
        if progress:
            progress(10 + int(50 * (i + 1) / len(todo)), f"{i + 1} of {len(todo)} partitions summarized")
    return merged
