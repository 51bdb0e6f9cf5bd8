"""Alerts: opened on a threshold crossing, deduplicated, acknowledged/resolved with comments, webhook sent,
Roll back / Retrain from the alert, and the optional auto-rollback policy."""
from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.monitoring.choices import AlertStatus
from apps.monitoring.models import Alert
from apps.monitoring.services import monitor_run_execute
from apps.monitoring.transitions import ALLOWED
from apps.outbox.models import OutboxMessage
from tests.factories import WebhookEndpointFactory

from . import factories as f

DAY = timedelta(days=1)


def _drifting_day(mon, day: int, drift: bool = True):
    start = f.T0 + day * DAY
    f.logs(mon.model_version, f.frame(300, drift=drift, seed=day), start=start, prefix=f"d{day}")
    run = f.run(mon, status="queued", window_start=start, window_end=start + DAY)
    return monitor_run_execute(run_id=run.pk, report=False)


def test_drift_opens_one_alert_and_later_crossings_bump_it(team, mon):
    WebhookEndpointFactory(team=team, events=["monitoring.alert"])
    first = _drifting_day(mon, 0)
    second = _drifting_day(mon, 1)
    alerts = Alert.objects.filter(monitor=mon, kind="dataset_drift")
    assert alerts.count() == 1
    alert = alerts.get()
    assert (alert.status, alert.occurrences, alert.first_run_id, alert.last_run_id) == ("open", 2, first.pk, second.pk)
    assert "amount" in alert.message
    hooks = [m for m in OutboxMessage.objects.filter(topic="teams.deliver_webhook")
             if m.payload["body"]["kind"] == "dataset_drift"]
    assert len(hooks) == 1 and hooks[0].payload["body"]["report"] == f"/monitoring/runs/{first.pk}/report/"
    # The prediction moved too: its own alert, also once.
    assert Alert.objects.filter(monitor=mon, kind="prediction_drift").get().occurrences == 2
    assert AuditEvent.objects.filter(action="monitoring.alert.open").count() == 2
    # Once resolved, the next crossing opens a fresh alert.
    Alert.objects.filter(pk=alert.pk).update(status="resolved")
    _drifting_day(mon, 2)
    assert Alert.objects.filter(monitor=mon, kind="dataset_drift").count() == 2


def test_no_drift_opens_no_alert(mon):
    _drifting_day(mon, 0, drift=False)
    assert not Alert.objects.exists()


# Every (from, to) a verb can ask for; nothing moves an alert back to open.
PAIRS = [(a, b) for a in AlertStatus.values for b in (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED) if a != b]


@pytest.mark.parametrize("from_,to", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_alert_transitions(client_for, engineer, mon, from_, to):
    alert = f.alert(mon, status=from_)
    verb = "acknowledge" if to == "acknowledged" else "resolve"
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/{verb}/", {"comment": "on it"},
                                         format="json")
    alert.refresh_from_db()
    if to in ALLOWED[from_]:
        assert response.status_code == 200 and alert.status == to
        event = AuditEvent.objects.get(action=f"monitoring.alert.{verb}")
        assert event.changes["status"] == [from_, to] and event.changes["comment"] == [None, "on it"]
        assert (alert.acknowledge_comment if verb == "acknowledge" else alert.resolve_comment) == "on it"
    else:
        assert response.status_code == 409 and alert.status == from_
        assert not AuditEvent.objects.filter(action__startswith="monitoring.alert.").exists()


def test_resolve_needs_a_comment(client_for, engineer, mon):
    alert = f.alert(mon)
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/resolve/", {}, format="json")
    assert response.status_code == 400 and "comment is required" in response.json()["error"]["message"]


def test_rollback_without_deployment_says_so(client_for, engineer, mon):
    alert = f.alert(mon)
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/rollback/", format="json")
    assert response.status_code == 409 and "No deployment linked" in response.json()["error"]["message"]


