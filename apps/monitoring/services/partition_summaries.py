"""Partition summaries in the database (PartitionSummary): merged at ingest, rebuilt from a partition's rows when
missing or stale, and merged into a window for sketch mode (apps/monitoring/summaries.py has the maths).

A summary is fresh for a partition when it was built on the same reference bins and counts the partition's rows
(`rows`): ingest merges each written file into it in the ingest's transaction, so the two move together; anything
else (a monitor created after the data came in, a reference re-prepared, a lost merge) is rebuilt by the next
sketch-mode run that needs it. Reading a partition to summarize it goes a few columns at a time, so a task's
memory is bounded by (partition rows × a few columns), whatever the number of features.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.db import connection, transaction
from django.db.models.functions import Length

from .. import columnar, engine, summaries
from ..choices import ColumnKind, ColumnRole
from ..models import Monitor, PartitionSummary, ReferenceDataset

READ_BYTES = 128 * 1024 * 1024  # float64 column data per read while summarizing a partition (at least one column)
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


def on_partition_written(*, model_version_id: int, key: str, start, end, table) -> None:
    """Ingest hook (columnar.py, inside the ingest's transaction): merge the rows just written to partition `key`
    into its summary for every reference the version's monitors use.

    A summary more than WRITE_AMPLIFICATION times the file's raw size is not rewritten for it: a day's summary
    weighs up to ~45 KB per numeric column, and rewriting it for every 100-row batch would write far more than the
    rows. That summary is then stale (its row count is short) and the next sketch-mode run, or the day's compaction
    (partition_compacted), rebuilds it from the partition once."""
    raw_bytes = table.num_rows * max(table.num_columns, 1) * 8
    sizes = dict(PartitionSummary.objects.filter(model_version_id=model_version_id, key=key)
                 .annotate(size=Length("payload")).values_list("reference_id", "size"))
    for reference in _references(model_version_id):
        if sizes.get(reference.pk, 0) > WRITE_AMPLIFICATION * raw_bytes:
            continue
        kinds = summarized_columns(reference)
        added = summaries.summarize(_stored_shape(table, kinds), kinds=kinds, edges=_edges_for(reference, kinds),
                                    k=summaries.kll_k())
        with transaction.atomic():
            PartitionSummary.objects.bulk_create(
                [PartitionSummary(model_version_id=model_version_id, reference=reference, key=key, start=start,
                                  end=end, rows=0, payload=summaries.Summary().to_bytes())],
                ignore_conflicts=True)
            row = PartitionSummary.objects.select_for_update().get(reference=reference, key=key)
            try:
                merged = summaries.Summary.from_bytes(row.payload).merge(added)
            except ValueError:  # built on other bins (a re-prepared reference): keep this file's rows only, which
                merged = added  # is stale (rows ≠ the partition's) unless the file is the whole partition
            row.rows, row.payload = merged.rows, merged.to_bytes()
            row.save(update_fields=["rows", "payload", "updated_at"])


def partition_compacted(*, model_version_id: int, key: str) -> None:
    """A partition's files were rewritten (compaction): rebuild its summaries that are stale, once per reference."""
    day = date.fromisoformat(key)
    lo = datetime(day.year, day.month, day.day, tzinfo=dt_timezone.utc)
    part = next((p for p in columnar.partitions(model_version_id=model_version_id, start=lo, end=lo + timedelta(days=1))
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
    """Summarize a partition's rows (those in [start, end) when given), reading a few columns at a time."""
    kinds = summarized_columns(reference)
    edges = _edges_for(reference, kinds)
    per_read = max(1, READ_BYTES // max(partition.rows * 8, 1))
    names = list(kinds)
    out = summaries.Summary()
    for i in range(0, len(names), per_read):
        group = names[i:i + per_read]
        table = columnar.read_partition(
            model_version_id=model_version_id, key=partition.key, start=start, end=end,
            numeric=[n for n in group if kinds[n] == ColumnKind.NUMERIC],
            categorical=[n for n in group if kinds[n] == ColumnKind.CATEGORICAL])
        part = summaries.summarize(table, kinds={n: kinds[n] for n in group}, edges=edges, k=summaries.kll_k())
        out.rows = part.rows
        out.columns.update(part.columns)
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
