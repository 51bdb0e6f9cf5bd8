"""Predictions per (version, deployment, UTC day): kept by the database at every insert into the log, read for whole
days (the costs pages' months) and still there after retention deleted the rows."""
from datetime import timedelta

from django.db import connection

from apps.monitoring import logstore, selectors
from tests.monitoring import factories as f


def _stored_counts(version_id: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT deployment_id, day, predictions FROM {logstore.COUNTS} WHERE model_version_id = %s",
                       [version_id])
        return {(deployment, day.isoformat()): n for deployment, day, n in cursor.fetchall()}


def test_counts_kept_per_day_read_for_whole_days_and_kept_after_retention(mon):
    version = mon.model_version
    # 72 rows an hour apart from T0 (midnight UTC): 24 on each of three days, in two batches (two COPY statements).
    f.logs(version, f.frame(36), start=f.T0, span=timedelta(hours=36), batch_id="first")
    f.logs(version, f.frame(36), start=f.T0 + timedelta(hours=36), span=timedelta(hours=36), batch_id="second")
    day = f.T0.date()
    assert _stored_counts(version.pk) == {(None, day.isoformat()): 24,
                                          (None, (day + timedelta(days=1)).isoformat()): 24,
                                          (None, (day + timedelta(days=2)).isoformat()): 24}

    def count(start, end):
        return selectors.prediction_counts_by_deployment(model_version_ids=[version.pk], start=start, end=end)

    assert count(f.T0, f.T0 + timedelta(days=3)) == {(version.pk, None): 72}  # whole days: the counts alone
    # A range cut inside days: the whole day from its count, the edges from the rows (the ones at 06:00..23:00 of
    # day 1 and 00:00..05:00 of day 3).
    assert count(f.T0 + timedelta(hours=6), f.T0 + timedelta(hours=54)) == {(version.pk, None): 48}
    assert count(f.T0 + timedelta(hours=1), f.T0 + timedelta(hours=3)) == {(version.pk, None): 2}

    # Retention deletes the rows of the first day: what was served stays counted (last month's cost per 1,000).
    assert logstore.delete_rows(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=1)) == 24
    assert count(f.T0, f.T0 + timedelta(days=3)) == {(version.pk, None): 72}
