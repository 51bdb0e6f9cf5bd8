"""The columnar prediction log: ingest writes one Parquet file per batch and UTC day, a re-sent batch writes
nothing, drift over the files equals drift computed directly on the same data, the store's configuration
fails closed."""
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from apps.monitoring import columnar, compaction, drift, engine, logstorage
from apps.monitoring.models import PredictionFile

from . import factories as f

URL = "/api/v1/monitoring/predictions/"


def _files(version) -> list[Path]:
    return sorted(Path(logstorage.store().base).glob(f"*/v{version.pk}/*/*.parquet"))


def _rows(n: int, *, day_split: int):
    """n rows, the first `day_split` on 2026-03-02 and the rest on 2026-03-03 (two partitions)."""
    data = f.frame(n, seed=3)
    rows = []
    for i, rec in enumerate(data.to_dict("records")):
        ts = f.T0 + timedelta(hours=10, seconds=i) + (timedelta(days=1) if i >= day_split else timedelta())
        rows.append({"timestamp": ts.isoformat(), "request_id": f"req-{i}", "prediction": rec["prediction"],
                     "features": {k: rec[k] for k in ("amount", "age", "country", "channel")}})
    return data, rows


def test_ingest_writes_one_file_per_day_and_a_resent_batch_writes_nothing(client_for, engineer, mon):
    data, rows = _rows(60, day_split=40)
    payload = {"model_version": mon.model_version_id, "batch_id": "b-parquet", "rows": rows}
    assert client_for(engineer).post(URL, payload, format="json").status_code == 201
    files = _files(mon.model_version)
    assert [p.parent.name for p in files] == ["2026-03-02", "2026-03-03"]
    assert [pq.read_metadata(p).num_rows for p in files] == [40, 20]
    table = pq.read_table(files[0])
    assert table.schema.field("amount").type == "double" and table.schema.field("country").type == "string"
    assert table.column("amount").to_pylist() == data["amount"][:40].tolist()
    assert sorted(p.key for p in columnar.partitions(model_version_id=mon.model_version_id, start=f.T0,
                                                     end=f.T0 + timedelta(days=2))) == ["2026-03-02", "2026-03-03"]

    again = client_for(engineer).post(URL, payload, format="json")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert _files(mon.model_version) == files
    assert PredictionFile.objects.filter(model_version=mon.model_version).count() == 2


def test_exact_drift_over_the_store_equals_drift_computed_directly(client_for, engineer, team):
    version = f.model_version(team)
    ref_frame = f.frame(1500)
    mon = f.monitor(team, version, f.reference(team, version, ref_frame))
    data, rows = _rows(300, day_split=150)
    data.loc[::7, "amount"] = np.nan  # missing values are nulls on both paths
    for row, amount in zip(rows, data["amount"]):
        row["features"]["amount"] = None if np.isnan(amount) else amount
    assert client_for(engineer).post(URL, {"model_version": version.pk, "batch_id": "b", "rows": rows},
                                     format="json").status_code == 201

    specs = [engine.ColumnSpec(name=c["name"], kind=c["kind"], role=c["role"]) for c in mon.reference.schema]
    result = engine.window_drift(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=2), specs=specs,
                                 reference=engine.load_reference(mon.reference))
    assert result.current_rows == 300 and not result.failures
    stored = {spec.name: res for spec, res in result.results}
    for col in mon.reference.schema:
        name = col["name"]
        if col["kind"] == "numeric":
            expected = drift.numeric_drift(name, drift.clean_numeric(ref_frame[name].to_numpy(float)),
                                           drift.clean_numeric(data[name].to_numpy(float)))
        else:
            expected = drift.categorical_drift(name, ref_frame[name].value_counts().to_dict(),
                                               data[name].value_counts().to_dict())
        assert (stored[name].method, stored[name].score, stored[name].drifted) == \
            (expected.method, expected.score, expected.drifted), name
    assert result.null_counts["amount"] == int(data["amount"].isna().sum())


def test_a_rolled_back_write_is_never_read(team):
    version = f.model_version(team)
    with pytest.raises(RuntimeError), transaction.atomic():
        columnar.write_batch(model_version_id=version.pk, batch_pk=1,
                             rows=[(f.T0, "r-1", {"x": 1.0}, "1", 1.0)])
        raise RuntimeError("the ingest failed after writing its file")
    window = columnar.read_window(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=1),
                                  numeric=["x"], categorical=[])
    assert window.rows == 0 and window.numeric["x"].size == 0


def test_partition_read_and_drop(team):
    version = f.model_version(team)
    f.logs(version, f.frame(48, seed=1), span=timedelta(hours=48))
    parts = columnar.partitions(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=2))
    assert [(p.key, p.rows) for p in parts] == [("2026-03-02", 24), ("2026-03-03", 24)]
    table = columnar.read_partition(model_version_id=version.pk, key="2026-03-03", numeric=["age", engine.PREDICTION],
                                    categorical=["country", "missing"])
    assert table.column_names == ["age", engine.PREDICTION, "country", "missing"]
    assert table.num_rows == 24 and table.column("missing").null_count == 24
    assert columnar.drop_partition(model_version_id=version.pk, key="2026-03-02") == 24
    window = columnar.read_window(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=2),
                                  numeric=["age"], categorical=["country"])
    assert window.rows == 24 and sum(window.counts["country"].values()) == 24


