"""The demo seed: a week of logs drifting mid-week gives a red monitor, a heatmap and an open alert."""
from apps.audit.models import AuditEvent
from apps.monitoring import selectors
from apps.monitoring.services import alert_rollback
from tests.deployments.factories import deployment_in
from apps.monitoring.demo import DRIFT_FROM_DAY, MONITOR_NAME, REPORT_DAYS, seed_monitoring
from apps.monitoring.models import Monitor, ReportRender
from apps.registry.models import ModelVersion, RegisteredModel
from apps.teams.models import Team
from tests.factories import member


def test_demo_monitor_drifts_mid_week_and_is_idempotent(db):
    team = Team.objects.create(slug="fraud", name="Fraud detection")
    dave = member(team, "ml_engineer", "dave")
    # The deployments demo's deployment, here with an earlier revision to go back to (v1 warm, v2 serving).
    deployment = deployment_in(team, "healthy", name="fraud-classifier")
    lines = []
    seed_monitoring(log=lines.append)
    monitor = Monitor.objects.get(name=MONITOR_NAME)
    assert monitor.state == "drifting" and monitor.deployment == deployment
    assert monitor.model_version == deployment.current_revision.model_version
    runs = list(monitor.runs.order_by("window_start"))
    assert [r.state for r in runs] == ["ok"] * DRIFT_FROM_DAY + ["drifting"] * (7 - DRIFT_FROM_DAY)
    queued = set(ReportRender.objects.filter(status="queued").values_list("run_id", flat=True))
    assert [day for day, run in enumerate(runs) if run.pk in queued] == list(REPORT_DAYS)  # for a worker to render
    alert = monitor.alerts.get(kind="dataset_drift")
    assert alert.status == "open" and alert.first_run_id == runs[DRIFT_FROM_DAY].pk
    board = selectors.dashboard(user=dave, monitor_id=monitor.pk)
    heat = dict(zip(board["chart"]["features"], board["chart"]["heat"]))
    assert heat["mean radius"] == [0] * DRIFT_FROM_DAY + [1] * (7 - DRIFT_FROM_DAY)
    assert set(heat["worst symmetry"]) == {0}
    assert runs[0].performance["accuracy"] > 0.95 and runs[-1].performance == {}
    overview = selectors.overview(user=dave)
    assert overview[0]["monitor"] == monitor and overview[0]["state"] == "drifting"

    again = []
    seed_monitoring(log=again.append)
    assert not any("created" in line for line in again)
    assert Monitor.objects.count() == 1

    # "Roll back" from the demo alert restores the earlier revision, audited on both sides.
    revision = alert_rollback(actor=dave, alert=alert)
    assert revision.rollback_of.model_version.version == 1
    deployment.refresh_from_db()
    assert deployment.current_revision == revision
    assert AuditEvent.objects.filter(action="monitoring.alert.rollback", object_id=str(alert.pk)).exists()
    assert AuditEvent.objects.filter(action="deployment.rollback", actor_label="dave").exists()


def test_demo_without_a_deployment_links_it_on_the_next_seed(db):
    team = Team.objects.create(slug="fraud", name="Fraud detection")
    member(team, "ml_engineer", "dave")
    model = RegisteredModel.objects.create(name="fraud-classifier", team=team)
    ModelVersion.objects.create(model=model, version=2)
    seed_monitoring(log=lambda line: None)
    monitor = Monitor.objects.get(name=MONITOR_NAME)
    assert monitor.deployment is None and monitor.state == "drifting"
    deployment = deployment_in(team, "healthy", name="fraud-classifier")
    lines = []
    seed_monitoring(log=lines.append)
    monitor.refresh_from_db()
    assert monitor.deployment == deployment and any("linked" in line for line in lines)
