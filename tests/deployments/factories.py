from apps.deployments.models import Cluster, ClusterNamespace
from apps.registry.models import Environment, ModelVersion, RegisteredModel


def environment(name: str = "staging") -> Environment:
    return Environment.objects.get_or_create(name=name)[0]


def model_version(team, *, name: str = "fraud-classifier", version: int = 1, source: str = "") -> ModelVersion:
    model, _ = RegisteredModel.objects.get_or_create(name=name, defaults={"team": team})
    return ModelVersion.objects.get_or_create(model=model, version=version,
                                              defaults={"source": source or f"models:/{name}/{version}",
                                                        "artifact_uri": f"mlflow-artifacts:/1/{name}-{version}/artifacts/model"})[0]


def local_cluster() -> Cluster:
    return Cluster.objects.get_or_create(name="local", defaults={"kind": "local"})[0]


def kube_cluster(*, url: str = "http://127.0.0.1:9", name: str = "kind", token: str = "secret-token", admin=None,
                 team=None, env: str = "staging", namespace: str | None = None) -> Cluster:
    from apps.deployments.services import cluster_create
    from tests.factories import UserFactory

    admin = admin or UserFactory(username="cluster-admin", is_superuser=True, is_staff=True)
    cluster = Cluster.objects.filter(name=name).first() or cluster_create(
        actor=admin, name=name, kind="kubernetes", api_url=url, token=token)
    if team is not None:
        ClusterNamespace.objects.get_or_create(cluster=cluster, team=team, environment=environment(env),
                                               defaults={"namespace": namespace or f"{team.slug}-{env}"})
    return cluster


def gpu_quota(*, cluster, team, gpu_type: str = "a100-80gb", guaranteed: int = 4, capacity: int = 8):
    """A GPU type in the cluster's catalog and a guaranteed quota for the team (costs app services)."""
    from apps.costs.models import GpuType
    from apps.costs.services import gpu_type_create, quota_set
    from tests.factories import UserFactory

    admin = UserFactory(username="quota-admin", is_superuser=True, is_staff=True)
    gtype = GpuType.objects.filter(cluster=cluster, name=gpu_type).first() or gpu_type_create(
        actor=admin, cluster=cluster, name=gpu_type, memory_gb=80, capacity=capacity)
    return quota_set(actor=admin, team=team, gpu_type=gtype, guaranteed=guaranteed)


def deployment_in(team, status: str = "healthy", *, name: str = "fraud", cluster=None):
    """A deployment in a given state, built directly (for authorization and transition tests):
    r1 (stable before) and r2; healthy → r2 serves, r1 warm; awaiting_promotion/paused → r2 is a 10 % canary."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.deployments.models import Deployment, DeploymentRevision

    cluster = cluster or local_cluster()
    v1, v2 = model_version(team, version=1), model_version(team, version=2)
    env = environment("staging")
    deployment = Deployment.objects.create(team=team, name=name, model=v1.model, environment=env, cluster=cluster,
                                           namespace=f"{team.slug}-staging", status=status)
    canary = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100, "pause": False}]}
    resources = {"cpu": "500m", "memory": "512Mi", "gpu_type": "", "gpu_count": 0, "replicas": 1, "autoscaling": None}
    r1 = DeploymentRevision.objects.create(deployment=deployment, number=1, model_version=v1, status="superseded",
                                           strategy={"kind": "rolling"}, resources=resources, manifests=[{"kind": "LocalModelServer"}])
    r2 = DeploymentRevision.objects.create(deployment=deployment, number=2, model_version=v2, status="ready",
                                           strategy=canary, resources=resources, manifests=[{"kind": "LocalModelServer"}])
    if status in ("healthy", "degraded"):
        fields = dict(current_revision=r2, stable_revision=r2, warm_revision=r1, traffic={"2": 100},
                      warm_until=timezone.now() + timedelta(minutes=30))
    elif status in ("awaiting_promotion", "paused", "progressing"):
        r1.status = "ready"
        r1.save()
        fields = dict(current_revision=r2, stable_revision=r1, traffic={"1": 90, "2": 10}, rollout_step=0)
    else:
        fields = dict(current_revision=r2, stable_revision=r1, traffic={"1": 100})
    Deployment.objects.filter(pk=deployment.pk).update(**fields)
    deployment.refresh_from_db()
    return deployment
