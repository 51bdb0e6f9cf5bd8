"""Deployments and their revisions: create, deploy, promote, pause, resume, abort, roll back, re-apply, tear down.

Over 400 lines because every operator verb on a deployment lives here, next to the checks they share
(approval, torn-down refusal, the new desired generation); splitting them would scatter one state machine's
writes."""

import re

from django.db import transaction
from django.db.models import Max

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core import runner
from apps.teams.choices import Capability
from apps.teams.selectors import require_capability

from .. import artifact_check, capacity, traffic
from ..choices import ClusterKind, DeploymentStatus as S, RevisionReason, RevisionStatus, StrategyKind
from ..models import Cluster, Deployment, DeploymentRevision
from ..rollout import ROLLOUT_KIND, completion_fields, workload
from ..spec import validate_resources, validate_strategy
from ..transitions import (ACCEPTS_NEW_REVISION, ROLLBACK_FROM, TEARDOWN_FROM, deployment_transition,
                           deployment_want, revision_transition, revisions_supersede)
from .clusters import namespace_for

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


def _check_version(*, version, environment, team) -> None:
    from apps.registry.selectors import version_approved_for

    if version.model.team_id != team.pk:
        raise NotFound(f"Model version {version.pk} not found.")
    if not version_approved_for(version=version, environment=environment.name):
        raise Conflict(f"{version.model.name} version {version.version} is not approved for {environment.name}; "
                       f"request a promotion to {environment.name} first.", code="not_approved",
                       fields={"model_version": ["Not approved for this environment."]})


def _check_cluster_strategy(*, cluster: Cluster, strategy: dict) -> None:
    if cluster.kind == ClusterKind.KUBERNETES and cluster.last_check_ok is False:
        raise Conflict(f"Cluster {cluster.name} is unreachable ({cluster.last_check_message}); fix its connection "
                       f"and test it again before deploying.", code="cluster_unreachable")
    # Shadow and A/B/n need exact splitting: a 400 naming what this cluster lacks where it has none.
    traffic.strategy_check(cluster=cluster, strategy=strategy)


def _refuse_torn_down(deployment) -> None:
    if deployment.status == S.TORN_DOWN:
        raise Conflict(f"Deployment {deployment.name} was torn down; it accepts no new revision. Create a new "
                       f"deployment to serve this model again.", code="torn_down", extra={"status": deployment.status})


def _next_number(deployment) -> int:
    return (deployment.revisions.aggregate(n=Max("number"))["n"] or 0) + 1


def _new_revision(*, actor, deployment, version, resources, strategy, reason=RevisionReason.DEPLOY,
                  rollback_of=None, manifests=None, break_glass_reason: str = "") -> DeploymentRevision:
    from apps.audit.services import actor_label

    from ..drivers import driver_for

    revision = DeploymentRevision(deployment=deployment, number=_next_number(deployment), model_version=version,
                                  strategy=strategy, resources=resources, reason=reason, rollback_of=rollback_of,
                                  break_glass_reason=break_glass_reason,
                                  created_by=actor if getattr(actor, "is_authenticated", False) else None,
                                  actor_label=actor_label(actor))
    if manifests is None:
        from ..rollout import initial_weight

        from workers.drivers import ApplyFailed, DriverUnavailable

        try:
            manifests = driver_for(deployment.cluster).render(
                deployment=deployment, revision=revision,
                weight=initial_weight(deployment=deployment, revision=revision))
        except (DriverUnavailable, ApplyFailed) as exc:
            raise Conflict(f"Cluster {deployment.cluster.name} could not be asked what it serves: {exc}. Nothing "
                           f"was applied; check the cluster's connection and try again.", code="cluster_unreachable")
    revision.manifests = manifests
    revision.save()
    return revision


def _desired_changed(deployment) -> None:
    """The caller changed what the deployment should serve: a new desired generation in its transaction, and a
    wake-up for the runner once it commits (a hint: lost, the beat's sweep finds the deployment due anyway)."""
    deployment_want(deployment=deployment)
    runner.wake(ROLLOUT_KIND, ids=[deployment.pk])


