"""Approval policies of teams and the platform's policy floors: create, update, delete, never below the floor."""

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.teams.choices import Capability, Role
from apps.teams.models import Team
from apps.teams.selectors import require_capability, require_platform_admin

from ..choices import GateKind, GateOp
from ..models import ApprovalPolicy, PolicyFloor, QualityGate
from ..selectors import environment_get, policy_floor_for


def _clean_gates(gates: list[dict]) -> list[dict]:
    cleaned = []
    for i, gate in enumerate(gates or []):
        kind = gate.get("kind")
        where = f"gates[{i}]"
        if kind not in GateKind.values:
            raise InvalidInput(f"{where}: unknown gate kind '{kind}'. Use one of: {', '.join(GateKind.values)}.",
                               fields={"gates": [f"{where}.kind unknown"]})
        if kind in (GateKind.METRIC, GateKind.NO_REGRESSION):
            if not gate.get("metric"):
                raise InvalidInput(f"{where}: a {kind} gate needs a metric.", fields={"gates": [f"{where}.metric"]})
            if gate.get("op") not in GateOp.values:
                raise InvalidInput(f"{where}: op must be one of {', '.join(GateOp.values)}.",
                                   fields={"gates": [f"{where}.op"]})
            if gate.get("threshold") is None and kind == GateKind.METRIC:
                raise InvalidInput(f"{where}: a metric gate needs a threshold.", fields={"gates": [f"{where}.threshold"]})
        elif not gate.get("name"):
            raise InvalidInput(f"{where}: a {kind} gate needs the name of the tag or artifact.",
                               fields={"gates": [f"{where}.name"]})
        cleaned.append({"kind": kind, "metric": gate.get("metric") or "", "op": gate.get("op") or "",
                        "threshold": gate.get("threshold") if gate.get("threshold") is not None else (
                            0.0 if kind == GateKind.NO_REGRESSION else None),
                        "name": gate.get("name") or ""})
    return cleaned


def _clean_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in Role.values]
    if unknown or not roles:
        raise InvalidInput(f"approver_roles must name at least one of: {', '.join(Role.values)}"
                           + (f" (unknown: {', '.join(unknown)})." if unknown else "."),
                           fields={"approver_roles": ["unknown role" if unknown else "required"]})
    if Role.VIEWER in roles:
        raise InvalidInput("Viewers can't approve; remove 'viewer' from approver_roles.",
                           fields={"approver_roles": ["viewer can't approve"]})
    return sorted(set(roles))


def _policy_state(policy: ApprovalPolicy) -> dict:
    return {"approvals_required": policy.approvals_required, "approver_roles": policy.approver_roles,
            "expiry_hours": policy.expiry_hours, "gates": [g.as_dict() for g in policy.gates.all()]}


def _check_within_floor(*, env, approvals_required: int, approver_roles: list[str]) -> None:
    """A team policy may tighten the platform floor, never loosen it (the floor's gates always apply)."""
    floor = policy_floor_for(environment=env)
    if floor is None:
        return
    rule = (f"The platform floor for {env.name} requires at least {floor.approvals_required} approval(s) from "
            f"{', '.join(floor.approver_roles)}")
    if approvals_required < floor.approvals_required:
        raise InvalidInput(f"{rule}; a team policy may tighten the floor, never loosen it "
                           f"(approvals_required {approvals_required} < {floor.approvals_required}).",
                           fields={"approvals_required": [f"at least {floor.approvals_required} (platform floor)"]},
                           code="below_floor")
    extra = sorted(set(approver_roles) - set(floor.approver_roles))
    if extra:
        raise InvalidInput(f"{rule}; a team policy may not let {', '.join(extra)} approve.",
                           fields={"approver_roles": [f"only {', '.join(floor.approver_roles)} (platform floor)"]},
                           code="below_floor")


def _weakened(before: dict, after: dict) -> list[str]:
    """What a policy change loosens (fewer approvals, more approver roles, gates dropped, longer expiry)."""
    loosened = []
    if after["approvals_required"] < before["approvals_required"]:
        loosened.append("approvals_required")
    if set(after["approver_roles"]) - set(before["approver_roles"]):
        loosened.append("approver_roles")
    if any(g not in after["gates"] for g in before["gates"]):
        loosened.append("gates")
    if after["expiry_hours"] > before["expiry_hours"]:
        loosened.append("expiry_hours")
    return loosened


@transaction.atomic
def policy_create(*, actor, team: Team, environment: str, approvals_required: int = 1,
                  approver_roles: list[str] | None = None, expiry_hours: int = 72,
                  gates: list[dict] | None = None) -> ApprovalPolicy:
    require_capability(user=actor, team=team, capability=Capability.ADMINISTER)
    env = environment_get(name=environment)
    floor = policy_floor_for(environment=env)
    default_roles = floor.approver_roles if floor else [Role.APPROVER, Role.TEAM_ADMIN]
    roles = _clean_roles(approver_roles or default_roles)
    cleaned = _clean_gates(gates or [])
    _check_within_floor(env=env, approvals_required=approvals_required, approver_roles=roles)
    if ApprovalPolicy.objects.filter(team=team, environment=env).exists():
        raise Conflict(f"Team '{team.slug}' already has a policy for {env.name}; edit that one.")
    policy = ApprovalPolicy.objects.create(team=team, environment=env, approvals_required=approvals_required,
                                           approver_roles=roles, expiry_hours=expiry_hours)
    for gate in cleaned:
        QualityGate.objects.create(policy=policy, **gate)
    audit_record(actor=actor, action="registry.policy.create", target=policy, team=team,
                 changes={"environment": [None, env.name], **{k: [None, v] for k, v in _policy_state(policy).items()}})
    return policy


