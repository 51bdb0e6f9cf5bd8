"""Rollups: exact cost across a price change, idle cost from NVML data, unallocated capacity, idempotence."""
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.costs.ingest import samples_ingest
from apps.costs.models import GpuPrice, ResourceRate, RollupRun, UsageDaily, UsageHourly, UtilizationHourly
from apps.costs.rollup import rollup_incremental, rollup_window
from apps.costs.services import allocation_start, allocation_stop

from . import factories as f

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
T0 = NOW - timedelta(days=2)  # well inside the accepted sample age


def rows(model, **filters):
    fields = [f.name for f in model._meta.fields if f.name != "id"]
    return sorted(tuple(str(v) for v in row) for row in model.objects.filter(**filters).values_list(*fields))


def test_cost_is_split_exactly_at_a_mid_hour_price_change(team):
    gtype = f.gpu_type(price=None, capacity=0)
    GpuPrice.objects.create(gpu_type=gtype, hourly_price=Decimal("2"), effective_from=T0 - timedelta(days=1),
                            effective_to=T0 + timedelta(minutes=30))
    GpuPrice.objects.create(gpu_type=gtype, hourly_price=Decimal("4"), effective_from=T0 + timedelta(minutes=30))
    allocation = allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=2, started_at=T0)
    allocation_stop(allocation=allocation, stopped_at=T0 + timedelta(hours=2))
    rollup_window(start=T0, end=T0 + timedelta(hours=3), now=NOW)
    hourly = {r.hour: r for r in UsageHourly.objects.filter(team=team)}
    assert set(hourly) == {T0, T0 + timedelta(hours=1)}
    # 2 GPUs × (0.5 h at 2 + 0.5 h at 4) = 6, then 2 × 4 = 8
    assert hourly[T0].gpu_cost == Decimal("6") and hourly[T0 + timedelta(hours=1)].gpu_cost == Decimal("8")
    assert hourly[T0].gpu_hours == Decimal("2") and hourly[T0].idle_cost is None  # no NVML data
    assert UsageDaily.objects.filter(team=team).aggregate(c=Sum("gpu_cost"))["c"] == Decimal("14")


def test_idle_cost_comes_from_measured_utilization(team):
    gtype = f.gpu_type(price="3", capacity=0)
    cluster = gtype.cluster
    allocation = allocation_start(team=team, cluster=cluster, gpu_type=gtype, gpu_count=1, started_at=T0,
                                  node="node-a", gpu_indexes=[0])
    allocation_stop(allocation=allocation, stopped_at=T0 + timedelta(hours=1))
    samples = [{"ts": (T0 + timedelta(minutes=m)).timestamp(), "gpu_index": 0, "util": util, "mem_used_mb": 1,
                "mem_total_mb": 10} for m, util in [(5, 20), (35, 40)]]
    samples_ingest(cluster=cluster, node="node-a", batch_id=uuid.uuid4(), samples=samples, now=NOW)
    rollup_window(start=T0, end=T0 + timedelta(hours=1), now=NOW)
    util = UtilizationHourly.objects.get(hour=T0)
    assert (util.samples, util.avg_util) == (2, pytest.approx(30))
    row = UsageHourly.objects.get(team=team)
    assert row.gpu_cost == Decimal("3") and row.idle_cost == pytest.approx(Decimal("2.1"))  # 3 × (1 − 0.30)


def test_cpu_and_memory_are_costed_from_the_cluster_rates(team):
    gtype = f.gpu_type(price="1", capacity=0)
    ResourceRate.objects.create(cluster=gtype.cluster, cpu_core_hour=Decimal("0.05"), memory_gb_hour=Decimal("0.01"),
                                effective_from=T0 - timedelta(days=3))
    allocation = allocation_start(team=team, cluster="local", gpu_type="", gpu_count=0, started_at=T0, cpu_cores=4,
                                  memory_gb=16)
    allocation_stop(allocation=allocation, stopped_at=T0 + timedelta(hours=1))
    rollup_window(start=T0, end=T0 + timedelta(hours=1), now=NOW)
    row = UsageHourly.objects.get(team=team)
    assert row.gpu_cost == 0 and row.other_cost == Decimal("0.36")  # 4 × 0.05 + 16 × 0.01


def test_unallocated_capacity_is_its_own_line(team):
    gtype = f.gpu_type(price="2", capacity=4)
    allocation = allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=1, started_at=T0)
    allocation_stop(allocation=allocation, stopped_at=T0 + timedelta(hours=1))
    rollup_window(start=T0, end=T0 + timedelta(hours=1), now=NOW)
    free = UsageHourly.objects.get(kind="unallocated")
    assert free.team_id is None and free.gpu_hours == Decimal("3") and free.gpu_cost == Decimal("6")


