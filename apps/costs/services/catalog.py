"""Catalog, quotas and budgets (platform admins): GPU types, prices, resource rates, team quotas, monthly budgets."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record, diff
from apps.core.errors import Conflict, InvalidInput
from apps.core.lifecycle import delete_unreferenced, set_archived
from apps.teams.selectors import require_platform_admin

from ..choices import BUDGET_THRESHOLDS, PricingClass
from ..closing import recompute_since
from ..models import Cohort, GpuPrice, GpuType, Quota, ResourceRate, TeamBudget, TeamBudgetPeriod
from ..rollup import rollup_lock
from .lookups import cluster_resolve, gpu_type_resolve, month_start


@transaction.atomic
def gpu_type_create(*, actor, cluster, name: str, memory_gb: int = 0, capacity: int = 0, parent: str = "",
                    mig_profile: str = "", capacity_from: datetime | None = None) -> GpuType:
    """`capacity_from` (default now): when the capacity came into service; idle capacity counts from there
    (back-dated: costed at once, like a back-dated price)."""
    require_platform_admin(user=actor)
    cluster = cluster_resolve(cluster)
    name = name.strip()
    if not name:
        raise InvalidInput("Give the GPU type a name such as A100-80GB.", fields={"name": ["required"]})
    if capacity < 0 or memory_gb < 0:
        raise InvalidInput("capacity and memory_gb can't be negative.")
    parent_type = gpu_type_resolve(cluster=cluster, name=parent) if parent else None
    if mig_profile and parent_type is None:
        raise InvalidInput("A MIG profile needs the parent GPU type it is carved from.", fields={"parent": ["required"]})
    if GpuType.objects.filter(cluster=cluster, name=name).exists():
        raise Conflict(f"Cluster '{cluster.name}' already has GPU type '{name}'.", fields={"name": ["already exists"]})
    capacity_from = capacity_from or timezone.now()
    rollup_lock()
    gpu_type = GpuType.objects.create(cluster=cluster, name=name, memory_gb=memory_gb, capacity=capacity,
                                      parent=parent_type, mig_profile=mig_profile, capacity_from=capacity_from)
    audit_record(actor=actor, action="costs.gpu_type.create", target=gpu_type,
                 changes={"cluster": [None, cluster.name], "name": [None, name], "capacity": [None, capacity],
                          "capacity_from": [None, capacity_from.isoformat()],
                          "memory_gb": [None, memory_gb], "mig_profile": [None, mig_profile or None]})
    recompute_since(start=capacity_from)
    return gpu_type


@transaction.atomic
def gpu_type_set_archived(*, actor, gpu_type: GpuType, archived: bool) -> GpuType:
    """Archive (no new quotas or admissions; costs and history stay) or restore a GPU type."""
    require_platform_admin(user=actor)
    return set_archived(gpu_type, actor=actor, archived=archived, label=f"GPU type '{gpu_type}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"costs.gpu_type.{op}",
                                                               target=gpu_type, changes=changes))


@transaction.atomic
def gpu_type_delete(*, actor, gpu_type: GpuType) -> None:
    """Delete a GPU type nothing refers to (no prices, quotas, allocations, samples...); otherwise 409."""
    require_platform_admin(user=actor)
    delete_unreferenced(gpu_type, label=f"GPU type '{gpu_type}'",
                        audit=lambda op, changes: audit_record(actor=actor, action=f"costs.gpu_type.{op}",
                                                               target=gpu_type, changes=changes))


@transaction.atomic
def gpu_price_set(*, actor, gpu_type: GpuType, hourly_price: Decimal, effective_from: datetime,
                  effective_to: datetime | None = None, pricing_class: str = PricingClass.ON_DEMAND,
                  close_previous: bool = False) -> GpuPrice:
    """Add a price period. Periods of one type and class may not overlap (400 naming the clash);
    `close_previous` ends an open-ended period that covers `effective_from` there (a price change).
    A back-dated period is costed at once (closing.recompute_since): open months rebuilt, closed ones adjusted."""
    require_platform_admin(user=actor)
    if pricing_class not in PricingClass.values:
        raise InvalidInput(f"Unknown pricing class '{pricing_class}'. Use one of: {', '.join(PricingClass.values)}.",
                           fields={"pricing_class": ["unknown"]})
    if hourly_price < 0:
        raise InvalidInput("hourly_price can't be negative.", fields={"hourly_price": ["negative"]})
    if effective_to is not None and effective_to <= effective_from:
        raise InvalidInput("effective_to must be after effective_from.", fields={"effective_to": ["before start"]})
    rollup_lock()
    periods = GpuPrice.objects.select_for_update().filter(gpu_type=gpu_type, pricing_class=pricing_class)
    if close_previous:
        current = periods.filter(effective_to__isnull=True, effective_from__lt=effective_from).first()
        if current is not None:
            current.effective_to = effective_from
            current.save(update_fields=["effective_to"])
            audit_record(actor=actor, action="costs.gpu_price.close", target=current, object_type="costs.gpuprice",
                         changes={"effective_to": [None, effective_from.isoformat()]})
    overlap_q = Q(effective_to__isnull=True) | Q(effective_to__gt=effective_from)
    if effective_to is not None:
        overlap_q &= Q(effective_from__lt=effective_to)
    clash = periods.filter(overlap_q).first()
    if clash is not None:
        until = clash.effective_to.isoformat() if clash.effective_to else "open-ended"
        raise InvalidInput(
            f"This period overlaps the {pricing_class} price {clash.hourly_price} of {gpu_type.name} from "
            f"{clash.effective_from.isoformat()} to {until}. End that period first (or send close_previous).",
            fields={"effective_from": ["overlaps an existing period"]})
    try:
        with transaction.atomic():
            price = GpuPrice.objects.create(gpu_type=gpu_type, pricing_class=pricing_class, hourly_price=hourly_price,
                                            effective_from=effective_from, effective_to=effective_to)
    except IntegrityError:
        raise InvalidInput("This period overlaps an existing price period.", fields={"effective_from": ["overlaps"]})
    audit_record(actor=actor, action="costs.gpu_price.create", target=price,
                 changes={"gpu_type": [None, gpu_type.name], "pricing_class": [None, pricing_class],
                          "hourly_price": [None, str(hourly_price)], "effective_from": [None, effective_from.isoformat()],
                          "effective_to": [None, effective_to.isoformat() if effective_to else None]})
    recompute_since(start=effective_from, end=effective_to)
    return price


@transaction.atomic
def resource_rate_set(*, actor, cluster, cpu_core_hour: Decimal, memory_gb_hour: Decimal,
                      effective_from: datetime) -> ResourceRate:
    require_platform_admin(user=actor)
    cluster = cluster_resolve(cluster)
    if cpu_core_hour < 0 or memory_gb_hour < 0:
        raise InvalidInput("Rates can't be negative.")
    rollup_lock()
    rate, created = ResourceRate.objects.update_or_create(
        cluster=cluster, effective_from=effective_from,
        defaults={"cpu_core_hour": cpu_core_hour, "memory_gb_hour": memory_gb_hour})
    audit_record(actor=actor, action="costs.resource_rate.set", target=rate,
                 changes={"cluster": [None, cluster.name], "cpu_core_hour": [None, str(cpu_core_hour)],
                          "memory_gb_hour": [None, str(memory_gb_hour)],
                          "effective_from": [None, effective_from.isoformat()]})
    recompute_since(start=effective_from)
    return rate


def _quota_state(quota: Quota | None) -> dict:
    if quota is None:
        return {}
    return {"guaranteed": quota.guaranteed, "borrow_limit": quota.borrow_limit,
            "cohort": quota.cohort.name if quota.cohort_id else None,
            "monthly_gpu_hours": str(quota.monthly_gpu_hours) if quota.monthly_gpu_hours is not None else None}


@transaction.atomic
def quota_set(*, actor, team, gpu_type: GpuType, guaranteed: int, borrow_limit: int = 0, cohort: str | None = None,
              monthly_gpu_hours: Decimal | None = None) -> Quota:
    """Create or change a team's quota for a GPU type; the audit event records before/after."""
    require_platform_admin(user=actor)
    if guaranteed < 0 or borrow_limit < 0:
        raise InvalidInput("guaranteed and borrow_limit can't be negative.",
                           fields={"guaranteed" if guaranteed < 0 else "borrow_limit": ["negative"]})
    if borrow_limit and not cohort:
        raise InvalidInput("Borrowing needs a cohort to borrow from; name one.", fields={"cohort": ["required"]})
    if monthly_gpu_hours is not None and monthly_gpu_hours < 0:
        raise InvalidInput("monthly_gpu_hours can't be negative.", fields={"monthly_gpu_hours": ["negative"]})
    cohort_obj = Cohort.objects.get_or_create(name=cohort)[0] if cohort else None
    quota = Quota.objects.select_for_update(of=("self",)).filter(team=team, gpu_type=gpu_type).select_related("cohort").first()
    before = _quota_state(quota)
    if quota is None:
        quota = Quota(team=team, gpu_type=gpu_type)
    quota.guaranteed, quota.borrow_limit, quota.cohort = guaranteed, borrow_limit, cohort_obj
    quota.monthly_gpu_hours = monthly_gpu_hours
    quota.save()
    changes = diff(before, _quota_state(quota))
    if changes:
        audit_record(actor=actor, action="costs.quota.set", target=quota, team=team,
                     changes={"gpu_type": [None, f"{gpu_type.name}@{gpu_type.cluster.name}"]} | changes
                     if not before else changes)
    return quota