@transaction.atomic
def deployment_create(*, actor, team, name: str, model_version, environment, cluster: Cluster,
                      namespace: str | None = None, resources: dict | None = None,
                      strategy: dict | None = None) -> Deployment:
    """Create a deployment and its first revision, and dispatch it (one call = the whole wizard)."""
    require_capability(user=actor, team=team, capability=Capability.OPERATE)
    if not NAME_RE.match(name or ""):
        raise InvalidInput("Name must be lowercase letters, digits and dashes (at most 40), starting with a letter.",
                           fields={"name": ["Invalid name."]})
    if Deployment.objects.filter(team=team, name=name).exists():
        raise Conflict(f"Team {team.slug} already has a deployment named '{name}'; deploy a new version to it instead.",
                       fields={"name": ["Already exists."]})
    _check_version(version=model_version, environment=environment, team=team)
    resources = validate_resources(resources)
    strategy = validate_strategy(strategy, revision_numbers=set())
    if strategy["kind"] == StrategyKind.AB:
        raise InvalidInput("An A/B/n split needs existing revisions; deploy one first.", fields={"strategy": ["No revisions yet."]})
    _check_cluster_strategy(cluster=cluster, strategy=strategy)
    allowed_ns = namespace_for(cluster=cluster, team=team, environment=environment)
    if namespace and namespace != allowed_ns:
        raise InvalidInput(f"Team {team.slug} deploys to namespace {allowed_ns} for {environment.name} on "
                           f"{cluster.name}, not {namespace}.", fields={"namespace": [f"Use {allowed_ns}."]})
    deployment = Deployment.objects.create(team=team, name=name, model=model_version.model, environment=environment,
                                           cluster=cluster, namespace=allowed_ns, status=S.PENDING,
                                           created_by=actor, status_message="Waiting for dispatch")
    revision = _new_revision(actor=actor, deployment=deployment, version=model_version, resources=resources,
                             strategy=strategy)
    # After the render (which may ask the cluster): the quota lock is then held only until this commits.
    capacity.reserve_for_revision(deployment=deployment, revision=revision)
    Deployment.objects.filter(pk=deployment.pk).update(current_revision=revision)
    deployment.refresh_from_db()
    audit_record(actor=actor, action="deployment.create", target=deployment, team=team, changes={
        "model_version": [None, f"{model_version.model.name} v{model_version.version}"],
        "environment": [None, environment.name], "cluster": [None, cluster.name], "namespace": [None, allowed_ns],
        "strategy": [None, strategy], "resources": [None, resources], "revision": [None, revision.number],
        "gpus_reserved": [None, capacity.gpu_count(resources)]})
    _desired_changed(deployment)
    return deployment


@transaction.atomic
def deployment_deploy(*, actor, deployment: Deployment, model_version, resources: dict | None = None,
                      strategy: dict | None = None) -> DeploymentRevision:
    """Roll a new model version (or new resources/strategy) out to an existing deployment."""
    require_capability(user=actor, team=deployment.team, capability=Capability.OPERATE)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    _refuse_torn_down(deployment)
    if deployment.status not in ACCEPTS_NEW_REVISION:
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; promote, abort or roll back the running "
                       f"rollout before starting another.", extra={"status": deployment.status})
    if model_version.model_id != deployment.model_id:
        raise InvalidInput(f"Deployment {deployment.name} serves {deployment.model.name}; pick a version of that model.",
                           fields={"model_version": ["Different model."]})
    _check_version(version=model_version, environment=deployment.environment, team=deployment.team)
    base = deployment.current_revision
    resources = validate_resources(resources if resources is not None else (base.resources if base else None))
    strategy = validate_strategy(strategy, revision_numbers=set(deployment.revisions.values_list("number", flat=True)))
    _check_cluster_strategy(cluster=deployment.cluster, strategy=strategy)
    revision = _new_revision(actor=actor, deployment=deployment, version=model_version, resources=resources,
                             strategy=strategy)
    capacity.reserve_for_revision(deployment=deployment, revision=revision)
    deployment = deployment_transition(
        deployment=deployment, to=S.PENDING, actor=actor, action="deployment.deploy",
        expected=ACCEPTS_NEW_REVISION,
        fields={"current_revision": revision, "rollout_step": -1, "status_message": "Waiting for dispatch"},
        audit_changes={"model_version": [None, f"{model_version.model.name} v{model_version.version}"],
                       "strategy": [None, strategy], "revision": [None, revision.number],
                       "gpus_reserved": [None, capacity.gpu_count(resources)]})
    _desired_changed(deployment)
    return revision


