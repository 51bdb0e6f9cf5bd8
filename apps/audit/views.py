import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.functions import TruncDay
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from apps.core.errors import DomainError
from apps.teams.selectors import team_list

from .api.views import audit_export_response, filtered_audit_events
from .filtersets import AuditEventFilterSet
from .selectors import audit_event_list

FILTER_FIELDS = ["team", "actor", "action", "object_type", "object_id", "since", "until"]
PAGE_SIZE = 25
# Where an audited object's page is: object type → (what to call it, URL name taking its id). By URL name only,
# so the audit app imports no domain app.
OBJECT_PAGES = {
    "deployments.deployment": ("deployment", "deployments:detail"),
    "monitoring.monitor": ("monitor", "monitoring:monitor"),
    "monitoring.alert": ("alert", "monitoring:alert"),
    "registry.registeredmodel": ("model", "registry:model"),
    "registry.modelversion": ("model version", "registry:version"),
    "registry.promotionrequest": ("promotion request", "registry:request"),
}


def object_link(event) -> dict:
    """{"label": "deployment 2", "url": "/deployments/2/"}; url is None for objects without a page."""
    name, url_name = OBJECT_PAGES.get(event.object_type, (event.object_type.split(".")[-1], None))
    label = f"{name} {event.object_id}" if event.object_id else name
    try:
        url = reverse(url_name, args=[int(event.object_id)]) if url_name and event.object_id else None
    except (NoReverseMatch, ValueError):
        url = None
    return {"label": label, "url": url}


def change_rows(changes) -> list[dict]:
    """The audit shape {field: [before, after]} as before → after rows; any other value is shown as it is."""
    if not isinstance(changes, dict):
        return [{"field": "", "value": _text(changes)}] if changes else []
    rows = []
    for field, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            rows.append({"field": field, "before": _text(value[0]), "after": _text(value[1])})
        else:
            rows.append({"field": field, "value": _text(value)})
    return rows


def _text(value) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


@login_required
def index(request):
    try:
        events = filtered_audit_events(request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("audit:index")
    page = Paginator(events.select_related("team"), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"event": e, "object": object_link(e), "changes": change_rows(e.changes)} for e in page.object_list]
    # The action picker: every action family ("registry.": all of it) and action the user can see.
    actions = list(audit_event_list(user=request.user).order_by().values_list("action", flat=True).distinct())
    families = sorted({action.split(".")[0] + "." for action in actions})
    per_day = (
        events.order_by().annotate(day=TruncDay("occurred_at")).values("day", "action")
        .annotate(n=Count("id")).order_by("day")
    )
    series: dict[str, dict[str, int]] = {}
    for row in per_day:
        series.setdefault(row["action"].split(".")[0], {}).setdefault(row["day"].date().isoformat(), 0)
        series[row["action"].split(".")[0]][row["day"].date().isoformat()] += row["n"]
    chart = [{"type": "bar", "name": name, "x": list(days), "y": list(days.values())} for name, days in series.items()]
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/index.html", {
        "page": page, "rows": rows,
        "teams": team_list(user=request.user).order_by("slug"), "actions": sorted(families + actions),
        "filterset": AuditEventFilterSet(request.GET),
        "filters": {name: request.GET.get(name, "") for name in FILTER_FIELDS},
        "query": query.urlencode(),
        "chart": chart,
    })


@login_required
def export(request):
    try:
        return audit_export_response(request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("audit:index")
