"""Budget forecasts extend the run rate only once the month has enough history (budgets.FORECAST_MIN_DAYS)."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from apps.costs.budgets import budget_status
from apps.costs.models import TeamBudget, UsageDaily
from apps.costs.selectors import burn_down
from tests.costs import factories as f

pytestmark = pytest.mark.django_db
DAY_ONE = datetime(2026, 12, 1, 20, tzinfo=timezone.utc)
DAY_TEN = datetime(2026, 12, 10, 12, tzinfo=timezone.utc)


@pytest.fixture
def budget(team):
    UsageDaily.objects.create(day=DAY_ONE.date(), team=team, cluster=f.cluster(), gpu_type=f.gpu_type(), gpu_hours=4,
                              gpu_cost=Decimal("17.51"))
    return TeamBudget.objects.create(team=team, monthly_amount=Decimal("5000"), thresholds=[50, 80, 100])


def test_day_one_has_no_forecast(budget):
    status = budget_status(budget=budget, now=DAY_ONE)
    assert status["spent"] == Decimal("17.51") and status["forecast_ready"] is False
    chart = burn_down(budget=budget, month=DAY_ONE.date(), now=DAY_ONE)
    assert chart["remaining"] == [5000 - 17.51] and chart["forecast"] == []


def test_day_ten_forecasts_from_the_run_rate(budget):
    status = budget_status(budget=budget, now=DAY_TEN)
    assert status["forecast_ready"] is True
    chart = burn_down(budget=budget, month=DAY_TEN.date().replace(day=1), now=DAY_TEN)
    assert round(5000 - chart["forecast"][-1], 2) == float(status["forecast"])
