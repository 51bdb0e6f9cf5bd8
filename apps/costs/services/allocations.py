"""The allocation ledger: open and close the intervals that costs and quota usage are computed from."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput

from ..choices import AllocationSource, PricingClass
from ..models import GpuAllocation, GpuType
from .lookups import cluster_resolve, gpu_type_resolve


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
