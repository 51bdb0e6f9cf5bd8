"""Writes for the costs app: catalog, quotas, budgets, the allocation ledger, and the admission check.

Admission semantics (in the spirit of Kueue's ClusterQueue + cohort):
- a team may always use up to its `guaranteed` GPUs of a type;
- beyond that it may borrow up to `borrow_limit` more from its cohort, as long as the cohort as a whole
  still has unused guaranteed GPUs of that type (sum of members' guaranteed − sum of members' usage);
- never more than the cluster's free capacity of the type (when the catalog declares a capacity);
- a monthly GPU-hour budget, when set, refuses a request once it is spent, or when `hours` is given and
  the request would spend more than what is left;
- no quota row for the type means refused, with what to configure (fail closed).
"Uses" counts open ledger intervals plus reservations: admitted work reserves its GPUs in the transaction
that admits it (admission_reserve, under the team's quota row lock), so quick submits can't all pass the
check before any of them runs. A reservation becomes usage when the ledger interval opens and is released
on failure, abort, teardown or timeout.
CPU-only work passes gpu_type="" and gpu_count=0: it is always allowed and costs 0 at admission (CPU and
memory are costed in the ledger from the cluster's resource rates, not limited by quota).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from apps.audit.services import audit_record, diff
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.teams.selectors import require_platform_admin

from .choices import BUDGET_THRESHOLDS, AllocationSource, PricingClass, ReservationStatus
from .errors import AdmissionRefused
from .closing import recompute_since
from .models import (Cohort, GpuAllocation, GpuPrice, GpuReservation, GpuType, NodeToken, Quota, ResourceRate,
                     TeamBudget, TeamBudgetPeriod)
from .rollup import rollup_lock

HOURS_PER_MONTH = Decimal("730")  # 365 × 24 / 12: the usual cloud convention for monthly estimates
NODE_TOKEN_PREFIX = "nt"


# --- lookups shared by services and selectors ----------------------------------------------------------

def cluster_resolve(cluster):
    """A Cluster instance, or its name (the API passes names)."""
    from apps.deployments.models import Cluster

    if isinstance(cluster, Cluster):
        return cluster
    found = Cluster.objects.filter(name=str(cluster or "")).first()
    if found is None:
        known = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none registered"
        raise NotFound(f"Cluster '{cluster}' not found. Known clusters: {known}.", fields={"cluster": ["unknown"]})
    return found


def gpu_type_resolve(*, cluster, name: str) -> GpuType:
    gpu_type = GpuType.objects.filter(cluster=cluster, name=name).first()
    if gpu_type is None:
        known = ", ".join(GpuType.objects.filter(cluster=cluster).values_list("name", flat=True)) or "none"
        raise NotFound(f"GPU type '{name}' is not in the catalog of cluster '{cluster.name}'. Known types: {known}.",
                       fields={"gpu_type": ["unknown"]})
    return gpu_type


def price_at(*, gpu_type: GpuType, at: datetime, pricing_class: str = PricingClass.ON_DEMAND) -> Decimal:
    price = (GpuPrice.objects.filter(gpu_type=gpu_type, pricing_class=pricing_class, effective_from__lte=at)
             .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at)).values_list("hourly_price", flat=True)
             .first())
    return price if price is not None else Decimal("0")


def month_start(at: datetime) -> datetime:
    return at.astimezone(dt_timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _gpu_hours_between(queryset, start: datetime, end: datetime) -> float:
    """GPU-hours of allocations in `queryset` that fall inside [start, end)."""
    ids = list(queryset.values_list("pk", flat=True))
    if not ids:
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT COALESCE(SUM(gpu_count * EXTRACT(EPOCH FROM
                   LEAST(COALESCE(stopped_at, %(end)s), %(end)s) - GREATEST(started_at, %(start)s))) / 3600.0, 0)
            FROM costs_gpuallocation
            WHERE id = ANY(%(ids)s) AND started_at < %(end)s AND (stopped_at IS NULL OR stopped_at > %(start)s)
            """,
            {"ids": ids, "start": start, "end": end},
        )
        return float(cursor.fetchone()[0])


def _reserved(**filters) -> int:
    """GPUs reserved by admitted work that has not become usage yet (and has not timed out)."""
    return (GpuReservation.objects.filter(status=ReservationStatus.RESERVED, **filters)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
            .aggregate(n=Sum("gpu_count"))["n"] or 0)


