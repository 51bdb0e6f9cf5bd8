"""Every read of the deployments app; always given the user (tenancy fails closed)."""
from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.teams.selectors import require_platform_admin, scope_to_teams

from .models import Cluster, ClusterNamespace, Deployment, DeploymentDraft, DeploymentRevision, Job


def deployment_list(*, user, filters: dict | None = None) -> QuerySet[Deployment]:
    qs = Deployment.objects.select_related("team", "model", "environment", "cluster", "current_revision",
                                           "stable_revision__model_version", "warm_revision")
    filters = filters or {}
    if filters.get("team"):
        qs = qs.filter(team__slug=filters["team"])
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("model"):
        qs = qs.filter(model__name=filters["model"])
    return scope_to_teams(qs, user=user)


def deployment_get(*, user, deployment_id) -> Deployment:
    try:
        return deployment_list(user=user).get(pk=deployment_id)
    except (Deployment.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Deployment {deployment_id} not found.")


def revision_list(*, user, deployment_id=None) -> QuerySet[DeploymentRevision]:
    qs = DeploymentRevision.objects.select_related("deployment__team", "model_version__model", "rollback_of")
    if deployment_id:
        qs = qs.filter(deployment_id=deployment_id)
    return scope_to_teams(qs, user=user, field="deployment__team")


def cluster_list(*, user) -> QuerySet[Cluster]:
    """Cluster administration (credentials status, checks) is for platform admins."""
    require_platform_admin(user=user)
    return Cluster.objects.all()


def deploy_targets(*, user, team) -> list[dict]:
    """What the wizard offers a team: every cluster, with the namespace the team uses there per environment."""
    rows = ClusterNamespace.objects.filter(team=team).select_related("environment")
    by_cluster: dict[int, dict] = {}
    for row in rows:
        by_cluster.setdefault(row.cluster_id, {})[row.environment.name] = row.namespace
    return [{"cluster": c, "namespaces": by_cluster.get(c.pk, {})} for c in Cluster.objects.all()]


def namespace_list(*, user) -> QuerySet[ClusterNamespace]:
    return scope_to_teams(ClusterNamespace.objects.select_related("cluster", "team", "environment"), user=user)


def job_list(*, user) -> QuerySet[Job]:
    return scope_to_teams(Job.objects.select_related("team", "cluster"), user=user)


def draft_list(*, user, team=None) -> QuerySet[DeploymentDraft]:
    qs = DeploymentDraft.objects.filter(created_by=user, submitted_deployment__isnull=True) \
        if user.is_authenticated else DeploymentDraft.objects.none()
    return qs.filter(team=team) if team is not None else qs


def routed_workloads(deployment: Deployment) -> dict[str, int]:
    """{revision number: the revision whose workload it runs} for each routed or mirrored revision that runs an
    earlier one's (a rollback r3 of r1 serves on r1's warm workload), so "r3 100 %" can say "runs r1's"."""
    from .drivers import workload_numbers

    routed = {int(k) for k in (deployment.traffic or {})}
    if deployment.shadow:
        routed.add(int(deployment.shadow["revision"]))
    runs = workload_numbers(deployment.revisions.only("pk", "number", "rollback_of_id"))
    return {str(n): runs[n] for n in sorted(routed) if runs.get(n, n) != n}
