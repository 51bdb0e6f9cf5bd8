"""Demo data for the Costs pages: a GPU catalog on the `local` cluster, quotas for fraud and search, a month
of synthetic allocations and NVML samples, rollups, and a fraud budget that has crossed 80 %.

Idempotent: catalog rows, quotas and budgets are left alone when they exist; allocations carry a stable
external uid and sample batches a stable UUID, so a second run stores nothing twice.
"""
from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from .budgets import budgets_check, month_to_date_cost
from .choices import AllocationSource, PricingClass
from .closing import recompute_once
from .ingest import samples_ingest
from .models import GpuAllocation, GpuType, Quota, ResourceRate, TeamBudget
from .rollup import rollup_window
from .services import budget_set, cluster_resolve, gpu_price_set, gpu_type_create, quota_set, resource_rate_set

Log = Callable[[str], None]
DAYS = 30
SAMPLE_MINUTES = 10
_NS = uuid.UUID("6f1d3c52-5b1e-4a51-9a5e-7c0c0c0c0c05")

# name, memory, capacity, parent, MIG profile, on-demand, spot, reserved price per GPU-hour
CATALOG = [
    ("A100-80GB", 80, 8, "", "", "3.40", "1.20", "2.10"),
    ("A100-80GB-1g.10gb", 10, 7, "A100-80GB", "1g.10gb", "0.55", "0.20", "0.35"),
    ("H100-80GB", 80, 2, "", "", "6.90", "2.60", "4.50"),
    ("L4", 24, 8, "", "", "0.80", "0.30", "0.55"),
]
# The A100 on-demand price drops mid-month: both sides are costed at their own price.
A100_PRICE_CHANGE = ("A100-80GB", "2.95", 12)  # new price, days ago
QUOTAS = [
    # team, GPU type, guaranteed, borrow limit, cohort, monthly GPU-hours
    ("fraud", "A100-80GB", 4, 2, "ml-shared", Decimal("5000")),
    ("fraud", "A100-80GB-1g.10gb", 4, 0, None, None),
    ("search", "L4", 4, 2, "ml-shared", Decimal("3000")),
    ("search", "A100-80GB", 2, 0, "ml-shared", None),
]
NODES = {"gpu-a": 4, "gpu-b": 4}
# The allocations that serve the demo deployment (apps/deployments/demo.py): their cost is that deployment's, and
# its prediction log (apps/monitoring/demo.py) gives the cost per 1,000 predictions.
SERVING = ("demo-fraud-serving-v1", "demo-fraud-serving-v2", "demo-fraud-shadow")
SERVING_DEPLOYMENT = ("fraud", "fraud-classifier")  # team, deployment name


