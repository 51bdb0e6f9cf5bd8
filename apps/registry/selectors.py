"""Every read of registry data, always given the user (or an object already scoped to one)."""
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from apps.audit.models import AuditEvent
from apps.core.errors import InvalidInput, NotFound
from apps.teams.choices import Capability, Role
from apps.teams.selectors import membership_list, roles_for, scope_to_teams, team_ids_for

from .choices import AliasSource, Decision, PolicySource, PromotionKind, PromotionStatus, SyncStatus
from .gates import evaluate_gate
from .models import (AliasHolding, Approval, ApprovalPolicy, Environment, ModelVersion, PolicyFloor,
                     PromotionRequest, RegisteredModel, SyncRun)

DEFAULT_EXPIRY_HOURS = 72


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


def version_counts(*, model_ids: list[int]) -> dict[int, int]:
    """{model id: number of versions} for one page of models (an index-only count, not the versions)."""
    return dict(ModelVersion.objects.filter(model_id__in=model_ids).order_by().values("model_id")
                .annotate(n=Count("id")).values_list("model_id", "n"))


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
    """The team's own policy (without the floor); effective_policy is what a promotion must satisfy."""
    env = _environment(environment)
    if env is None or team_id is None:
        return None
    return ApprovalPolicy.objects.filter(team_id=team_id, environment=env).prefetch_related("gates").first()


def policy_floor_for(*, environment) -> PolicyFloor | None:
    env = _environment(environment)
    return None if env is None else PolicyFloor.objects.filter(environment=env).select_related("environment").first()


def policy_floor_list(*, user) -> QuerySet[PolicyFloor]:
    """Floors are platform-wide rules every signed-in user may read (team admins write policies against them)."""
    if not user.is_authenticated:
        return PolicyFloor.objects.none()
    return PolicyFloor.objects.select_related("environment")