def _in_use(**filters) -> int:
    """GPUs held: open ledger intervals plus live reservations."""
    allocated = GpuAllocation.objects.filter(stopped_at__isnull=True, **filters).aggregate(n=Sum("gpu_count"))["n"] or 0
    return allocated + _reserved(**filters)


# --- admission ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdmissionDecision:
    allowed: bool
    reason: str
    gpu_type: str
    requested: int
    guaranteed: int
    borrow_limit: int
    in_use: int
    borrowed: int  # how many of the request come from the cohort pool (reclaimable)
    fits: int  # how many would fit now
    hourly_cost: Decimal
    monthly_cost_estimate: Decimal
    budget_remaining_gpu_hours: float | None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["hourly_cost"] = str(self.hourly_cost)
        data["monthly_cost_estimate"] = str(self.monthly_cost_estimate)
        return data


def admission_check(*, team, cluster, gpu_type: str, gpu_count: int, hours: float | None = None,
                    pricing_class: str = PricingClass.ON_DEMAND) -> AdmissionDecision:
    """May `team` run `gpu_count` × `gpu_type` on `cluster` now (for `hours`), and at what cost?

    Pure read: no capability check (callers check theirs: the API needs `view`, deployments `operate`) and
    no lock; work that will run goes through admission_reserve, which locks and reserves.
    """
    cluster = cluster_resolve(cluster)
    if not isinstance(gpu_count, int) or isinstance(gpu_count, bool):
        raise InvalidInput("gpu_count must be a whole number.", fields={"gpu_count": ["not an integer"]})
    if hours is not None and hours <= 0:
        raise InvalidInput("hours must be more than 0 (or left out for an open-ended run).",
                           fields={"hours": ["must be > 0"]})
    gpu_type = (gpu_type or "").strip()
    if not gpu_type:
        if gpu_count != 0:
            raise InvalidInput("Name the GPU type for a GPU request (gpu_type), or send gpu_count 0 for CPU-only work.",
                               fields={"gpu_type": ["required when gpu_count > 0"]})
        return AdmissionDecision(True, "CPU-only workload: no GPU quota applies.", "", 0, 0, 0, 0, 0, 0,
                                 Decimal("0"), Decimal("0"), None)
    if gpu_count <= 0:
        raise InvalidInput(f"gpu_count must be at least 1 (got {gpu_count}); CPU-only work sends gpu_type \"\" and "
                           f"gpu_count 0.", fields={"gpu_count": ["must be >= 1"]})
    if pricing_class not in PricingClass.values:
        raise InvalidInput(f"Unknown pricing class '{pricing_class}'. Use one of: {', '.join(PricingClass.values)}.",
                           fields={"pricing_class": ["unknown"]})
    gtype = gpu_type_resolve(cluster=cluster, name=gpu_type)
    quota = Quota.objects.filter(team=team, gpu_type=gtype).select_related("cohort").first()
    guaranteed = quota.guaranteed if quota else 0
    borrow_limit = quota.borrow_limit if quota and quota.cohort_id else 0
    in_use = _in_use(team=team, gpu_type=gtype)

    # What the team may reach: its own guaranteed GPUs, plus what the cohort can lend.
    ceiling = guaranteed
    if quota and quota.cohort_id and borrow_limit:
        members = Quota.objects.filter(cohort_id=quota.cohort_id, gpu_type=gtype)
        cohort_guaranteed = members.aggregate(n=Sum("guaranteed"))["n"] or 0
        cohort_in_use = _in_use(gpu_type=gtype, team_id__in=members.values("team_id"))
        cohort_free = max(cohort_guaranteed - cohort_in_use, 0)
        own_free = max(guaranteed - in_use, 0)
        lendable = max(cohort_free - own_free, 0)  # others' unused guaranteed GPUs
        already_borrowed = max(in_use - guaranteed, 0)
        ceiling = guaranteed + min(borrow_limit, already_borrowed + lendable)
    fits = max(ceiling - in_use, 0)
    if gtype.capacity:
        fits = min(fits, max(gtype.capacity - _in_use(gpu_type=gtype), 0))
    borrowed = min(max(in_use + gpu_count - guaranteed, 0), gpu_count) if gpu_count <= fits else 0

    now = timezone.now()
    price = price_at(gpu_type=gtype, at=now, pricing_class=pricing_class)
    hourly = (price * gpu_count).quantize(Decimal("0.0001"))
    monthly = (hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))

    remaining = None
    if quota and quota.monthly_gpu_hours is not None:
        start = month_start(now)
        used = _gpu_hours_between(GpuAllocation.objects.filter(team=team, gpu_type=gtype), start, now)
        remaining = round(float(quota.monthly_gpu_hours) - used, 3)

    allowed, reason = True, ""
    if quota is None:
        allowed = False
        reason = (f"Team '{team.slug}' has no quota for {gtype.name} on cluster '{cluster.name}'. "
                  f"Ask a platform admin to set one (Costs → Quotas, or POST /api/v1/costs/quotas/).")
    elif gpu_count > fits:
        limit = f"guaranteed {guaranteed}" + (f" + borrow up to {borrow_limit} from cohort '{quota.cohort.name}'"
                                              if borrow_limit else "")
        reserved = _reserved(team=team, gpu_type=gtype)
        held = f" ({reserved} reserved by admitted work not running yet)" if reserved else ""
        reason = (f"Team '{team.slug}' uses {in_use} × {gtype.name}{held} of {limit}; {gpu_count} more do not fit, "
                  f"{fits} would.")
        allowed = False
    elif remaining is not None and remaining <= 0:
        allowed = False
        reason = (f"Team '{team.slug}' has spent its {quota.monthly_gpu_hours} GPU-hour budget for {gtype.name} "
                  f"this month.")
    elif remaining is not None and hours is not None and gpu_count * hours > remaining:
        allowed = False
        reason = (f"{gpu_count} × {gtype.name} for {hours:g} h needs {gpu_count * hours:g} GPU-hours; the team has "
                  f"{remaining:g} left this month.")
    if allowed:
        reason = f"Fits: {gpu_count} × {gtype.name}" + (f", {borrowed} borrowed from the cohort." if borrowed else ".")
    return AdmissionDecision(allowed, reason, gtype.name, gpu_count, guaranteed, borrow_limit, in_use,
                             borrowed, fits, hourly, monthly, remaining)


