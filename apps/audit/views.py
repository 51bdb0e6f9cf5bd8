from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.functions import TruncDay
from django.shortcuts import redirect, render

from apps.core.errors import DomainError

from .api.views import audit_export_response, filtered_audit_events
from .filtersets import AuditEventFilterSet

FILTER_FIELDS = ["team", "actor", "action", "object_type", "object_id", "since", "until"]


@login_required
def index(request):
    try:
        events = filtered_audit_events(request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("audit:index")
    page = Paginator(events.select_related("team"), 50).get_page(request.GET.get("page"))
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
        "page": page,
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
