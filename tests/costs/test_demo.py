"""The costs demo seed: quotas, a refused over-quota request, cost per team/model with idle cost, a budget alert."""
from datetime import timedelta

from decimal import Decimal

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


def test_demo_serving_costs_name_the_deployment_and_its_cost_per_1000_predictions(team, other_team, platform_admin):
    """The costs seed runs before the deployments demo: link_serving_deployment attributes the serving usage to
    the demo deployment afterwards, so cost per 1,000 predictions is a number on the demo."""
    from datetime import datetime, timezone as dt_timezone

    from apps.costs.demo import link_serving_deployment
    from apps.monitoring import logstore
    from apps.monitoring.models import PredictionBatch
    from tests.deployments.factories import deployment_in

    lines = []
    seed_costs(log=lines.append)
    deployment = deployment_in(team, "healthy", name="fraud-classifier")
    version = deployment.current_revision.model_version
    link_serving_deployment(log=lines.append)
    batch = PredictionBatch.objects.create(team=team, model_version=version, batch_id="demo", source="json",
                                           received=500, accepted=500)
    now = timezone.now()
    start = datetime(now.year, now.month, now.day, tzinfo=dt_timezone.utc)
    logstore.ensure_partitions(start, start + timedelta(hours=1))
    logstore.copy_rows((version.pk, deployment.pk, batch.pk, start + timedelta(seconds=i), f"d-{i}", {"x": 1.0}, "1",
                        None, None, 10.0, None) for i in range(500))
    today = now.date()
    rows = {r["key"]: r for r in cost_report(user=platform_admin, start=today.replace(day=1), end=today,
                                             group_by="deployment")}
    row = rows[str(deployment.pk)]
    assert row["label"] == "fraud/fraud-classifier" and row["team"] == "fraud"
    assert row["predictions"] == 500 and row["cost_per_1k_predictions"] > 0
    assert abs(row["cost_per_1k_predictions"] - row["total_cost"] * 2) < Decimal("0.01")  # total / 500 × 1,000
    assert not any(key in rows for key in ("101", "102", "103", "301"))
