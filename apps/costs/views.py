import calendar
from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.utils import timezone

from apps.core.errors import DomainError
from apps.teams.choices import PlatformRole
from apps.teams.selectors import current_team, platform_roles_for

from . import closing, selectors, services
from .budgets import FORECAST_MIN_DAYS, budget_banners, budget_status
from .models import CostMonth, GpuAllocation, GpuType, NodeToken, RollupRun
from .selectors import GROUPINGS
from .services import month_start

# The single dimensions and the combinations finance asks for most; the API takes any combination.
UI_GROUPINGS = [*GROUPINGS, "team,model", "model,deployment", "team,model,deployment"]
# The breakdown shown under the main table whatever its grouping: which model costs what on which deployment.
BREAKDOWN = "model,deployment"
# Rows a table shows (a thousand deployments make a page nobody reads): the costliest; the CSV export has all.
TABLE_ROWS = 50


def _costliest(rows: list[dict]) -> list[dict]:
    if len(rows) <= TABLE_ROWS:
        return rows
    return sorted(rows, key=lambda r: r["total_cost"] or Decimal(0), reverse=True)[:TABLE_ROWS]


def _row_links(rows: list[dict], group_by: str) -> None:
    """Give each report row `parts`: its label split per dimension, each with the page of what it names (the
    deployment, the registered model, the model version) where there is one. Row keys are the dimensions' keys
    joined by "|" (selectors._label): a version's and a deployment's key is its id, a model's its name."""
    from apps.registry.models import RegisteredModel

    dimensions = group_by.split(",")
    models = dict(RegisteredModel.objects.filter(name__in={r["model"] for r in rows if r["model"]})
                  .values_list("name", "pk"))
    for row in rows:
        keys, labels = row["key"].split("|"), row["label"].split(" · ")
        if len(keys) != len(dimensions) or len(labels) != len(dimensions):  # unallocated, adjustments
            row["parts"] = [{"label": row["label"], "url": ""}]
            continue
        parts = []
        for dimension, key, label in zip(dimensions, keys, labels):
            url = ""
            if dimension == "deployment" and key.isdigit() and not label.endswith("(deleted)"):
                url = reverse("deployments:detail", args=[int(key)])
            elif dimension == "version" and key.isdigit():
                url = reverse("registry:version", args=[int(key)])
            elif dimension == "model" and key in models:
                url = reverse("registry:model", args=[models[key]])
            parts.append({"label": label, "url": url})
        row["parts"] = parts


