"""Monthly budget alerts: 50/80/100 % (or the team's own thresholds), each sent once per team and month; the
banners that show them (dashboard, Costs, quotas) with today's figures."""
from __future__ import annotations

import calendar
from datetime import date, datetime, time
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.audit.services import audit_record
from apps.teams.services import webhooks_notify

from .models import BudgetAlert, TeamBudget, UsageDaily
from .selectors import budget_alert_list
from .services import month_start

WEBHOOK_EVENT = "costs.budget_threshold"
# A straight line through a day or two of spend says more about one busy hour than about the month: below this
# many days of the month the pages say "not enough history yet" instead of a forecast.
FORECAST_MIN_DAYS = 3


def month_to_date_cost(*, team_id: int, now: datetime) -> Decimal:
    start = month_start(now)
    totals = UsageDaily.objects.filter(team_id=team_id, kind="allocated", day__gte=start.date(),
                                       day__lte=now.date()).aggregate(gpu=Sum("gpu_cost"), other=Sum("other_cost"))
    return (totals["gpu"] or Decimal(0)) + (totals["other"] or Decimal(0))


def elapsed_days(now: datetime) -> Decimal:
    """Days of the month gone at `now`, fractional (at least an hour, so the first rollup doesn't divide by ~0)."""
    return Decimal(str(max((now - month_start(now)).total_seconds() / 86400, 1 / 24)))


def daily_burn_rate(*, spent: Decimal, now: datetime) -> Decimal:
    """The month-to-date spend per day: the one rate behind the budget table, the banner and the burn-down."""
    return spent / elapsed_days(now)


def month_end_forecast(*, spent: Decimal, now: datetime) -> Decimal:
    """Straight-line forecast from the month-to-date burn rate."""
    start = month_start(now)
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    return (daily_burn_rate(spent=spent, now=now) * days_in_month).quantize(Decimal("0.01"))


def forecast_ready(now: datetime) -> bool:
    """Whether the month has run long enough for its run rate to forecast the month end."""
    return elapsed_days(now) >= FORECAST_MIN_DAYS


def budget_status(*, budget: TeamBudget, now: datetime | None = None) -> dict | None:
    """The month of `now` against that month's budget (budget history); None when the team had none then."""
    from .selectors import budget_amount_for_month

    now = now or timezone.now()
    amount = budget_amount_for_month(budget=budget, month=month_start(now).date())
    if amount is None:
        return None
    spent = month_to_date_cost(team_id=budget.team_id, now=now).quantize(Decimal("0.01"))
    forecast = month_end_forecast(spent=spent, now=now)
    percent = float(spent / amount * 100) if amount else 0.0
    return {"team": budget.team.slug, "budget": amount, "spent": spent, "forecast": forecast,
            "percent": round(percent, 1),
            "forecast_percent": round(float(forecast / amount * 100), 1) if amount else None,
            "forecast_ready": forecast_ready(now), "thresholds": budget.thresholds}


def budget_banners(*, user, month: date, team: str | None = None, now: datetime | None = None) -> list[dict]:
    """One banner per team whose spend crossed a budget threshold in `month` (the highest one crossed), with
    today's figures, not those of the moment the alert fired: this month's spend and forecast from the same budget
    status as the Costs page's table (a forecast only after budgets.FORECAST_MIN_DAYS of the month), a past
    month's spend from its rollups. The dashboard, the Costs page and the quotas page show these."""
    now = now or timezone.now()
    alerts = budget_alert_list(user=user).filter(month=month)
    if team:
        alerts = alerts.filter(team__slug=team)
    last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    current = month == now.date().replace(day=1)
    budgets = {b.team_id: b for b in TeamBudget.objects.filter(team_id__in=alerts.values("team_id"))} if current else {}
    banners = []
    for alert in alerts.order_by("team__slug", "-threshold").distinct("team__slug"):
        banner = {"team": alert.team.slug, "month": alert.month, "threshold": alert.threshold,
                  "budget": alert.budget, "forecast": None, "forecast_ready": False,
                  "currency": settings.COSTS_CURRENCY}
        budget = budgets.get(alert.team_id)
        status = budget_status(budget=budget, now=now) if budget is not None else None
        if status is not None:
            banner |= {"budget": status["budget"], "spent": status["spent"], "forecast": status["forecast"],
                       "forecast_ready": status["forecast_ready"]}
        else:
            end = min(now, datetime.combine(last, time.max, tzinfo=dt_timezone.utc))
            banner["spent"] = month_to_date_cost(team_id=alert.team_id, now=end).quantize(Decimal("0.01"))
        banners.append(banner)
    return banners


def budgets_check(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Create the alerts for thresholds crossed this month that have none yet; webhook each once."""
    now = now or timezone.now()
    month = month_start(now).date()
    created = []
    for budget in TeamBudget.objects.select_related("team"):
        status = budget_status(budget=budget, now=now)
        if status is None:
            continue
        for threshold in sorted(budget.thresholds):
            if status["percent"] < threshold:
                break
            if BudgetAlert.objects.filter(team=budget.team, month=month, threshold=threshold).exists():
                continue
            try:
                with transaction.atomic():
                    alert = BudgetAlert.objects.create(team=budget.team, month=month, threshold=threshold,
                                                       spent=status["spent"], budget=status["budget"],
                                                       forecast=status["forecast"])
                    audit_record(actor=None, action="costs.budget.alert", target=alert, team=budget.team,
                                 changes={"threshold": [None, threshold], "spent": [None, str(status["spent"])]})
                    webhooks_notify(
                        team=budget.team, event=WEBHOOK_EVENT, key=f"{budget.team_id}:{month}:{threshold}",
                        text=(f"Team {budget.team.slug} has spent {status['spent']} of its {status['budget']} "
                              f"GPU budget for {month:%B %Y} ({status['percent']:.0f} %, threshold {threshold} %); "
                              + (f"month-end forecast {status['forecast']}." if status["forecast_ready"]
                                 else "not enough history yet for a month-end forecast.")),
                        data={"team": budget.team.slug, "month": str(month), "threshold": threshold,
                              "spent": str(status["spent"]), "budget": str(status["budget"]),
                              "forecast": str(status["forecast"])},
                    )
            except IntegrityError:  # another run created it first
                continue
            created.append(alert)
    return created
