"""Closed months: figures frozen to the cent, late data booked as adjustments in the next open month, capacity
counted from when it came into service, and the close API's refusals."""
import calendar
import csv
import io
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.audit.models import AuditEvent
from apps.costs.closing import month_close
from apps.costs.ingest import samples_ingest
from apps.costs.models import CostMonth, GpuPrice, RollupRun, UsageDaily, UsageHourly
from apps.costs.rollup import rollup_incremental, rollup_window
from apps.costs.services import allocation_start, allocation_stop, gpu_type_create

from . import factories as f

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc)
DEC = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)  # "December": the current, open month
NOV = (DEC - timedelta(days=1)).replace(day=1)  # "November": the month before, over and closable
HOURS = calendar.monthrange(NOV.year, NOV.month)[1] * 24  # hours in November
T = NOV + timedelta(days=20, hours=10)  # 21 November 10:00, within the accepted age of late samples
PRICE_CHANGE = T + timedelta(hours=1)  # 11:00: 2.00 → 3.00 per GPU-hour, entered late
LATE = NOV + timedelta(days=24)  # 25 November 00:00–03:00: an allocation entered late


def frozen(month_start, month_end):
    """Every rollup row of the month, as text: what "unchanged to the cent" compares."""
    fields = ["day", "kind", "team_id", "gpu_type_id", "model_version_id", "deployment_id", "gpu_hours", "gpu_cost",
              "other_cost", "idle_gpu_hours", "idle_cost"]
    daily = UsageDaily.objects.filter(day__gte=month_start.date(), day__lt=month_end.date())
    hourly = UsageHourly.objects.filter(hour__gte=month_start, hour__lt=month_end)
    return (sorted(map(str, daily.values_list(*fields))),
            sorted(map(str, hourly.values_list("hour", *fields[1:]))))


def adjustments(**filters) -> dict:
    """The adjustment rows booked for November, summed per corrected line."""
    rows = UsageDaily.objects.filter(kind="adjustment", adjusts_month=NOV.date(), **filters)
    assert set(rows.values_list("day", flat=True)) == {DEC.date()}  # booked on the first day of December
    return rows.aggregate(gpu_hours=Sum("gpu_hours"), gpu_cost=Sum("gpu_cost"), idle_gpu_hours=Sum("idle_gpu_hours"),
                          idle_cost=Sum("idle_cost"))


def late_samples(gtype):
    """NVML samples at 25 % on both of node-a's GPUs, in both hours fraud held them."""
    samples = [{"ts": (T + timedelta(minutes=m)).timestamp(), "gpu_index": gpu, "util": 25, "mem_used_mb": 1,
                "mem_total_mb": 10} for m in (30, 90) for gpu in (0, 1)]
    samples_ingest(cluster=gtype.cluster, node="node-a", batch_id=uuid.uuid4(), samples=samples)


@pytest.fixture
def november(team):
    """fraud held 2 GPUs of node-a (indexes 0 and 1) 10:00–12:00 on 21 November; 4 GPUs at 2.00; no NVML data yet."""
    gtype = f.gpu_type(price="2.00", capacity=4)
    allocation = allocation_start(team=team, cluster="local", gpu_type=gtype, gpu_count=2, started_at=T,
                                  node="node-a", gpu_indexes=[0, 1])
    allocation_stop(allocation=allocation, stopped_at=T + timedelta(hours=2))
    return gtype