def admission_require(**kwargs) -> AdmissionDecision:
    """admission_check, raising AdmissionRefused (HTTP 409) with usage, request, limit and fits when refused."""
    decision = admission_check(**kwargs)
    if not decision.allowed:
        raise AdmissionRefused(decision.reason, extra={
            "usage": {"in_use": decision.in_use, "gpu_type": decision.gpu_type,
                      "budget_remaining_gpu_hours": decision.budget_remaining_gpu_hours},
            "request": {"gpu_type": decision.gpu_type, "gpu_count": decision.requested, "hours": kwargs.get("hours")},
            "limit": {"guaranteed": decision.guaranteed, "borrow_limit": decision.borrow_limit},
            "fits": decision.fits,
        })
    return decision


# --- reservations ------------------------------------------------------------------------------------------

def _lock_admission(*, team, gtype: GpuType) -> None:
    """Serialise the admissions that could overbook each other: the team's quota row, then its cohort (whose
    members lend to each other), then the GPU type when the catalog caps it (capacity is cluster-wide).
    Always in this order, so two admissions never wait on each other in a cycle. FOR NO KEY UPDATE leaves
    inserts that merely reference these rows (ledger intervals, reservations) unblocked."""
    cohort_id = (Quota.objects.select_for_update(no_key=True).filter(team=team, gpu_type=gtype)
                 .values_list("cohort_id", flat=True).first())
    if cohort_id is not None:
        Cohort.objects.select_for_update(no_key=True).filter(pk=cohort_id).values_list("pk", flat=True).first()
    if gtype.capacity:
        GpuType.objects.select_for_update(no_key=True).filter(pk=gtype.pk).values_list("pk", flat=True).first()