def test_rollback_from_alert_restores_the_earlier_revision(client_for, engineer, team):
    from apps.deployments.models import DeploymentRevision
    from tests.deployments.factories import deployment_in

    deployment = deployment_in(team, "healthy")
    version = deployment.current_revision.model_version
    mon = f.monitor(team, version, f.reference(team, version), deployment=deployment)
    alert = f.alert(mon, title="Dataset drift on fraud")
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/rollback/", format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "rollback started" and body["deployment"] == deployment.pk
    assert body["rollback_of"] == 1 and body["revision"] == 3  # r1, r2 existed: the rollback is r3, serving r1 again
    revision = DeploymentRevision.objects.get(deployment=deployment, number=body["revision"])
    assert revision.rollback_of.number == 1 and revision.model_version.version == 1
    deployment.refresh_from_db()
    assert deployment.current_revision_id == revision.pk
    rollback_event = AuditEvent.objects.get(action="deployment.rollback")
    assert f"Monitoring alert #{alert.pk}" in rollback_event.changes["reason"][1]
    ours = AuditEvent.objects.get(action="monitoring.alert.rollback")
    assert ours.changes["revision"] == [None, revision.number]
    alert.refresh_from_db()
    assert alert.actions[0]["action"] == "rollback" and alert.actions[0]["by"] == "eng"


def test_retrain_needs_a_configured_job(client_for, engineer, mon):
    alert = f.alert(mon)
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/retrain/", format="json")
    assert response.status_code == 409 and "no retraining Job configured" in response.json()["error"]["message"]


def test_auto_rollback_is_off_by_default_and_audited_when_it_fires(client_for, team, team_admin, engineer):
    from tests.deployments.factories import deployment_in

    deployment = deployment_in(team, "healthy")
    version = deployment.current_revision.model_version
    mon = f.monitor(team, version, f.reference(team, version), deployment=deployment)
    assert mon.auto_rollback is False
    forbidden = client_for(engineer).post(f"/api/v1/monitoring/monitors/{mon.pk}/auto-rollback/",
                                          {"enabled": True, "windows": 2}, format="json")
    assert forbidden.status_code == 403
    response = client_for(team_admin).post(f"/api/v1/monitoring/monitors/{mon.pk}/auto-rollback/",
                                           {"enabled": True, "windows": 2, "drift_share": 0.5}, format="json")
    assert response.status_code == 200 and response.json()["auto_rollback"] is True
    _drifting_day(mon, 0)
    assert not AuditEvent.objects.filter(action="monitoring.monitor.auto_rollback_fired").exists()
    _drifting_day(mon, 1)
    fired = AuditEvent.objects.get(action="monitoring.monitor.auto_rollback_fired")
    assert "2 consecutive windows" in fired.changes["reason"][1]
    assert AuditEvent.objects.filter(action="deployment.rollback", actor_label="system").exists()
    mon.refresh_from_db()
    assert mon.auto_rollback is False  # disarmed after firing


def test_retrain_dispatches_the_configured_job(client_for, engineer, team):
    from apps.deployments.models import Job
    from tests.deployments.factories import kube_cluster

    kube_cluster(team=team)
    mon = f.monitor(team, retrain_job={"cluster": "kind", "image": "registry.local/fraud-train:3",
                                       "command": ["python", "train.py", "--since", "7d"]})
    alert = f.alert(mon, title="Dataset drift on fraud")
    response = client_for(engineer).post(f"/api/v1/monitoring/alerts/{alert.pk}/retrain/", format="json")
    assert response.status_code == 200, response.json()
    job = Job.objects.get(pk=response.json()["job"])
    assert job.image == "registry.local/fraud-train:3" and job.command[-1] == "7d" and job.team == team
    assert AuditEvent.objects.filter(action="job.dispatch").exists()
    event = AuditEvent.objects.get(action="monitoring.retrain")
    assert event.changes["reason"][1] == f"Monitoring alert #{alert.pk}: Dataset drift on fraud"
    alert.refresh_from_db()
    assert alert.actions[0]["action"] == "retrain" and alert.actions[0]["job"] == job.pk


def test_retrain_job_with_unknown_keys_is_refused(client_for, engineer, mon):
    response = client_for(engineer).patch(f"/api/v1/monitoring/monitors/{mon.pk}/",
                                          {"retrain_job": {"cluster": "kind", "imgae": "x"}}, format="json")
    assert response.status_code == 400 and "unknown keys imgae" in response.json()["error"]["message"]