def _month(raw: str | None) -> date:
    try:
        year, month = (int(p) for p in (raw or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return timezone.now().date().replace(day=1)


@login_required
def index(request):
    first = _month(request.GET.get("month"))
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    filters = {
        "month": f"{first:%Y-%m}",
        "team": request.GET.get("team", ""),
        "cluster": request.GET.get("cluster", ""),
        "group_by": request.GET.get("group_by", "team") if request.GET.get("group_by") in UI_GROUPINGS else "team",
        "share_unallocated": request.GET.get("share_unallocated") == "on",
    }
    teams = list(selectors.cost_team_list(user=request.user))
    rows, breakdown = [], []
    try:
        reports = selectors.cost_reports(user=request.user, start=first, end=last,
                                         groupings=list(dict.fromkeys([filters["group_by"], BREAKDOWN])),
                                         team=filters["team"] or None, cluster=filters["cluster"] or None,
                                         share_unallocated=filters["share_unallocated"])
        rows = reports[filters["group_by"]]
        breakdown = reports[BREAKDOWN] if filters["group_by"] != BREAKDOWN else []
    except DomainError as exc:
        messages.error(request, exc.message)
    totals = {key: sum((r[key] or Decimal(0)) for r in rows) for key in
              ("gpu_hours", "gpu_cost", "other_cost", "idle_cost", "shared_unallocated", "total_cost")}
    row_counts = {"rows": len(rows), "breakdown": len(breakdown)}
    rows, breakdown = _costliest(rows), _costliest(breakdown)
    _row_links(rows, filters["group_by"])
    _row_links(breakdown, BREAKDOWN)

    series = selectors.daily_cost_by_team(user=request.user, start=first, end=last,
                                          cluster=filters["cluster"] or None)
    if filters["team"]:
        series = {k: v for k, v in series.items() if k == filters["team"]}
    stacked = [{"type": "bar", "name": name, "x": list(days), "y": list(days.values())}
               for name, days in sorted(series.items(), key=lambda kv: (kv[0] == "unallocated", kv[0]))]
    heatmap = selectors.utilization_heatmap(start=first, end=last, cluster=filters["cluster"] or None)

    budgets = selectors.budget_list(user=request.user)
    if filters["team"]:
        budgets = budgets.filter(team__slug=filters["team"])
    burn = [chart for chart in (selectors.burn_down(budget=b, month=first) for b in budgets) if chart is not None]
    current = first == month_start(timezone.now()).date()
    statuses = {b.team_id: status for b in budgets if (status := budget_status(budget=b))} if current else {}
    banners = budget_banners(user=request.user, month=first, team=filters["team"] or None)

    closed = CostMonth.objects.select_related("closed_by").filter(month=first).first()
    month_state = {"closed": closed, "closable": closed is None and closing.next_month(first) <= timezone.now().date()}

    export = {k: v for k, v in {"month": filters["month"], "group_by": filters["group_by"], "team": filters["team"],
                                 "cluster": filters["cluster"]}.items() if v}
    if filters["share_unallocated"]:
        export["share_unallocated"] = "true"
    return render(request, "costs/index.html", {
        "filters": filters, "teams": teams, "breakdown": breakdown, "row_counts": row_counts, "clusters": sorted({g.cluster.name for g in GpuType.objects.select_related("cluster")}),
        "groupings": UI_GROUPINGS, "rows": rows, "totals": totals, "stacked": stacked, "heatmap": heatmap,
        "burn": burn, "statuses": list(statuses.values()), "month_state": month_state, "banners": banners,
        "closes_months": PlatformRole.FINANCE in platform_roles_for(user=request.user),
        "first": first, "last": last,
        "export_query": urlencode(export), "currency": settings.COSTS_CURRENCY,
        "forecast_min_days": FORECAST_MIN_DAYS,
        "group_by_words": filters["group_by"].replace(",", " × ").replace("_", " "),
        "per_prediction": bool({"model", "version", "deployment"} & set(filters["group_by"].split(","))),
        # Grouped by team, the row's label is its team: no second column saying the same.
        "team_column": "team" not in filters["group_by"].split(","),
        "rollup_attention": list(selectors.rollups_needing_attention()[:5]),
    })


@login_required
@require_POST
def rollup_retry(request, pk: int):
    """Retry on a rollup that needs attention (platform admins): the rollup is queued for the runner again."""
    from .rollup import rollup_retry as retry

    try:
        run = retry(actor=request.user, run=get_object_or_404(RollupRun, pk=pk))
        messages.success(request, f"Rollup #{run.pk} queued again.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("costs:index") + "#rollup")


@login_required
@require_POST
def month_close(request, month: str):
    """The Close month button (platform admins and finance): the same service as POST /api/v1/costs/months/{month}/close/."""
    try:
        closed = closing.month_close(actor=request.user, month=closing.month_parse(month))
        messages.success(request, f"{closed.month:%B %Y} is closed: its figures won't change; late data goes to "
                                  "the adjustments line of the next open month.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(f"{reverse('costs:index')}?{urlencode({'month': month})}")


def _quota_rows(team, prices: dict):
    """The team's quotas with what admission would decide for one more GPU; `prices` (GPU type id → hourly
    price now, every type) is the catalog's, looked up once per type."""
    rows = []
    for quota in selectors.quota_list_for_team(team=team):
        gtype = quota.gpu_type
        decision = services.admission_check(team=team, cluster=gtype.cluster, gpu_type=gtype.name, gpu_count=1)
        used_hours = None
        if quota.monthly_gpu_hours is not None:
            used_hours = float(quota.monthly_gpu_hours) - (decision.budget_remaining_gpu_hours or 0)
        rows.append({"quota": quota, "in_use": decision.in_use, "fits": decision.fits,
                     "headroom": max(quota.guaranteed - decision.in_use, 0),
                     "price": prices[gtype.pk], "used_hours": used_hours,
                     "remaining_hours": decision.budget_remaining_gpu_hours})
    return rows


@login_required
def quotas(request):
    teams = list(selectors.cost_team_list(user=request.user))
    slug = request.GET.get("team") or request.POST.get("team")
    team = next((t for t in teams if t.slug == slug), None) or current_team(request=request, teams=teams)
    if request.method == "POST" and team is not None:
        action = request.POST.get("action")
        try:
            if action == "check":
                gtype = GpuType.objects.select_related("cluster").get(pk=request.POST.get("gpu_type"))
                hours = float(request.POST["hours"]) if request.POST.get("hours") else None
                decision = services.admission_check(team=team, cluster=gtype.cluster, gpu_type=gtype.name,
                                                    gpu_count=int(request.POST.get("gpu_count") or 0), hours=hours)
                level = messages.SUCCESS if decision.allowed else messages.ERROR
                messages.add_message(request, level, f"{'Allowed' if decision.allowed else 'Refused'}: "
                                     f"{decision.reason} Cost {decision.hourly_cost}/h, about "
                                     f"{decision.monthly_cost_estimate}/month.")
            elif action == "set_quota":
                gtype = GpuType.objects.select_related("cluster").get(pk=request.POST.get("gpu_type"))
                budget = request.POST.get("monthly_gpu_hours") or None
                services.quota_set(actor=request.user, team=team, gpu_type=gtype,
                                   guaranteed=int(request.POST.get("guaranteed") or 0),
                                   borrow_limit=int(request.POST.get("borrow_limit") or 0),
                                   cohort=request.POST.get("cohort") or None,
                                   monthly_gpu_hours=Decimal(budget) if budget else None)
                messages.success(request, f"Quota for {team.slug} on {gtype.name} saved.")
        except DomainError as exc:
            messages.error(request, exc.message)
        except (GpuType.DoesNotExist, ValueError, InvalidOperation):
            messages.error(request, "Pick a GPU type and enter whole numbers for counts.")
        return redirect(f"{request.path}?team={team.slug}")
    now = timezone.now()
    in_use = dict(GpuAllocation.objects.filter(stopped_at__isnull=True).order_by().values("gpu_type")
                  .annotate(n=Sum("gpu_count")).values_list("gpu_type", "n"))
    catalog = [{"type": gtype, "price": services.price_at(gpu_type=gtype, at=now), "in_use": in_use.get(gtype.pk) or 0}
               for gtype in selectors.gpu_type_list()]
    prices = {entry["type"].pk: entry["price"] for entry in catalog}
    return render(request, "costs/quotas.html", {
        "teams": teams, "team": team, "rows": _quota_rows(team, prices) if team else [], "catalog": catalog,
        "banners": budget_banners(user=request.user, month=month_start(now).date(), team=team.slug)
        if team else [],
    })


@login_required
def nodes(request):
    """Costs → Nodes: register a GPU node (its agent token shown once) and revoke tokens. Platform admins only."""
    from apps.deployments.models import Cluster

    if not request.user.is_superuser:
        messages.error(request, "Only platform admins manage GPU nodes.")
        return redirect("costs:index")
    created = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "revoke":
                token = selectors.node_token_list(user=request.user).get(pk=int(request.POST.get("token") or 0))
                services.node_token_revoke(actor=request.user, token=token)
                messages.success(request, f"Token {token.prefix} for {token.node} revoked; its agent is refused now.")
                return redirect("costs:nodes")
            token, plaintext = services.node_token_create(
                actor=request.user, cluster=request.POST.get("cluster", ""), node=request.POST.get("node", ""),
                gpu_count=int(request.POST.get("gpu_count") or 0))
            created = {"token": token, "plaintext": plaintext}
        except DomainError as exc:
            messages.error(request, exc.message)
        except (ValueError, NodeToken.DoesNotExist):
            messages.error(request, "Pick a token from the list and enter a whole number of GPUs.")
    return render(request, "costs/nodes.html", {
        "tokens": selectors.node_token_list(user=request.user), "created": created,
        "clusters": Cluster.objects.order_by("name").values_list("name", flat=True),
    })
