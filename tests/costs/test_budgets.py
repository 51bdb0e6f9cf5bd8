"""Budget alerts: each threshold once per team and month, with a webhook and a forecast."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.costs.budgets import budget_status, budgets_check, month_end_forecast
from apps.costs.models import BudgetAlert, TeamBudget, UsageDaily
from apps.outbox.models import OutboxMessage
from tests.factories import WebhookEndpointFactory

from . import factories as f

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)  # half of November gone


def spend(team, amount: str, day=NOW.date()):
    UsageDaily.objects.create(day=day, kind="allocated", team=team, cluster=f.cluster(), gpu_cost=Decimal(amount))


def test_forecast_is_the_month_to_date_burn_rate_carried_to_month_end():
    assert month_end_forecast(spent=Decimal("150"), now=NOW) == Decimal("300.00")


def test_each_threshold_alerts_once_per_month(team):
    hook = WebhookEndpointFactory(team=team, events=["costs.budget_threshold"])
    TeamBudget.objects.create(team=team, monthly_amount=Decimal("1000"), thresholds=[50, 80, 100])
    spend(team, "600")
    with_hooks = budgets_check(now=NOW)
    assert [a.threshold for a in with_hooks] == [50]
    assert budgets_check(now=NOW) == []  # nothing new: no second alert
    spend(team, "250", NOW.date() - timedelta(days=1))
    assert [a.threshold for a in budgets_check(now=NOW)] == [80]
    assert list(BudgetAlert.objects.values_list("threshold", flat=True).order_by("threshold")) == [50, 80]
    messages = OutboxMessage.objects.filter(topic="teams.deliver_webhook")
    assert messages.count() == 2 and all(m.payload["endpoint_id"] == hook.pk for m in messages)
    body = messages.get(dedup_key__endswith=":80").payload["body"]
    assert body["event"] == "costs.budget_threshold" and body["spent"] == "850.00" and body["forecast"] == "1700.00"
    assert "threshold 80 %" in body["text"]
    assert AuditEvent.objects.filter(action="costs.budget.alert").count() == 2
    # A new month starts over.
    assert [a.threshold for a in budgets_check(now=datetime(2026, 12, 1, 12, tzinfo=timezone.utc))] == []


def test_status_reports_percent_and_forecast(team):
    budget = TeamBudget.objects.create(team=team, monthly_amount=Decimal("200"), thresholds=[50, 80, 100])
    spend(team, "100")
    status = budget_status(budget=budget, now=NOW)
    assert status["percent"] == 50.0 and status["forecast"] == Decimal("200.00") and status["forecast_percent"] == 100.0
