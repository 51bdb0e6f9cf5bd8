"""Monitor runs: injected drift is found, no drift is not, bad windows say 'not enough data', late labels count."""
import gzip
from datetime import timedelta

import numpy as np
import pytest

from apps.monitoring.models import MonitorRun
from apps.monitoring.services import monitor_run_execute, monitor_run_request
from apps.outbox.models import OutboxMessage

from . import factories as f

DAY = timedelta(days=1)


def _run(mon, report=False, start=f.T0):
    run = f.run(mon, status="queued", window_start=start, window_end=start + DAY)
    return monitor_run_execute(run_id=run.pk, report=report)


@pytest.mark.parametrize("drift", [False, True], ids=["no-drift", "drift"])
def test_drift_is_detected_numeric_and_categorical(mon, drift):
    f.logs(mon.model_version, f.frame(1200, drift=drift, seed=7))
    run = _run(mon)
    by_col = {x.column: x for x in run.features.all()}
    assert set(by_col) == {"amount", "age", "country", "channel", "prediction"}
    assert {c: by_col[c].method for c in by_col} == {"amount": "wasserstein", "age": "wasserstein",
                                                     "country": "jensenshannon", "channel": "jensenshannon",
                                                     "prediction": "jensenshannon"}
    drifted = {c for c, x in by_col.items() if x.drifted}
    if drift:
        assert drifted == {"amount", "age", "country", "channel", "prediction"}
        assert (run.state, run.dataset_drift, run.drift_share) == ("drifting", True, 1.0)
        assert run.prediction_drifted is True
    else:
        assert drifted == set()
        assert (run.state, run.dataset_drift, run.drift_share) == ("ok", False, 0.0)
    assert run.status == "succeeded" and run.current_rows == 1200 and run.progress == 100
    mon.refresh_from_db()
    assert mon.state == run.state
    assert by_col["amount"].distribution["edges"] and by_col["country"].distribution["categories"]
    assert run.latency_p50 is not None and run.error_rate == 0


def test_run_matches_evidently_on_the_same_rows(mon):
    """The stored per-column scores are Evidently's for the same reference and window."""
    import pandas as pd

    from .evidently_ref import evidently_drift

    current = f.frame(1100, drift=True, seed=3)
    f.logs(mon.model_version, current)
    run = _run(mon)
    reference = pd.read_parquet(__import__("io").BytesIO(bytes(mon.reference.sample_parquet)))
    theirs = evidently_drift(reference, current, numeric=["amount", "age"],
                             categorical=["country", "channel", "prediction"])
    for feature in run.features.all():
        method, score, drifted = theirs[feature.column]
        assert (feature.method, feature.drifted) == (method, drifted)
        assert feature.score == pytest.approx(score, rel=1e-9)


def test_evidently_report_is_stored_and_downloadable(client_for, engineer, mon):
    f.logs(mon.model_version, f.frame(300, drift=True))
    run = _run(mon, report=True)
    assert run.report.sampled is False and run.report.current_rows == 300
    response = client_for(engineer).get(f"/api/v1/monitoring/runs/{run.pk}/report/")
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    assert b"<html" in response.content[:2000].lower()
    assert gzip.decompress(bytes(run.report.html_gz)).decode() == response.content.decode()


def test_empty_window_is_not_enough_data(mon):
    run = _run(mon)
    assert run.status == "not_enough_data" and run.state == "no_data"
    assert "0 rows in this window" in run.message and run.features.count() == 0


def test_all_null_and_constant_columns(team):
    version = f.model_version(team)
    ref_frame = f.frame(1500)
    ref_frame["const"] = 5.0
    mon = f.monitor(team, version, f.reference(team, version, ref_frame))
    cur = f.frame(400, seed=2)
    cur["amount"] = np.nan
    cur["const"] = 5.0
    f.logs(version, cur)
    run = _run(mon)
    by_col = {x.column: x for x in run.features.all()}
    assert by_col["amount"].status == "not_enough_data" and "all null" in by_col["amount"].notes
    assert by_col["const"].status == "ok" and not by_col["const"].drifted
    assert "constant in the reference data" in by_col["const"].notes
    assert run.status == "succeeded" and "Not enough data for: amount" in run.message
    assert run.feature_count == 5 and run.drift_share is not None