@transaction.atomic
def policy_update(*, actor, policy: ApprovalPolicy, **changes) -> ApprovalPolicy:
    """Edit a team policy within the floor; a change that loosens it is audited as `registry.policy.weaken`."""
    require_capability(user=actor, team=policy.team, capability=Capability.ADMINISTER)
    policy = ApprovalPolicy.objects.select_for_update().select_related("environment").get(pk=policy.pk)
    before = _policy_state(policy)
    if "approver_roles" in changes:
        policy.approver_roles = _clean_roles(changes["approver_roles"])
    for field in ("approvals_required", "expiry_hours"):
        if field in changes:
            setattr(policy, field, changes[field])
    cleaned = _clean_gates(changes["gates"]) if "gates" in changes else None
    _check_within_floor(env=policy.environment, approvals_required=policy.approvals_required,
                        approver_roles=policy.approver_roles)
    policy.save()
    if cleaned is not None:
        policy.gates.all().delete()
        for gate in cleaned:
            QualityGate.objects.create(policy=policy, **gate)
    after = _policy_state(policy)
    loosened = _weakened(before, after)
    audit_record(actor=actor, action="registry.policy.weaken" if loosened else "registry.policy.update",
                 target=policy, team=policy.team,
                 changes={k: [before[k], after[k]] for k in after if before[k] != after[k]}
                 | ({"loosened": [None, loosened]} if loosened else {}))
    return policy


@transaction.atomic
def policy_delete(*, actor, policy: ApprovalPolicy) -> None:
    """Delete a team policy (audited with what it was). In a protected environment the team's promotions there
    are refused until it has a policy again; elsewhere the floor alone (if any) applies."""
    require_capability(user=actor, team=policy.team, capability=Capability.ADMINISTER)
    audit_record(actor=actor, action="registry.policy.delete", target=policy, team=policy.team,
                 changes={"environment": [policy.environment.name, None], **{k: [v, None] for k, v in
                                                                             _policy_state(policy).items()}})
    policy.delete()


def _floor_state(floor: PolicyFloor) -> dict:
    return {k: v for k, v in floor.as_dict().items() if k != "environment"}


def _clean_floor(*, environment, protected: bool, approvals_required: int) -> None:
    if protected and approvals_required < 1:
        raise InvalidInput(f"{environment.name} is protected: its floor needs at least one approval "
                           f"(approvals_required >= 1), or make it unprotected.",
                           fields={"approvals_required": ["at least 1 in a protected environment"]})


@transaction.atomic
def policy_floor_create(*, actor, environment: str, protected: bool = False, approvals_required: int = 1,
                        approver_roles: list[str] | None = None, gates: list[dict] | None = None) -> PolicyFloor:
    require_platform_admin(user=actor)
    env = environment_get(name=environment)
    roles = _clean_roles(approver_roles or [Role.APPROVER, Role.TEAM_ADMIN])
    cleaned = _clean_gates(gates or [])
    _clean_floor(environment=env, protected=protected, approvals_required=approvals_required)
    if PolicyFloor.objects.filter(environment=env).exists():
        raise Conflict(f"{env.name} already has a policy floor; edit that one.")
    floor = PolicyFloor.objects.create(environment=env, protected=protected, approvals_required=approvals_required,
                                       approver_roles=roles, gates=cleaned)
    audit_record(actor=actor, action="registry.floor.create", target=floor,
                 changes={"environment": [None, env.name], **{k: [None, v] for k, v in _floor_state(floor).items()}})
    return floor


@transaction.atomic
def policy_floor_update(*, actor, floor: PolicyFloor, **changes) -> PolicyFloor:
    """Change a floor. Existing team policies are not rewritten: the effective policy takes the stricter of the
    two at request time, and the request records that the floor raised it."""
    require_platform_admin(user=actor)
    floor = PolicyFloor.objects.select_for_update().select_related("environment").get(pk=floor.pk)
    before = _floor_state(floor)
    if "approver_roles" in changes:
        floor.approver_roles = _clean_roles(changes["approver_roles"])
    if "gates" in changes:
        floor.gates = _clean_gates(changes["gates"])
    for field in ("protected", "approvals_required"):
        if field in changes:
            setattr(floor, field, changes[field])
    _clean_floor(environment=floor.environment, protected=floor.protected, approvals_required=floor.approvals_required)
    floor.save()
    after = _floor_state(floor)
    audit_record(actor=actor, action="registry.floor.update", target=floor,
                 changes={k: [before[k], after[k]] for k in after if before[k] != after[k]})
    return floor
