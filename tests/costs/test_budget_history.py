"""Budget history: a budget change applies from its month on; earlier months keep their own amount."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.costs.budgets import budget_status, budgets_check
from apps.costs.models import BudgetAlert, TeamBudget, UsageDaily
from apps.costs.selectors import burn_down
from apps.costs.services import budget_set

from . import factories as f

pytestmark = pytest.mark.django_db

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEC_CHANGE = datetime(2026, 12, 10, 9, tzinfo=timezone.utc)  # the budget is raised mid-December


@pytest.fixture
def budget(team, platform_admin):
    budget_set(actor=platform_admin, team=team, monthly_amount=Decimal("1000"), now=NOV + timedelta(days=3))
    UsageDaily.objects.create(day=(NOV + timedelta(days=5)).date(), team=team, cluster=f.cluster(),
                              gpu_cost=Decimal("600"))
    return budget_set(actor=platform_admin, team=team, monthly_amount=Decimal("3000"), now=DEC_CHANGE)


def test_november_keeps_its_budget_after_a_change_in_december(budget, team):
    assert TeamBudget.objects.get(team=team).monthly_amount == Decimal("3000")  # what the API lists: today's
    november = burn_down(budget=budget, month=NOV.date(), now=DEC_CHANGE)
    assert november["budget"] == 1000.0 and november["remaining"][-1] == 400.0  # 1000 − 600, not 3000 − 600
    assert burn_down(budget=budget, month=DEC_CHANGE.date().replace(day=1), now=DEC_CHANGE)["budget"] == 3000.0
    # November's alerts are against November's 1000 (60 % crosses 50 %); against 3000 it would be 20 %.
    late_november = NOV + timedelta(days=20)
    assert budget_status(budget=budget, now=late_november)["budget"] == Decimal("1000")
    assert [(a.threshold, a.budget) for a in budgets_check(now=late_november)] == [(50, Decimal("1000"))]
    assert budget_status(budget=budget, now=DEC_CHANGE)["budget"] == Decimal("3000")


def test_no_budget_before_the_first_one(team, platform_admin):
    budget = budget_set(actor=platform_admin, team=team, monthly_amount=Decimal("500"), now=NOV)
    october = NOV - timedelta(days=1)
    assert burn_down(budget=budget, month=october.date().replace(day=1), now=NOV) is None
    assert budget_status(budget=budget, now=october) is None and budgets_check(now=october) == []
    assert not BudgetAlert.objects.exists()


def test_the_costs_page_draws_november_with_novembers_budget(budget, team, platform_admin, client):
    client.force_login(platform_admin)
    page = client.get("/costs/", {"month": "2026-11", "team": team.slug})
    assert page.status_code == 200
    assert [chart["budget"] for chart in page.context["burn"]] == [1000.0]


def test_correcting_an_earlier_month_keeps_todays_budget(budget, team, platform_admin):
    budget_set(actor=platform_admin, team=team, monthly_amount=Decimal("1200"), now=NOV + timedelta(days=1))
    assert TeamBudget.objects.get(team=team).monthly_amount == Decimal("3000")
    assert burn_down(budget=TeamBudget.objects.get(team=team), month=NOV.date(), now=DEC_CHANGE)["budget"] == 1200.0
    event = AuditEvent.objects.filter(action="costs.budget.set").order_by("-id").first()
    assert event.changes["month"] == [None, "2026-11"] and event.changes["monthly_amount"] == ["1000.00", "1200"]