def _expire_reservations(*, team, gtype: GpuType) -> int:
    """Release the team's reservations whose work never started in time (called under the team's lock)."""
    now, count = timezone.now(), 0
    for reservation in GpuReservation.objects.filter(team=team, gpu_type=gtype, status=ReservationStatus.RESERVED,
                                                     expires_at__lte=now):
        reason = f"timed out: the work did not start by {reservation.expires_at.isoformat()}"
        if not GpuReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.RESERVED).update(
                status=ReservationStatus.RELEASED, closed_at=now, close_reason=reason[:200]):
            continue
        count += 1
        audit_record(actor=None, action="costs.reservation.expire", target=reservation, team=team,
                     changes={"status": [ReservationStatus.RESERVED, ReservationStatus.RELEASED],
                              "gpus": [reservation.gpu_count, 0], "reason": [None, reason]})
    return count


@transaction.atomic
def admission_reserve(*, team, cluster, gpu_type: str, gpu_count: int, deployment_id: int | None = None,
                      revision_id: int | None = None, job_id: int | None = None) -> GpuReservation:
    """Admit GPU work and reserve its GPUs, or raise AdmissionRefused (409 with what would fit).

    Run it inside the transaction that admits the deployment or job: the quota locks are held until that
    transaction commits, so check and reservation are one step for every other admission of the team (and
    of its cohort). Never call it around network work: the lock would be held across it.
    """
    cluster = cluster_resolve(cluster)
    if deployment_id is None and job_id is None:
        raise InvalidInput("A reservation belongs to a deployment or a job.")
    gtype = gpu_type_resolve(cluster=cluster, name=(gpu_type or "").strip())
    _lock_admission(team=team, gtype=gtype)
    _expire_reservations(team=team, gtype=gtype)
    decision = admission_require(team=team, cluster=cluster, gpu_type=gtype.name, gpu_count=gpu_count)
    return GpuReservation.objects.create(
        team=team, cluster=cluster, gpu_type=gtype, gpu_count=gpu_count, borrowed=decision.borrowed,
        deployment_id=deployment_id, revision_id=revision_id, job_id=job_id,
        expires_at=timezone.now() + timedelta(seconds=settings.COSTS_RESERVATION_TIMEOUT_SECONDS))


def _reservations(*, deployment_id=None, revision_id=None, job_id=None):
    if deployment_id is None and revision_id is None and job_id is None:
        raise InvalidInput("Give deployment_id, revision_id or job_id.")
    qs = GpuReservation.objects.filter(status=ReservationStatus.RESERVED)
    for field, value in (("deployment_id", deployment_id), ("revision_id", revision_id), ("job_id", job_id)):
        if value is not None:
            qs = qs.filter(**{field: value})
    return qs


def reservations_running(*, revision_id: int | None = None, job_id: int | None = None) -> int:
    """The work's pods run: its reservation stops timing out and holds the GPUs until it becomes usage."""
    return _reservations(revision_id=revision_id, job_id=job_id).update(expires_at=None)


def reservations_release(*, reason: str, deployment_id: int | None = None, revision_id: int | None = None,
                         job_id: int | None = None) -> int:
    """Give back what admitted work reserved and will not use (failed, aborted, superseded, torn down).
    Idempotent; not audited on its own: the deployment or job transition that causes it is."""
    return _reservations(deployment_id=deployment_id, revision_id=revision_id, job_id=job_id).update(
        status=ReservationStatus.RELEASED, closed_at=timezone.now(), close_reason=reason[:200])


@transaction.atomic
def allocation_start_reserved(*, team, cluster, gpu_type, gpu_count: int, revision_id: int | None = None,
                              **allocation) -> GpuAllocation:
    """Open the ledger interval of admitted work and turn its reservation into that usage, in one transaction
    (the GPUs are never counted twice, nor dropped in between). Work without a reservation (a rollback
    re-running the deployment's own GPUs) just opens its interval."""
    reservations = _reservations(revision_id=revision_id, job_id=allocation.get("job_id")) \
        if revision_id is not None or allocation.get("job_id") is not None else GpuReservation.objects.none()
    reservations = list(reservations.select_for_update())
    borrowed = min(sum(r.borrowed for r in reservations), gpu_count)
    started = allocation_start(team=team, cluster=cluster, gpu_type=gpu_type, gpu_count=gpu_count,
                               borrowed=borrowed, revision_id=revision_id, **allocation)
    GpuReservation.objects.filter(pk__in=[r.pk for r in reservations]).update(
        status=ReservationStatus.CONSUMED, closed_at=timezone.now(), close_reason=f"allocation {started.pk}")
    return started