def _operate(actor, deployment) -> Deployment:
    require_capability(user=actor, team=deployment.team, capability=Capability.OPERATE)
    return Deployment.objects.select_for_update(of=("self",)).select_related("current_revision", "stable_revision").get(pk=deployment.pk)


def deployment_promote(*, actor, deployment: Deployment) -> Deployment:
    """Next canary step, or switch blue/green / shadow to the new revision, once its artifacts still match
    their approval (checked before the transaction: it reads MLflow; a mismatch is recorded, then 409)."""
    require_capability(user=actor, team=deployment.team, capability=Capability.OPERATE)
    if deployment.status == S.AWAITING_PROMOTION:
        artifact_check.require_verified(deployment=deployment, actor=actor)
    return _promote(actor=actor, deployment=deployment)


@transaction.atomic
def _promote(*, actor, deployment: Deployment) -> Deployment:
    deployment = _operate(actor, deployment)
    if deployment.status != S.AWAITING_PROMOTION:
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; only a rollout waiting for promotion "
                       f"can be promoted.", extra={"status": deployment.status})
    revision = deployment.current_revision
    strategy = revision.strategy
    new, old = revision.number, deployment.stable_revision.number
    fields, to = None, S.HEALTHY
    if strategy["kind"] == StrategyKind.CANARY:
        for index in range(deployment.rollout_step + 1, len(strategy["steps"])):
            step = strategy["steps"][index]
            if step["weight"] >= 100:
                break
            if step["pause"] or index == len(strategy["steps"]) - 1:
                fields = {"traffic": {str(old): 100 - step["weight"], str(new): step["weight"]}, "rollout_step": index,
                          "status_message": f"Traffic r{old}: {100 - step['weight']} %, r{new}: {step['weight']} %. "
                                            f"Waiting for promotion."}
                to = S.AWAITING_PROMOTION
                break
    if fields is None:
        fields = completion_fields(deployment=deployment, revision=revision)
    deployment = deployment_transition(deployment=deployment, to=to, actor=actor, action="deployment.promote",
                                       fields=fields)
    if to == S.HEALTHY:
        _supersede(deployment, revision)
        capacity.allocation_start(deployment=deployment, revision=revision)
    _desired_changed(deployment)
    return deployment


def _supersede(deployment, revision):
    revisions_supersede(deployment=deployment, keep=revision)


@transaction.atomic
def deployment_pause(*, actor, deployment: Deployment) -> Deployment:
    deployment = _operate(actor, deployment)
    if deployment.status not in (S.AWAITING_PROMOTION, S.PROGRESSING):
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; only a running rollout can be paused.",
                       extra={"status": deployment.status})
    deployment = deployment_transition(deployment=deployment, to=S.PAUSED, actor=actor, action="deployment.pause",
                                       fields={"status_message": "Rollout paused by " + str(actor)})
    _desired_changed(deployment)
    return deployment


@transaction.atomic
def deployment_resume(*, actor, deployment: Deployment) -> Deployment:
    deployment = _operate(actor, deployment)
    if deployment.status != S.PAUSED:
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}, not paused.", extra={"status": deployment.status})
    deployment = deployment_transition(deployment=deployment, to=S.AWAITING_PROMOTION, actor=actor,
                                       action="deployment.resume", fields={"status_message": "Waiting for promotion."})
    _desired_changed(deployment)
    return deployment


