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
    expect(page.locator("#prediction-chart .main-svg").first).to_be_visible()
    expect(page.locator("#performance-empty")).to_be_visible()
    expect(page.locator("#feature-table tr[data-column='amount']")).to_contain_text("drift")

    page.locator("#monitor-alerts").get_by_role("link", name=re.compile("Dataset drift")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alert #")
    with page.expect_popup() as popup:
        page.locator("#report-link").click()
    expect(popup.value.locator("body")).to_contain_text(re.compile("drift", re.I))
    popup.value.close()

    page.get_by_label("Comment").fill("looking at the upstream feed")
    page.locator("#ack-button").click()
    expect(page.locator("#alert-status")).to_have_text("acknowledged")

    page.locator("#rollback-button").click()
    expect(page.get_by_role("status")).to_contain_text("Rollback started")
    expect(page.locator("#alert-actions")).to_contain_text("rollback by dana")
    assert AuditEvent.objects.filter(action="deployment.rollback", actor_label="dana").exists()
    assert AuditEvent.objects.filter(action="monitoring.alert.rollback").exists()

    page.get_by_label("How was it resolved?").fill("rolled back to revision 1")
    page.locator("#resolve-button").click()
    expect(page.locator("#alert-status")).to_have_text("resolved")
    assert Alert.objects.get(kind="dataset_drift").resolve_comment == "rolled back to revision 1"


def test_run_now_shows_progress_until_done(page, login, team, drifting):
    user = member(team, "ml_engineer", "dana")
    login(page, user)
    page.goto(f"/monitoring/monitors/{drifting.pk}/")
    runs_before = page.locator("#runs tbody tr").count()
    page.locator("#run-now").click()
    expect(page.get_by_role("status")).to_contain_text("Run queued")
    expect(page.locator(".run-progress progress")).to_be_visible()
    expect(page.locator(".run-progress .progress-text")).to_contain_text("queued")
    # The worker's part, done here: the polling page reloads itself once the run has finished.
    run = MonitorRun.objects.get(trigger="manual")
    monitor_run_execute(run_id=run.pk, report=False)
    expect(page.locator("#runs tbody tr")).to_have_count(runs_before + 1)
    expect(page.locator(".run-progress")).to_have_count(0)


def test_viewer_sees_the_dashboard_but_cannot_roll_back(page, login, team, drifting):
    viewer = member(team, "viewer", "vic")
    login(page, viewer)
    page.goto(f"/monitoring/monitors/{drifting.pk}/")
    page.locator("#dashboard-rollback").click()
    expect(page.get_by_role("status")).to_contain_text("does not allow this")
    assert not AuditEvent.objects.filter(action="deployment.rollback").exists()