@transaction.atomic
def budget_set(*, actor, team, monthly_amount: Decimal, thresholds: list[int] | None = None,
               now: datetime | None = None) -> TeamBudget:
    """Set the team's budget from the month of `now` on (default: this month); earlier months keep theirs
    (TeamBudgetPeriod). The team's TeamBudget is the latest period: what the API lists and alerts use."""
    require_platform_admin(user=actor)
    thresholds = sorted(set(thresholds or BUDGET_THRESHOLDS))
    if monthly_amount <= 0:
        raise InvalidInput("monthly_amount must be more than 0.", fields={"monthly_amount": ["must be > 0"]})
    if any(not isinstance(t, int) or t <= 0 or t > 1000 for t in thresholds):
        raise InvalidInput("Thresholds are whole percentages between 1 and 1000.", fields={"thresholds": ["range"]})
    month = month_start(now or timezone.now()).date()
    periods = TeamBudgetPeriod.objects.select_for_update().filter(team=team)
    period = periods.filter(month=month).first()
    before = {"monthly_amount": str(period.monthly_amount), "thresholds": period.thresholds} if period else {}
    TeamBudgetPeriod.objects.update_or_create(team=team, month=month, defaults={"monthly_amount": monthly_amount,
                                                                              "thresholds": thresholds})
    latest = periods.order_by("-month").first()
    budget, _ = TeamBudget.objects.update_or_create(team=team, defaults={"monthly_amount": latest.monthly_amount,
                                                                         "thresholds": latest.thresholds})
    changes = diff(before, {"monthly_amount": str(monthly_amount), "thresholds": thresholds})
    if changes:
        audit_record(actor=actor, action="costs.budget.set", target=budget, team=team,
                     changes={"month": [None, f"{month:%Y-%m}"]} | changes)
    return budget
