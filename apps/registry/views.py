"""Registry UI: the same services and selectors as the API, so both say and allow the same things."""
import re
from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, InvalidInput, NotFound
from apps.core.export import export_format, export_response
from apps.teams.choices import Capability, Role
from apps.teams.selectors import has_capability, team_get_by_slug, team_list

from . import selectors, services
from .api.serializers import ALIAS_HISTORY_COLUMNS, alias_holding_row
from .choices import PromotionStatus
from .models import Environment, SyncRun


def domain_errors(view):
    """Turn a DomainError into a flash message and a redirect back (the API turns it into a 4xx); a page that is
    not there (or another team's) is the 404 page at its own URL."""
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            if request.method == "GET":
                raise Http404(exc.message) from exc
            messages.error(request, exc.message)
            return redirect(request.META.get("HTTP_REFERER") or "registry:index")
        except DomainError as exc:
            messages.error(request, exc.message)
            if request.method == "POST":
                return redirect(request.META.get("HTTP_REFERER") or "registry:index")
            return redirect("registry:index")
    return wrapper


def _environments():
    return list(Environment.objects.all())


@login_required
def index(request):
    filters = {"search": request.GET.get("q", "").strip(), "team": request.GET.get("team", "")}
    page = Paginator(selectors.model_list(user=request.user, filters=filters), 50).get_page(request.GET.get("page"))
    envs = _environments()
    counts = selectors.version_counts(model_ids=[m.pk for m in page.object_list])
    rows = [{"model": m, "versions": counts.get(m.pk, 0), "aliases": [(e.name, (m.aliases or {}).get(e.name))
                                                                     for e in envs]} for m in page.object_list]
    operate_teams = [t for t in team_list(user=request.user)
                     if has_capability(user=request.user, team_id=t.pk, capability=Capability.OPERATE)]
    last_run = SyncRun.objects.first()  # status and progress only (no names), shown to everyone
    return render(request, "registry/index.html", {
        "rows": rows, "page": page, "environments": envs, "filters": filters, "teams": team_list(user=request.user),
        "operate_teams": operate_teams, "last_run": last_run,
        "sync_running": bool(last_run and last_run.status in ("queued", "running")
                             and last_run.started_at > timezone.now() - timedelta(minutes=10)),
        "sync_attention": list(selectors.sync_runs_needing_attention()[:5]),
        "inbox_count": selectors.promotion_inbox(user=request.user).count(),
    })


@login_required
@require_POST
@domain_errors
def sync_now(request):
    team = team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
    run = services.sync_request(actor=request.user, team=team)
    messages.success(request, f"Sync #{run.pk} queued; the model list updates when it finishes.")
    return redirect("registry:index")


@login_required
@require_POST
@domain_errors
def sync_retry(request, pk):
    team = team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
    run = get_object_or_404(SyncRun, pk=pk)
    services.sync_retry(actor=request.user, run=run, team=team)
    messages.success(request, f"Sync #{run.pk} queued again.")
    return redirect(reverse("registry:index") + "#sync")


@login_required
@domain_errors
def model_detail(request, pk):
    model = selectors.model_get(user=request.user, model_id=pk)
    versions = list(model.versions.order_by("-version"))
    metric_names = sorted({k for v in versions for k in (v.metrics or {})})
    ordered = sorted(versions, key=lambda v: v.version)
    chart = [{"type": "scatter", "mode": "lines+markers", "name": name,
              "x": [f"v{v.version}" for v in ordered], "y": [(v.metrics or {}).get(name) for v in ordered]}
             for name in metric_names]
    history = selectors.alias_history(user=request.user, model=model)
    envs = _environments()
    can_approve = model.team_id and has_capability(user=request.user, team_id=model.team_id,
                                                   capability=Capability.APPROVE)
    return render(request, "registry/model_detail.html", {
        "model": model, "versions": versions, "metric_names": metric_names, "chart": chart, "history": history,
        "environments": envs, "current_aliases": [(e.name, (model.aliases or {}).get(e.name)) for e in envs],
        "admin_teams": [t for t in team_list(user=request.user) if has_capability(
            user=request.user, team_id=t.pk, capability=Capability.ADMINISTER)],
        "can_approve": can_approve,
        "promotions": selectors.promotion_progress(user=request.user, requests=list(
            selectors.promotion_list(user=request.user, filters={"version__model_id": model.pk})[:50])),
        "datasets": sorted({(d.get("name"), d.get("digest"), d.get("source")) for v in versions for d in v.datasets or []}),
    })


