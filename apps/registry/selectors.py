"""Every read of registry data, always given the user (or an object already scoped to one)."""
from django.db.models import Q, QuerySet

from apps.core.errors import InvalidInput, NotFound
from apps.teams.choices import Capability
from apps.teams.selectors import roles_for, scope_to_teams, team_ids_for

from .choices import AliasSource, PromotionKind, PromotionStatus
from .gates import evaluate_gate
from .models import (AliasHolding, ApprovalPolicy, Environment, ModelVersion, PromotionRequest, RegisteredModel,
                     SyncRun)


def _is_team_admin_somewhere(user) -> bool:
    return bool(team_ids_for(user=user, capability=Capability.ADMINISTER))


def model_list(*, user, filters: dict | None = None) -> QuerySet[RegisteredModel]:
    """Models of the user's teams; team admins also see models nobody owns yet (to assign them)."""
    qs = RegisteredModel.objects.select_related("team")
    ids = team_ids_for(user=user)
    if ids is not None:
        condition = Q(team__in=ids)
        if _is_team_admin_somewhere(user):
            condition |= Q(team__isnull=True)
        qs = qs.filter(condition)
    filters = filters or {}
    if filters.get("search"):
        qs = qs.filter(name__icontains=filters["search"])
    if filters.get("team"):
        qs = qs.filter(team__slug=filters["team"])
    if filters.get("presence"):
        qs = qs.filter(presence=filters["presence"])
    return qs


def model_get(*, user, model_id) -> RegisteredModel:
    try:
        return model_list(user=user).get(pk=model_id)
    except (RegisteredModel.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Registered model {model_id} not found.")


def model_version_list(*, user, filters: dict | None = None) -> QuerySet[ModelVersion]:
    """Versions of models of the user's teams. filters: team (slug), model (id), model_name, search, alias."""
    # team and model_name are the version's own copies (see ModelVersion): one index serves scope, filter and order.
    qs = scope_to_teams(ModelVersion.objects.select_related("model", "model__team"), user=user, field="team")
    filters = filters or {}
    if filters.get("team"):
        qs = qs.filter(team__slug=filters["team"])
    if filters.get("model"):
        qs = qs.filter(model_id=filters["model"])
    if filters.get("model_name"):
        qs = qs.filter(model_name=filters["model_name"])
    if filters.get("search"):
        qs = qs.filter(model_name__icontains=filters["search"])
    if filters.get("alias"):
        qs = qs.filter(aliases__contains=[filters["alias"]])
    return qs


def model_version_get(*, user, version_id) -> ModelVersion:
    try:
        return model_version_list(user=user).get(pk=version_id)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Model version {version_id} not found.")


def environment_get(*, name: str) -> Environment:
    try:
        return Environment.objects.get(name=name)
    except Environment.DoesNotExist:
        known = ", ".join(Environment.objects.values_list("name", flat=True))
        raise InvalidInput(f"Unknown environment '{name}'. Known environments: {known}.",
                           fields={"environment": ["unknown environment"]})


def _environment(environment) -> Environment | None:
    if isinstance(environment, Environment):
        return environment
    return Environment.objects.filter(name=environment).first()


def policy_for(*, team_id, environment) -> ApprovalPolicy | None:
    env = _environment(environment)
    if env is None or team_id is None:
        return None
    return ApprovalPolicy.objects.filter(team_id=team_id, environment=env).prefetch_related("gates").first()


def policy_list(*, user) -> QuerySet[ApprovalPolicy]:
    return scope_to_teams(ApprovalPolicy.objects.select_related("team", "environment").prefetch_related("gates"),
                          user=user)


def policy_get(*, user, policy_id) -> ApprovalPolicy:
    try:
        return policy_list(user=user).get(pk=policy_id)
    except (ApprovalPolicy.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Approval policy {policy_id} not found.")


def alias_holder(*, model, alias: str) -> ModelVersion | None:
    holding = AliasHolding.objects.filter(model=model, alias=alias, until__isnull=True).select_related("version").first()
    if holding is not None:
        return holding.version
    return model.versions.filter(aliases__contains=[alias]).first()


def gate_results(*, version: ModelVersion, environment) -> list[dict]:
    """Quality gates of the policy for the version's team and environment, evaluated now.

    One dict per gate: kind, metric, value, op, threshold, passed, message. No policy → no gates → [].
    """
    env = _environment(environment)
    policy = policy_for(team_id=version.model.team_id, environment=env)
    if policy is None:
        return []
    holder = alias_holder(model=version.model, alias=env.name)
    return [evaluate_gate(g.as_dict(), version=version, holder=holder) for g in policy.gates.all()]


def version_approved_for(*, version: ModelVersion, environment: str) -> bool:
    """True when the version holds the environment's alias through a completed (published) approved promotion,
    or when the version's team has no approval policy for that environment (nothing to approve)."""
    if policy_for(team_id=version.model.team_id, environment=environment) is None:
        return True
    name = environment.name if isinstance(environment, Environment) else environment
    holding = (AliasHolding.objects.filter(model_id=version.model_id, alias=name, until__isnull=True,
                                           source=AliasSource.CONTROL_PLANE, version=version)
               .select_related("request").first())
    return bool(holding and holding.request and holding.request.status == PromotionStatus.PUBLISHED
                and holding.request.kind == PromotionKind.PROMOTE)


def promotion_list(*, user, filters: dict | None = None) -> QuerySet[PromotionRequest]:
    qs = scope_to_teams(
        PromotionRequest.objects.select_related("team", "version", "version__model", "environment", "requested_by"),
        user=user)
    filters = filters or {}
    for key in ("status", "environment__name", "version_id", "version__model_id"):
        if filters.get(key):
            qs = qs.filter(**{key: filters[key]})
    return qs


def promotion_get(*, user, request_id) -> PromotionRequest:
    try:
        return promotion_list(user=user).get(pk=request_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Promotion request {request_id} not found.")


def promotion_inbox(*, user) -> QuerySet[PromotionRequest]:
    """Open requests the user could approve now: their role is allowed by the policy, they are not the
    requester or the version's creator, and they haven't decided yet."""
    qs = scope_to_teams(promotion_list(user=user).filter(status=PromotionStatus.REQUESTED), user=user,
                        capability=Capability.APPROVE)
    qs = qs.exclude(requested_by=user).exclude(version__creator=user.get_username()).exclude(approvals__user=user)
    if user.is_superuser:
        return qs
    roles = roles_for(user=user)
    allowed = [r.pk for r in qs if roles.get(r.team_id) in (r.policy.get("approver_roles") or [])]
    return qs.filter(pk__in=allowed)


def alias_history(*, user, model: RegisteredModel, alias: str | None = None) -> QuerySet[AliasHolding]:
    qs = AliasHolding.objects.filter(model=model).select_related("version", "request", "model")
    if alias:
        qs = qs.filter(alias=alias)
    return qs.order_by("alias", "-since", "-id")


def sync_run_list(*, user) -> QuerySet[SyncRun]:
    return scope_to_teams(SyncRun.objects.select_related("team", "requested_by"), user=user)


def sync_run_get(*, user, run_id) -> SyncRun:
    try:
        return sync_run_list(user=user).get(pk=run_id)
    except (SyncRun.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Sync run {run_id} not found.")
