"""Sketch mode end to end: a window above the exact-mode size is tested from partition summaries (same verdicts
as exact mode here), a window over many partitions fans out on the bulk queue and the last map task records the
result, a lost map message leaves the run to its lease (reclaimed, then finished), and retention drops old raw
partitions while their summaries keep old windows testable."""
import base64
import json
from datetime import timedelta

import numpy as np
import pytest
import redis
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.monitoring import columnar, compaction, logstore, summaries
from apps.monitoring.models import Monitor, MonitorRun, PartitionSummary, PredictionFile
from apps.monitoring.services import RUN_KIND, monitor_run_execute
from apps.monitoring.services.retention import retention_apply
from apps.monitoring.services.partition_summaries import files_summarize
from apps.monitoring.tasks import summarize_log_task, summarize_partition_task

from . import factories as f

DAY = timedelta(days=1)


def _log_days(mon, days: int, *, drift=False, rows=600, version=None):
    for d in range(days):
        f.logs(version or mon.model_version, f.frame(rows, drift=drift, seed=d), start=f.T0 + d * DAY, prefix=f"d{d}")


def _monitor_after_the_data(team, days: int, *, drift=False):
    """Logs written before any monitor watched the version: no summaries at ingest, a run must build them."""
    version = f.model_version(team)
    _log_days(None, days, drift=drift, version=version)
    return f.monitor(team, version, exact_max_rows=100)


def _run(mon, days: int):
    run = f.run(mon, status="queued", window_start=f.T0, window_end=f.T0 + days * DAY)
    return monitor_run_execute(run_id=run.pk, report=False)


@pytest.mark.parametrize("drift", [False, True], ids=["no-drift", "drift"])
def test_sketch_mode_gives_exact_modes_verdicts(team, drift):
    mon = f.monitor(team)
    _log_days(mon, 2, drift=drift)
    assert files_summarize(model_version_id=mon.model_version_id) == 2  # what a worker does after each ingest
    exact = _run(mon, 2)
    Monitor.objects.filter(pk=mon.pk).update(exact_max_rows=100)
    sketch = _run(mon, 2)

    assert (exact.drift_mode, exact.rank_error) == ("exact", None)
    assert sketch.drift_mode == "sketch" and sketch.rank_error == pytest.approx(summaries.rank_error(summaries.kll_k()))
    assert (sketch.status, sketch.state, sketch.current_rows) == ("succeeded", exact.state, exact.current_rows)
    ours = {x.column: x for x in sketch.features.all()}
    for feature in exact.features.all():
        other = ours[feature.column]
        assert (other.method, other.drifted, other.current_count) == (feature.method, feature.drifted,
                                                                      feature.current_count)
        if feature.kind == "categorical":  # counts are exact: so is the score
            assert other.score == pytest.approx(feature.score, rel=1e-9, abs=1e-12)
        else:
            assert other.distribution["edges"] and len(other.distribution["reference"]) == len(other.distribution["current"])
    stored = PartitionSummary.objects.filter(reference=mon.reference).order_by("key")  # merged after the ingest
    assert [(s.key, s.rows) for s in stored] == [("2026-03-02", 600), ("2026-03-03", 600)]

    stamps = [s.updated_at for s in stored]
    again = _run(mon, 2)  # fresh summaries are merged, not rebuilt
    assert again.drifted_count == sketch.drifted_count
    assert [s.updated_at for s in PartitionSummary.objects.filter(reference=mon.reference).order_by("key")] == stamps


