"""Browser tests: the monitoring overview, the drift dashboard (charts, Run now with progress) and an alert
(Evidently report, acknowledge, Roll back, resolve)."""
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.monitoring.models import Alert, MonitorRun
from apps.monitoring.services import monitor_run_execute
from tests.deployments.factories import deployment_in
from tests.factories import member
from tests.monitoring import factories as f


@pytest.fixture
def drifting(team):
    deployment = deployment_in(team, "healthy")
    version = deployment.current_revision.model_version
    mon = f.monitor(team, version, f.reference(team, version), deployment=deployment, name="fraud-drift")
    for day, drift in ((0, False), (1, True)):
        start = f.T0 + timedelta(days=day)
        f.logs(version, f.frame(300, drift=drift, seed=day), start=start, prefix=f"d{day}")
        run = f.run(mon, status="queued", window_start=start, window_end=start + timedelta(days=1))
        monitor_run_execute(run_id=run.pk, report=drift)
    return mon


def assert_drawn_at_their_width(page):
    """Each distribution chart laid out for the width of its box: drawn one by one into the grid, the first ones
    were laid out for a row still holding fewer charts (1,201, 593 and 390 px in a 288 px box) and came out clipped
    (legend, axis titles, the upper bins)."""
    widths = page.evaluate("""[...document.querySelectorAll('#distributions .js-plotly-plot')]
                              .map(d => [d._fullLayout.width, d.clientWidth])""")
    assert len(widths) > 1 and all(drawn <= box + 1 for drawn, box in widths), widths


