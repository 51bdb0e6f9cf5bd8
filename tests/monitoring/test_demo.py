"""The demo seed: a week of logs drifting mid-week gives a red monitor, a heatmap and an open alert."""
from apps.monitoring import selectors
from apps.monitoring.demo import DRIFT_FROM_DAY, MONITOR_NAME, seed_monitoring
from apps.monitoring.models import Monitor
from apps.registry.models import ModelVersion, RegisteredModel
from apps.teams.models import Team
from tests.factories import member


def test_demo_monitor_drifts_mid_week_and_is_idempotent(db):
    team = Team.objects.create(slug="fraud", name="Fraud detection")
    dave = member(team, "ml_engineer", "dave")
    model = RegisteredModel.objects.create(name="fraud-classifier", team=team)
    ModelVersion.objects.create(model=model, version=2)
    lines = []
    seed_monitoring(log=lines.append)
    monitor = Monitor.objects.get(name=MONITOR_NAME)
    assert monitor.state == "drifting"
    runs = list(monitor.runs.order_by("window_start"))
    assert [r.state for r in runs] == ["ok"] * DRIFT_FROM_DAY + ["drifting"] * (7 - DRIFT_FROM_DAY)
    assert all(hasattr(r, "report") for r in runs)
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
