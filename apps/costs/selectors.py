"""Reads for the costs app. Team-owned rows always go through scope_to_teams."""
import calendar
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from apps.core.errors import InvalidInput
from apps.teams.selectors import require_platform_admin, scope_to_teams, team_ids_for

from .choices import UsageKind
from .models import (BudgetAlert, GpuAllocation, GpuPrice, GpuType, NodeToken, Quota, TeamBudget, UsageDaily,
                     UtilizationDaily)


def quota_list(*, user) -> QuerySet[Quota]:
    return scope_to_teams(Quota.objects.select_related("team", "gpu_type__cluster", "cohort"), user=user)


def gpu_type_list() -> QuerySet[GpuType]:
    """The catalog is not team-owned: every signed-in user may read it (prices are not secret)."""
    return GpuType.objects.select_related("cluster", "parent")


def gpu_price_list() -> QuerySet[GpuPrice]:
    return GpuPrice.objects.select_related("gpu_type__cluster")


# --- cost reports: read the daily rollups only ------------------------------------------------------------

GROUPINGS = {
    "team": ("team__slug",),
    "model": ("model_version__model__name",),
    "version": ("model_version_id", "model_version__model__name", "model_version__version"),
    "deployment": ("deployment_id",),
    "gpu_type": ("gpu_type__name", "cluster__name"),
    "day": ("day",),
}
REPORT_COLUMNS = ["key", "label", "gpu_hours", "gpu_cost", "other_cost", "idle_gpu_hours", "idle_cost",
                  "shared_unallocated", "total_cost", "predictions", "cost_per_1k_predictions"]


def usage_daily_rows(*, user, start: date, end: date, team: str | None = None, cluster: str | None = None):
    """UsageDaily rows in [start, end] the user may see: their teams' rows; platform admins also see the
    unattributed (no team label) and unallocated (capacity nobody held) lines."""
    qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    if cluster:
        qs = qs.filter(cluster__name=cluster)
    ids = team_ids_for(user=user)
    if ids is not None:
        qs = qs.filter(team_id__in=ids)
    if team:
        qs = qs.filter(team__slug=team)
    return qs


def _label(group_by: str, row: dict) -> tuple[str, str]:
    if row["kind"] == UsageKind.UNALLOCATED:
        return "unallocated", "Unallocated capacity"
    if group_by == "team":
        slug = row["team__slug"]
        return (slug, slug) if slug else ("unattributed", "Unattributed (no team label)")
    if group_by == "model":
        name = row["model_version__model__name"]
        return (name, name) if name else ("none", "No model")
    if group_by == "version":
        if row["model_version_id"] is None:
            return "none", "No model version"
        return str(row["model_version_id"]), f"{row['model_version__model__name']} v{row['model_version__version']}"
    if group_by == "deployment":
        dep = row["deployment_id"]
        return (str(dep), f"deployment {dep}") if dep is not None else ("none", "No deployment")
    if group_by == "gpu_type":
        name = row["gpu_type__name"]
        return (f"{row['cluster__name']}/{name}", f"{name} on {row['cluster__name']}") if name else ("cpu", "CPU only")
    return str(row["day"]), str(row["day"])


