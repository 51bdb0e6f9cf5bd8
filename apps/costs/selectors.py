"""Reads for the costs app. Team-owned rows always go through cost_scope: the user's teams, or every team for
platform admins and the finance role (apps.teams.selectors.cost_team_ids_for)."""
import calendar
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from apps.core.errors import InvalidInput
from apps.teams.models import Team
from apps.teams.selectors import cost_team_ids_for, require_platform_admin

from .choices import RollupStatus, UsageKind
from .models import (BudgetAlert, GpuAllocation, GpuPrice, GpuType, NodeToken, Quota, RollupRun, TeamBudget,
                     TeamBudgetPeriod, UsageDaily, UtilizationDaily)


def cost_scope(queryset: QuerySet, *, user, field: str = "team") -> QuerySet:
    """Team-owned cost rows the user may read. Fails closed for anonymous users."""
    ids = cost_team_ids_for(user=user)
    return queryset if ids is None else queryset.filter(**{f"{field}__in": ids})


def cost_team_list(*, user) -> QuerySet[Team]:
    """The teams whose costs the user may read (the Costs pages' team filter)."""
    return cost_scope(Team.objects.all(), user=user, field="pk")


def quota_list(*, user) -> QuerySet[Quota]:
    return cost_scope(Quota.objects.select_related("team", "gpu_type__cluster", "cohort"), user=user)


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
# Every row names what it is about where one value applies (a team, a model, a version, a deployment), so an
# export stands on its own whatever the grouping; `team` is empty on rows that span teams (a GPU type, a day).
REPORT_COLUMNS = ["key", "label", "team", "model", "version", "deployment", "currency", "gpu_hours", "gpu_cost",
                  "other_cost", "idle_gpu_hours", "idle_cost", "shared_unallocated", "total_cost", "predictions",
                  "cost_per_1k_predictions"]
# Always read so that names, teams and prediction counts can be attached whatever the grouping.
_DETAIL = ("team__slug", "model_version_id", "model_version__model__name", "model_version__version", "deployment_id",
           "adjusts_month", "adjusts_kind")
_CATCH_ALL = {"unattributed", "none", "cpu"}


def group_by_dimensions(group_by: str) -> list[str]:
    """`team`, or several dimensions joined by commas (`team,model,deployment`), each once, in the given order."""
    dimensions = [part.strip() for part in (group_by or "").split(",") if part.strip()]
    unknown = [d for d in dimensions if d not in GROUPINGS]
    if not dimensions or unknown or len(set(dimensions)) != len(dimensions):
        raise InvalidInput(f"Unknown or repeated grouping '{group_by}'. Use one or more of: {', '.join(GROUPINGS)}, "
                           "separated by commas.", fields={"group_by": ["unknown"]})
    return dimensions


def usage_daily_rows(*, user, start: date, end: date, team: str | None = None, cluster: str | None = None):
    """UsageDaily rows in [start, end] the user may see: their teams' rows; platform admins and finance see every
    team's and also the unattributed (no team label) and unallocated (capacity nobody held) lines."""
    qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    if cluster:
        qs = qs.filter(cluster__name=cluster)
    ids = cost_team_ids_for(user=user)
    if ids is not None:
        qs = qs.filter(team_id__in=ids)
    if team:
        qs = qs.filter(team__slug=team)
    return qs


def _deployment_label(deployment_id: int, names: dict[int, str]) -> str:
    return names.get(deployment_id) or f"deployment {deployment_id} (deleted)"


def _label(dimension: str, row: dict, names: dict[int, str]) -> tuple[str, str]:
    if row["kind"] == UsageKind.UNALLOCATED:
        return "unallocated", "Unallocated capacity"
    if dimension == "team":
        slug = row["team__slug"]
        return (slug, slug) if slug else ("unattributed", "Unattributed (no team label)")
    if dimension == "model":
        name = row["model_version__model__name"]
        return (name, name) if name else ("none", "No model")
    if dimension == "version":
        if row["model_version_id"] is None:
            return "none", "No model version"
        return str(row["model_version_id"]), f"{row['model_version__model__name']} v{row['model_version__version']}"
    if dimension == "deployment":
        dep = row["deployment_id"]
        return (str(dep), _deployment_label(dep, names)) if dep is not None else ("none", "No deployment")
    if dimension == "gpu_type":
        name = row["gpu_type__name"]
        return (f"{row['cluster__name']}/{name}", f"{name} on {row['cluster__name']}") if name else ("cpu", "CPU only")
    return str(row["day"]), str(row["day"])


