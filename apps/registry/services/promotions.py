"""The promotion workflow: request, approve, reject, cancel, override, revoke an alias, publish to MLflow."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core import runner
from apps.core.errors import Conflict, DomainError, Forbidden, InvalidInput
from apps.core.runner import PermanentFailure
from apps.outbox.services import outbox_enqueue
from apps.teams.choices import Capability
from apps.teams.models import Team
from apps.teams.selectors import is_service_account, require_capability, roles_for
from apps.teams.services import webhooks_notify

from ..choices import AliasSource, Decision, MlflowPresence, PolicySource, PromotionKind, PromotionStatus
from ..artifacts import ArtifactUnreadable, digest_sign, version_manifest
from ..gates import evaluate_gate
from ..models import AliasHolding, Approval, ModelVersion, PromotionRequest, RegisteredModel
from ..selectors import alias_holder, effective_policy, environment_get
from ..transitions import transition

PUBLISH_TOPIC = "registry.publish_promotion"  # the outbox topic of the wake-up hint
PUBLISH_KIND = "registry.publish"  # the runner's work kind (apps/registry/runner.py)
APPROVAL_TAG = "controlplane.approval_id"
APPROVERS_TAG = "controlplane.approvers"


def _notify(request: PromotionRequest, event: str, text: str) -> None:
    webhooks_notify(team=request.team, event=event, text=text, key=f"promotion:{request.pk}:{event}:"
                    f"{request.approvals.count()}",
                    data={"request_id": request.pk, "model": request.version.model.name,
                          "version": request.version.version, "environment": request.environment.name,
                          "status": request.status})


def _enqueue_publish(request: PromotionRequest) -> None:
    """Wake the runner once the approval commits. A hint only: the approved row is what is due, so a lost
    message delays the publish until the runner's sweep, it never loses it."""
    outbox_enqueue(topic=PUBLISH_TOPIC, payload={"request_id": request.pk},
                   dedup_key=f"registry-publish:{request.pk}", team=request.team)


def _approve_final(request: PromotionRequest, *, actor, approvers: list[str]) -> PromotionRequest:
    request = transition(request, to=PromotionStatus.APPROVED, actor=actor, action="registry.promotion.approved",
                         changes={"approvers": [None, approvers]})
    _enqueue_publish(request)
    _notify(request, "registry.promotion.approved",
            f"{request.version.model.name} v{request.version.version} approved for {request.environment.name} "
            f"by {', '.join(approvers) or 'policy (no approvals required)'}; publishing to MLflow.")
    return request


NO_POLICY = {"source": PolicySource.NONE, "approvals_required": 0, "approver_roles": [], "expiry_hours": 72,
             "gates": [], "floor": None, "raised_by_floor": []}


def _decisive_policy(*, team: Team, env) -> dict:
    """The effective policy snapshot for a new request; a protected environment without a team policy, or with
    rules nobody can meet, refuses (409 saying what to configure) instead of approving."""
    snapshot = effective_policy(team_id=team.pk, environment=env)
    floor = (snapshot or {}).get("floor") or {}
    if floor.get("protected") and snapshot["source"] != PolicySource.TEAM:
        raise Conflict(f"{env.name} is a protected environment and team '{team.slug}' has no approval policy for "
                       f"it; a team admin must create one (at least {floor['approvals_required']} approval(s) from "
                       f"{', '.join(floor['approver_roles'])}, the platform floor) before anything is promoted "
                       f"there.", code="no_policy")
    if snapshot is not None and snapshot["approvals_required"] > 0 and not snapshot["approver_roles"]:
        raise Conflict(f"No role may approve promotions of team '{team.slug}' into {env.name}: the team policy "
                       f"lets only roles the platform floor no longer allows ({', '.join(floor['approver_roles'])})."
                       f" A team admin must update the policy.", code="no_policy")
    return snapshot or NO_POLICY


