"""Rollback re-checks approval: a revision whose version's approval was revoked is not deployable again unless
a team admin breaks glass with a reason (audited, flagged). An alert's Roll back acts only while the deployment
still serves the version that raised the alert, so firing it twice never re-deploys the drifted version."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.deployments.models import Deployment, DeploymentRevision
from apps.registry.models import AliasHolding, ApprovalPolicy, PromotionRequest
from tests.deployments.factories import deployment_in, environment
from tests.factories import member

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(days=3)


def _held(version, env, requester, *, since, until=None) -> AliasHolding:
    """The version held the environment's alias over [since, until) through a published promotion."""
    request = PromotionRequest.objects.create(team=version.model.team, version=version, environment=env,
                                              kind="promote", status="published", requested_by=requester)
    return AliasHolding.objects.create(model=version.model, alias=env.name, version=version,
                                       version_number=version.version, since=since, until=until,
                                       source="control_plane", request=request)


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "eng")


@pytest.fixture
def production(team):
    env = environment("production")
    ApprovalPolicy.objects.create(team=team, environment=env, approvals_required=1, approver_roles=["approver"])
    return env


@pytest.fixture
def deployment(team, production):
    """Serving r2 (v2) in production; r1 (v1) served before."""
    deployment = deployment_in(team, "healthy")
    Deployment.objects.filter(pk=deployment.pk).update(environment=production)
    deployment.refresh_from_db()
    return deployment


def _versions(deployment):
    return [deployment.revisions.get(number=n).model_version for n in (1, 2)]


@pytest.fixture
def v1_revoked(deployment, production, engineer):
    """v1's production alias was revoked (nothing took over when it ended); v2 was promoted later."""
    v1, v2 = _versions(deployment)
    _held(v1, production, engineer, since=T0, until=T0 + timedelta(hours=1))
    _held(v2, production, engineer, since=T0 + timedelta(hours=5))


def _rollback(client, deployment, **body):
    return client.post(f"/api/v1/deployments/deployments/{deployment.pk}/rollback/", {"to_revision": 1, **body},
                       format="json")


def test_rollback_to_a_revoked_version_is_refused(client_for, engineer, deployment, v1_revoked):
    response = _rollback(client_for(engineer), deployment)
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "not_approved"
    assert "v1, which is no longer approved for production" in error["message"]
    assert "a team admin may break glass with a reason" in error["message"]
    assert deployment.revisions.count() == 2 and not AuditEvent.objects.filter(action="deployment.rollback").exists()
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and deployment.current_revision.number == 2


def test_rollback_to_a_version_moved_aside_by_a_later_promotion_still_works(client_for, engineer, deployment,
                                                                             production):
    v1, v2 = _versions(deployment)
    moved = T0 + timedelta(hours=1)
    _held(v1, production, engineer, since=T0, until=moved)
    _held(v2, production, engineer, since=moved)
    response = _rollback(client_for(engineer), deployment)
    assert response.status_code == 201, response.json()
    assert response.json()["rollback_of"] == 1 and response.json()["break_glass_reason"] == ""


def test_team_admin_breaks_glass_with_a_reason_audited_and_flagged(client_for, team, deployment, v1_revoked):
    admin = member(team, "team_admin", "ada")
    reason = "v2 corrupts scores; v1 is the only known-good model"
    response = _rollback(client_for(admin), deployment, break_glass_reason=reason)
    assert response.status_code == 201, response.json()
    revision = DeploymentRevision.objects.get(pk=response.json()["id"])
    assert revision.break_glass_reason == reason and revision.rollback_of.number == 1
    event = AuditEvent.objects.get(action="deployment.break_glass")
    assert event.actor_label == "ada" and event.changes["reason"] == [None, reason]
    assert event.changes["model_version"][1].endswith("v1")
    assert AuditEvent.objects.get(action="deployment.rollback").changes["break_glass"] == [None, reason]
    # Flagged on the deployment: the API and the deployment page.
    detail = client_for(admin).get(f"/api/v1/deployments/deployments/{deployment.pk}/").json()
    assert detail["break_glass"] == {"revision": revision.number, "reason": reason, "by": "ada"}
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="break-glass"' in page and "v1 is the only known-good model" in page


def test_ml_engineer_cannot_break_glass(client_for, engineer, deployment, v1_revoked):
    response = _rollback(client_for(engineer), deployment, break_glass_reason="please")
    assert response.status_code == 403, response.json()
    assert "needs the 'administer' capability" in response.json()["error"]["message"]
    assert deployment.revisions.count() == 2 and not AuditEvent.objects.filter(action="deployment.break_glass").exists()


def test_alert_roll_back_twice_never_redeploys_the_drifted_version(client_for, engineer, team):
    from tests.monitoring import factories as mf

    deployment = deployment_in(team, "healthy")
    drifted = deployment.current_revision.model_version  # v2 raised the alert
    monitor = mf.monitor(team, drifted, mf.reference(team, drifted), deployment=deployment)
    alert = mf.alert(monitor, title="Dataset drift on fraud")
    client = client_for(engineer)
    first = client.post(f"/api/v1/monitoring/alerts/{alert.pk}/rollback/", format="json")
    assert first.status_code == 200, first.json()
    second = client.post(f"/api/v1/monitoring/alerts/{alert.pk}/rollback/", format="json")
    assert second.status_code == 409, second.json()
    error = second.json()["error"]
    assert error["code"] == "already_rolled_back" and "already rolled back to v1" in error["message"]
    assert deployment.revisions.filter(reason="rollback").count() == 1
    deployment.refresh_from_db()
    assert deployment.current_revision.model_version.version == 1
    # Settled at v1 (the rollout finished), the alert still refuses: it never brings v2 back.
    Deployment.objects.filter(pk=deployment.pk).update(status="healthy", stable_revision=deployment.current_revision)
    third = client.post(f"/api/v1/monitoring/alerts/{alert.pk}/rollback/", format="json")
    assert third.status_code == 409 and "already rolled back to v1" in third.json()["error"]["message"]
    assert deployment.revisions.filter(reason="rollback").count() == 1
