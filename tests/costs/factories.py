from datetime import datetime, timezone
from decimal import Decimal

from apps.costs.models import Cohort, GpuPrice, GpuType, Quota
from apps.deployments.models import Cluster

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def cluster(name: str = "local") -> Cluster:
    return Cluster.objects.get_or_create(name=name, defaults={"kind": "local"})[0]


def gpu_type(name: str = "A100-80GB", *, cluster_name: str = "local", capacity: int = 16, price: str = "2.50",
             memory_gb: int = 80) -> GpuType:
    gtype, created = GpuType.objects.get_or_create(cluster=cluster(cluster_name), name=name,
                                                   defaults={"capacity": capacity, "memory_gb": memory_gb,
                                                             "capacity_from": EPOCH})
    if created and price is not None:
        GpuPrice.objects.create(gpu_type=gtype, hourly_price=Decimal(price), effective_from=EPOCH)
    return gtype


def quota(team, gtype: GpuType, *, guaranteed: int = 4, borrow_limit: int = 0, cohort: str | None = None,
          monthly_gpu_hours=None) -> Quota:
    cohort_obj = Cohort.objects.get_or_create(name=cohort)[0] if cohort else None
    return Quota.objects.update_or_create(team=team, gpu_type=gtype, defaults={
        "guaranteed": guaranteed, "borrow_limit": borrow_limit, "cohort": cohort_obj,
        "monthly_gpu_hours": monthly_gpu_hours})[0]


def month_start_now():
    from django.utils import timezone

    from apps.costs.services import month_start

    return month_start(timezone.now())