@transaction.atomic
def deployment_abort(*, actor, deployment: Deployment) -> Deployment:
    """Stop the rollout: all traffic back to the stable revision, the new one is marked aborted."""
    deployment = _operate(actor, deployment)
    if deployment.status not in (S.PENDING, S.PROGRESSING, S.AWAITING_PROMOTION, S.PAUSED):
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; there is no rollout to abort.",
                       extra={"status": deployment.status})
    revision, stable = deployment.current_revision, deployment.stable_revision
    revision_transition(revision=revision, to=RevisionStatus.ABORTED, actor=actor,
                        fields={"message": f"Aborted by {actor}"})
    capacity.release(reason=f"revision {revision.number} aborted", revision=revision)
    if stable is None:
        fields = {"traffic": {}, "shadow": {}, "status_message": f"Rollout of revision {revision.number} aborted; "
                                                                   f"nothing serves."}
        to = S.FAILED
    else:
        fields = {"traffic": {str(stable.number): 100}, "shadow": {}, "current_revision": stable,
                  "rollout_step": -1,
                  "status_message": f"Rollout of revision {revision.number} aborted; revision {stable.number} serves."}
        to = S.HEALTHY
    if deployment.status == S.PENDING:
        # pending → healthy is not a rollout move; an abort before dispatch goes through progressing.
        deployment = deployment_transition(deployment=deployment, to=S.PROGRESSING)
    deployment = deployment_transition(deployment=deployment, to=to, actor=actor, action="deployment.abort",
                                       fields=fields, audit_changes={"aborted_revision": [revision.number, None]})
    _desired_changed(deployment)
    return deployment


@transaction.atomic
def deployment_rollback(*, actor, deployment: Deployment, reason: str, to_revision=None, break_glass_reason: str = "",
                        only_while_serving=None) -> DeploymentRevision:
    """Re-apply an earlier revision's manifests as a new revision (from the UI, the API or a monitoring alert).

    The deployment row is locked, so two rollbacks clicked at once produce one: the second finds the
    first in flight and gets 409. Rolling back to a revision that is still warm is a traffic switch.

    The target's model version must still be approved for the environment. A team admin may break glass
    (`break_glass_reason`): the rollback then goes ahead, audited and flagged on the new revision.
    `only_while_serving` (the version a monitoring alert was raised for) makes the rollback act only while
    the deployment still rolls out or serves that version, so an alert fired twice never re-deploys it.
    """
    if actor is not None:
        require_capability(user=actor, team=deployment.team,
                           capability=Capability.ADMINISTER if break_glass_reason else Capability.OPERATE)
    deployment = (Deployment.objects.select_for_update(of=("self",))
                  .select_related("current_revision__rollback_of", "stable_revision__rollback_of",
                                  "warm_revision__rollback_of", "environment").get(pk=deployment.pk))
    current = deployment.current_revision
    if only_while_serving is not None and (current is None or current.model_version_id != only_while_serving.pk):
        _refuse_moved_on(deployment=deployment, current=current, raised_for=only_while_serving)
    _refuse_torn_down(deployment)
    if deployment.status not in ROLLBACK_FROM:
        if current is not None and current.reason == RevisionReason.ROLLBACK:
            raise Conflict(f"Deployment {deployment.name} is {deployment.status}; a rollback is already being applied "
                           f"(revision {current.number}).", code="rollback_in_progress",
                           extra={"status": deployment.status})
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}: revision "
                       f"{current.number if current else '-'} is being dispatched; wait a moment or abort it.",
                       extra={"status": deployment.status})
    if to_revision is None:
        to_revision = _rollback_target(deployment)
    elif not isinstance(to_revision, DeploymentRevision):
        to_revision = deployment.revisions.filter(number=int(to_revision)).first()
        if to_revision is None:
            raise NotFound("That revision does not exist in this deployment.")
    if to_revision.deployment_id != deployment.pk:
        raise NotFound(f"Revision {to_revision.pk} not found in deployment {deployment.name}.")
    target = workload(to_revision)
    if current is not None and workload(current).pk == target.pk and deployment.status == S.HEALTHY:
        raise Conflict(f"Revision {to_revision.number} is already serving.", code="already_serving")
    if target.status == RevisionStatus.FAILED:
        raise Conflict(f"Revision {to_revision.number} failed to roll out; pick a revision that served.")
    version = target.model_version
    broken_glass = ""
    if not _approval_stands(version=version, environment=deployment.environment):
        if not break_glass_reason.strip():
            raise Conflict(f"Revision {to_revision.number} serves {version.model.name} v{version.version}, which is no "
                           f"longer approved for {deployment.environment.name} (its approval was revoked). Roll back "
                           f"to an approved revision, or a team admin may break glass with a reason.",
                           code="not_approved", extra={"revision": to_revision.number, "version": version.version})
        broken_glass = break_glass_reason.strip()
    if current is not None and current.status in (RevisionStatus.PENDING, RevisionStatus.APPLYING):
        revision_transition(revision=current, to=RevisionStatus.ABORTED, actor=actor,
                            fields={"message": f"Superseded by a rollback: {reason}"[:2000]})
    # The rollback supersedes any rollout in flight: what it reserved is given back.
    capacity.release(reason=f"superseded by a rollback to revision {to_revision.number}", deployment=deployment)
    revision = _new_revision(actor=actor, deployment=deployment, version=version,
                             resources=target.resources, strategy={"kind": StrategyKind.ROLLING},
                             reason=RevisionReason.ROLLBACK, rollback_of=target, manifests=target.manifests,
                             break_glass_reason=broken_glass)
    # A rollback is a forced transition from whatever rollout state: pending, then the engine drives it.
    deployment_transition(
        deployment=deployment, to=S.PENDING, actor=actor, action="deployment.rollback", expected=ROLLBACK_FROM,
        fields={"current_revision": revision, "rollout_step": -1, "shadow": {},
                "status_message": f"Rolling back to revision {to_revision.number}: {reason}"[:1900]},
        audit_changes={"rollback_to": [current.number if current else None, to_revision.number],
                       "revision": [None, revision.number], "reason": [None, reason],
                       **({"break_glass": [None, broken_glass]} if broken_glass else {})})
    if broken_glass:
        audit_record(actor=actor, action="deployment.break_glass", target=deployment, team=deployment.team,
                     changes={"revision": [None, revision.number], "rollback_to": [None, to_revision.number],
                              "model_version": [None, f"{version.model.name} v{version.version}"],
                              "environment": [None, deployment.environment.name], "reason": [None, broken_glass]})
    deployment.refresh_from_db()
    _desired_changed(deployment)
    return revision