@login_required
@require_POST
@domain_errors
def model_assign_team(request, pk):
    model = selectors.model_get(user=request.user, model_id=pk)
    team = team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
    services.model_assign_team(actor=request.user, model=model, team=team)
    messages.success(request, f"'{model.name}' now belongs to {team.slug}.")
    return redirect("registry:model", pk=pk)


@login_required
@require_POST
@domain_errors
def model_revoke_alias(request, pk):
    model = selectors.model_get(user=request.user, model_id=pk)
    revoke = services.alias_revoke(actor=request.user, model=model, environment=request.POST.get("environment", ""),
                                   reason=request.POST.get("reason", ""))
    messages.success(request, f"Removing the '{revoke.environment.name}' alias in MLflow (request #{revoke.pk}).")
    return redirect("registry:model", pk=pk)


@login_required
@domain_errors
def alias_history_export(request, pk):
    model = selectors.model_get(user=request.user, model_id=pk)
    fmt = export_format(request.GET.get("format"))
    rows = selectors.alias_history(user=request.user, model=model, alias=request.GET.get("alias"))
    return export_response(rows, fmt=fmt, columns=ALIAS_HISTORY_COLUMNS, to_row=alias_holding_row,
                           filename=f"alias-history-{model.name}")


@login_required
@domain_errors
def version_detail(request, pk):
    version = selectors.model_version_get(user=request.user, version_id=pk)
    envs = _environments()
    gates = []
    for env in envs:
        results = selectors.gate_results(version=version, environment=env)
        policy = selectors.effective_policy(team_id=version.model.team_id, environment=env)
        # A protected environment without the team's own policy: a request there is refused (409).
        refused = bool(policy and (policy["floor"] or {}).get("protected") and policy["source"] != "team")
        gates.append({"environment": env, "policy": policy, "results": results, "refused": refused,
                      "passed": all(r["passed"] for r in results),
                      "approved": selectors.version_approved_for(version=version, environment=env.name)})
    promotions = selectors.promotion_list(user=request.user, filters={"version_id": version.pk})
    can_operate = version.model.team_id and has_capability(user=request.user, team_id=version.model.team_id,
                                                           capability=Capability.OPERATE)
    return render(request, "registry/version_detail.html", {
        "version": version, "model": version.model, "gates": gates, "promotions": promotions,
        "environments": envs, "can_operate": can_operate,
        "metrics": sorted((version.metrics or {}).items()), "params": sorted((version.params or {}).items()),
    })


@login_required
@require_POST
@domain_errors
def version_request_promotion(request, pk):
    version = selectors.model_version_get(user=request.user, version_id=pk)
    promotion = services.promotion_request(actor=request.user, version=version,
                                           environment=request.POST.get("environment", ""),
                                           comment=request.POST.get("comment", ""))
    messages.success(request, f"Promotion request #{promotion.pk} created: {promotion.get_status_display()}.")
    return redirect("registry:request", pk=promotion.pk)