def reservations_expire() -> int:
    """Beat job: release every timed-out reservation (admission also does it for the team it admits)."""
    from apps.teams.models import Team

    count = 0
    pairs = (GpuReservation.objects.filter(status=ReservationStatus.RESERVED, expires_at__lte=timezone.now())
             .values_list("team_id", "gpu_type_id").distinct())
    for team_id, gpu_type_id in list(pairs):
        with transaction.atomic():
            team, gtype = Team.objects.get(pk=team_id), GpuType.objects.get(pk=gpu_type_id)
            _lock_admission(team=team, gtype=gtype)
            count += _expire_reservations(team=team, gtype=gtype)
    return count


# --- allocation ledger ---------------------------------------------------------------------------------

def allocation_start(*, team, cluster, gpu_type, gpu_count: int, started_at: datetime | None = None,
                     model_version=None, deployment_id: int | None = None, job_id: int | None = None,
                     revision_id: int | None = None, borrowed: int = 0, source: str = AllocationSource.CONTROL_PLANE,
                     node: str = "", gpu_indexes: list[int] = (), gpu_uuids: list[str] = (), mig_instance: str = "",
                     cpu_cores: Decimal | float = 0, memory_gb: Decimal | float = 0,
                     pricing_class: str = PricingClass.ON_DEMAND, external_uid: str = "") -> GpuAllocation:
    """Open a ledger interval. Not audited on its own: the deployment/job action that causes it is.

    `gpu_type` is a GpuType or its name in the cluster's catalog; "" with gpu_count 0 records CPU-only work.
    `node` and `gpu_indexes` (NVML indexes on that node) tie it to its GPUs' samples for the idle figure;
    `memory_gb` is in GiB (apps.costs.ledger).
    """
    cluster = cluster_resolve(cluster)
    if gpu_count < 0 or (gpu_count == 0 and gpu_type):
        raise InvalidInput(f"gpu_count must be at least 1 for a GPU allocation (got {gpu_count}).",
                           fields={"gpu_count": ["must be >= 1"]})
    if gpu_count > 0 and not gpu_type:
        raise InvalidInput("Name the GPU type of a GPU allocation.", fields={"gpu_type": ["required"]})
    if borrowed < 0 or borrowed > gpu_count:
        raise InvalidInput(f"borrowed must be between 0 and gpu_count ({gpu_count}).", fields={"borrowed": ["range"]})
    gtype = None
    if gpu_type:
        gtype = gpu_type if isinstance(gpu_type, GpuType) else gpu_type_resolve(cluster=cluster, name=gpu_type)
        if gtype.cluster_id != cluster.pk:
            raise InvalidInput(f"GPU type {gtype.name} belongs to cluster '{gtype.cluster.name}', not '{cluster.name}'.")
    started_at = started_at or timezone.now()
    if started_at > timezone.now() + timedelta(minutes=5):
        raise InvalidInput("started_at is in the future.", fields={"started_at": ["in the future"]})
    return GpuAllocation.objects.create(
        team=team, cluster=cluster, gpu_type=gtype, gpu_count=gpu_count, borrowed=borrowed, started_at=started_at,
        model_version=model_version, deployment_id=deployment_id, job_id=job_id, revision_id=revision_id,
        source=source, node=node, gpu_indexes=sorted(set(gpu_indexes)), gpu_uuids=list(gpu_uuids),
        mig_instance=mig_instance, cpu_cores=Decimal(str(cpu_cores)), memory_gb=Decimal(str(memory_gb)),
        pricing_class=pricing_class, external_uid=external_uid,
    )


def allocation_stop(*, allocation: GpuAllocation, stopped_at: datetime | None = None) -> GpuAllocation:
    """Close an open interval (compare-and-set: stopping twice is a 409, never a second interval)."""
    stopped_at = stopped_at or timezone.now()
    if stopped_at < allocation.started_at:
        raise InvalidInput(f"stopped_at {stopped_at.isoformat()} is before the allocation started "
                           f"({allocation.started_at.isoformat()}).", fields={"stopped_at": ["before start"]})
    updated = GpuAllocation.objects.filter(pk=allocation.pk, stopped_at__isnull=True).update(
        stopped_at=stopped_at, updated_at=timezone.now())
    if not updated:
        raise Conflict(f"GPU allocation {allocation.pk} was already stopped.")
    allocation.refresh_from_db()
    return allocation