def policy_floor_get(*, user, floor_id) -> PolicyFloor:
    try:
        return policy_floor_list(user=user).get(pk=floor_id)
    except (PolicyFloor.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Policy floor {floor_id} not found.")


def _gate_key(gate: dict) -> tuple:
    return (gate["kind"], gate.get("metric") or "", gate.get("op") or "", gate.get("threshold"), gate.get("name") or "")


def effective_policy(*, team_id, environment) -> dict | None:
    """The rules a promotion of the team's model into the environment must meet, as a snapshot dict.

    Floor and team policy merge: the higher approval count, the approver roles both allow, the floor's gates
    plus the team's (each gate says where it comes from). `source` is "team" when the team has a policy, else
    "floor"; `raised_by_floor` names what the floor made stricter than the team's own policy (a floor raised
    after the policy was written). None when neither exists: nothing to approve, unless the environment is
    protected (callers refuse then; see environment_protected).
    """
    env = _environment(environment)
    floor = policy_floor_for(environment=env) if env is not None else None
    team_policy = policy_for(team_id=team_id, environment=env)
    if floor is None and team_policy is None:
        return None
    team_gates = [g.as_dict() for g in team_policy.gates.all()] if team_policy else []
    floor_gates = list(floor.gates) if floor else []
    gates = [{**g, "source": "floor"} for g in floor_gates]
    seen = {_gate_key(g) for g in floor_gates}
    gates += [{**g, "source": "team"} for g in team_gates if _gate_key(g) not in seen]
    if team_policy is None:
        return {"source": PolicySource.FLOOR, "approvals_required": floor.approvals_required,
                "approver_roles": sorted(floor.approver_roles), "expiry_hours": DEFAULT_EXPIRY_HOURS,
                "gates": gates, "floor": floor.as_dict(), "raised_by_floor": []}
    approvals, roles = team_policy.approvals_required, sorted(team_policy.approver_roles)
    raised = []
    if floor is not None:
        if floor.approvals_required > approvals:
            approvals = floor.approvals_required
            raised.append("approvals_required")
        allowed = [r for r in roles if r in floor.approver_roles]
        if allowed != roles:
            roles = allowed
            raised.append("approver_roles")
        if any(_gate_key(g) not in {_gate_key(t) for t in team_gates} for g in floor_gates):
            raised.append("gates")
    return {"source": PolicySource.TEAM, "approvals_required": approvals, "approver_roles": roles,
            "expiry_hours": team_policy.expiry_hours, "gates": gates, "team_policy_id": team_policy.pk,
            "floor": floor.as_dict() if floor else None, "raised_by_floor": raised}


def environment_protected(*, environment) -> bool:
    floor = policy_floor_for(environment=environment)
    return bool(floor and floor.protected)


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
    """Quality gates of the effective policy (floor and team) for the version's team and environment, evaluated now.

    One dict per gate: kind, metric, value, op, threshold, passed, message. No policy → no gates → [].
    """
    env = _environment(environment)
    policy = effective_policy(team_id=version.model.team_id, environment=env)
    if policy is None:
        return []
    holder = alias_holder(model=version.model, alias=env.name)
    return [evaluate_gate(g, version=version, holder=holder) for g in policy["gates"]]


def version_approved_for(*, version: ModelVersion, environment: str) -> bool:
    """True when the version holds the environment's alias through a completed (published) approved promotion,
    or when neither a floor nor the team's policy covers that environment (nothing to approve). A protected
    environment always needs the published promotion: "no policy" there is never "approved"."""
    if (effective_policy(team_id=version.model.team_id, environment=environment) is None
            and not environment_protected(environment=environment)):
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


@dataclass
class PromotionProgress:
    """Where a request's decision stands, in people: "1 of 2" approvals, who may still approve, who decided."""

    approvals: int
    required: int
    approver_roles: list[str]
    approved_by: list[str] = field(default_factory=list)
    # Open requests: the team's people the policy lets approve who haven't decided (not the requester, not the
    # version's creator, no service account), as "name (role)".
    still_to_approve: list[str] = field(default_factory=list)
    # Closed requests: who decided, in words ("bob, carol", "dave (rejected)", "nobody: expired").
    decided_by: str = ""

    @property
    def missing(self) -> int:
        return max(self.required - self.approvals, 0)


def promotion_progress(*, user, requests: list[PromotionRequest]) -> list[PromotionRequest]:
    """Set `progress` (a PromotionProgress) on each request, in three queries whatever their number."""
    ids = [r.pk for r in requests]
    decisions: dict[int, list] = {}
    for approval in Approval.objects.filter(request_id__in=ids).select_related("user").order_by("created_at"):
        decisions.setdefault(approval.request_id, []).append(approval)
    open_requests = [r for r in requests if r.status == PromotionStatus.REQUESTED]
    people: dict[int, list] = {}
    if open_requests:
        for m in (membership_list(user=user).filter(team_id__in={r.team_id for r in open_requests},
                                                   user__is_active=True, user__service_account__isnull=True)
                  .select_related("user").order_by("user__username")):
            people.setdefault(m.team_id, []).append(m)
    cancelled_ids = [str(r.pk) for r in requests if r.status == PromotionStatus.CANCELLED]
    cancelled_by = dict(AuditEvent.objects.filter(
        object_type=PromotionRequest._meta.label_lower, object_id__in=cancelled_ids,
        action="registry.promotion.cancel").values_list("object_id", "actor_label")) if cancelled_ids else {}
    role_label = dict(Role.choices)
    for r in requests:
        mine = decisions.get(r.pk, [])
        approved_by = [a.user.username for a in mine if a.decision == Decision.APPROVE]
        roles = (r.policy or {}).get("approver_roles") or []
        progress = PromotionProgress(approvals=len(approved_by), required=(r.policy or {}).get("approvals_required", 0),
                                     approver_roles=[role_label.get(x, x) for x in roles], approved_by=approved_by)
        if r.status == PromotionStatus.REQUESTED:
            decided = {a.user_id for a in mine}
            progress.still_to_approve = [
                f"{m.user.username} ({role_label.get(m.role, m.role)})" for m in people.get(r.team_id, [])
                if m.role in roles and m.user_id not in decided and m.user_id != r.requested_by_id
                and m.user.username != r.version.creator]
        elif r.status == PromotionStatus.REJECTED:
            progress.decided_by = ", ".join(f"{a.user.username} (rejected)" for a in mine
                                            if a.decision == Decision.REJECT)
        elif r.status == PromotionStatus.CANCELLED:
            progress.decided_by = f"{cancelled_by.get(str(r.pk), 'unknown')} (cancelled)"
        elif r.status == PromotionStatus.EXPIRED:
            progress.decided_by = "nobody: expired"
        elif approved_by:
            progress.decided_by = ", ".join(approved_by)
        elif r.override_by_id:
            progress.decided_by = f"{r.override_by.username} (override; no approval required)"
        else:
            progress.decided_by = "no approval required" if r.kind == PromotionKind.PROMOTE else r.requested_by.username
        r.progress = progress
    return requests


def alias_history(*, user, model: RegisteredModel, alias: str | None = None) -> QuerySet[AliasHolding]:
    qs = AliasHolding.objects.filter(model=model).select_related("version", "request", "model")
    if alias:
        qs = qs.filter(alias=alias)
    return qs.order_by("alias", "-since", "-id")


def sync_run_list(*, user) -> QuerySet[SyncRun]:
    return scope_to_teams(SyncRun.objects.select_related("team", "requested_by"), user=user)


def sync_runs_needing_attention() -> QuerySet[SyncRun]:
    """Passes the runner gave up on since the last pass that succeeded (a later success makes them moot: the
    registry is in sync again). Status and error only, no model names: shown to every signed-in user, as the
    last pass is."""
    last_success = (SyncRun.objects.filter(status=SyncStatus.SUCCEEDED).order_by("-started_at")
                    .values_list("started_at", flat=True).first())
    runs = SyncRun.objects.filter(status=SyncStatus.NEEDS_ATTENTION)
    return runs.filter(started_at__gt=last_success) if last_success else runs


def sync_run_warnings(*, run: SyncRun, user) -> list[dict]:
    """The run's team-tag warnings about models of the user's teams."""
    ids = team_ids_for(user=user)
    if ids is None:
        return list(run.warnings)
    owned = set(RegisteredModel.objects.filter(team__in=ids, pk__in=[w["model_id"] for w in run.warnings])
                .values_list("pk", flat=True))
    return [w for w in run.warnings if w["model_id"] in owned]


def sync_run_get(*, user, run_id) -> SyncRun:
    try:
        return sync_run_list(user=user).get(pk=run_id)
    except (SyncRun.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Sync run {run_id} not found.")