def test_rerunning_a_window_gives_the_same_rows(team, other_team):
    gtype = f.gpu_type(price="2.5", capacity=8)
    for t, count, hours in [(team, 2, 5), (other_team, 3, 30)]:
        a = allocation_start(team=t, cluster="local", gpu_type=gtype, gpu_count=count, started_at=T0, node="n1")
        allocation_stop(allocation=a, stopped_at=T0 + timedelta(hours=hours))
    samples_ingest(cluster=gtype.cluster, node="n1", batch_id=uuid.uuid4(), now=NOW, samples=[
        {"ts": (T0 + timedelta(minutes=10 * i)).timestamp(), "gpu_index": i % 4, "util": 50, "mem_used_mb": 1,
         "mem_total_mb": 10} for i in range(100)])
    rollup_window(start=T0, end=T0 + timedelta(days=2), now=NOW)
    first = [rows(m) for m in (UsageHourly, UsageDaily, UtilizationHourly)]
    rollup_window(start=T0 + timedelta(hours=3), end=T0 + timedelta(hours=40), now=NOW)
    rollup_window(start=T0, end=T0 + timedelta(days=2), now=NOW)
    assert [rows(m) for m in (UsageHourly, UsageDaily, UtilizationHourly)] == first
    total = UsageDaily.objects.filter(kind="allocated").aggregate(c=Sum("gpu_cost"))["c"]
    assert total == Decimal("2.5") * (2 * 5 + 3 * 30)  # never double-counted


def test_incremental_run_picks_up_late_changes(team):
    gtype = f.gpu_type(price="1", capacity=0)
    rollup_incremental(now=NOW)
    assert RollupRun.objects.count() == 1
    # A back-dated allocation recorded after the last run is rolled up by the next one.
    late = allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=1, started_at=T0)
    allocation_stop(allocation=late, stopped_at=T0 + timedelta(hours=2))
    rollup_incremental(now=NOW + timedelta(minutes=5))
    assert UsageDaily.objects.filter(team=team).aggregate(c=Sum("gpu_cost"))["c"] == Decimal("2")


def test_beat_task_rolls_up_and_checks_budgets(team):
    from apps.costs.tasks import rollup_task

    result = rollup_task()
    assert {"window_start", "window_end", "usage_rows"} <= set(result) and result["status"] == "succeeded"
    assert result["outcome"] == {"done": 1}
    assert RollupRun.objects.filter(finished_at__isnull=False).count() == 1


def test_after_an_outage_the_next_run_catches_up(team):
    gtype = f.gpu_type(price="1", capacity=0)
    allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=1, started_at=T0)
    rollup_incremental(now=T0 + timedelta(hours=1))
    # Beat down for 10 hours; nothing about the open allocation changed meanwhile.
    RollupRun.objects.update(started_at=datetime.now(timezone.utc) + timedelta(days=1))  # nothing looks changed
    rollup_incremental(now=T0 + timedelta(hours=11))
    assert UsageHourly.objects.filter(team=team).count() == 11


def test_the_beat_queues_one_rollup_for_the_runner(team):
    from apps.core import runner
    from apps.costs.rollup import ROLLUP_KIND, rollup_queue

    f.gpu_type(price="1", capacity=0)
    run = rollup_queue()
    assert run.status == "queued" and run.window_start is None
    assert rollup_queue().pk == run.pk  # at most one pending
    assert runner.tick(ROLLUP_KIND) == {"done": 1}
    run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at and run.window_start and not run.lease_owner
    assert rollup_queue().pk != run.pk


def test_a_rollup_out_of_attempts_needs_attention_until_an_admin_retries(team, settings, django_user_model):
    from django.test import Client
    from django.utils import timezone as tz

    from apps.audit.models import AuditEvent
    from apps.core import runner
    from apps.costs.rollup import ROLLUP_KIND, rollup_queue

    settings.COSTS_ROLLUP_LOOKBACK_HOURS = "six"  # a broken setting: every attempt fails the same way
    run = rollup_queue()
    assert runner.tick(ROLLUP_KIND) == {"retry": 1}
    run.refresh_from_db()
    assert run.status == "queued" and run.attempts == 1 and "TypeError" in run.last_error and run.next_attempt_at
    RollupRun.objects.filter(pk=run.pk).update(next_attempt_at=tz.now(),
                                               attempts=runner.kind_get(ROLLUP_KIND).max_attempts - 1)
    assert runner.tick(ROLLUP_KIND) == {"needs_attention": 1}
    run.refresh_from_db()
    assert run.status == "needs_attention" and "TypeError" in run.last_error
    actions = lambda: list(AuditEvent.objects.filter(object_type="costs.rolluprun", object_id=str(run.pk))
                           .order_by("id").values_list("action", flat=True))
    assert actions() == ["costs.rollup.needs_attention"]

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "x")
    page = Client()
    page.force_login(admin)
    assert "Cost rollup" in page.get("/").content.decode()
    assert 'id="rollup"' in page.get("/costs/").content.decode()
    settings.COSTS_ROLLUP_LOOKBACK_HOURS = 6
    assert page.post(f"/costs/rollups/{run.pk}/retry/").status_code == 302
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("queued", 0) and actions()[-1] == "costs.rollup.retry"
    assert runner.tick(ROLLUP_KIND) == {"done": 1}
