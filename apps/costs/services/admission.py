"""The admission check and GPU reservations.

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
memory are costed in the ledger from the cluster's resource rates, not limited by quota)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.core.errors import InvalidInput
from apps.core.lifecycle import require_active

from ..choices import PricingClass, ReservationStatus
from ..errors import AdmissionRefused
from ..models import Cohort, GpuAllocation, GpuReservation, GpuType, Quota
from ..transitions import reservation_expire, reservations_move
from .lookups import _gpu_hours_between, _in_use, _reserved, cluster_resolve, gpu_type_resolve, month_start, price_at
from .allocations import allocation_start


HOURS_PER_MONTH = Decimal("730")  # 365 × 24 / 12: the usual cloud convention for monthly estimates


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
    require_active(cluster, label=f"Cluster '{cluster.name}'")
    require_active(gtype, label=f"GPU type '{gtype.name}'")
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


def _lock_admission(*, team, gtype: GpuType) -> None:
    """Serialise the admissions that could overbook each other: the team's quota row, then its cohort (whose
    members lend to each other), then the GPU type when the catalog caps it (capacity is cluster-wide).
    Always in this order, so two admissions never wait on each other in a cycle. FOR NO KEY UPDATE leaves
    inserts that merely reference these rows (ledger intervals, reservations) unblocked. OF self, unordered: Quota
    is ordered through its team and GPU type, which a locking `.first()` would join and lock out of this order."""
    cohort_id = (Quota.objects.select_for_update(no_key=True, of=("self",)).filter(team=team, gpu_type=gtype)
                 .order_by().values_list("cohort_id", flat=True).first())
    if cohort_id is not None:
        Cohort.objects.select_for_update(no_key=True).filter(pk=cohort_id).values_list("pk", flat=True).first()
    if gtype.capacity:
        GpuType.objects.select_for_update(no_key=True, of=("self",)).filter(pk=gtype.pk).order_by().values_list(
            "pk", flat=True).first()  # unordered: GpuType is ordered through its cluster


def _expire_reservations(*, team, gtype: GpuType) -> int:
    """Release the team's reservations whose work never started in time (called under the team's lock)."""
    now, count = timezone.now(), 0
    for reservation in GpuReservation.objects.filter(team=team, gpu_type=gtype, status=ReservationStatus.RESERVED,
                                                     expires_at__lte=now):
        reason = f"timed out: the work did not start by {reservation.expires_at.isoformat()}"
        count += reservation_expire(reservation=reservation, reason=reason)
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
    return reservations_move(_reservations(deployment_id=deployment_id, revision_id=revision_id, job_id=job_id),
                             to=ReservationStatus.RELEASED, reason=reason)


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
    reservations_move(GpuReservation.objects.filter(pk__in=[r.pk for r in reservations]),
                      to=ReservationStatus.CONSUMED, reason=f"allocation {started.pk}")
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