@transaction.atomic
def promotion_request(*, actor, version: ModelVersion, environment: str, comment: str = "") -> PromotionRequest:
    version = ModelVersion.objects.select_related("model", "model__team").get(pk=version.pk)
    model = version.model
    if model.team is None:
        raise Conflict(f"'{model.name}' belongs to no team yet; a team admin must assign it before promotion.")
    require_capability(user=actor, team=model.team, capability=Capability.OPERATE)
    env = environment_get(name=environment)
    if version.presence != MlflowPresence.PRESENT or model.presence != MlflowPresence.PRESENT:
        raise Conflict(f"{version} was deleted in MLflow; it can't be promoted.")
    if env.name in (version.aliases or []) and alias_holder(model=model, alias=env.name) == version:
        raise Conflict(f"{version} already holds the '{env.name}' alias.")
    if PromotionRequest.objects.filter(version=version, environment=env, status=PromotionStatus.REQUESTED).exists():
        raise Conflict(f"{version} already has an open request for {env.name}; approve, reject or cancel it first.")
    snapshot = _decisive_policy(team=model.team, env=env)
    holder = alias_holder(model=model, alias=env.name)
    results = [evaluate_gate(g, version=version, holder=holder) for g in snapshot["gates"]]
    manifest = _artifact_manifest(version)
    try:
        with transaction.atomic():
            request = PromotionRequest.objects.create(
                artifact_digest=manifest["digest"], artifact_manifest=manifest,
                artifact_signature=digest_sign(version=version, environment=env, digest=manifest["digest"]),
                team=model.team, version=version, environment=env, requested_by=actor, comment=comment,
                policy=snapshot, policy_source=snapshot["source"], gate_results=results,
                gates_passed=all(r["passed"] for r in results),
                expires_at=timezone.now() + timedelta(hours=snapshot["expiry_hours"]))
    except IntegrityError:
        raise Conflict(f"{version} already has an open request for {env.name}.")
    audit_record(actor=actor, action="registry.promotion.request", target=request, team=model.team,
                 changes={"version": [None, str(version)], "environment": [None, env.name],
                          "policy_source": [None, request.policy_source],
                          "gates_passed": [None, request.gates_passed], "comment": [None, comment],
                          "artifact_digest": [None, request.artifact_digest]})
    _notify(request, "registry.promotion.requested",
            f"{actor.get_username()} requests {model.name} v{version.version} → {env.name}"
            f" (gates {'pass' if request.gates_passed else 'FAIL'}).")
    if snapshot["approvals_required"] == 0 and request.gates_passed:
        request = _approve_final(request, actor=actor, approvers=[])
    return request


def _artifact_manifest(version: ModelVersion) -> dict:
    """The digest the approval binds to; artifacts that can't be read can't be approved (fail closed)."""
    try:
        return version_manifest(version)
    except ArtifactUnreadable as exc:
        raise Conflict(f"Can't read the artifacts of {version} to compute the digest its approval is bound to: "
                       f"{exc} Make sure MLflow serves them, then request the promotion again.",
                       code="artifacts_unreadable")


def _locked(request: PromotionRequest) -> PromotionRequest:
    return (PromotionRequest.objects.select_for_update(of=("self",))
            .select_related("team", "version", "version__model", "environment", "requested_by").get(pk=request.pk))


def _check_open(request: PromotionRequest, verb: str) -> None:
    if request.status != PromotionStatus.REQUESTED:
        raise Conflict(f"Promotion request #{request.pk} is {PromotionStatus(request.status).label.lower()}; "
                       f"it can no longer be {verb}.")
    if request.expires_at and request.expires_at <= timezone.now():
        raise Conflict(f"Promotion request #{request.pk} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC; "
                       f"request the promotion again.")


def _check_decider(request: PromotionRequest, actor) -> str:
    """The caller's role, after the capability, separation-of-duties and policy checks (raises Forbidden).

    Called before any check of the request's state: a role that may not decide learns nothing about it."""
    require_capability(user=actor, team=request.team, capability=Capability.APPROVE)
    _check_person(actor, "decide promotions")
    if request.requested_by_id == actor.pk:
        raise Forbidden("You requested this promotion; separation of duties says someone else must decide it.")
    if request.version.creator and request.version.creator == actor.get_username():
        raise Forbidden(f"You registered {request.version} in MLflow; separation of duties says someone else "
                        f"must decide its promotion.")
    role = "platform_admin" if actor.is_superuser else roles_for(user=actor).get(request.team_id, "")
    allowed = request.policy.get("approver_roles") or []
    if not actor.is_superuser and role not in allowed:
        raise Forbidden(f"The {request.environment.name} policy of team '{request.team.slug}' lets "
                        f"{', '.join(allowed)} decide; your role is '{role}'.")
    return role


