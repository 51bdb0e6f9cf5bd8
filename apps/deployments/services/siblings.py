"""One deployment spec on several clusters (regions): a sibling is a deployment of its own on another
cluster, created from the serving revision's model version and resources and linked to the deployment it
was copied from, so the deployment page lists every cluster's split side by side. Each sibling then rolls
out on its own (its cluster's mechanism, its own approvals checks, quota and rollbacks)."""
import re

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from ..choices import StrategyKind
from ..models import Cluster, Deployment
from .deployments import NAME_RE, deployment_create


def sibling_name(*, deployment: Deployment, cluster: Cluster) -> str:
    """`<name>-<cluster>`, shortened to a valid deployment name."""
    suffix = re.sub(r"[^a-z0-9-]+", "-", cluster.name.lower()).strip("-")
    return f"{deployment.name[:39 - min(len(suffix), 20)]}-{suffix[:20]}".strip("-")


@transaction.atomic
def deployment_replicate(*, actor, deployment: Deployment, cluster: Cluster, name: str = "") -> Deployment:
    """Deploy the same spec (serving model version, resources) to another cluster as a linked sibling."""
    require_capability(user=actor, team=deployment.team, capability=Capability.OPERATE)
    root = deployment.sibling_of or deployment
    group = [root, *root.siblings.all()]
    taken = {d.cluster_id: d for d in group}
    if cluster.pk in taken:
        raise Conflict(f"{taken[cluster.pk].name} already serves this spec on cluster {cluster.name}.",
                       fields={"cluster": ["Already has a sibling there."]})
    source = deployment.stable_revision or deployment.current_revision
    if source is None:
        raise Conflict(f"Deployment {deployment.name} has no revision to copy yet.")
    name = name or sibling_name(deployment=root, cluster=cluster)
    if not NAME_RE.match(name):
        raise InvalidInput("Name must be lowercase letters, digits and dashes (at most 40), starting with a letter.",
                           fields={"name": ["Invalid name."]})
    workload = source.rollback_of or source
    # The first revision on a new deployment takes all traffic whatever the strategy: rolling says so.
    sibling = deployment_create(actor=actor, team=deployment.team, name=name, model_version=workload.model_version,
                                environment=deployment.environment, cluster=cluster, resources=workload.resources,
                                strategy={"kind": StrategyKind.ROLLING})
    Deployment.objects.filter(pk=sibling.pk).update(sibling_of=root)
    sibling.sibling_of = root
    audit_record(actor=actor, action="deployment.replicate", target=sibling, team=deployment.team,
                 changes={"sibling_of": [None, root.name], "cluster": [deployment.cluster.name, cluster.name],
                          "revision_copied": [None, workload.number]})
    return sibling


def deployment_siblings(*, deployment: Deployment) -> list[Deployment]:
    """The other deployments of the same spec (same team, other clusters), the original first."""
    root = deployment.sibling_of or deployment
    group = [root, *root.siblings.select_related("cluster").order_by("cluster__name")]
    return [d for d in group if d.pk != deployment.pk]
