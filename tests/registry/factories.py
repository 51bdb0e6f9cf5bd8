"""Registry rows without MLflow, for tests that exercise the workflow rules only."""
from pathlib import Path

import factory

from apps.registry.models import ApprovalPolicy, Environment, ModelVersion, QualityGate, RegisteredModel
from tests.factories import TeamFactory


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    team_source = "tag"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(RegisteredModelFactory)
    version = factory.Sequence(lambda n: n + 1)
    creator = "mlflow-user"
    metrics = factory.LazyFunction(lambda: {"accuracy": 0.95, "latency_p95_ms": 20.0})
    run_id = factory.Sequence(lambda n: f"run{n:032d}")
    # A local artifact folder (as a file:// artifact store holds it): promotion requests digest its files.
    artifact_uri = (Path(__file__).parent / "artifacts_fixture").as_uri()


def policy(team, environment="production", *, approvals=2, roles=("approver", "team_admin"), gates=(), expiry_hours=72):
    p = ApprovalPolicy.objects.create(team=team, environment=Environment.objects.get(name=environment),
                                      approvals_required=approvals, approver_roles=list(roles),
                                      expiry_hours=expiry_hours)
    for gate in gates:
        QualityGate.objects.create(policy=p, **{"metric": "", "op": "", "threshold": None, "name": "", **gate})
    return p