def _check_person(actor, verb: str) -> None:
    if is_service_account(user=actor):
        raise Forbidden(f"'{actor.get_username()}' is a service account; separation of duties says only people "
                        f"{verb}.", code="service_account")


def _check_not_decided(request: PromotionRequest, actor) -> None:
    earlier = request.approvals.filter(user=actor).first()
    if earlier is not None:
        raise Conflict(f"You already {earlier.get_decision_display().lower()} this request at "
                       f"{earlier.created_at:%Y-%m-%d %H:%M} UTC.")


def promotion_decision_refusal(*, actor, request: PromotionRequest) -> str | None:
    """Why the actor can't approve or reject the request (None: they can), from the same checks as
    promotion_approve: the request page shows this reason instead of buttons that would be refused."""
    try:
        _check_decider(request, actor)
        _check_not_decided(request, actor)
    except DomainError as exc:
        return exc.message
    return None


def _approvers(request: PromotionRequest) -> list[str]:
    return list(request.approvals.filter(decision=Decision.APPROVE).order_by("created_at")
                .values_list("user__username", flat=True))


@transaction.atomic
def promotion_approve(*, actor, request: PromotionRequest, comment: str = "") -> PromotionRequest:
    request = _locked(request)
    role = _check_decider(request, actor)
    _check_open(request, "approved")
    _check_not_decided(request, actor)
    if not request.gates_passed and request.override_at is None:
        failed = "; ".join(r["message"] for r in request.gate_results if not r["passed"])
        raise Conflict(f"Quality gates fail ({failed}). A team admin must record an override with a reason "
                       f"before this can be approved.")
    Approval.objects.create(request=request, user=actor, role=role, decision=Decision.APPROVE, comment=comment,
                            artifact_digest=request.artifact_digest)
    approvers = _approvers(request)
    audit_record(actor=actor, action="registry.promotion.approve", target=request, team=request.team,
                 changes={"approvals": [len(approvers) - 1, len(approvers)], "comment": [None, comment]})
    if len(approvers) >= request.policy.get("approvals_required", 1):
        return _approve_final(request, actor=actor, approvers=approvers)
    _notify(request, "registry.promotion.approval",
            f"{actor.get_username()} approved {request.version} → {request.environment.name} "
            f"({len(approvers)} of {request.policy.get('approvals_required')}).")
    return request


@transaction.atomic
def promotion_reject(*, actor, request: PromotionRequest, comment: str = "") -> PromotionRequest:
    request = _locked(request)
    role = _check_decider(request, actor)
    _check_open(request, "rejected")
    _check_not_decided(request, actor)
    if not comment.strip():
        raise InvalidInput("Say why you reject the promotion (comment).", fields={"comment": ["required"]})
    Approval.objects.create(request=request, user=actor, role=role, decision=Decision.REJECT, comment=comment,
                            artifact_digest=request.artifact_digest)
    request = transition(request, to=PromotionStatus.REJECTED, actor=actor, action="registry.promotion.reject",
                         changes={"comment": [None, comment]})
    _notify(request, "registry.promotion.rejected",
            f"{actor.get_username()} rejected {request.version} → {request.environment.name}: {comment}")
    return request


@transaction.atomic
def promotion_cancel(*, actor, request: PromotionRequest, comment: str = "") -> PromotionRequest:
    request = _locked(request)
    require_capability(user=actor, team=request.team, capability=Capability.OPERATE)
    if request.status != PromotionStatus.REQUESTED:
        raise Conflict(f"Promotion request #{request.pk} is {PromotionStatus(request.status).label.lower()}; "
                       f"only a waiting request can be cancelled.")
    return transition(request, to=PromotionStatus.CANCELLED, actor=actor, action="registry.promotion.cancel",
                      changes={"comment": [None, comment]})