@login_required
def inbox(request):
    waiting = list(selectors.promotion_inbox(user=request.user))
    open_requests = list(selectors.promotion_list(user=request.user, filters={"status": PromotionStatus.REQUESTED}))
    recent = list(selectors.promotion_list(user=request.user).exclude(status=PromotionStatus.REQUESTED)[:25])
    attention = list(selectors.promotion_list(user=request.user, filters={"status": PromotionStatus.NEEDS_ATTENTION}))
    selectors.promotion_progress(user=request.user, requests=waiting + open_requests + recent + attention)
    return render(request, "registry/inbox.html", {"waiting": waiting, "open_requests": open_requests,
                                                   "recent": recent, "attention": attention})


def _timeline(promotion) -> list[dict]:
    events = [{"at": promotion.created_at, "who": promotion.requested_by.username,
               "what": "requested" if promotion.kind == "promote" else "requested alias removal",
               "comment": promotion.comment}]
    if promotion.override_at:
        events.append({"at": promotion.override_at, "who": promotion.override_by.username,
                       "what": "overrode failing gates", "comment": promotion.override_reason})
    for a in promotion.approvals.select_related("user"):
        events.append({"at": a.created_at, "who": f"{a.user.username} ({a.role})",
                       "what": "approved" if a.decision == "approve" else "rejected", "comment": a.comment})
    if promotion.decided_at and promotion.status != PromotionStatus.REQUESTED:
        label = {"approved": "approved — publishing to MLflow", "published": "approved"}.get(
            promotion.status, promotion.status)
        events.append({"at": promotion.decided_at, "who": "control plane", "what": label,
                       "comment": f"decided by {promotion.decided_by}"})
    if promotion.published_at:
        prev = f" (previously v{promotion.previous_version.version})" if promotion.previous_version else ""
        events.append({"at": promotion.published_at, "who": "control plane",
                       "what": f"alias '{promotion.environment.name}' "
                               f"{'set in MLflow' if promotion.kind == 'promote' else 'removed in MLflow'}{prev}",
                       "comment": ""})
    return sorted(events, key=lambda e: e["at"])


@login_required
@domain_errors
def request_detail(request, pk):
    promotion = selectors.promotion_get(user=request.user, request_id=pk)
    selectors.promotion_progress(user=request.user, requests=[promotion])
    team_id = promotion.team_id
    can_approve = has_capability(user=request.user, team_id=team_id, capability=Capability.APPROVE)
    return render(request, "registry/request_detail.html", {
        "promotion": promotion, "timeline": _timeline(promotion),
        "can_approve": can_approve,
        # Approve and Reject only for whom they would work; the others read why not (already decided, ...).
        "decision_refusal": services.promotion_decision_refusal(actor=request.user, request=promotion)
        if can_approve and promotion.status == PromotionStatus.REQUESTED else None,
        "can_operate": has_capability(user=request.user, team_id=team_id, capability=Capability.OPERATE),
        "can_admin": has_capability(user=request.user, team_id=team_id, capability=Capability.ADMINISTER),
        "is_open": promotion.status == PromotionStatus.REQUESTED,
    })


@login_required
@require_POST
@domain_errors
def request_action(request, pk, verb):
    promotion = selectors.promotion_get(user=request.user, request_id=pk)
    if verb == "override":
        promotion = services.promotion_override(actor=request.user, request=promotion,
                                                reason=request.POST.get("reason", ""))
    elif verb == "retry-publish":
        promotion = services.promotion_retry_publish(actor=request.user, request=promotion)
    else:
        fn = {"approve": services.promotion_approve, "reject": services.promotion_reject,
              "cancel": services.promotion_cancel}[verb]
        promotion = fn(actor=request.user, request=promotion, comment=request.POST.get("comment", ""))
    messages.success(request, f"Request #{promotion.pk}: {promotion.get_status_display()}.")
    return redirect("registry:request", pk=pk)


GATE_LINE = re.compile(r"^\s*(?:(no_regression)\s+)?([\w.\-/]+)\s*(>=|<=|>|<)\s*(-?[\d.]+)\s*$")