def allocations_stop_for(*, deployment_id: int | None = None, job_id: int | None = None,
                         stopped_at: datetime | None = None) -> int:
    """Close every open interval of a deployment or job (a rollout replaced it, it was deleted, the job ended)."""
    if deployment_id is None and job_id is None:
        raise InvalidInput("Give deployment_id or job_id.")
    now = timezone.now()
    qs = GpuAllocation.objects.filter(stopped_at__isnull=True)
    qs = qs.filter(deployment_id=deployment_id) if deployment_id is not None else qs.filter(job_id=job_id)
    return qs.filter(started_at__lte=stopped_at or now).update(stopped_at=stopped_at or now, updated_at=now)


# --- catalog (platform admins) -----------------------------------------------------------------------------

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


# --- quotas and budgets (platform admins) -----------------------------------------------------------------

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


# --- node tokens for NVML agents --------------------------------------------------------------------------

def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MAX_NODE_GPUS = 1024  # the ingest's gpu_index bound


@transaction.atomic
def node_token_create(*, actor, cluster, node: str, gpu_count: int) -> tuple[NodeToken, str]:
    """Register a node and its GPUs (indexes 0..gpu_count-1) for an NVML agent. Returns the token and its
    plaintext (shown once). Registering a node again issues another token; the earlier ones stay valid until
    revoked."""
    require_platform_admin(user=actor)
    cluster = cluster_resolve(cluster)
    if not node.strip():
        raise InvalidInput("Name the node the agent runs on.", fields={"node": ["required"]})
    if not 0 <= gpu_count <= MAX_NODE_GPUS:
        raise InvalidInput(f"gpu_count must be between 0 and {MAX_NODE_GPUS}.", fields={"gpu_count": ["out of range"]})
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    token = NodeToken.objects.create(cluster=cluster, node=node.strip(), gpu_count=gpu_count, prefix=prefix,
                                     secret_hash=_hash(secret))
    audit_record(actor=actor, action="costs.node_token.create", target=token,
                 changes={"cluster": [None, cluster.name], "node": [None, token.node], "prefix": [None, prefix],
                          "gpu_count": [None, gpu_count]})
    return token, f"{NODE_TOKEN_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def node_token_revoke(*, actor, token: NodeToken) -> NodeToken:
    """Revoke a node token: the agent's next post is a 401. Revoking twice is a 409."""
    require_platform_admin(user=actor)
    now = timezone.now()
    if not NodeToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        raise Conflict(f"Node token {token.prefix} for {token.node} is already revoked.")
    token.revoked_at = now
    audit_record(actor=actor, action="costs.node_token.revoke", target=token,
                 changes={"revoked_at": [None, now.isoformat()]})
    return token


def node_samples_check(*, cluster, node: str, gpu_indexes: set[int]) -> None:
    """Samples come only from registered nodes (a live token for the cluster and node) and for GPU indexes the
    node registered; anything else is a 400 and nothing is stored."""
    registered = (NodeToken.objects.filter(cluster=cluster, node=node, revoked_at__isnull=True)
                  .aggregate(gpus=Max("gpu_count"), tokens=Count("pk")))
    if not registered["tokens"]:
        raise InvalidInput(f"Node '{node}' is not registered on cluster '{cluster.name}'; register it in "
                           "Costs → Nodes (POST /api/v1/costs/node-tokens/).", fields={"node": ["not registered"]})
    gpus = registered["gpus"]
    unknown = sorted(index for index in gpu_indexes if index >= gpus)
    if unknown:
        has = f"{gpus} GPU(s), indexes 0..{gpus - 1}" if gpus else "no GPUs"
        raise InvalidInput(f"Node '{node}' registered {has}; the samples name GPU index "
                           f"{', '.join(map(str, unknown))}. Register the node again with its GPU count.",
                           fields={"samples": ["unknown gpu_index"]})


def node_token_verify(raw: str) -> NodeToken | None:
    import hmac

    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != NODE_TOKEN_PREFIX:
        return None
    token = NodeToken.objects.select_related("cluster").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(parts[2])):
        return None
    return token