def _report(log: Log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


def _model_versions(team):
    from apps.registry.models import ModelVersion, RegisteredModel

    from apps.registry.choices import TeamSource

    # Created before the registry sync reads it from MLflow, whose model carries `team=fraud` (demo.seed_mlflow):
    # said so here, as the sync would ("Team: fraud (Not assigned)" on the model page otherwise).
    model, _ = RegisteredModel.objects.get_or_create(name="fraud-classifier",
                                                     defaults={"team": team, "team_source": TeamSource.TAG})
    return [ModelVersion.objects.get_or_create(model=model, version=n)[0] for n in (1, 2)]


def seed_catalog(*, admin, log: Log) -> dict[str, GpuType]:
    cluster = cluster_resolve("local")
    start = (timezone.now() - timedelta(days=DAYS + 5)).replace(hour=0, minute=0, second=0, microsecond=0)
    types = {}
    with recompute_once():
        _seed_types(admin=admin, cluster=cluster, start=start, types=types, log=log)
        if not ResourceRate.objects.filter(cluster=cluster).exists():
            resource_rate_set(actor=admin, cluster=cluster, cpu_core_hour=Decimal("0.04"),
                              memory_gb_hour=Decimal("0.005"), effective_from=start)
            _report(log, True, "CPU/memory rates for local")
    return types


def _seed_types(*, admin, cluster, start, types: dict, log: Log) -> None:
    for name, memory, capacity, parent, mig, *prices in CATALOG:
        gtype = GpuType.objects.filter(cluster=cluster, name=name).first()
        _report(log, gtype is None, f"GPU type {name} on local ({capacity} GPUs)")
        if gtype is None:
            gtype = gpu_type_create(actor=admin, cluster=cluster, name=name, memory_gb=memory, capacity=capacity,
                                    parent=parent, mig_profile=mig, capacity_from=start)
            for pricing_class, price in zip(PricingClass.values, prices):
                gpu_price_set(actor=admin, gpu_type=gtype, pricing_class=pricing_class, hourly_price=Decimal(price),
                              effective_from=start)
            if name == A100_PRICE_CHANGE[0]:
                changed = (timezone.now() - timedelta(days=A100_PRICE_CHANGE[2])).replace(minute=0, second=0,
                                                                                          microsecond=0)
                gpu_price_set(actor=admin, gpu_type=gtype, hourly_price=Decimal(A100_PRICE_CHANGE[1]),
                              effective_from=changed, close_previous=True)
        types[name] = gtype


def seed_quotas(*, admin, teams: dict, types: dict, log: Log) -> None:
    for slug, type_name, guaranteed, borrow, cohort, hours in QUOTAS:
        exists = Quota.objects.filter(team=teams[slug], gpu_type=types[type_name]).exists()
        _report(log, not exists, f"quota {slug} × {type_name}: {guaranteed} guaranteed, borrow {borrow}")
        if not exists:
            quota_set(actor=admin, team=teams[slug], gpu_type=types[type_name], guaranteed=guaranteed,
                      borrow_limit=borrow, cohort=cohort, monthly_gpu_hours=hours)


def _allocation(uid: str, **fields) -> bool:
    cluster = fields["cluster"]
    if GpuAllocation.objects.filter(cluster=cluster, external_uid=uid).exists():
        return False
    GpuAllocation.objects.create(external_uid=uid, source=AllocationSource.DEMO, **fields)
    return True


def seed_usage(*, teams: dict, types: dict, now: datetime, log: Log) -> None:
    cluster = cluster_resolve("local")
    begin = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    v1, v2 = _model_versions(teams["fraud"])
    a100, mig, l4 = types["A100-80GB"], types["A100-80GB-1g.10gb"], types["L4"]
    serving = _serving_deployment_id()
    plan = [
        # uid, team, type, count, start offset h, duration h (None: still running), node, its GPU indexes,
        # model version, deployment, job
        ("demo-fraud-serving-v1", "fraud", a100, 2, 0, 24 * 12, "gpu-a", [0, 1], v1, serving, None),
        ("demo-fraud-serving-v2", "fraud", a100, 2, 24 * 12, None, "gpu-a", [0, 1], v2, serving, None),
        ("demo-fraud-retrain-1", "fraud", a100, 2, 24 * 3, 30, "gpu-b", [2, 3], v2, None, 201),
        ("demo-fraud-retrain-2", "fraud", a100, 2, 24 * 17, 40, "gpu-b", [2, 3], v2, None, 202),
        ("demo-fraud-shadow", "fraud", mig, 2, 24 * 20, None, "gpu-a", [2], v2, serving, None),
        ("demo-search-ranker", "search", l4, 3, 0, None, "gpu-b", [0, 1, 2], None, None, None),
        ("demo-search-embed", "search", a100, 1, 24 * 5, 24 * 8, "gpu-b", [3], None, None, 302),
        # No GPU assignment known: its idle figure stays empty ("no telemetry").
        ("demo-unlabelled-pod", None, l4, 1, 24 * 9, 24 * 6, "gpu-b", [], None, None, None),
    ]
    for uid, slug, gtype, count, offset, duration, node, indexes, version, deployment, job in plan:
        started = begin + timedelta(hours=offset)
        stopped = started + timedelta(hours=duration) if duration else None
        if stopped and stopped > now:
            stopped = None
        created = _allocation(uid, team=teams.get(slug), cluster=cluster, gpu_type=gtype, gpu_count=count,
                              node=node, gpu_indexes=indexes, model_version=version, deployment_id=deployment, job_id=job,
                              started_at=started, stopped_at=stopped, cpu_cores=Decimal(4 * count),
                              memory_gb=Decimal(16 * count))
        _report(log, created, f"allocation {uid} ({slug or 'unattributed'}: {count} × {gtype.name})")


def _serving_deployment_id() -> int | None:
    from apps.deployments.models import Deployment

    team, name = SERVING_DEPLOYMENT
    return Deployment.objects.filter(team__slug=team, name=name).values_list("pk", flat=True).first()


def link_serving_deployment(*, log: Log) -> None:
    """Attribute the serving allocations to the demo deployment once it exists (the costs seed runs before the
    deployments demo) and rebuild the rollups, so the Costs page names it and divides its cost by its predictions."""
    deployment_id = _serving_deployment_id()
    if deployment_id is None:
        log("  skipped  linking serving costs: no demo deployment")
        return
    linked = GpuAllocation.objects.filter(source=AllocationSource.DEMO, external_uid__in=SERVING).exclude(
        deployment_id=deployment_id).update(deployment_id=deployment_id)
    if linked:
        now = timezone.now()
        rollup_window(start=now - timedelta(days=DAYS + 1), end=now, now=now)
    _report(log, bool(linked), f"serving costs of {'/'.join(SERVING_DEPLOYMENT)} ({linked} allocations linked)")


def _util(node: str, gpu: int, ts: datetime, rng: random.Random) -> float:
    """Serving on gpu-a idles most of the time; training/ranking on gpu-b runs hot in daytime."""
    hour = ts.hour + ts.minute / 60
    daily = 0.5 + 0.5 * math.sin((hour - 8) / 24 * 2 * math.pi)
    base = 15 + 30 * daily if node == "gpu-a" else 45 + 45 * daily
    return max(0.0, min(100.0, base + rng.gauss(0, 6) - 3 * gpu))


def seed_samples(*, now: datetime, log: Log) -> int:
    cluster = cluster_resolve("local")
    begin = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(5)
    stored = 0
    for node, gpus in NODES.items():
        for day in range(DAYS + 1):
            day_start = begin + timedelta(days=day)
            samples = []
            for minute in range(0, 24 * 60, SAMPLE_MINUTES):
                ts = day_start + timedelta(minutes=minute)
                if ts > now:
                    break
                for gpu in range(gpus):
                    util = _util(node, gpu, ts, rng)
                    samples.append({"ts": ts.timestamp(), "gpu_index": gpu, "gpu_uuid": f"GPU-{node}-{gpu}",
                                    "gpu_name": "NVIDIA A100-SXM4-80GB", "util": round(util, 1),
                                    "mem_used_mb": round(81920 * (0.2 + util / 150), 0), "mem_total_mb": 81920,
                                    "power_w": round(60 + util * 3.4, 1)})
            if not samples:
                continue
            # A stable batch id per node and day: re-running the seed posts the same batches, stored once.
            batch_id = uuid.uuid5(_NS, f"{node}:{day_start.date()}")
            result = samples_ingest(cluster=cluster, node=node, batch_id=batch_id, samples=samples, now=now)
            stored += 0 if result.duplicate else result.accepted
    _report(log, stored > 0, f"NVML samples for {len(NODES)} nodes over {DAYS} days ({stored} new)")
    return stored


def seed_costs(*, log: Log) -> None:
    from apps.teams.models import Team

    admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    teams = {t.slug: t for t in Team.objects.filter(slug__in=["fraud", "search"])}
    if admin is None or len(teams) < 2:
        log("  skipped  costs demo (needs the admin user and the fraud and search teams)")
        return
    now = timezone.now()
    types = seed_catalog(admin=admin, log=log)
    seed_quotas(admin=admin, teams=teams, types=types, log=log)
    seed_usage(teams=teams, types=types, now=now, log=log)
    seed_samples(now=now, log=log)
    result = rollup_window(start=now - timedelta(days=DAYS + 1), end=now, now=now)
    log(f"  rolled   up {result['usage_rows']} usage and {result['utilization_rows']} utilization hours")
    fraud = teams["fraud"]
    if not TeamBudget.objects.filter(team=fraud).exists():
        spent = month_to_date_cost(team_id=fraud.pk, now=now)
        # Sized so this month's spend is past 80 %: the demo shows an alert and a burn-down near zero.
        amount = max((spent / Decimal("0.85")).quantize(Decimal("0.01")), Decimal("0.01"))
        budget_set(actor=admin, team=fraud, monthly_amount=amount, thresholds=[50, 80, 100])
        _report(log, True, f"budget fraud: {amount} per month (spent {spent.quantize(Decimal('0.01'))} so far)")
    if not TeamBudget.objects.filter(team=teams["search"]).exists():
        budget_set(actor=admin, team=teams["search"], monthly_amount=Decimal("5000"), thresholds=[50, 80, 100])
        _report(log, True, "budget search: 5000 per month")
    alerts = budgets_check(now=now)
    log(f"  alerts   {', '.join(f'{a.team.slug} {a.threshold} %' for a in alerts) or 'none new'}")
