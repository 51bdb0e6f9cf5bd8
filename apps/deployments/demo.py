"""Demo deployment, seeded after the registry demo approved fraud-classifier v2 for production:
`fraud-classifier` on the local target (a real model server process behind the deployment's router),
dispatched with a canary strategy and serving predictions at its endpoint when the seed finishes.

The first revision has no stable revision to split with, so it takes 100 % at once (the status says
so); deploying again from the deployment page runs the canary steps, and "Roll back" switches back.
Safe to re-run: an existing deployment is left alone (its processes are adopted or restarted).
"""
from collections.abc import Callable

import requests
from django.contrib.auth import get_user_model

CANARY = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 50, "pause": True},
                                      {"weight": 100, "pause": False}]}
NAME = "fraud-classifier"


def _report(log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


def seed_deployments(*, log: Callable[[str], None], drive: bool | None = None) -> None:
    """`drive` starts the model server now (default: yes, except against a test database, where no
    worker would ever adopt and stop the processes; tests that want them pass drive=True)."""
    from django.db import connection

    if drive is None:
        drive = not connection.settings_dict["NAME"].startswith("test_")
    from apps.registry.models import Environment, ModelVersion
    from apps.registry.selectors import version_approved_for
    from apps.teams.models import Team

    from .models import Cluster, Deployment
    from .rollout import rollout_drive, route
    from .services import deployment_create

    team = Team.objects.filter(slug="fraud").first()
    dave = get_user_model().objects.filter(username="dave").first()
    env = Environment.objects.filter(name="production").first()
    version = ModelVersion.objects.filter(model__name=NAME, version=2).select_related("model").first()
    if not (team and dave and env and version) or not version_approved_for(version=version, environment="production"):
        log(f"  skipped  deployments demo: {NAME} v2 is not approved for production (run the registry demo first)")
        return
    deployment = Deployment.objects.filter(team=team, name=NAME).first()
    created = deployment is None
    if created:
        deployment = deployment_create(actor=dave, team=team, name=NAME, model_version=version, environment=env,
                                       cluster=Cluster.objects.get(name="local"),
                                       resources={"cpu": "500m", "memory": "512Mi", "replicas": 1}, strategy=CANARY)
    if drive and deployment.status in ("pending", "progressing"):
        # Drive it here instead of waiting for a worker, so the endpoint is live when the seed ends.
        rollout_drive(deployment_id=deployment.pk)
    elif drive and deployment.traffic:
        route(deployment_id=deployment.pk)  # restarts the processes if the machine was rebooted
    deployment.refresh_from_db()
    _report(log, created, f"deployment {team.slug}/{NAME} ({version.model.name} v{version.version}, production, "
                          f"local target): {deployment.status}")
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