def cost_report(*, user, start: date, end: date, group_by: str = "team", team: str | None = None,
                cluster: str | None = None, share_unallocated: bool = False) -> list[dict]:
    """Cost per team / model / version / deployment / GPU type / day over [start, end], from daily rollups.

    Idle cost (allocated GPU-time × (1 − measured utilization)) is a part of gpu_cost, shown on its own;
    it is empty where no NVML data covers the usage. Unallocated capacity is its own line, or — with
    share_unallocated — spread over the rows in proportion to their cost (OpenCost's shareIdle).
    """
    if group_by not in GROUPINGS:
        raise InvalidInput(f"Unknown grouping '{group_by}'. Use one of: {', '.join(GROUPINGS)}.",
                           fields={"group_by": ["unknown"]})
    if end < start:
        raise InvalidInput("The end date is before the start date.", fields={"end": ["before start"]})
    qs = usage_daily_rows(user=user, start=start, end=end, team=team, cluster=cluster)
    grouped = (qs.values("kind", *GROUPINGS[group_by])
               .annotate(gpu_hours=Sum("gpu_hours"), gpu_cost=Sum("gpu_cost"), other_cost=Sum("other_cost"),
                         idle_gpu_hours=Sum("idle_gpu_hours"), idle_cost=Sum("idle_cost")))
    rows: dict[str, dict] = {}
    for raw in grouped:
        key, label = _label(group_by, raw)
        row = rows.setdefault(key, {"key": key, "label": label, "gpu_hours": Decimal(0), "gpu_cost": Decimal(0),
                                    "other_cost": Decimal(0), "idle_gpu_hours": None, "idle_cost": None,
                                    "shared_unallocated": Decimal(0), "kind": raw["kind"]})
        for field in ("gpu_hours", "gpu_cost", "other_cost"):
            row[field] += raw[field] or 0
        for field in ("idle_gpu_hours", "idle_cost"):
            if raw[field] is not None:
                row[field] = (row[field] or Decimal(0)) + raw[field]

    if share_unallocated:
        # Shares come from every team's allocated cost (not only what the caller sees), so a team's part
        # doesn't depend on who is looking; team members get their share without seeing the pool line.
        everything = UsageDaily.objects.filter(day__gte=start, day__lte=end)
        if cluster:
            everything = everything.filter(cluster__name=cluster)
        total = everything.filter(kind=UsageKind.ALLOCATED).aggregate(
            c=Sum(F("gpu_cost") + F("other_cost")))["c"] or Decimal(0)
        pool = everything.filter(kind=UsageKind.UNALLOCATED).aggregate(c=Sum("gpu_cost"))["c"] or Decimal(0)
        if total > 0:
            rows.pop("unallocated", None)
            for row in rows.values():
                row["shared_unallocated"] = pool * (row["gpu_cost"] + row["other_cost"]) / total

    counts = {}
    if group_by == "version":
        ids = [int(k) for k in rows if k.isdigit()]
        counts = prediction_counts(model_version_ids=ids, start=start, end=end) if ids else {}
    cent = Decimal("0.01")
    result = []
    # Named rows first, then the catch-all lines (no team / no model), then unallocated capacity.
    for row in sorted(rows.values(), key=lambda r: (r["kind"] == UsageKind.UNALLOCATED,
                                                    r["key"] in ("unattributed", "none", "cpu"), r["label"].lower())):
        total_cost = row["gpu_cost"] + row["other_cost"] + row["shared_unallocated"]
        predictions = counts.get(int(row["key"])) if row["key"].isdigit() and group_by == "version" else None
        result.append({
            "key": row["key"], "label": row["label"],
            "gpu_hours": row["gpu_hours"].quantize(Decimal("0.001")),
            "gpu_cost": row["gpu_cost"].quantize(cent), "other_cost": row["other_cost"].quantize(cent),
            "idle_gpu_hours": row["idle_gpu_hours"].quantize(Decimal("0.001")) if row["idle_gpu_hours"] is not None
            else None,
            "idle_cost": row["idle_cost"].quantize(cent) if row["idle_cost"] is not None else None,
            "shared_unallocated": row["shared_unallocated"].quantize(cent),
            "total_cost": total_cost.quantize(cent),
            "predictions": predictions,
            "cost_per_1k_predictions": (total_cost / predictions * 1000).quantize(Decimal("0.0001"))
            if predictions else None,
        })
    return result


def prediction_counts(*, model_version_ids: list[int], start: date, end: date) -> dict[int, int]:
    """Predictions served per model version over the days [start, end], from the monitoring app's log."""
    from apps.monitoring.selectors import prediction_counts as hourly_prediction_counts

    begin = datetime.combine(start, time.min, tzinfo=dt_timezone.utc)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=dt_timezone.utc)
    counts: dict[int, int] = {}
    for (version_id, _hour), n in hourly_prediction_counts(model_version_ids=model_version_ids, start=begin,
                                                           end=finish).items():
        counts[version_id] = counts.get(version_id, 0) + n
    return counts