@transaction.atomic
def promotion_override(*, actor, request: PromotionRequest, reason: str) -> PromotionRequest:
    """A team admin lets a request whose gates fail go on to approval; the reason is compliance evidence."""
    request = _locked(request)
    require_capability(user=actor, team=request.team, capability=Capability.ADMINISTER)
    _check_open(request, "overridden")
    if not reason.strip():
        raise InvalidInput("An override needs a reason.", fields={"reason": ["required"]})
    if request.gates_passed:
        raise Conflict(f"The gates of request #{request.pk} pass; there is nothing to override.")
    if request.override_at is not None:
        raise Conflict(f"{request.override_by} already overrode the gates of request #{request.pk}.")
    request.override_by, request.override_reason, request.override_at = actor, reason, timezone.now()
    request.save(update_fields=["override_by", "override_reason", "override_at"])
    audit_record(actor=actor, action="registry.promotion.override", target=request, team=request.team,
                 changes={"override_reason": [None, reason],
                          "failed_gates": [[r["metric"] for r in request.gate_results if not r["passed"]], None]})
    if request.policy.get("approvals_required", 1) == 0:
        return _approve_final(request, actor=actor, approvers=[])
    return request


@transaction.atomic
def alias_revoke(*, actor, model: RegisteredModel, environment: str, reason: str) -> PromotionRequest:
    """Remove an environment's alias (demote), through the same publish path as a promotion."""
    if model.team is None:  # an unowned model has no team to check a capability in
        raise Conflict(f"'{model.name}' belongs to no team yet.")
    require_capability(user=actor, team=model.team, capability=Capability.APPROVE)
    _check_person(actor, "revoke an alias")
    env = environment_get(name=environment)
    if not reason.strip():
        raise InvalidInput("Say why the alias is revoked (reason).", fields={"reason": ["required"]})
    holder = alias_holder(model=model, alias=env.name)
    if holder is None:
        raise Conflict(f"No version of '{model.name}' holds the '{env.name}' alias.")
    request = PromotionRequest.objects.create(
        team=model.team, version=holder, environment=env, kind=PromotionKind.REVOKE, requested_by=actor,
        comment=reason, status=PromotionStatus.REQUESTED, policy_source=PolicySource.NONE,
        policy={**NO_POLICY, "expiry_hours": 0})
    audit_record(actor=actor, action="registry.alias.revoke", target=request, team=model.team,
                 changes={"alias": [env.name, None], "version": [str(holder), None], "reason": [None, reason]})
    return _approve_final(request, actor=actor, approvers=[actor.get_username()])


def promotion_publish(*, request_id: int) -> str:
    """Claim the request's publish and do it now, through the runner (what a worker does for a hint). Returns the
    runner's outcome: done, retry, needs_attention, lease_lost, or "not due" (published, or held elsewhere)."""
    lease = runner.claim(runner.kind_get(PUBLISH_KIND), ids=[request_id])
    return runner.run_lease(lease) if lease is not None else "not due"


def promotion_publish_attempt(lease: runner.Lease) -> dict:
    """The runner's handler: set (or delete) the alias in MLflow outside any transaction (no lock across the
    network; setting an alias is idempotent, so an attempt repeated after a lost worker does no harm), then record
    the new holder under the lease. An MLflow error raises: the runner keeps it and retries after a backoff."""
    from .. import mlflow_api

    request = (PromotionRequest.objects.select_related("version", "version__model", "environment", "team")
               .get(pk=lease.pk))
    version, alias = request.version, request.environment.name
    model = version.model
    approvers = _approvers(request)
    if request.kind == PromotionKind.PROMOTE:
        if version.presence != MlflowPresence.PRESENT or model.presence != MlflowPresence.PRESENT:
            raise PermanentFailure(f"{version} was deleted in MLflow; its alias can't be set. Cancel the "
                                   f"promotion, or restore the version in MLflow, sync, and retry.")
        from mlflow.exceptions import MlflowException

        try:
            mlflow_api.set_alias(name=model.name, alias=alias, version=version.version,
                                 tags={APPROVAL_TAG: str(request.pk), APPROVERS_TAG: ",".join(approvers) or "policy"})
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise PermanentFailure(f"MLflow has no {version} (deleted in MLflow?): {exc.message}") from exc
            raise
    else:
        mlflow_api.delete_alias(name=model.name, alias=alias)
    with lease.holding() as current:
        return _record_published(current, approvers=approvers)


