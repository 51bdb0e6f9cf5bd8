"""Matrix cases for the deployments routes (clusters, namespaces, deployments, revisions, jobs)."""
from apps.deployments.models import ClusterNamespace, Job
from tests.deployments.factories import deployment_in, environment, kube_cluster, local_cluster

from .base import Case, _archived


def _namespace(team, actor):
    return ClusterNamespace.objects.create(cluster=local_cluster(), team=team, environment=environment("staging"),
                                           namespace=f"{team.slug}-staging")


def _job(team, actor, status="running"):
    cluster = kube_cluster(team=team)
    return Job.objects.create(team=team, cluster=cluster, namespace=f"{team.slug}-staging", name=f"{team.slug}-job",
                              image="python:3.11", command=["true"], status=status)


def _with_second_cluster(team, actor):
    """A deployment and another (local) cluster to deploy its spec to."""
    from apps.deployments.models import Cluster

    Cluster.objects.get_or_create(name="local-b", defaults={"kind": "local"})
    return deployment_in(team)


def _create_body(team, obj):
    return {"team": team.slug, "name": "fresh", "model_version": obj.current_revision.model_version_id,
            "environment": "staging", "cluster": "local", "resources": {"cpu": "250m", "memory": "256Mi"},
            "strategy": {"kind": "rolling"}}


CASES: dict[str, Case] = {
    "api:deployments-cluster-list": Case(
        make=lambda team, actor: local_cluster(),
        body={"post": lambda team, obj: {"name": "edge", "kind": "kubernetes", "api_url": "http://127.0.0.1:9",
                                         "token": "sa-token"}},
    ),
    "api:deployments-cluster-detail": Case(make=lambda team, actor: local_cluster()),
    "api:deployments-cluster-archive": Case(make=lambda team, actor: local_cluster(), success={"post": 200}),
    "api:deployments-cluster-restore": Case(make=lambda team, actor: _archived(local_cluster()), success={"post": 200}),
    "api:deployments-cluster-credentials": Case(
        make=lambda team, actor: kube_cluster(), success={"post": 200},
        body={"post": lambda team, obj: {"token": "rotated-token"}},
    ),
    "api:deployments-cluster-test-connection": Case(make=lambda team, actor: local_cluster(), success={"post": 200}),
    "api:deployments-cluster-gateway": Case(make=lambda team, actor: kube_cluster(), success={"post": 200},
                                            body={"post": lambda team, obj: {"gateway": "gateways/public"}}),
    "api:deployments-namespace-list": Case(
        make=_namespace,
        body={"post": lambda team, obj: {"cluster": "local", "team": team.slug, "environment": "production",
                                         "namespace": f"{team.slug}-prod"}},
    ),
    "api:deployments-namespace-detail": Case(make=_namespace),
    "api:deployments-deployment-list": Case(make=lambda team, actor: deployment_in(team), body={"post": _create_body}),
    "api:deployments-deployment-detail": Case(make=lambda team, actor: deployment_in(team)),
    "api:deployments-deployment-preview": Case(make=lambda team, actor: deployment_in(team), success={"post": 200},
                                               body={"post": _create_body}),
    "api:deployments-deployment-deploy": Case(
        make=lambda team, actor: deployment_in(team),
        body={"post": lambda team, obj: {"model_version": obj.current_revision.model_version_id,
                                         "strategy": {"kind": "rolling"}}},
    ),
    "api:deployments-deployment-promote": Case(make=lambda team, actor: deployment_in(team, "awaiting_promotion"),
                                               success={"post": 200}),
    "api:deployments-deployment-pause": Case(make=lambda team, actor: deployment_in(team, "awaiting_promotion"),
                                             success={"post": 200}),
    "api:deployments-deployment-resume": Case(make=lambda team, actor: deployment_in(team, "paused"),
                                              success={"post": 200}),
    "api:deployments-deployment-abort": Case(make=lambda team, actor: deployment_in(team, "awaiting_promotion"),
                                             success={"post": 200}),
    "api:deployments-deployment-rollback": Case(make=lambda team, actor: deployment_in(team),
                                                body={"post": lambda team, obj: {"reason": "matrix"}}),
    "api:deployments-deployment-replicate": Case(make=_with_second_cluster,
                                                 body={"post": lambda team, obj: {"cluster": "local-b"}}),
    "api:deployments-deployment-reapply": Case(make=lambda team, actor: deployment_in(team, "degraded")),
    "api:deployments-deployment-teardown": Case(make=lambda team, actor: deployment_in(team), success={"post": 200}),
    "api:deployments-deployment-retry": Case(make=lambda team, actor: deployment_in(team, "needs_attention"),
                                             success={"post": 200}),
    "api:deployments-deployment-revisions": Case(make=lambda team, actor: deployment_in(team)),
    "api:deployments-revision-list": Case(make=lambda team, actor: deployment_in(team).current_revision),
    "api:deployments-revision-detail": Case(make=lambda team, actor: deployment_in(team).current_revision),
    "api:deployments-job-list": Case(
        make=_job,
        body={"post": lambda team, obj: {"team": team.slug, "cluster": obj.cluster.name, "image": "python:3.11",
                                         "command": ["python", "-c", "print(1)"]}},
    ),
    "api:deployments-job-detail": Case(make=_job),
    "api:deployments-job-retry": Case(make=lambda team, actor: _job(team, actor, status="failed"), success={"post": 200}),
}