def parse_gates(text: str) -> list[dict]:
    """One gate a line: `accuracy >= 0.9`, `no_regression accuracy >= 0.02`, `tag model_card`,
    `artifact model_card.md`."""
    gates = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        words = line.split()
        if words[0] in ("tag", "artifact") and len(words) == 2:
            gates.append({"kind": words[0], "name": words[1]})
            continue
        match = GATE_LINE.match(line)
        if not match:
            raise InvalidInput(f"Gate line {number} ('{line.strip()}') is not understood. Write e.g. "
                               f"'accuracy >= 0.9', 'no_regression accuracy >= 0.02', 'tag model_card' or "
                               f"'artifact model_card.md'.", fields={"gates": [f"line {number}"]})
        kind, metric, op, value = match.groups()
        gates.append({"kind": kind or "metric", "metric": metric, "op": op, "threshold": float(value)})
    return gates


def gates_text(gates: list[dict]) -> str:
    lines = []
    for g in gates:
        if g["kind"] in ("tag", "artifact"):
            lines.append(f"{g['kind']} {g['name']}")
        else:
            lines.append(f"{'no_regression ' if g['kind'] == 'no_regression' else ''}{g['metric']} {g['op']} "
                         f"{g['threshold']:g}")
    return "\n".join(lines)


@login_required
def policies(request):
    items = [{"policy": p, "gates_text": gates_text([g.as_dict() for g in p.gates.all()]),
              "can_edit": has_capability(user=request.user, team_id=p.team_id, capability=Capability.ADMINISTER)}
             for p in selectors.policy_list(user=request.user)]
    admin_teams = [t for t in team_list(user=request.user)
                   if has_capability(user=request.user, team_id=t.pk, capability=Capability.ADMINISTER)]
    floors = [{"floor": f, "gates_text": gates_text(f.gates)} for f in selectors.policy_floor_list(user=request.user)]
    return render(request, "registry/policies.html", {
        "items": items, "admin_teams": admin_teams, "environments": _environments(), "floors": floors,
        "is_platform_admin": request.user.is_superuser,
        "roles": [(r.value, r.label) for r in Role if r != Role.VIEWER]})


@login_required
@require_POST
@domain_errors
def floor_update(request, pk):
    floor = selectors.policy_floor_get(user=request.user, floor_id=pk)
    form = _policy_form(request)
    del form["expiry_hours"]
    services.policy_floor_update(actor=request.user, floor=floor, protected=bool(request.POST.get("protected")),
                                 **form)
    messages.success(request, f"Platform floor for {floor.environment.name} saved.")
    return redirect("registry:policies")


def _policy_form(request) -> dict:
    def number(field, default):
        raw = request.POST.get(field, "")
        try:
            return int(raw) if raw != "" else default
        except ValueError:
            raise InvalidInput(f"{field.replace('_', ' ').capitalize()} must be a whole number.", fields={field: ["not a number"]})
    return {"approvals_required": number("approvals_required", 1),
            "approver_roles": request.POST.getlist("approver_roles"),
            "expiry_hours": number("expiry_hours", 72),
            "gates": parse_gates(request.POST.get("gates", ""))}


@login_required
@require_POST
@domain_errors
def policy_create(request):
    team = team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
    policy = services.policy_create(actor=request.user, team=team, environment=request.POST.get("environment", ""),
                                    **_policy_form(request))
    messages.success(request, f"Policy for {policy.team.slug} → {policy.environment.name} created.")
    return redirect("registry:policies")


@login_required
@require_POST
@domain_errors
def policy_update(request, pk):
    policy = selectors.policy_get(user=request.user, policy_id=pk)
    if request.POST.get("delete"):
        services.policy_delete(actor=request.user, policy=policy)
        messages.success(request, "Policy deleted.")
        return redirect("registry:policies")
    services.policy_update(actor=request.user, policy=policy, **_policy_form(request))
    messages.success(request, f"Policy for {policy.team.slug} → {policy.environment.name} saved.")
    return redirect("registry:policies")