def _record_published(request: PromotionRequest, *, approvers: list[str]) -> dict:
    """The alias history after MLflow took the alias, in the caller's transaction (the lease holds the request)."""
    request = (PromotionRequest.objects.select_related("version", "version__model", "environment", "team")
               .get(pk=request.pk))
    version, alias = request.version, request.environment.name
    # The sync locks the model row while it reconciles aliases; holding it here keeps the two writes apart.
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    now = timezone.now()
    current = AliasHolding.objects.select_for_update().filter(model=model, alias=alias, until__isnull=True).first()
    previous = current.version if current else None
    if current is not None:
        current.until = now
        current.ended_by = f"promotion request #{request.pk}"
        current.save(update_fields=["until", "ended_by"])
    for other in model.versions.filter(aliases__contains=[alias]):
        other.aliases = [a for a in other.aliases if a != alias]
        other.save(update_fields=["aliases"])
    aliases = dict(model.aliases or {})
    if request.kind == PromotionKind.PROMOTE:
        AliasHolding.objects.create(model=model, alias=alias, version=version, version_number=version.version,
                                    since=now, source=AliasSource.CONTROL_PLANE, request=request,
                                    approved_by=approvers, reason=request.comment)
        version.refresh_from_db(fields=["aliases"])
        version.aliases = sorted(set(version.aliases) | {alias})
        version.save(update_fields=["aliases"])
        aliases[alias] = version.version
    else:
        aliases.pop(alias, None)
    model.aliases = aliases
    model.save(update_fields=["aliases"])
    transition(request, to=PromotionStatus.PUBLISHED, actor=None, action="registry.promotion.published",
               changes={"alias": [previous.version if previous else None,
                                  version.version if request.kind == PromotionKind.PROMOTE else None]},
               fields={"previous_version": previous})
    return {"published": request.pk, "alias": alias, "previous": previous.version if previous else None}


def promotion_publish_gave_up(request: PromotionRequest, error: str) -> PromotionRequest:
    """The runner's on_exhausted (in its transaction, the request locked): out of attempts, or MLflow can't take
    the alias. The request needs attention, with its last error, until a team admin retries it."""
    request = transition(request, to=PromotionStatus.NEEDS_ATTENTION, actor=None,
                         action="registry.promotion.publish_failed",
                         changes={"attempts": [None, request.attempts], "publish_error": [None, error]})
    _notify(request, "registry.promotion.needs_attention",
            f"Publishing {request.version} → {request.environment.name} failed and needs attention: {error}")
    return request


@transaction.atomic
def promotion_retry_publish(*, actor, request: PromotionRequest) -> PromotionRequest:
    """A team admin (or platform admin) puts a request that needs attention back to publishing: a fresh round
    of attempts. The request is already approved; its approvals and digest stand."""
    request = _locked(request)
    require_capability(user=actor, team=request.team, capability=Capability.ADMINISTER)
    if request.status != PromotionStatus.NEEDS_ATTENTION:
        raise Conflict(f"Promotion request #{request.pk} is {PromotionStatus(request.status).label.lower()}; only a "
                       f"request whose publishing needs attention can be retried.")
    request = transition(request, to=PromotionStatus.APPROVED, actor=actor, action="registry.promotion.retry_publish",
                         changes={"publish_error": [request.last_error, None]})
    runner.retry_now(row=request, fields={"last_error": ""})
    runner.wake(PUBLISH_KIND, ids=[request.pk])
    request.refresh_from_db()
    return request


@transaction.atomic
def promotions_expire(*, now=None) -> int:
    """Beat job: requests past their expiry become expired (approving them afterwards is refused anyway)."""
    now = now or timezone.now()
    expired = 0
    for request in (PromotionRequest.objects.select_for_update(skip_locked=True)
                    .filter(status=PromotionStatus.REQUESTED, expires_at__lte=now)):
        transition(request, to=PromotionStatus.EXPIRED, actor=None, action="registry.promotion.expire")
        expired += 1
    return expired
