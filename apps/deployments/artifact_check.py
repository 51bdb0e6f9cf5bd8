"""Serve only the bytes that were approved: before an apply, the control plane re-computes the digest of the
version's artifacts in MLflow and compares it with the digest its approval for the environment is bound to.

Runs outside any transaction (it reads MLflow); a refusal is then written in one transaction: the revision
becomes `artifact_changed`, the deployment `failed` (the stable revision keeps serving), an audit event
and a webhook notification record it.
"""
from django.db import transaction

from apps.core.errors import Conflict
from apps.registry.artifacts import (ArtifactUnreadable, approved_request, digest_signature_valid, manifest_changes,
                                     version_manifest)
from apps.teams.services import webhooks_notify
from workers.drivers import DriverUnavailable

from . import capacity
from .choices import DeploymentStatus as S
from .choices import RevisionStatus
from .transitions import deployment_transition, revision_transition

EVENT = "deployment.artifact_changed"


def _approval_required(*, version, environment) -> bool:
    """The rule of registry.selectors.version_approved_for: a floor or team policy, or a protected environment."""
    from apps.registry.selectors import effective_policy, environment_protected

    return (effective_policy(team_id=version.model.team_id, environment=environment) is not None
            or environment_protected(environment=environment))


def _problem(*, version, environment) -> dict | None:
    """None when `version` may be served in `environment`; otherwise what is wrong (message, digests, changes).
    Raises DriverUnavailable when MLflow can't serve the artifacts (the apply waits and retries)."""
    approval = approved_request(version=version, environment=environment)
    if approval is None:
        if not _approval_required(version=version, environment=environment):
            return None  # nothing in this environment needs approving, so no digest is bound to it
        return {"message": f"{version} has no approved promotion to {environment.name}, so no artifact digest "
                           f"to check against; request one.", "approved": None, "found": None, "changes": []}
    if not approval.artifact_digest:
        return {"message": f"{version} was approved for {environment.name} (request #{approval.pk}) before "
                           f"approvals were bound to artifact digests; request the promotion again (revoke the "
                           f"alias first if it still holds it).",
                "approved": None, "found": None, "changes": []}
    if digest_signature_valid(approval) is False:
        return {"message": f"The artifact digest of request #{approval.pk} does not carry this platform's "
                           f"signature (altered in the database, or signed with another key); request the promotion "
                           f"again (revoke the alias first if it still holds it).",
                "approved": approval.artifact_digest, "found": None, "changes": []}
    try:
        current = version_manifest(version)
    except ArtifactUnreadable as exc:
        raise DriverUnavailable(f"Can't verify the artifacts of {version} before applying: {exc}") from exc
    if current["digest"] == approval.artifact_digest:
        return None
    changes = manifest_changes(approval.artifact_manifest or {}, current)
    return {"message": f"The artifacts of {version} changed since request #{approval.pk} approved them "
                       f"({', '.join(changes[:5]) or 'different files'}); refusing to serve them. Restore the "
                       f"approved files in MLflow, or have these approved (revoke the alias, request again).",
            "approved": approval.artifact_digest, "found": current["digest"], "changes": changes}


def artifact_refusal(*, deployment, revision, actor=None) -> str | None:
    """None when the workload `revision` brings up serves the approved bytes. Otherwise records the refusal
    (revision `artifact_changed`, deployment failed, traffic back to the stable revision) and returns why."""
    from .rollout import workload

    target = workload(revision)
    problem = _problem(version=target.model_version, environment=deployment.environment)
    if problem is None:
        return None
    with transaction.atomic():
        deployment = type(deployment).objects.select_for_update(of=("self",)).get(pk=deployment.pk)
        if deployment.current_revision_id != revision.pk or deployment.status not in (
                S.PENDING, S.PROGRESSING, S.AWAITING_PROMOTION, S.PAUSED):
            return problem["message"]  # overtaken (aborted, rolled back): the next apply checks again
        revision_transition(revision=revision, to=RevisionStatus.ARTIFACT_CHANGED, actor=actor,
                            fields={"message": problem["message"][:2000]})
        capacity.release(reason=f"revision {revision.number} refused: not the approved artifacts", revision=revision)
        stable, routed_before = deployment.stable_revision, (deployment.traffic, deployment.shadow)
        fields = {"shadow": {}, "rollout_step": -1,
                  "status_message": f"Revision {revision.number} refused: {problem['message']}"[:1900]
                  + (f" Revision {stable.number} keeps serving." if stable else "")}
        if stable is not None:
            fields["traffic"] = {str(stable.number): 100}
        deployment_transition(deployment=deployment, to=S.FAILED, actor=actor, action=EVENT, fields=fields,
                              audit_changes={"revision": [revision.number, revision.number],
                                             "artifact_digest": [problem["approved"], problem["found"]],
                                             "artifact_changes": [None, problem["changes"]],
                                             "revision_status": [revision.status, RevisionStatus.ARTIFACT_CHANGED]})
        webhooks_notify(team=deployment.team, event=EVENT, key=f"artifact-changed:{revision.pk}",
                        text=f":rotating_light: {deployment.team.slug}/{deployment.name} revision {revision.number} "
                             f"refused: {problem['message']}",
                        data={"deployment": deployment.name, "revision": revision.number,
                              "model": target.model_version.model.name, "version": target.model_version.version,
                              "environment": deployment.environment.name, "approved_digest": problem["approved"],
                              "found_digest": problem["found"], "changes": problem["changes"]})
        if (deployment.traffic, deployment.shadow) != routed_before:
            from .services import _desired_changed

            _desired_changed(deployment)  # the canary's share goes back to the stable revision
    return problem["message"]


def require_verified(*, deployment, actor) -> None:
    """For operator actions that put a revision in front of more traffic (canary step, switch): 409 when the
    artifacts changed or can't be checked, after recording the refusal."""
    revision = deployment.current_revision
    if revision is None:
        return
    try:
        refusal = artifact_refusal(deployment=deployment, revision=revision, actor=actor)
    except DriverUnavailable as exc:
        raise Conflict(f"{exc} Try again once MLflow answers.", code="artifacts_unreadable")
    if refusal:
        raise Conflict(refusal, code="artifact_changed")
