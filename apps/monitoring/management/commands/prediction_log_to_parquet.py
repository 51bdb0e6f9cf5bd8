"""Move features logged before the columnar prediction log (JSONB in monitoring_prediction_log) into Parquet files.

    manage.py prediction_log_to_parquet            # every batch that still has JSONB features

One transaction per (model version, batch): the batch's rows are read in time order, written with
columnar.write_batch (one file per UTC day, manifest rows) and their `features` set to NULL, so the command can be
stopped and run again; a batch already moved has no JSONB left and is skipped.
"""
import json

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from apps.monitoring import columnar, logstorage, logstore


class Command(BaseCommand):
    help = "Move JSONB features of the prediction log into the columnar store (Parquet files)."

    def handle(self, *args, **options):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT model_version_id, batch_pk FROM {logstore.TABLE} "
                           f"WHERE features IS NOT NULL ORDER BY 1, 2")
            batches = cursor.fetchall()
        moved = 0
        for model_version_id, batch_pk in batches:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT ts, request_id, features, prediction, prediction_num FROM {logstore.TABLE} "
                               f"WHERE model_version_id = %s AND batch_pk = %s AND features IS NOT NULL "
                               f"ORDER BY ts FOR UPDATE", [model_version_id, batch_pk])
                rows = [(ts, rid, f if isinstance(f, dict) else json.loads(f), p, n)
                        for ts, rid, f, p, n in cursor.fetchall()]
                if not rows:
                    continue
                columnar.write_batch(model_version_id=model_version_id, batch_pk=batch_pk, rows=rows)
                cursor.execute(f"UPDATE {logstore.TABLE} SET features = NULL WHERE model_version_id = %s "
                               f"AND batch_pk = %s AND features IS NOT NULL", [model_version_id, batch_pk])
                moved += len(rows)
        self.stdout.write(f"{moved} rows of {len(batches)} batches moved to {logstorage.store().base}")