def _deployment_names(ids) -> dict[int, str]:
    from apps.deployments.models import Deployment

    return {pk: f"{slug}/{name}" for pk, slug, name in
            Deployment.objects.filter(pk__in=ids).values_list("pk", "team__slug", "name")}


def _one(values: set):
    return next(iter(values)) if len(values) == 1 else None


def cost_report(*, user, start: date, end: date, group_by: str = "team", team: str | None = None,
                cluster: str | None = None, share_unallocated: bool = False) -> list[dict]:
    """Cost per team / model / version / deployment / GPU type / day — or several at once (`team,model,deployment`)
    — over [start, end], from daily rollups.

    Idle cost (allocated GPU-time × (1 − measured utilization)) is a part of gpu_cost, shown on its own;
    it is empty where no NVML data covers the usage. Unallocated capacity is its own line, or — with
    share_unallocated — spread over the rows in proportion to their cost (OpenCost's shareIdle). Cost per 1,000
    predictions, where the grouping names a model, version or deployment, divides the row's cost by the
    predictions of exactly the versions and deployments behind that cost.
    """
    return cost_reports(user=user, start=start, end=end, groupings=[group_by], team=team, cluster=cluster,
                        share_unallocated=share_unallocated)[group_by]


def cost_reports(*, user, start: date, end: date, groupings: list[str], team: str | None = None,
                 cluster: str | None = None, share_unallocated: bool = False) -> dict[str, list[dict]]:
    """cost_report for several groupings of one period ({group_by: rows}), aggregating the rollups once per distinct
    set of grouped fields: the Costs page shows a grouping and the model × deployment breakdown, which group the
    same detail fields (one ~230 ms aggregation for a month of 1,000 deployments instead of two)."""
    dimension_lists = {group_by: group_by_dimensions(group_by) for group_by in groupings}
    if end < start:
        raise InvalidInput("The end date is before the start date.", fields={"end": ["before start"]})
    qs = usage_daily_rows(user=user, start=start, end=end, team=team, cluster=cluster)
    aggregates: dict[tuple, list[dict]] = {}
    names: dict[int, str] = {}  # deployment labels, looked up once for every grouping
    reports = {}
    for group_by, dimensions in dimension_lists.items():
        fields = tuple(dict.fromkeys(["kind", *_DETAIL, *(f for d in dimensions for f in GROUPINGS[d])]))
        if fields not in aggregates:
            aggregates[fields] = _aggregate(qs, fields)
            names.update(_deployment_names({raw["deployment_id"] for raw in aggregates[fields]} - {None} - set(names)))
        reports[group_by] = _report_rows(aggregates[fields], dimensions, names, start=start, end=end,
                                         cluster=cluster, share_unallocated=share_unallocated)
    return reports


# Rollup rows are grouped on ids and the names looked up afterwards: grouping a month of 1,000 deployments' rows
# (30k) on joined text columns made PostgreSQL sort them on disk (~140 ms of a ~260 ms query).
_NAMES = {"team__slug": ("team", "slug"), "model_version__model__name": ("model_version", "model__name"),
          "model_version__version": ("model_version", "version"), "gpu_type__name": ("gpu_type", "name"),
          "cluster__name": ("cluster", "name")}


def _aggregate(qs: QuerySet, fields: tuple[str, ...]) -> list[dict]:
    """Sums per distinct `fields` (joined names included) of the given rollup rows."""
    keys = dict.fromkeys(f"{_NAMES[f][0]}_id" if f in _NAMES else f for f in fields)
    rows = list(qs.values(*keys).annotate(gpu_hours=Sum("gpu_hours"), gpu_cost=Sum("gpu_cost"),
                                          other_cost=Sum("other_cost"), idle_gpu_hours=Sum("idle_gpu_hours"),
                                          idle_cost=Sum("idle_cost")))
    for relation in dict.fromkeys(_NAMES[f][0] for f in fields if f in _NAMES):
        named = [f for f in fields if f in _NAMES and _NAMES[f][0] == relation]
        model = UsageDaily._meta.get_field(relation).related_model
        ids = {row[f"{relation}_id"] for row in rows} - {None}
        found = {pk: values for pk, *values in model._base_manager.filter(pk__in=ids)
                 .values_list("pk", *(_NAMES[f][1] for f in named))}
        for row in rows:
            values = found.get(row[f"{relation}_id"])  # None: no such row (rollups keep ids of deleted objects)
            row.update({f: values[i] if values else None for i, f in enumerate(named)})
    return rows


