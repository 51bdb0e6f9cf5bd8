"""Lookups shared by the costs services and selectors: cluster and GPU type by name, the price at a time,
month boundaries, GPU-hours, GPUs in use and reserved."""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from apps.core.errors import NotFound

from ..choices import PricingClass, ReservationStatus
from ..models import GpuAllocation, GpuPrice, GpuReservation, GpuType


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
