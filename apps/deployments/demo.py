"""Demo deployment: `fraud-classifier` on the local target (real model server processes behind the
deployment's router), first with version 1, then version 2 rolled out as a canary (10 % → 50 % → 100 %)
and promoted to 100 %, so the deployment has an earlier revision that "Roll back" (on the deployment page
or from a drift alert) restores.

Each call is safe to re-run: a version already deployed is reported as found (its processes are
adopted or restarted).
"""
from collections.abc import Callable

import requests
from django.contrib.auth import get_user_model

ROLLING = {"kind": "rolling"}
CANARY = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 50, "pause": True},
                                      {"weight": 100, "pause": False}]}
NAME = "fraud-classifier"
MAX_PROMOTIONS = 5


def _report(log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


def seed_deployment(*, log: Callable[[str], None], version_number: int, drive: bool | None = None) -> None:
    """Deploy `fraud-classifier` v`version_number` to production on the local target: creates the deployment
    (rolling) the first time, later versions roll out as a canary and are promoted to 100 %.

    `drive` runs the rollout in this process (default: yes, except against a test database, where no worker
    would ever adopt and stop the processes; tests that want them pass drive=True)."""
    from django.db import connection

    if drive is None:
        drive = not connection.settings_dict["NAME"].startswith("test_")
    from apps.registry.models import Environment, ModelVersion
    from apps.registry.selectors import version_approved_for
    from apps.teams.models import Team

    from .choices import DeploymentStatus
    from .models import Cluster, Deployment
    from .rollout import rollout_drive, route
    from .services import deployment_create, deployment_deploy, deployment_promote
    from .transitions import ACCEPTS_NEW_REVISION

    team = Team.objects.filter(slug="fraud").first()
    dave = get_user_model().objects.filter(username="dave").first()
    env = Environment.objects.filter(name="production").first()
    version = ModelVersion.objects.filter(model__name=NAME, version=version_number).select_related("model").first()
    label = f"{NAME} v{version_number}"
    if not (team and dave and env and version):
        log(f"  skipped  deployments demo: {label}, the fraud team or dave is missing (run the registry demo first)")
        return
    deployment = Deployment.objects.filter(team=team, name=NAME).first()
    if deployment is not None and deployment.revisions.filter(model_version=version).exists():
        if drive and deployment.status in (DeploymentStatus.PENDING, DeploymentStatus.PROGRESSING):
            rollout_drive(deployment_id=deployment.pk)  # seeded earlier without driving
        elif drive and deployment.traffic:
            route(deployment_id=deployment.pk)  # restarts the processes if the machine was rebooted
        deployment.refresh_from_db()
        _report(log, False, f"deployment {team.slug}/{NAME} revision with {label}: {deployment.status}")
        return
    if not version_approved_for(version=version, environment="production"):
        log(f"  skipped  deploying {label}: it is not approved for production")
        return
    if deployment is not None and deployment.status not in ACCEPTS_NEW_REVISION:
        log(f"  skipped  deploying {label}: deployment {NAME} is {deployment.status} (its rollout has not finished)")
        return
    if deployment is None:
        deployment = deployment_create(actor=dave, team=team, name=NAME, model_version=version, environment=env,
                                       cluster=Cluster.objects.get(name="local"),
                                       resources={"cpu": "500m", "memory": "512Mi", "replicas": 1}, strategy=ROLLING)
        how = "rolling"
    else:
        deployment_deploy(actor=dave, deployment=deployment, model_version=version, strategy=CANARY)
        how = "canary 10 % → 50 % → 100 %, promoted"
    if drive:
        # Drive it here instead of waiting for a worker, so the endpoint is live when the seed ends.
        rollout_drive(deployment_id=deployment.pk)
        for _ in range(MAX_PROMOTIONS):
            deployment.refresh_from_db()
            if deployment.status != DeploymentStatus.AWAITING_PROMOTION:
                break
            deployment_promote(actor=dave, deployment=deployment)
            rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    _report(log, True, f"deployment {team.slug}/{NAME} revision with {label} (production, local target, {how}): "
                       f"{deployment.status}, traffic {deployment.traffic}")
    if deployment.endpoint_url and drive:
        try:
            response = requests.post(deployment.endpoint_url, timeout=30, json={"dataframe_split": _sample()})
            answer = response.json().get("predictions", response.text)[:3] if response.ok else response.text[:200]
            log(f"           endpoint {deployment.endpoint_url} answered {response.status_code}: {answer}")
        except requests.RequestException as exc:
            log(f"           endpoint {deployment.endpoint_url} not answering yet: {exc}")


def _sample() -> dict:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3)
    return {"columns": list(frame.columns), "data": frame.values.tolist()}