def test_closed_month_stays_to_the_cent_and_late_data_becomes_december_adjustments(
        november, team, other_team, platform_admin, client_for):
    admin = client_for(platform_admin)
    response = admin.post(f"/api/v1/costs/months/{NOV:%Y-%m}/close/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "closed" and response.json()["closed_by"] == platform_admin.username
    closed = frozen(NOV, DEC)
    fraud = UsageDaily.objects.get(team=team, day=T.date())
    assert (fraud.gpu_hours, fraud.gpu_cost, fraud.idle_cost) == (Decimal("4"), Decimal("8"), None)
    unallocated = UsageDaily.objects.filter(kind="unallocated", day__lt=DEC.date()).aggregate(c=Sum("gpu_cost"))["c"]
    assert unallocated == (4 * HOURS - 4) * Decimal("2.00")
    assert AuditEvent.objects.filter(action="costs.month.close", object_id=str(CostMonth.objects.get().pk)).exists()

    # Late: NVML samples at 25 % on both GPUs for both hours, and search's 1 GPU for 3 hours on 25 November.
    late_samples(november)
    late = allocation_start(team=other_team, cluster="local", gpu_type=november, gpu_count=1, started_at=LATE)
    allocation_stop(allocation=late, stopped_at=LATE + timedelta(hours=3))
    rollup_window(start=T, end=NOW)
    assert frozen(NOV, DEC) == closed

    # Late: the price went to 3.00 at 11:00 on 21 November. Costed at once: no rollup run in between.
    response = admin.post("/api/v1/costs/prices/", {
        "cluster": "local", "gpu_type": november.name, "hourly_price": "3.00",
        "effective_from": PRICE_CHANGE.isoformat(), "close_previous": True}, format="json")
    assert response.status_code == 201, response.content
    assert frozen(NOV, DEC) == closed

    # By hand. fraud: 10:00 at 2.00, 11:00 at 3.00 → +2.00; idle 2 GPUs × 2 h × 75 % = 3 GPU-hours, costing
    # 2 × 2.00 × 0.75 + 2 × 3.00 × 0.75 = 7.50 (none when closed).
    assert adjustments(team=team) == {"gpu_hours": Decimal("0"), "gpu_cost": Decimal("2.00"),
                                      "idle_gpu_hours": Decimal("3.00"), "idle_cost": Decimal("7.50")}
    # search: 3 GPU-hours, all after the change, at 3.00; no NVML data, so no idle figure.
    assert adjustments(team=other_team) == {"gpu_hours": Decimal("3"), "gpu_cost": Decimal("9.00"),
                                            "idle_gpu_hours": None, "idle_cost": None}
    # Unallocated: free GPU-hours before 11:00 on the 21st at 2.00, after it at 3.00, minus what was closed.
    before = 20 * 24 + 11
    recomputed = (4 * before - 2) * Decimal("2.00") + (4 * (HOURS - before) - 2 - 3) * Decimal("3.00")
    assert adjustments(adjusts_kind="unallocated", team=None) == {
        "gpu_hours": Decimal("-3"), "gpu_cost": recomputed - (4 * HOURS - 4) * Decimal("2.00"),
        "idle_gpu_hours": None, "idle_cost": None}
    events = AuditEvent.objects.filter(action="costs.month.adjust")
    assert events.count() == 2 and all(e.changes["booked_in"][1] == f"{DEC:%Y-%m}" for e in events)

    # A rollup over the same window again books nothing more: adjustments are differences, not repeats.
    count = UsageDaily.objects.filter(kind="adjustment").count()
    rollup_window(start=NOV, end=NOW)
    assert UsageDaily.objects.filter(kind="adjustment").count() == count and frozen(NOV, DEC) == closed

    # The reports show it: December's report has the adjustment lines, November's is what was closed.
    report = admin.get("/api/v1/costs/report/", {"month": f"{DEC:%Y-%m}"}).json()["results"]
    lines = {row["key"]: row for row in report}
    assert lines[f"adjustment-{NOV:%Y-%m}|fraud"]["gpu_cost"] == "2.00"
    assert lines[f"adjustment-{NOV:%Y-%m}|search"]["total_cost"] == "9.00"
    assert lines[f"adjustment-{NOV:%Y-%m}|unallocated"]["label"] == f"Adjustment to {NOV:%B %Y} · Unallocated capacity"
    nov = {row["key"]: row for row in admin.get("/api/v1/costs/report/", {"month": f"{NOV:%Y-%m}"}).json()["results"]}
    assert nov["fraud"]["gpu_cost"] == "8.00" and "search" not in nov
    focus = admin.get("/api/v1/costs/focus/", {"month": f"{DEC:%Y-%m}"})
    corrections = [row for row in csv.DictReader(io.StringIO(focus.content.decode())) if row["ChargeClass"]]
    assert {row["ChargeClass"] for row in corrections} == {"Correction"}
    assert sum(Decimal(row["BilledCost"]) for row in corrections if row["SubAccountId"] == "search") == Decimal("9")
    assert all(row["ChargeDescription"].startswith(f"Correction to {NOV:%B %Y}") for row in corrections)


def test_the_beat_rollup_books_late_samples_of_a_closed_month(november, team, platform_admin):
    month_close(actor=platform_admin, month=NOV.date())
    closed = frozen(NOV, DEC)
    rollup_incremental()
    assert not UsageDaily.objects.filter(kind="adjustment").exists()
    late_samples(november)
    rollup_incremental()
    # 2 GPUs × 2 h at 2.00 × (1 − 25 %) idle, booked in December; November as closed.
    assert adjustments(team=team)["idle_cost"] == Decimal("6.00") and frozen(NOV, DEC) == closed
    rollup_incremental()  # nothing late: only the trailing hours, never back into November
    assert RollupRun.objects.order_by("-started_at").first().window_start >= DEC
    assert UsageDaily.objects.filter(kind="adjustment").count() == 1


def test_a_gpu_type_added_on_the_first_adds_no_idle_capacity_to_the_month_before(november, platform_admin):
    rollup_window(start=NOV, end=NOW)
    before = frozen(NOV, DEC)
    added = gpu_type_create(actor=platform_admin, cluster="local", name="H100-80GB", capacity=8, capacity_from=DEC)
    GpuPrice.objects.create(gpu_type=added, hourly_price=Decimal("6.00"), effective_from=f.EPOCH)
    rollup_window(start=NOV, end=NOW)
    assert frozen(NOV, DEC) == before
    assert UsageHourly.objects.filter(gpu_type=added, kind="unallocated", hour__gte=DEC).exists()
    assert not UsageHourly.objects.filter(gpu_type=added, hour__lt=DEC).exists()


def test_close_refusals(team, team_admin, platform_admin, client_for):
    admin = client_for(platform_admin)
    assert admin.post(f"/api/v1/costs/months/{NOV:%Y-%m}/close/").status_code == 200
    again = admin.post(f"/api/v1/costs/months/{NOV:%Y-%m}/close/")
    assert again.status_code == 409 and "closed already" in again.json()["error"]["message"]
    refused = client_for(team_admin).post(f"/api/v1/costs/months/{(NOV - timedelta(days=1)):%Y-%m}/close/")
    assert refused.status_code == 403 and "platform admins" in refused.json()["error"]["message"]
    for bad in ("2026-13", "0000-01", "november", "2026-1"):
        response = admin.post(f"/api/v1/costs/months/{bad}/close/")
        assert response.status_code == 400 and "YYYY-MM" in response.json()["error"]["message"], bad
    current = admin.post(f"/api/v1/costs/months/{DEC:%Y-%m}/close/")
    assert current.status_code == 400 and "has not ended" in current.json()["error"]["message"]
    assert list(CostMonth.objects.values_list("month", flat=True)) == [NOV.date()]
    months = {m["month"]: m for m in admin.get("/api/v1/costs/months/").json()["results"]}
    assert months[f"{NOV:%Y-%m}"]["state"] == "closed" and months[f"{DEC:%Y-%m}"] == {
        "month": f"{DEC:%Y-%m}", "state": "open", "closed_at": None, "closed_by": None, "closable": False}
    with pytest.raises(Exception, match="closed already"):
        month_close(actor=platform_admin, month=NOV.date())


def test_the_costs_page_closes_a_month(team, platform_admin, client):
    client.force_login(platform_admin)
    page = client.get("/costs/", {"month": f"{NOV:%Y-%m}"})
    assert b'id="close-month"' in page.content
    response = client.post(f"/costs/months/{NOV:%Y-%m}/close/", follow=True)
    assert f"{NOV:%B %Y} is closed".encode() in response.content and b'id="close-month"' not in response.content
    assert CostMonth.objects.filter(month=NOV.date(), closed_by=platform_admin).exists()


def test_catalog_changes_inside_recompute_once_rebuild_once_to_the_same_figures(platform_admin, monkeypatch):
    # The demo seed sets up a whole catalog this way: one rebuild over the union of the back-dated windows.
    from apps.costs import rollup
    from apps.costs.closing import recompute_once
    from apps.costs.services import gpu_price_set

    rebuilds = []
    window = rollup.rollup_window
    monkeypatch.setattr(rollup, "rollup_window", lambda **kw: rebuilds.append(kw) or window(**kw))
    start = DEC - timedelta(days=40)  # back into the closed-or-not month before: open here, rebuilt
    with recompute_once():
        added = gpu_type_create(actor=platform_admin, cluster="local", name="L4", capacity=4, capacity_from=start)
        gpu_price_set(actor=platform_admin, gpu_type=added, hourly_price=Decimal("0.80"), effective_from=start)
        gpu_price_set(actor=platform_admin, gpu_type=added, hourly_price=Decimal("0.90"),
                      effective_from=start + timedelta(days=10), close_previous=True)
        assert rebuilds == []  # noted, not rebuilt yet
    assert len(rebuilds) == 1 and rebuilds[0]["start"] == start
    whole_hours = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)  # the hour in progress grows
    once = frozen(start.replace(day=1), whole_hours)
    assert UsageHourly.objects.filter(gpu_type=added, kind="unallocated").exists()
    rollup_window(start=start, end=datetime.now(timezone.utc))  # what each of the three changes would have rebuilt
    assert frozen(start.replace(day=1), whole_hours) == once