def _refuse_moved_on(*, deployment, current, raised_for) -> None:
    label = f"{raised_for.model.name} v{raised_for.version}"
    if current is None:
        raise Conflict(f"Deployment {deployment.name} no longer serves {label}.", code="already_rolled_back")
    now = current.model_version
    how = "it was already rolled back to" if current.reason == RevisionReason.ROLLBACK else "it has moved on to"
    raise Conflict(f"Deployment {deployment.name} no longer serves {label}, which raised this alert: {how} "
                   f"v{now.version} (revision {current.number}).", code="already_rolled_back",
                   extra={"serving_version": now.version, "revision": current.number})


def _approval_stands(*, version, environment) -> bool:
    """May a rollback bring `version` back into `environment`? When the registry says it is approved there now,
    or when it was approved there and only moved aside by a later promotion. An approval that was revoked
    (the alias removed, no successor) does not stand."""
    from apps.registry.choices import AliasSource, PromotionKind, PromotionStatus
    from apps.registry.models import AliasHolding
    from apps.registry.selectors import version_approved_for

    if version_approved_for(version=version, environment=environment.name):
        return True
    holdings = AliasHolding.objects.filter(model_id=version.model_id, alias=environment.name,
                                           source=AliasSource.CONTROL_PLANE)
    last = (holdings.filter(version=version, request__status=PromotionStatus.PUBLISHED,
                            request__kind=PromotionKind.PROMOTE).order_by("-since").first())
    if last is None or last.until is None:
        return False
    # A promotion of another version ends the holding and starts the next one at the same instant.
    return holdings.filter(since=last.until).exclude(pk=last.pk).exists()


def _rollback_target(deployment) -> DeploymentRevision:
    current, stable = deployment.current_revision, deployment.stable_revision
    if stable is not None and current is not None and current.pk != stable.pk:
        return stable
    if deployment.warm_revision is not None:
        return deployment.warm_revision
    stable_workload = workload(stable).pk if stable else None
    earlier = (deployment.revisions.filter(status__in=[RevisionStatus.SUPERSEDED, RevisionStatus.READY])
               .exclude(pk=stable.pk if stable else None).order_by("-number"))
    for candidate in earlier:
        if workload(candidate).pk != stable_workload:
            return candidate
    raise Conflict(f"Deployment {deployment.name} has no earlier revision that served; nothing to roll back to.",
                   code="no_rollback_target")