def test_overview_dashboard_and_alert_rollback(page, login, team, drifting):
    user = member(team, "ml_engineer", "dana")
    login(page, user)
    page.get_by_role("link", name="Monitoring").click()
    row = page.locator("#monitor-overview tr[data-monitor='fraud-drift']")
    expect(row.locator(".badge.state-drifting")).to_have_text("drifting")

    row.get_by_role("link", name="fraud-drift").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("fraud-drift")
    expect(page.locator("#heatmap .main-svg").first).to_be_visible()
    expect(page.locator("#share-chart .main-svg").first).to_be_visible()
    expect(page.locator("#distributions .dist")).to_have_count(5)
    assert_drawn_at_their_width(page)
    expect(page.locator("#prediction-chart .main-svg").first).to_be_visible()
    expect(page.locator("#performance-empty")).to_be_visible()
    expect(page.locator("#feature-table tr[data-column='amount']")).to_contain_text("drift")
    page.locator("#latest-run-report").click()  # the run's own page draws every column the same way
    expect(page.locator("#distributions .dist .main-svg").first).to_be_visible()
    assert_drawn_at_their_width(page)
    page.go_back()

    page.locator("#monitor-alerts").get_by_role("link", name=re.compile("Dataset drift")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alert #")
    with page.expect_popup() as popup:
        page.locator("#report-link").click()
    expect(popup.value.locator("body")).to_contain_text(re.compile("drift", re.I))
    popup.value.close()

    page.get_by_label("Comment").fill("looking at the upstream feed")
    page.locator("#ack-button").click()
    expect(page.locator("#alert-status")).to_have_text("acknowledged")

    asked = []  # a rollback asks first, naming what it rolls back
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.locator("#rollback-button").click()
    expect(page.get_by_role("status")).to_contain_text("Rollback started")
    assert asked and asked[0].startswith("Roll back ") and "previous revision, with alert #" in asked[0], asked
    expect(page.locator("#alert-actions")).to_contain_text("rollback by dana")
    assert AuditEvent.objects.filter(action="deployment.rollback", actor_label="dana").exists()
    assert AuditEvent.objects.filter(action="monitoring.alert.rollback").exists()

    page.get_by_label("How was it resolved?").fill("rolled back to revision 1")
    page.locator("#resolve-button").click()
    expect(page.locator("#alert-status")).to_have_text("resolved")
    assert Alert.objects.get(kind="dataset_drift").resolve_comment == "rolled back to revision 1"


def test_run_now_shows_progress_live_until_done(page, login, team, drifting):
    user = member(team, "ml_engineer", "dana")
    login(page, user)
    page.goto(f"/monitoring/monitors/{drifting.pk}/")
    runs_before = page.locator("#runs tbody tr").count()
    page.locator("#run-now").click()
    expect(page.get_by_role("status")).to_contain_text("Run queued")
    progress = page.locator(".run-progress")
    expect(progress.locator("progress")).to_be_visible()
    expect(progress.locator(".progress-text")).to_contain_text("queued")
    page.evaluate("window.notReloaded = true")  # gone if the page reloads
    # The worker's part, done here: a worker picks the run up, reports progress, finishes.
    run = MonitorRun.objects.get(trigger="manual")
    MonitorRun.objects.filter(pk=run.pk).update(status="running", progress=40, progress_message="Computing drift")
    expect(progress.locator(".progress-text")).to_have_text("40% · running · Computing drift")
    expect(progress.locator("progress")).to_have_attribute("value", "40")
    monitor_run_execute(run_id=run.pk, report=False)  # the manual run's window (now) has no predictions logged
    expect(progress.locator(".progress-text")).to_contain_text("100% · not enough data")
    expect(progress).to_have_attribute("data-status", "not_enough_data")
    assert page.evaluate("window.notReloaded") is True
    # Polling stopped at the terminal state: no request for the run in the next two ticks (1.5 s apart).
    polls = []
    page.on("request", lambda r: polls.append(r.url) if f"/monitoring/runs/{run.pk}/" in r.url else None)
    page.wait_for_timeout(3_500)
    assert polls == []
    page.get_by_role("link", name="Finished: reload to see it in the charts").click()
    expect(page.locator("#runs tbody tr")).to_have_count(runs_before + 1)
    expect(page.locator(".run-progress")).to_have_count(0)


def test_viewer_sees_the_dashboard_but_cannot_roll_back(page, login, team, drifting):
    viewer = member(team, "viewer", "vic")
    login(page, viewer)
    page.goto(f"/monitoring/monitors/{drifting.pk}/")
    expect(page.locator("h1")).to_be_visible()
    # Buttons a role can't use are not shown (the service refuses the POST all the same: tests/authz).
    expect(page.locator("#dashboard-rollback")).to_have_count(0)
    assert not AuditEvent.objects.filter(action="deployment.rollback").exists()


LONG = "worst fractal dimension"


@pytest.fixture
def classifier(team):
    """A classifier whose reference has integer predictions and targets (inferred schema) and 30 features, two
    daily windows (the second drifting) with ground-truth labels."""
    from apps.monitoring.services import labels_ingest

    version = f.model_version(team, name="cancer-classifier")

    def data(n, *, drift, seed):
        frame = f.frame(n, drift=drift, seed=seed)
        frame["prediction"] = frame["prediction"].astype(int)
        for k in range(26):
            frame[f"{LONG} {k:02d}"] = frame["age"] * (k + 1)
        return frame

    reference = data(1500, drift=False, seed=9)
    reference["target"] = reference["prediction"]
    mon = f.monitor(team, version, f.reference(team, version, reference, target="target"), name="cancer-drift",
                    numeric_method="ks")
    engineer = member(team, "ml_engineer", "dana")
    for day, drift in ((0, False), (1, True)):
        start = f.T0 + timedelta(days=day)
        frame = data(300, drift=drift, seed=day)
        f.logs(version, frame, start=start, prefix=f"c{day}")
        labels_ingest(actor=engineer, model_version=version,
                      labels=[{"request_id": f"c{day}-{i}", "label": int(p) if i % 4 else 1 - int(p)}
                              for i, p in enumerate(frame["prediction"])])
        run = f.run(mon, status="queued", window_start=start, window_end=start + timedelta(days=1))
        monitor_run_execute(run_id=run.pk, report=drift)
    return mon


def test_classifier_dashboard_is_readable(page, login, team, classifier):
    login(page, member(team, "viewer", "vic"))
    page.goto(f"/monitoring/monitors/{classifier.pk}/")
    # The Evidently report rendered (class labels are categorical) and no exception text reached the page.
    expect(page.locator("#latest-report")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Stattest")
    expect(page.locator("body")).not_to_contain_text("Error:")
    # Classification metrics, not MAE/RMSE.
    expect(page.get_by_text(re.compile(r"accuracy 0\.\d{3}, F1 0\.\d{3}"))).to_be_visible()
    perf = page.locator("details.chart-data[data-chart='performance-chart']")
    expect(perf.locator("th")).to_have_text(["window", "accuracy", "f1"])
    # Every one of the 30 features labelled, in full.
    expect(page.locator("#heatmap .yaxislayer-above .ytick text")).to_have_count(30)
    expect(page.locator("#heatmap .yaxislayer-above .ytick text").filter(has_text=f"{LONG} 25")).to_have_count(1)
    expect(page.locator("#heatmap-legend")).to_contain_text("drifted")
    # Axis titles, and a "Show data" table for every chart.
    expect(page.locator("#prediction-chart .ytitle")).to_have_text(re.compile(r"(p-value|distance)$"))
    expect(page.locator("#share-chart .xtitle")).to_have_text("window start (UTC)")
    charts = page.locator("#heatmap, #share-chart, #volume-chart, #latency-chart, #error-chart, #prediction-chart, "
                          "#performance-chart, #distributions .dist")
    expect(page.locator("details.chart-data")).to_have_count(charts.count())
    page.locator("details.chart-data[data-chart='volume-chart'] summary").click()
    expect(page.locator("details.chart-data[data-chart='volume-chart'] tbody tr")).to_have_count(2)
    # p-values formatted: the drifting features' tiny p-values read "< 0.001".
    expect(page.locator("#feature-table tr[data-column='amount'] td").nth(4)).to_have_text("< 0.001")