@pytest.mark.parametrize("options, message", [
    ({"root": "s3://"}, "names no bucket"),
    ({"root": "gs://bucket/logs"}, "only a local directory or s3://"),
    ({"root": "s3://bucket/logs", "access_key": "AKIA"}, "MONITORING_LOG_S3_SECRET_KEY is empty"),
    ({"root": "s3://bucket/logs", "endpoint": "minio:9000"}, "must be http(s)://host[:port]"),
    ({"root": "/var/logs", "endpoint": "http://minio:9000"}, "is a local path"),
])
def test_a_misconfigured_store_is_refused_with_the_setting_to_fix(options, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        logstorage.store_from(**options)


def test_an_s3_store_is_built_from_settings_and_a_bad_one_fails_the_system_check(settings):
    s3 = logstorage.store_from(root="s3://logs/prod/", endpoint="http://127.0.0.1:9000", region="eu-west-1",
                             access_key="key", secret_key="secret")
    assert (type(s3.filesystem).__name__, s3.base, s3.path("x.parquet")) == ("S3FileSystem", "logs/prod",
                                                                             "logs/prod/x.parquet")
    settings.MONITORING_LOG_ROOT = "s3://logs/prod"
    settings.MONITORING_LOG_S3_ACCESS_KEY = "key"
    [error] = logstorage.store_check()
    assert error.id == "monitoring.E001" and "MONITORING_LOG_S3_SECRET_KEY" in error.msg


def test_a_closed_day_is_compacted_to_one_file_with_the_same_rows_and_old_files_are_swept(team):
    version = f.model_version(team)
    for batch in range(3):
        f.logs(version, f.frame(20, seed=batch), start=f.T0 + timedelta(hours=batch), span=timedelta(minutes=30),
               prefix=f"b{batch}")
    end = f.T0 + timedelta(days=1)

    def window():
        w = columnar.read_window(model_version_id=version.pk, start=f.T0, end=end, numeric=["amount"],
                                 categorical=["country"])
        return w.rows, sorted(w.numeric["amount"].tolist()), w.counts["country"]

    before, old_files = window(), _files(version)
    assert len(old_files) == 3
    assert compaction.compact_closed_days(now=f.T0 + timedelta(days=1, hours=1), orphan_age=timedelta(hours=1)) == \
        {"files_summarized": 0, "files_replaced": 3, "orphans_deleted": 0}
    assert PredictionFile.objects.filter(model_version=version).count() == 1 and window() == before
    assert compaction.sweep_orphans(older_than=timedelta(0)) >= 3  # with files earlier tests' rollbacks left
    assert [p.name.startswith("compacted-") for p in _files(version)] == [True]
    assert compaction.compact_day(model_version_id=version.pk, key="2026-03-02") == 0


def test_features_logged_as_jsonb_before_are_moved_to_parquet(team):
    from django.core.management import call_command
    from django.db import connection

    from apps.monitoring import logstore

    version = f.model_version(team)
    logstore.ensure_partitions(f.T0, f.T0)
    with connection.cursor() as cursor:  # a row as ingest wrote it before the columnar store
        cursor.execute(f"INSERT INTO {logstore.TABLE} (model_version_id, batch_pk, ts, request_id, features, "
                       f"prediction) VALUES (%s, 7, %s, 'old-1', '{{\"amount\": 2.5, \"country\": \"de\"}}', '1')",
                       [version.pk, f.T0])
    call_command("prediction_log_to_parquet")
    call_command("prediction_log_to_parquet")  # nothing left to move: no second file
    window = columnar.read_window(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=1),
                                  numeric=["amount"], categorical=["country"])
    assert (window.rows, window.numeric["amount"].tolist(), window.counts["country"]) == (1, [2.5], {"de": 1})
    assert len(_files(version)) == 1


def _columns(table, *, ordered: bool = True) -> dict:
    """name → values (NaN as "NaN", so equal tables compare equal), in row order or sorted."""
    out = {n: ["NaN" if v != v else v for v in table.column(n).to_pylist()] for n in table.column_names}
    return out if ordered else {n: sorted(values, key=repr) for n, values in out.items()}


def test_a_sample_is_repeatable_within_its_limit_and_read_as_the_full_read_types_it(team):
    """read_rows with a limit (the Evidently sample) streams the files itself (logsample): with a limit above the
    window's rows it returns exactly the full read's rows, a kind-changed and a missing column included."""
    version = f.model_version(team)
    f.logs(version, f.frame(48, seed=1), span=timedelta(hours=48))
    columnar.write_batch(model_version_id=version.pk, batch_pk=99,  # amount logged as text, then a new column
                         rows=[(f.T0 + timedelta(hours=30, minutes=i), f"t-{i}", {"amount": f"a{i}", "late": 1.5},
                                "1", 1.0) for i in range(3)])
    window = {"model_version_id": version.pk, "start": f.T0 + timedelta(hours=6), "end": f.T0 + timedelta(hours=40),
              "numeric": ["age", "late", engine.PREDICTION], "categorical": ["country", "amount", "missing"]}
    full = columnar.read_rows(**window)
    everything = columnar.read_rows(**window, limit=1000)
    assert full.num_rows == 34 + 3 and _columns(everything, ordered=False) == _columns(full, ordered=False)
    assert full.column_names == ["age", "late", engine.PREDICTION, "country", "amount", "missing"]

    sample = columnar.read_rows(**window, limit=10)
    assert sample.num_rows == 10 and sample.column_names == full.column_names
    assert _columns(sample) == _columns(columnar.read_rows(**window, limit=10))  # the same seed, the same rows
    assert _columns(sample) != _columns(columnar.read_rows(**window, limit=10, seed=7))
    assert set(zip(*_columns(sample).values())) <= set(zip(*_columns(full).values()))  # rows of the window