def test_unseen_category_is_drift_with_a_note(team):
    version = f.model_version(team)
    mon = f.monitor(team, version)
    cur = f.frame(600, seed=4)
    cur.loc[:300, "country"] = "xx"
    f.logs(version, cur)
    run = _run(mon)
    country = run.features.get(column="country")
    assert country.drifted and "categories not in the reference: xx" in country.notes


def test_late_labels_update_performance(client_for, engineer, mon):
    data = f.frame(200, seed=5)
    f.logs(mon.model_version, data)
    run = _run(mon)
    assert run.performance == {}
    labels = [{"request_id": f"r-{i}", "label": p if i % 4 else ("1" if p == "0" else "0")}
              for i, p in enumerate(data["prediction"])]
    with __import__("django.test", fromlist=["x"]).TestCase.captureOnCommitCallbacks(execute=True):
        client_for(engineer).post("/api/v1/monitoring/labels/", {"model_version": mon.model_version_id,
                                                                 "labels": labels}, format="json")
    run.refresh_from_db()
    assert run.performance["labelled_rows"] == 200
    assert run.performance["accuracy"] == pytest.approx(0.75)
    assert 0 < run.performance["f1"] <= 1


def test_run_now_queues_a_run_with_an_outbox_message(client_for, engineer, mon):
    response = client_for(engineer).post(f"/api/v1/monitoring/monitors/{mon.pk}/run/", {}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "queued"
    run = MonitorRun.objects.get(pk=response.json()["id"])
    assert OutboxMessage.objects.filter(topic="monitoring.run_monitor", dedup_key=f"monitoring-run:{run.pk}").exists()
    # A redelivered task does the work once: the queued → running compare-and-set lets one through.
    assert monitor_run_execute(run_id=run.pk, report=False) is not None
    assert monitor_run_execute(run_id=run.pk, report=False) is None


def test_scheduled_window_is_queued_once(mon):
    first = monitor_run_request(actor=None, monitor=mon, trigger="schedule")
    second = monitor_run_request(actor=None, monitor=mon, trigger="schedule")
    assert first.pk == second.pk and first.window_end - first.window_start == DAY


def test_monitor_has_a_beat_schedule(client_for, engineer, team):
    from django_celery_beat.models import PeriodicTask

    mon = f.monitor(team)
    response = client_for(engineer).post("/api/v1/monitoring/monitors/", {
        "team": team.slug, "name": "hourly", "model_version": mon.model_version_id, "reference": mon.reference_id,
        "window": "hourly", "numeric_method": "ks"}, format="json")
    assert response.status_code == 201, response.json()
    task = PeriodicTask.objects.get(name=f"monitoring: monitor {response.json()['id']}")
    assert task.task == "monitoring.schedule_monitor" and task.crontab.minute == "5" and task.enabled
    patched = client_for(engineer).patch(f"/api/v1/monitoring/monitors/{response.json()['id']}/", {"enabled": False},
                                         format="json")
    assert patched.status_code == 200
    task.refresh_from_db()
    assert not task.enabled


def test_bad_monitor_options_are_400(client_for, engineer, mon):
    client = client_for(engineer)
    bad_method = client.patch(f"/api/v1/monitoring/monitors/{mon.pk}/", {"numeric_method": "chisquare"}, format="json")
    assert bad_method.status_code == 400
    unknown = client.patch(f"/api/v1/monitoring/monitors/{mon.pk}/", {"features": ["nope"]}, format="json")
    assert unknown.status_code == 400 and "Unknown features: nope" in unknown.json()["error"]["message"]


def test_full_data_report_on_request(client_for, engineer, team, settings):
    from apps.monitoring.tasks import render_report_task

    settings.MONITORING_REPORT_SAMPLE = 100
    version = f.model_version(team)
    from apps.monitoring.services import reference_from_rows

    ref = reference_from_rows(actor=engineer, model_version=version, name="ref", frame=f.frame(400),
                              prediction="prediction")
    assert ref.full_parquet is not None
    mon = f.monitor(team, version, ref)
    f.logs(version, f.frame(300, drift=True))
    run = _run(mon, report=True)
    assert (run.report.sampled, run.report.current_rows, run.report.reference_rows) == (True, 100, 100)
    response = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/full-report/")
    assert response.status_code == 202
    message = OutboxMessage.objects.get(topic="monitoring.render_report")
    render_report_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}).get()
    run.report.refresh_from_db()
    assert (run.report.sampled, run.report.current_rows, run.report.reference_rows) == (False, 300, 400)
    again = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/full-report/")
    assert again.status_code == 409 and "already covers every row" in again.json()["error"]["message"]


