"""Wizard drafts: save a step, submit as a deployment."""

from django.db import transaction

from apps.core.errors import InvalidInput
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from ..models import Cluster, Deployment, DeploymentDraft
from .deployments import deployment_create

DRAFT_FIELDS = {"name", "model_version", "environment", "cluster", "namespace", "resources", "strategy"}


@transaction.atomic
def draft_save(*, actor, team, data: dict, step: int, draft: DeploymentDraft | None = None) -> DeploymentDraft:
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    unknown = set(data) - DRAFT_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown draft fields: {', '.join(sorted(unknown))}.")
    if draft is None:
        draft = DeploymentDraft(team=team, created_by=actor)
    draft.data = {**(draft.data or {}), **data}
    draft.step = max(1, min(step, 5))
    draft.save()
    return draft


def draft_submit(*, actor, draft: DeploymentDraft) -> Deployment:
    from apps.registry.models import Environment, ModelVersion

    data = draft.data
    try:
        version = ModelVersion.objects.select_related("model").get(pk=data.get("model_version"))
        environment = Environment.objects.get(name=data.get("environment"))
        cluster = Cluster.objects.get(name=data.get("cluster"))
    except (ModelVersion.DoesNotExist, Environment.DoesNotExist, Cluster.DoesNotExist, ValueError, TypeError):
        raise InvalidInput("The draft is missing its model version, environment or cluster; go back to steps 1-2.")
    with transaction.atomic():
        deployment = deployment_create(actor=actor, team=draft.team, name=data.get("name", ""), model_version=version,
                                       environment=environment, cluster=cluster, namespace=data.get("namespace") or None,
                                       resources=data.get("resources"), strategy=data.get("strategy"))
        DeploymentDraft.objects.filter(pk=draft.pk).update(submitted_deployment=deployment)
    return deployment