def _report_rows(grouped: list[dict], dimensions: list[str], names: dict[int, str], *, start: date, end: date,
                 cluster: str | None, share_unallocated: bool) -> list[dict]:
    rows: dict[str, dict] = {}
    for raw in grouped:
        parts = [_label(d, raw, names) for d in dimensions]
        if raw["kind"] == UsageKind.UNALLOCATED:
            parts = [("unallocated", "Unallocated capacity")]
        if raw["kind"] == UsageKind.ADJUSTMENT:
            # A correction to a closed month booked in this one: a line of its own, never merged into usage.
            corrected = raw["adjusts_month"]
            parts = [(f"adjustment-{corrected:%Y-%m}", f"Adjustment to {corrected:%B %Y}"),
                     *([("unallocated", "Unallocated capacity")] if raw["adjusts_kind"] == UsageKind.UNALLOCATED
                       else parts)]
        key, label = "|".join(k for k, _ in parts), " · ".join(lbl for _, lbl in parts)
        row = rows.setdefault(key, {"key": key, "label": label, "gpu_hours": Decimal(0), "gpu_cost": Decimal(0),
                                    "other_cost": Decimal(0), "idle_gpu_hours": None, "idle_cost": None,
                                    "shared_unallocated": Decimal(0), "kind": raw["kind"], "teams": set(),
                                    "models": set(), "versions": set(), "deployments": set(), "sources": set(),
                                    "catch_all": any(k in _CATCH_ALL for k, _ in parts)})
        for field in ("gpu_hours", "gpu_cost", "other_cost"):
            row[field] += raw[field] or 0
        for field in ("idle_gpu_hours", "idle_cost"):
            if raw[field] is not None:
                row[field] = (row[field] or Decimal(0)) + raw[field]
        row["teams"].add(raw["team__slug"])
        row["models"].add(raw["model_version__model__name"])
        row["versions"].add((raw["model_version__model__name"], raw["model_version__version"])
                            if raw["model_version_id"] else None)
        row["deployments"].add(raw["deployment_id"])
        if raw["model_version_id"] is not None:
            row["sources"].add((raw["model_version_id"], raw["deployment_id"]))

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
    if {"model", "version", "deployment"} & set(dimensions):
        ids = sorted({version for row in rows.values() for version, _ in row["sources"]})
        counts = prediction_counts_by_deployment(model_version_ids=ids, start=start, end=end) if ids else {}
    cent = Decimal("0.01")
    result = []
    # Named rows first, then the catch-all lines (no team / no model), unallocated capacity, adjustments.
    for row in sorted(rows.values(), key=lambda r: (r["kind"] == UsageKind.ADJUSTMENT,
                                                    r["kind"] == UsageKind.UNALLOCATED, r["catch_all"],
                                                    r["label"].lower())):
        total_cost = row["gpu_cost"] + row["other_cost"] + row["shared_unallocated"]
        predictions = (_predictions_behind(row["sources"], counts, by_deployment="deployment" in dimensions) or None
                       if counts else None)
        version = _one(row["versions"])
        deployment = _one(row["deployments"])
        result.append({
            "key": row["key"], "label": row["label"], "team": _one(row["teams"]) or "",
            "model": _one(row["models"]) or "", "version": f"{version[0]} v{version[1]}" if version else "",
            "deployment": _deployment_label(deployment, names) if deployment is not None else "",
            "currency": settings.COSTS_CURRENCY,
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


def _predictions_behind(sources: set[tuple[int, int | None]], counts: dict[tuple[int, int | None], int], *,
                        by_deployment: bool) -> int:
    """Predictions of the (version, deployment) pairs whose cost makes a row. Grouped without deployments, a
    version's predictions through any deployment count; grouped by deployment, only that deployment's."""
    if by_deployment:
        return sum(counts.get(source, 0) for source in sources)
    versions = {version for version, _ in sources}
    return sum(n for (version, _), n in counts.items() if version in versions)


def prediction_counts_by_deployment(*, model_version_ids: list[int], start: date,
                                    end: date) -> dict[tuple[int, int | None], int]:
    """Predictions served per (model version, deployment) over the days [start, end], from the monitoring log."""
    from apps.monitoring.selectors import prediction_counts_by_deployment as logged_counts

    begin = datetime.combine(start, time.min, tzinfo=dt_timezone.utc)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=dt_timezone.utc)
    return logged_counts(model_version_ids=model_version_ids, start=begin, end=finish)


def daily_cost_by_team(*, user, start: date, end: date, cluster: str | None = None) -> dict[str, dict[str, float]]:
    """{label: {day: cost}} for the stacked chart (unallocated and unattributed lines for platform admins)."""
    qs = usage_daily_rows(user=user, start=start, end=end, cluster=cluster)
    series: dict[str, dict[str, float]] = {}
    for row in qs.values("day", "kind", "adjusts_kind", "team__slug").annotate(c=Sum(F("gpu_cost") + F("other_cost"))):
        unallocated = UsageKind.UNALLOCATED in (row["kind"], row["adjusts_kind"])
        label = "unallocated" if unallocated else row["team__slug"] or "unattributed"
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
    return cost_scope(TeamBudget.objects.select_related("team"), user=user)


def budget_alert_list(*, user) -> QuerySet[BudgetAlert]:
    return cost_scope(BudgetAlert.objects.select_related("team"), user=user)


def allocation_list(*, user) -> QuerySet[GpuAllocation]:
    return cost_scope(GpuAllocation.objects.select_related("team", "cluster", "gpu_type"), user=user)


def node_token_list(*, user) -> QuerySet[NodeToken]:
    """Registered nodes and their tokens, live ones first: platform plumbing, for platform admins only."""
    require_platform_admin(user=user)
    return NodeToken.objects.select_related("cluster").order_by(F("revoked_at").asc(nulls_first=True), "cluster__name",
                                                                "node", "-created_at")


def budget_amount_for_month(*, budget: TeamBudget, month: date) -> Decimal | None:
    """The team's budget in force for `month`: the latest period from that month or before; None when the budget
    only started later. A budget without any history (written before there was one) applies to every month."""
    periods = TeamBudgetPeriod.objects.filter(team_id=budget.team_id)
    amount = periods.filter(month__lte=month).order_by("-month").values_list("monthly_amount", flat=True).first()
    if amount is None and not periods.exists():
        return budget.monthly_amount
    return amount


def burn_down(*, budget: TeamBudget, month: date, now: datetime | None = None) -> dict | None:
    """Budget left at the end of each day of the month and, for the current month, the forecast of the rest at
    the month-to-date burn rate: the same rate (budgets.daily_burn_rate) as the budget table and the banner, so
    the chart's last point is the budget minus the table's month-end forecast (no forecast before
    budgets.FORECAST_MIN_DAYS of the month). The budget is the month's own
    (budget history); None when the team had no budget that month."""
    from .budgets import daily_burn_rate, forecast_ready

    amount = budget_amount_for_month(budget=budget, month=month)
    if amount is None:
        return None
    now = now or timezone.now()
    days_in_month = calendar.monthrange(month.year, month.month)[1]
    last = month.replace(day=days_in_month)
    daily = dict(UsageDaily.objects.filter(team=budget.team, kind=UsageKind.ALLOCATED, day__gte=month, day__lte=last)
                 .values("day").annotate(c=Sum(F("gpu_cost") + F("other_cost"))).values_list("day", "c"))
    today = min(now.date(), last)
    left, spent, days, remaining = amount, Decimal(0), [], []
    for offset in range((today - month).days + 1):
        day = month + timedelta(days=offset)
        spent += daily.get(day) or 0
        days.append(str(day))
        remaining.append(float(left - spent))
    forecast_days, forecast = [], []
    if month <= now.date() <= last and forecast_ready(now):
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


def rollups_needing_attention() -> QuerySet[RollupRun]:
    """Rollups the runner gave up on since the last one that succeeded (a later success rebuilt their window too).
    Platform-wide and without team figures: shown to every signed-in user on the dashboard and the costs page."""
    last_success = (RollupRun.objects.filter(status=RollupStatus.SUCCEEDED).order_by("-started_at")
                    .values_list("started_at", flat=True).first())
    runs = RollupRun.objects.filter(status=RollupStatus.NEEDS_ATTENTION)
    return runs.filter(started_at__gt=last_success) if last_success else runs
