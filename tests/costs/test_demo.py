"""The costs demo seed: quotas, a refused over-quota request, cost per team/model with idle cost, a budget alert."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.costs.demo import seed_costs
from apps.costs.models import BudgetAlert, GpuAllocation, Quota, SampleBatch
from apps.costs.selectors import cost_report
from apps.costs.services import admission_check

pytestmark = pytest.mark.django_db


def test_demo_seed_is_complete_and_idempotent(team, other_team, platform_admin):
    lines = []
    seed_costs(log=lines.append)
    assert Quota.objects.filter(team__slug__in=["fraud", "search"]).count() == 4
    refused = admission_check(team=team, cluster="local", gpu_type="A100-80GB", gpu_count=8)
    assert not refused.allowed and "do not fit" in refused.reason
    today = timezone.now().date()
    rows = {r["key"]: r for r in cost_report(user=platform_admin, start=today - timedelta(days=31), end=today)}
    assert {"fraud", "search", "unattributed", "unallocated"} <= set(rows)
    assert rows["fraud"]["idle_cost"] > 0 and rows["fraud"]["total_cost"] > rows["fraud"]["idle_cost"]
    models = {r["label"] for r in cost_report(user=platform_admin, start=today - timedelta(days=31), end=today,
                                              group_by="model")}
    assert "fraud-classifier" in models
    assert BudgetAlert.objects.filter(team=team, threshold=80).exists()
    counts = (GpuAllocation.objects.count(), SampleBatch.objects.count(), BudgetAlert.objects.count())
    seed_costs(log=lines.append)
    assert (GpuAllocation.objects.count(), SampleBatch.objects.count(), BudgetAlert.objects.count()) == counts