def _bulk_messages(broker) -> list[dict]:
    """The map tasks' kwargs as a worker would receive them from the bulk queue."""
    client = redis.Redis.from_url(broker.url)
    out = []
    for raw in client.lrange("bulk", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "monitoring.summarize_partition":
            out.append(json.loads(base64.b64decode(message["body"]))[1])
    client.delete("bulk")
    return sorted(out, key=lambda kwargs: kwargs["key"])


def _handed_off(mon, days: int):
    run = f.run(mon, status="queued", window_start=f.T0, window_end=f.T0 + days * DAY)
    lease = runner.claim(runner.kind_get(RUN_KIND), ids=[run.pk])
    assert runner.run_lease(lease) == runner.HANDED_OFF
    run.refresh_from_db()
    assert run.status == "running" and run.lease_owner == lease.owner  # still leased: the map tasks extend it
    assert (run.current_rows, run.drift_mode) == (600 * days, "sketch")  # measured once, saved with the hand-off
    return run


def test_a_window_over_many_partitions_fans_out(team, settings, private_broker, monkeypatch):
    settings.MONITORING_FANOUT_MIN_PARTITIONS = 2
    mon = _monitor_after_the_data(team, 3, drift=True)
    assert not PartitionSummary.objects.exists()
    run = _handed_off(mon, 3)
    steps = _bulk_messages(private_broker)
    assert [s["key"] for s in steps] == ["2026-03-02", "2026-03-03", "2026-03-04"]

    assert [summarize_partition_task(**s) for s in steps[:2]] == ["waiting", "waiting"]
    run.refresh_from_db()
    assert run.status == "running" and "2 of 3 partitions" in run.progress_message
    scans = []
    monkeypatch.setattr(logstore, "window_summary", lambda **kw: scans.append(kw))
    assert summarize_partition_task(**steps[2]) == "done"  # the last one merges, tests and records
    assert scans == []  # the reduce does not read the window's rows again
    run.refresh_from_db()
    assert (run.status, run.state, run.drift_mode, run.progress) == ("succeeded", "drifting", "sketch", 100)
    assert run.lease_owner == "" and run.current_rows == 1800 and run.features.filter(drifted=True).count() == 5
    assert summarize_partition_task(**steps[0]) == "lease_lost"  # a redelivered step changes nothing


def test_a_lost_map_message_leaves_the_run_to_its_lease(team, settings, private_broker):
    settings.MONITORING_FANOUT_MIN_PARTITIONS = 2
    mon = _monitor_after_the_data(team, 3)
    run = _handed_off(mon, 3)
    steps = _bulk_messages(private_broker)
    assert [summarize_partition_task(**s) for s in steps[:2]] == ["waiting", "waiting"]  # the third is lost

    MonitorRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert runner.tick(RUN_KIND, ids=[run.pk]) == {"done": 1}  # reclaimed; one partition left: built in place
    run.refresh_from_db()
    assert (run.status, run.attempts, run.drift_mode, run.state) == ("succeeded", 2, "sketch", "ok")
    assert AuditEvent.objects.filter(action="monitoring.run.reclaim", object_id=str(run.pk)).exists()
    assert summarize_partition_task(**steps[2]) == "lease_lost"  # the old attempt's message, late: ignored


def test_retention_drops_old_partitions_and_keeps_their_summaries(team):
    mon = f.monitor(team, exact_max_rows=100, raw_retention_days=2, summary_retention_days=4)
    _log_days(mon, 3, drift=True)
    before = _run(mon, 3)
    assert PartitionSummary.objects.filter(reference=mon.reference).count() == 3

    out = retention_apply(now=f.T0 + 4 * DAY + timedelta(hours=1))  # raw cutoff: day 2 + 1 h
    assert out == {"partitions": 2, "rows": 1200, "summaries": 0}
    live = columnar.partitions(model_version_id=mon.model_version_id, start=f.T0, end=f.T0 + 3 * DAY)
    assert [p.key for p in live] == ["2026-03-04"]
    drops = AuditEvent.objects.filter(action="monitoring.log.drop_partition").order_by("id")
    assert [e.changes["partition"][0] for e in drops] == ["2026-03-02", "2026-03-03"]

    after = _run(mon, 3)  # the dropped days are still tested, from their summaries
    assert (after.status, after.current_rows, after.drifted_count) == ("succeeded", 1800, before.drifted_count)

    out = retention_apply(now=f.T0 + 6 * DAY + timedelta(hours=1))  # summary cutoff: day 2 + 1 h
    assert out["summaries"] == 2 and PartitionSummary.objects.filter(reference=mon.reference).count() == 1
    assert AuditEvent.objects.filter(action="monitoring.log.drop_summaries").count() == 1


def test_ingest_leaves_its_files_to_a_background_merge_into_their_days_summary(client_for, engineer, team):
    from apps.outbox.models import OutboxMessage

    from .test_columnar import URL, _rows

    mon = f.monitor(team)
    data, rows = _rows(90, day_split=60)
    for batch, (lo, hi) in enumerate(((0, 40), (40, 90))):  # the first day gets a file from each batch
        assert client_for(engineer).post(URL, {"model_version": mon.model_version_id, "batch_id": f"b{batch}",
                                               "rows": rows[lo:hi]}, format="json").status_code == 201
    files = PredictionFile.objects.filter(model_version=mon.model_version)
    assert sorted(files.values_list("rows", "summarized")) == [(20, False), (30, False), (40, False)]
    assert not PartitionSummary.objects.exists()  # the request didn't wait for the merge
    hints = OutboxMessage.objects.filter(topic="monitoring.summarize_log")
    assert [m.payload for m in hints] == [{"model_version_id": mon.model_version_id}] * 2

    assert summarize_log_task(model_version_id=mon.model_version_id) == {"files_summarized": 3}
    assert summarize_log_task(model_version_id=mon.model_version_id) == {"files_summarized": 0}  # a repeated hint
    assert set(files.values_list("summarized", flat=True)) == {True}
    day = summaries.Summary.from_bytes(PartitionSummary.objects.get(reference=mon.reference, key="2026-03-02").payload)
    assert day.rows == 60 and day.columns["country"].counts == data["country"][:60].value_counts().to_dict()
    assert day.columns["__prediction"].counts == data["prediction"][:60].value_counts().to_dict()
    assert day.columns["amount"].count == 60 and day.columns["amount"].hist.sum() == 60
    assert PartitionSummary.objects.get(reference=mon.reference, key="2026-03-03").rows == 30


def test_a_merge_skips_a_summary_a_run_already_rebuilt_with_the_files(team):
    mon = f.monitor(team, exact_max_rows=100)
    _log_days(mon, 2)
    assert _run(mon, 2).drift_mode == "sketch"  # the run found no summaries and built them from the partitions
    assert [s.rows for s in PartitionSummary.objects.order_by("key")] == [600, 600]
    assert files_summarize(model_version_id=mon.model_version_id) == 2  # marked, not counted twice
    assert [s.rows for s in PartitionSummary.objects.order_by("key")] == [600, 600]


def test_a_merge_starts_no_summary_for_a_day_logged_before_the_monitor(team):
    version = f.model_version(team)
    f.logs(version, f.frame(300, seed=1), prefix="early", span=timedelta(hours=2))  # unwatched: in no summary
    mon = f.monitor(team, version, exact_max_rows=100)
    f.logs(version, f.frame(200, seed=2), prefix="late", start=f.T0 + timedelta(hours=3), span=timedelta(hours=2))
    assert files_summarize(model_version_id=version.pk) == 1
    assert not PartitionSummary.objects.exists()  # a summary of the late 200 rows alone would only be stale
    assert _run(mon, 1).current_rows == 500  # the run builds the day's summary from all its rows
    assert PartitionSummary.objects.get(reference=mon.reference).rows == 500


def test_a_lost_hint_is_merged_by_the_hourly_compaction_beat(team):
    mon = f.monitor(team)
    _log_days(mon, 1)
    assert compaction.compact_closed_days(now=f.T0 + timedelta(days=3))["files_summarized"] == 1
    assert PartitionSummary.objects.get(reference=mon.reference).rows == 600


def test_a_small_file_does_not_rewrite_a_big_summary_and_compaction_rebuilds_it(team):
    from apps.monitoring.services.partition_summaries import partition_compacted

    mon = f.monitor(team)
    f.logs(mon.model_version, f.frame(3000, seed=1), prefix="big")
    files_summarize(model_version_id=mon.model_version_id)
    assert PartitionSummary.objects.get(reference=mon.reference).rows == 3000  # merged after the ingest
    f.logs(mon.model_version, f.frame(5, seed=2), prefix="small", start=f.T0 + timedelta(hours=23, minutes=30),
           span=timedelta(minutes=1))
    files_summarize(model_version_id=mon.model_version_id)
    assert PartitionSummary.objects.get(reference=mon.reference).rows == 3000  # skipped: stale, not rewritten
    partition_compacted(model_version_id=mon.model_version_id, key="2026-03-02")
    assert PartitionSummary.objects.get(reference=mon.reference).rows == 3005


def test_a_partition_is_summarized_batch_by_batch_with_the_counts_of_one_read(team, monkeypatch):
    from apps.monitoring.services import partition_summaries

    mon = f.monitor(team)
    f.logs(mon.model_version, f.frame(1500, seed=3), prefix="a")
    f.logs(mon.model_version, f.frame(1500, seed=4), prefix="b", start=f.T0 + timedelta(minutes=30))
    [part] = columnar.partitions(model_version_id=mon.model_version_id, start=f.T0, end=f.T0 + DAY)
    kinds = partition_summaries.summarized_columns(mon.reference)
    numeric = [n for n, k in kinds.items() if k == "numeric"]
    whole = summaries.summarize(
        columnar.read_partition(model_version_id=mon.model_version_id, key=part.key, numeric=numeric,
                                categorical=[n for n in kinds if n not in numeric]),
        kinds=kinds, edges=partition_summaries._edges_for(mon.reference, kinds), k=summaries.kll_k())
    monkeypatch.setattr(partition_summaries, "READ_BYTES", 1)  # the smallest batch: 1,024 rows, so 3 of them
    sizes = []
    summarize = summaries.summarize
    monkeypatch.setattr(summaries, "summarize", lambda table, **kw: sizes.append(table.num_rows) or summarize(table, **kw))
    batched = partition_summaries.partition_summarize(model_version_id=mon.model_version_id, reference=mon.reference,
                                                      partition=part)
    assert batched.rows == whole.rows == sum(sizes) == 3000 and max(sizes) <= 1024
    for name, column in whole.columns.items():
        if name in numeric:
            ours = batched.columns[name]
            assert (ours.count, ours.nulls, ours.values) == (column.count, column.nulls, column.values)
            assert np.array_equal(ours.hist, column.hist)
        else:
            assert (batched.columns[name].counts, batched.columns[name].nulls) == (column.counts, column.nulls)
    cut = partition_summaries.partition_summarize(model_version_id=mon.model_version_id, reference=mon.reference,
                                                  partition=part, start=f.T0 + timedelta(hours=12), end=f.T0 + DAY)
    assert 0 < cut.rows < 3000
