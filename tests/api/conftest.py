"""Seeded objects and API tokens for the API contract tests (fuzzing and the hand-found cases)."""
from dataclasses import dataclass

import pytest

from tests.factories import UserFactory, member


@dataclass
class Seeded:
    team: object
    operator: object
    operator_token: str
    admin: object
    admin_token: str
    version: object
    monitor: object
    run: object
    deployment: object


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded(team):
    return seed(team)


def seed(team) -> Seeded:
    """One of everything the API reads, in the `fraud` team: a model version with a reference, a monitor and
    a run, a deployment with two revisions, a GPU type with a price and a quota, a namespace and a job."""
    from apps.deployments.models import ClusterNamespace, Job
    from apps.teams.services import api_token_create
    from tests.costs import factories as costs
    from tests.deployments import factories as deployments
    from tests.monitoring import factories as monitoring

    operator = member(team, "team_admin", "operator")
    admin = UserFactory(username="platform-root", is_superuser=True, is_staff=True)
    _, operator_token = api_token_create(actor=operator, name="fuzz", scope="admin")
    _, admin_token = api_token_create(actor=admin, name="fuzz", scope="admin")

    deployment = deployments.deployment_in(team, name="fraud")
    version = deployment.current_revision.model_version
    ref = monitoring.reference(team, version, monitoring.frame(60))
    monitor = monitoring.monitor(team, version, ref, deployment=deployment)
    run = monitoring.run(monitor)
    gtype = costs.gpu_type("a100-80gb", cluster_name=deployment.cluster.name)
    costs.quota(team, gtype, guaranteed=2, cohort="shared")
    ClusterNamespace.objects.get_or_create(cluster=deployment.cluster, team=team,
                                           environment=deployments.environment("staging"),
                                           defaults={"namespace": "fraud-staging"})
    Job.objects.create(team=team, cluster=deployment.cluster, namespace="fraud-staging", name="train-1",
                       image="python:3.11", command=["python", "-c", "print(1)"])
    return Seeded(team=team, operator=operator, operator_token=operator_token, admin=admin, admin_token=admin_token,
                  version=version, monitor=monitor, run=run, deployment=deployment)