def daily_cost_by_team(*, user, start: date, end: date, cluster: str | None = None) -> dict[str, dict[str, float]]:
    """{label: {day: cost}} for the stacked chart (unallocated and unattributed lines for platform admins)."""
    qs = usage_daily_rows(user=user, start=start, end=end, cluster=cluster)
    series: dict[str, dict[str, float]] = {}
    for row in qs.values("day", "kind", "team__slug").annotate(c=Sum(F("gpu_cost") + F("other_cost"))):
        label = ("unallocated" if row["kind"] == UsageKind.UNALLOCATED else row["team__slug"] or "unattributed")
        series.setdefault(label, {})[str(row["day"])] = float(row["c"] or 0)
    return series


def utilization_heatmap(*, start: date, end: date, cluster: str | None = None) -> dict:
    """Mean utilization per node/GPU and day (node utilization is not team data: everyone signed in sees it)."""
    qs = UtilizationDaily.objects.filter(day__gte=start, day__lte=end)
    if cluster:
        qs = qs.filter(cluster__name=cluster)
    cells = list(qs.values_list("node", "gpu_index", "day", "avg_util"))
    gpus = sorted({(node, gpu) for node, gpu, _, _ in cells})
    days = sorted({day for _, _, day, _ in cells})
    index = {(node, gpu, day): util for node, gpu, day, util in cells}
    return {"x": [str(d) for d in days], "y": [f"{node} · GPU {gpu}" for node, gpu in gpus],
            "z": [[round(index[(node, gpu, d)], 1) if (node, gpu, d) in index else None for d in days]
                  for node, gpu in gpus]}


def budget_list(*, user) -> QuerySet[TeamBudget]:
    return scope_to_teams(TeamBudget.objects.select_related("team"), user=user)


def budget_alert_list(*, user) -> QuerySet[BudgetAlert]:
    return scope_to_teams(BudgetAlert.objects.select_related("team"), user=user)


def allocation_list(*, user) -> QuerySet[GpuAllocation]:
    return scope_to_teams(GpuAllocation.objects.select_related("team", "cluster", "gpu_type"), user=user)


def node_token_list(*, user) -> QuerySet[NodeToken]:
    """Registered nodes and their tokens, live ones first: platform plumbing, for platform admins only."""
    require_platform_admin(user=user)
    return NodeToken.objects.select_related("cluster").order_by(F("revoked_at").asc(nulls_first=True), "cluster__name",
                                                                "node", "-created_at")


def burn_down(*, budget: TeamBudget, month: date, now: datetime | None = None) -> dict:
    """Budget left at the end of each day of the month and, for the current month, the forecast of the rest at
    the month-to-date burn rate: the same rate (budgets.daily_burn_rate) as the budget table and the banner, so
    the chart's last point is the budget minus the table's month-end forecast."""
    from .budgets import daily_burn_rate

    now = now or timezone.now()
    days_in_month = calendar.monthrange(month.year, month.month)[1]
    last = month.replace(day=days_in_month)
    daily = dict(UsageDaily.objects.filter(team=budget.team, kind=UsageKind.ALLOCATED, day__gte=month, day__lte=last)
                 .values("day").annotate(c=Sum(F("gpu_cost") + F("other_cost"))).values_list("day", "c"))
    today = min(now.date(), last)
    left, spent, days, remaining = budget.monthly_amount, Decimal(0), [], []
    for offset in range((today - month).days + 1):
        day = month + timedelta(days=offset)
        spent += daily.get(day) or 0
        days.append(str(day))
        remaining.append(float(left - spent))
    forecast_days, forecast = [], []
    if month <= now.date() <= last:
        rate = daily_burn_rate(spent=spent, now=now)
        forecast_days, forecast = [str(today)], [float(left - spent)]
        for offset in range((today - month).days + 1, days_in_month):
            forecast_days.append(str(month + timedelta(days=offset)))
            forecast.append(float(left - rate * (offset + 1)))  # spent by the end of that day
    return {"team": budget.team.slug, "budget": float(left), "days": days, "remaining": remaining,
            "forecast_days": forecast_days, "forecast": forecast}


def quota_list_for_team(*, team) -> QuerySet[Quota]:
    """A team's quotas; callers pass a team taken from team_list(user=...), so scoping already happened."""
    return Quota.objects.filter(team=team).select_related("gpu_type__cluster", "cohort")