def test_full_data_report_is_bounded(client_for, engineer, mon, settings):
    settings.MONITORING_FULL_REPORT_MAX_ROWS = 100
    f.logs(mon.model_version, f.frame(300))
    run = _run(mon)
    response = client_for(engineer).post(f"/api/v1/monitoring/runs/{run.pk}/full-report/")
    assert response.status_code == 409 and "limited to 100 rows per side" in response.json()["error"]["message"]


def test_odd_column_names_and_category_spellings(client_for, engineer, team):
    """Names with quotes and percent signs reach SQL safely; 1, 1.0 and "1" are one category."""
    import pandas as pd

    version = f.model_version(team)
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"rate %": rng.normal(size=300), "owner's plan": rng.choice([1, 2], 300)})
    from apps.monitoring.services import reference_from_rows

    ref = reference_from_rows(actor=engineer, model_version=version, name="odd", frame=data, schema=[
        {"name": "rate %", "kind": "numeric", "role": "feature"},
        {"name": "owner's plan", "kind": "categorical", "role": "feature"}])
    mon = f.monitor(team, version, ref)
    rows = [{"timestamp": f"2026-03-02T{h:02d}:00:00Z", "request_id": f"q{h}-{i}",
             "features": {"rate %": float(rng.normal()), "owner's plan": [1, 2.0, "1", "2"][i % 4]}}
            for h in range(10) for i in range(10)]
    response = client_for(engineer).post("/api/v1/monitoring/predictions/",
                                         {"model_version": version.pk, "batch_id": "odd", "rows": rows}, format="json")
    assert response.status_code == 201 and response.json()["accepted"] == 100
    run = _run(mon)
    plan = run.features.get(column="owner's plan")
    assert plan.status == "ok" and plan.notes == "" and not plan.drifted
    assert run.features.get(column="rate %").current_count == 100


def test_run_now_window_must_be_whole_and_ordered(client_for, engineer, mon):
    client = client_for(engineer)
    half = client.post(f"/api/v1/monitoring/monitors/{mon.pk}/run/", {"window_start": "2026-03-02T00:00:00Z"},
                       format="json")
    assert half.status_code == 400 and "both window_start and window_end" in half.json()["error"]["message"]
    backwards = client.post(f"/api/v1/monitoring/monitors/{mon.pk}/run/", {
        "window_start": "2026-03-03T00:00:00Z", "window_end": "2026-03-02T00:00:00Z"}, format="json")
    assert backwards.status_code == 400 and "after window_start" in backwards.json()["error"]["message"]
    explicit = client.post(f"/api/v1/monitoring/monitors/{mon.pk}/run/", {
        "window_start": "2026-03-02T00:00:00Z", "window_end": "2026-03-03T00:00:00Z"}, format="json")
    assert explicit.status_code == 201 and explicit.json()["window_start"].startswith("2026-03-02T00:00:00")


def test_run_and_alert_lists_filter(client_for, engineer, mon, team):
    other = f.monitor(team, name="other-monitor")
    f.run(mon, state="drifting")
    f.run(other)
    f.alert(mon, status="resolved")
    f.alert(other)
    client = client_for(engineer)
    runs = client.get("/api/v1/monitoring/runs/", {"monitor": mon.pk}).json()["results"]
    assert [r["monitor"] for r in runs] == [mon.pk]
    alerts = client.get("/api/v1/monitoring/alerts/", {"status": "open"}).json()["results"]
    assert [a["monitor"] for a in alerts] == [other.pk]