@transaction.atomic
def deployment_reapply(*, actor, deployment: Deployment) -> DeploymentRevision:
    """After drift or vanished objects: re-apply the serving revision's manifests as a new revision."""
    require_capability(user=actor, team=deployment.team, capability=Capability.OPERATE)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    _refuse_torn_down(deployment)
    if deployment.status not in ACCEPTS_NEW_REVISION or deployment.stable_revision is None:
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; re-apply needs a settled deployment "
                       f"with a serving revision.", extra={"status": deployment.status})
    target = workload(deployment.stable_revision)
    revision_transition(revision=target, to=RevisionStatus.PENDING, actor=actor)
    revision = _new_revision(actor=actor, deployment=deployment, version=target.model_version,
                             resources=target.resources, strategy={"kind": StrategyKind.ROLLING},
                             reason=RevisionReason.REAPPLY, rollback_of=target, manifests=target.manifests)
    deployment_transition(deployment=deployment, to=S.PENDING, actor=actor, action="deployment.reapply",
                          expected=ACCEPTS_NEW_REVISION,
                          fields={"current_revision": revision, "drift": {}, "status_message": "Re-applying"},
                          audit_changes={"revision": [None, revision.number]})
    deployment.refresh_from_db()
    _desired_changed(deployment)
    return revision


@transaction.atomic
def deployment_teardown(*, actor, deployment: Deployment) -> Deployment:
    """Stop serving for good, keeping the history (rows, revisions, audit): the deployment moves to torn_down
    at once (no traffic, nothing warm), a revision still rolling out is aborted, its GPU reservations are
    given back and its ledger intervals closed; the drive then removes the route and every workload from the
    cluster, outside this transaction (rollout.teardown_drive)."""
    deployment = _operate(actor, deployment)  # permission before state
    if deployment.status == S.TORN_DOWN:
        raise Conflict(f"Deployment {deployment.name} is already torn down.", code="torn_down",
                       extra={"status": deployment.status})
    current = deployment.current_revision
    if current is not None and current.status in (RevisionStatus.PENDING, RevisionStatus.APPLYING):
        revision_transition(revision=current, to=RevisionStatus.ABORTED, actor=actor,
                            fields={"message": f"Torn down by {actor} before it was ready"[:2000]})
    stopped = capacity.deployment_stopped(deployment=deployment)
    deployment = deployment_transition(
        deployment=deployment, to=S.TORN_DOWN, actor=actor, action="deployment.teardown", expected=TEARDOWN_FROM,
        fields={"traffic": {}, "shadow": {}, "warm_revision": None, "warm_until": None, "rollout_step": -1,
                "status_message": "Torn down: stopping the route and every workload on the cluster."},
        audit_changes={"revision": [current.number if current else None, None],
                       "gpu_reservations_released": [None, stopped["reservations_released"]],
                       "gpu_allocations_stopped": [None, stopped["allocations_stopped"]]})
    _desired_changed(deployment)
    return deployment


@transaction.atomic
def deployment_retry(*, actor, deployment: Deployment) -> Deployment:
    """A deployment whose drive ran out of attempts goes back to the status it had (audited) with a fresh round
    of attempts; the runner drives it again at once."""
    deployment = _operate(actor, deployment)  # permission before state
    if deployment.status != S.NEEDS_ATTENTION:
        raise Conflict(f"Deployment {deployment.name} is {deployment.status}; only a deployment that needs attention "
                       f"can be retried.", code="not_needs_attention", extra={"status": deployment.status})
    to = deployment.resume_status or S.PROGRESSING
    deployment = deployment_transition(
        deployment=deployment, to=to, actor=actor, action="deployment.retry",
        fields={"resume_status": "", "status_message": f"Retrying (was: {deployment.last_error})"[:1900]},
        audit_changes={"error": [deployment.last_error[:500] or None, None]})
    runner.retry_now(row=deployment, fields={"last_error": ""})
    deployment.refresh_from_db()
    runner.wake(ROLLOUT_KIND, ids=[deployment.pk])
    return deployment
