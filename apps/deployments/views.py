"""UI: deployments list, the deployment wizard (resumable drafts), the deployment page with live status,
rollout control and one-click rollback. Cluster administration (platform admins) is in cluster_views.py."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.audit.models import AuditEvent
from apps.core.errors import DomainError, InvalidInput, NotFound
from apps.teams.selectors import current_team, has_capability

from . import review, selectors, services
from .choices import DeploymentStatus as S
from .choices import StrategyKind
from .models import Cluster, DeploymentDraft
from .rollout import workload
from .services.siblings import deployment_replicate, deployment_siblings
from .spec import validate_resources, validate_strategy
from .transitions import ACCEPTS_NEW_REVISION, ROLLBACK_FROM

STEPS = ["Model version", "Target", "Resources", "Strategy", "Review"]
PAGE_SIZE = 50  # deployments per page of the list
RECENT_VERSIONS = 200  # unapproved versions the wizard offers: the newest ones


def _versions(user, team):
    from apps.registry.models import ModelVersion

    if team is None:
        return ModelVersion.objects.none()
    return ModelVersion.objects.filter(model__team=team).select_related("model").order_by("model__name", "-version")


def _version_choices(user, team, *, approved: dict[int, list[str]], chosen) -> list:
    """The wizard's version picker: every version approved for an environment, the one picked before, and the
    newest RECENT_VERSIONS registered (a team may have many thousands; a select of all of them is unusable)."""
    recent = list(_versions(user, team).order_by("-pk").values_list("pk", flat=True)[:RECENT_VERSIONS])
    wanted = {*approved, *recent, *([chosen] if str(chosen or "").isdigit() else [])}
    return list(_versions(user, team).filter(pk__in=wanted))


def _environments():
    from apps.registry.models import Environment

    return Environment.objects.all()


@login_required
def index(request):
    team = current_team(request=request)
    page = Paginator(selectors.deployment_list(user=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "deployments/index.html", {
        "page": page,
        "drafts": selectors.draft_list(user=request.user, team=team),
        "jobs": selectors.job_list(user=request.user)[:20],
        "can_operate": team is not None and has_capability(user=request.user, team_id=team.pk, capability="operate"),
    })


# ---------------------------------------------------------------- wizard

def _draft(request, draft_id) -> DeploymentDraft:
    draft = selectors.draft_list(user=request.user).filter(pk=draft_id).first()
    if draft is None:
        raise NotFound(f"Draft {draft_id} not found.")
    return draft


def _step_data(step: int, post) -> dict:
    if step == 1:
        return {"name": post.get("name", "").strip(), "model_version": int(post.get("model_version") or 0) or None}
    if step == 2:
        return {"environment": post.get("environment", ""), "cluster": post.get("cluster", ""),
                "namespace": post.get("namespace", "").strip()}
    if step == 3:
        autoscaling = None
        if post.get("autoscaling"):
            autoscaling = {"min": _num(post.get("as_min")), "max": _num(post.get("as_max")),
                           "target_cpu": _num(post.get("as_target"))}
        return {"resources": {"cpu": post.get("cpu", ""), "memory": post.get("memory", ""),
                              "gpu_type": post.get("gpu_type", ""), "gpu_count": _num(post.get("gpu_count") or "0"),
                              "replicas": _num(post.get("replicas") or "1"), "autoscaling": autoscaling}}
    if step == 4:
        kind = post.get("kind", StrategyKind.ROLLING)
        strategy = {"kind": kind}
        if kind == StrategyKind.CANARY:
            weights = [w.strip() for w in post.get("steps", "").split(",") if w.strip()]
            strategy["steps"] = [{"weight": _num(w), "pause": bool(post.get("pause"))} for w in weights]
        elif kind == StrategyKind.BLUE_GREEN:
            strategy["auto_switch"] = bool(post.get("auto_switch"))
        elif kind == StrategyKind.SHADOW:
            strategy["percent"] = _num(post.get("percent") or "10")
        elif kind == StrategyKind.AB:
            variants = []
            for part in post.get("variants", "").split(","):
                if ":" in part:
                    rev, weight = part.split(":", 1)
                    variants.append({"revision": rev.strip() if rev.strip() == "new" else _num(rev),
                                     "weight": _num(weight)})
            strategy["variants"] = variants
        return {"strategy": strategy}
    return {}


def _num(value):
    value = (value or "").strip() if isinstance(value, str) else value
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # validation says what is wrong with it


def _approved_versions(team) -> dict[int, list[str]]:
    """{version id: [environments it is approved for]} for the team's versions holding an environment's alias
    through a published promotion (registry.selectors.version_approved_for, in one query)."""
    from apps.registry.choices import AliasSource, PromotionKind, PromotionStatus
    from apps.registry.models import AliasHolding

    approved: dict[int, list[str]] = {}
    for version_id, alias in (AliasHolding.objects.filter(
            model__team=team, until__isnull=True, source=AliasSource.CONTROL_PLANE,
            request__status=PromotionStatus.PUBLISHED, request__kind=PromotionKind.PROMOTE)
            .order_by("alias").values_list("version_id", "alias")):
        approved.setdefault(version_id, []).append(alias)
    return approved


def _validate_step(step: int, draft: DeploymentDraft, request) -> None:
    from apps.registry.models import Environment
    from apps.registry.selectors import version_approved_for

    data = draft.data
    if step == 1:
        if not data.get("name"):
            raise InvalidInput("Give the deployment a name (lowercase letters, digits and dashes).")
        if not services.NAME_RE.match(data["name"]):
            raise InvalidInput(f"'{data['name']}' can't be a deployment name: use lowercase letters, digits and "
                               "dashes (at most 40), starting with a letter and not ending with a dash.",
                               fields={"name": ["Invalid name."]})
        if not _versions(request.user, draft.team).filter(pk=data.get("model_version")).exists():
            raise InvalidInput("Pick a model version of your team.")
    if step == 2:
        env = Environment.objects.filter(name=data.get("environment")).first()
        cluster = Cluster.objects.filter(name=data.get("cluster")).first()
        if env is None or cluster is None:
            raise InvalidInput("Pick an environment and a cluster.")
        version = _versions(request.user, draft.team).get(pk=data["model_version"])
        if not version_approved_for(version=version, environment=env.name):
            raise InvalidInput(f"{version} is not approved for {env.name}; pick another environment or version, "
                               f"or request a promotion first.")
        data["namespace"] = services.namespace_for(cluster=cluster, team=draft.team, environment=env)
        draft.save(update_fields=["data"])
    if step == 3:
        validate_resources(data.get("resources"))
    if step == 4:
        existing = draft.team.deployments.filter(name=data.get("name")).first()
        numbers = set(existing.revisions.values_list("number", flat=True)) if existing else set()
        validate_strategy(data.get("strategy"), revision_numbers=numbers)


@login_required
def wizard(request, draft_id=None, step=1):
    team = current_team(request=request)
    if team is None:
        messages.error(request, "Join a team first.")
        return redirect("deployments:index")
    if not draft_id and not has_capability(user=request.user, team_id=team.pk, capability="operate"):
        # Said before the first step, not after it (saving the draft is refused the same way).
        raise PermissionDenied(f"Deploying in team {team.slug} needs the ML engineer or team admin role; you can "
                               f"read its deployments. A team admin of {team.slug} can change your role.")
    draft = None  # when the draft isn't found, the wizard starts afresh
    try:
        draft = _draft(request, draft_id) if draft_id else None
        if request.method == "POST":
            draft = services.draft_save(actor=request.user, team=draft.team if draft else team,
                                        data=_step_data(step, request.POST), step=step, draft=draft)
            _validate_step(step, draft, request)
            draft.step = max(draft.step, step + 1)
            draft.save(update_fields=["step"])
            return redirect("deployments:wizard", draft_id=draft.pk, step=step + 1)
    except DomainError as exc:
        messages.error(request, exc.message)
        if draft is None:
            return redirect("deployments:wizard_new")
    data = draft.data if draft else {}
    approved = _approved_versions(draft.team if draft else team)
    versions = _version_choices(request.user, draft.team if draft else team, approved=approved,
                                chosen=data.get("model_version"))
    for version in versions:
        version.approved_for = approved.get(version.pk, [])
    context = {"draft": draft, "data": data, "step": step, "steps": STEPS, "versions": versions,
               # Preselected: the version asked for before, else the newest one approved for some environment.
               "default_version": data.get("model_version") or next((v.pk for v in versions if v.approved_for), None),
               "environments": _environments(),
               "targets": selectors.deploy_targets(user=request.user, team=draft.team if draft else team),
               "kinds": StrategyKind.choices, "recent_versions": RECENT_VERSIONS}
    if step == 3:
        from apps.costs.selectors import gpu_type_list

        context["gpu_types"] = gpu_type_list().filter(cluster__name=data.get("cluster", "")).order_by("name")
    if step == 5 and draft is not None:
        context["preview"] = _preview(request, draft)
        if not context["preview"].get("error"):
            context["preview"]["strategy_text"] = review.strategy_text(context["preview"]["strategy"])
            context["preview"]["resources_text"] = review.resources_text(context["preview"]["resources"])
    return render(request, "deployments/wizard.html", context)


def _preview(request, draft):
    from apps.registry.models import Environment

    data = draft.data
    try:
        return review.deployment_preview(
            actor=request.user, team=draft.team, name=data.get("name", ""),
            model_version=_versions(request.user, draft.team).get(pk=data.get("model_version")),
            environment=Environment.objects.get(name=data.get("environment")),
            cluster=Cluster.objects.get(name=data.get("cluster")), resources=data.get("resources"),
            strategy=data.get("strategy"), namespace=data.get("namespace") or None)
    except DomainError as exc:
        return {"error": exc.message}
    except Exception as exc:  # a missing earlier step: the review says so instead of failing
        return {"error": f"The draft is incomplete ({type(exc).__name__}); go back to the earlier steps."}


@login_required
@require_POST
def wizard_submit(request, draft_id):
    try:
        draft = _draft(request, draft_id)
        deployment = services.draft_submit(actor=request.user, draft=draft)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:wizard", draft_id=draft_id, step=5)
    messages.success(request, f"Deployment {deployment.name} submitted; revision 1 is being dispatched.")
    return redirect("deployments:detail", pk=deployment.pk)


# ---------------------------------------------------------------- deployment page

def _status(deployment) -> dict:
    current = deployment.current_revision
    return {"status": deployment.status, "status_label": deployment.get_status_display(),
            "message": deployment.status_message, "traffic": deployment.traffic, "shadow": deployment.shadow,
            "served": deployment.served_traffic, "workloads": selectors.routed_workloads(deployment),
            "endpoint": deployment.endpoint_url, "drift": deployment.drift,
            "revision": current.number if current else None,
            "revision_status": current.status if current else None,
            "updated_at": deployment.updated_at.isoformat()}


@login_required
def detail(request, pk):
    try:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    except NotFound as exc:  # another team's deployment reads as one that does not exist
        raise Http404(exc.message) from exc
    revisions = selectors.revision_list(user=request.user, deployment_id=deployment.pk)
    events = AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk)).order_by("-id")[:30]
    siblings = deployment_siblings(deployment=deployment)
    return render(request, "deployments/detail.html", {
        "siblings": siblings,
        "other_clusters": Cluster.objects.exclude(pk__in=[deployment.cluster_id, *[s.cluster_id for s in siblings]]),
        "deployment": deployment, "revisions": revisions, "events": events, "status": _status(deployment),
        "can_operate": has_capability(user=request.user, team_id=deployment.team_id, capability="operate"),
        "can_administer": has_capability(user=request.user, team_id=deployment.team_id, capability="administer"),
        "rollback": _rollback_plan(deployment),
        # Past its window the standby is stopped (the reconcile beat): no "kept warm until" in the past.
        "warm": bool(deployment.warm_until and deployment.warm_until > timezone.now()),
        "controls": {verb: {"when": " ".join(sorted(statuses)), "shown": deployment.status in statuses}
                     for verb, statuses in CONTROLS_WHEN.items()},
        "versions": _versions(request.user, deployment.team).filter(model=deployment.model),
        "kinds": StrategyKind.choices,
    })


# The states in which each rollout control does something (the services refuse it in the others): the page shows
# a control only then, and its live status poll shows and hides them as the state moves.
CONTROLS_WHEN = {
    "promote": {S.AWAITING_PROMOTION},
    "pause": {S.PROGRESSING, S.AWAITING_PROMOTION},
    "resume": {S.PAUSED},
    "abort": {S.PENDING, S.PROGRESSING, S.AWAITING_PROMOTION, S.PAUSED},
    "reapply": set(ACCEPTS_NEW_REVISION),
}


def _rollback_plan(deployment) -> dict:
    """What Roll back would do, for its label and its confirmation, or why it can't: the service's own choice of
    target (deployment_rollback without to_revision), so the button never names another revision than it uses."""
    from .services.deployments import _rollback_target

    current = deployment.current_revision
    if deployment.status not in ROLLBACK_FROM:
        return {"reason": f"Nothing to roll back while the deployment is {deployment.get_status_display().lower()}"
                          f"{f' (r{current.number})' if current else ''}; abort it first or wait."}
    try:
        target = _rollback_target(deployment)
    except DomainError as exc:
        return {"reason": exc.message}
    version = workload(target).model_version
    serving = workload(current).model_version if current else None
    change = (f"traffic switches back to r{target.number}, still warm, within seconds"
              if deployment.warm_revision_id == target.pk else
              f"a new revision re-applies r{target.number}'s manifests and takes 100 % of the traffic once ready")
    return {"target": target, "version": version,
            "confirm": f"Roll back {deployment.name} from r{current.number if current else '-'}"
                       f"{f' · {serving.model.name} v{serving.version}' if serving else ''} to r{target.number} · "
                       f"{version.model.name} v{version.version}: {change}."}


@login_required
def status_json(request, pk):
    try:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    except DomainError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status_code)
    revisions = [{"number": r.number, "status": r.status, "message": r.message}
                 for r in deployment.revisions.order_by("-number")[:20]]
    return JsonResponse({**_status(deployment), "revisions": revisions})


VERBS = {"promote": (services.deployment_promote, "Promoted."), "pause": (services.deployment_pause, "Paused."),
         "resume": (services.deployment_resume, "Resumed."), "abort": (services.deployment_abort,
                                                                       "Rollout aborted; the stable revision serves."),
         "reapply": (services.deployment_reapply, "Re-applying the serving revision."),
         "retry": (services.deployment_retry, "Retrying: the drive runs again."),
         "teardown": (services.deployment_teardown, "Torn down: the route and every workload are being removed "
                                                    "from the cluster; the history is kept.")}


@login_required
@require_POST
def control(request, pk, verb):
    try:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
        if verb == "rollback":
            revision = services.deployment_rollback(
                actor=request.user, deployment=deployment, reason=request.POST.get("reason") or "Rolled back from the UI",
                to_revision=request.POST.get("to_revision") or None,
                break_glass_reason=request.POST.get("break_glass_reason") or "")
            messages.success(request, f"Rolling back: revision {revision.number} re-applies revision "
                                      f"{revision.rollback_of.number}.")
        elif verb == "deploy":
            version = _versions(request.user, deployment.team).filter(pk=request.POST.get("model_version")).first()
            if version is None:
                raise InvalidInput("Pick a model version.")
            strategy = _step_data(4, request.POST)["strategy"]
            revision = services.deployment_deploy(actor=request.user, deployment=deployment, model_version=version,
                                                  strategy=strategy)
            messages.success(request, f"Revision {revision.number} ({version}) is rolling out ({strategy['kind']}).")
        elif verb == "replicate":
            cluster = Cluster.objects.filter(name=request.POST.get("cluster", "")).first()
            if cluster is None:
                raise InvalidInput("Pick a cluster.")
            sibling = deployment_replicate(actor=request.user, deployment=deployment, cluster=cluster,
                                           name=request.POST.get("name", "").strip())
            messages.success(request, f"{sibling.name} deploys the same spec on {cluster.name}.")
            return redirect("deployments:detail", pk=sibling.pk)
        elif verb in VERBS:
            fn, text = VERBS[verb]
            fn(actor=request.user, deployment=deployment)
            messages.success(request, text)
        else:
            raise NotFound(f"Unknown action {verb}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("deployments:detail", pk=pk)


@login_required
@require_POST
def job_retry(request, job_id: int):
    try:
        job = selectors.job_list(user=request.user).filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"Job {job_id} not found.")
        services.job_retry(actor=request.user, job=job)
        messages.success(request, f"Job {job.name} submitted again.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("deployments:index")
