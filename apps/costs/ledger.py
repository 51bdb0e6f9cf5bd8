"""The usage ledger's life beyond opening and closing one interval (services.allocation_start/stop):
what a workload requests (CPU cores, memory GiB, its GPUs on a node), closing a revision's intervals when it is
torn down, and the nightly check for intervals left open without a running workload.

Memory is counted in GiB (2^30 bytes, what Kubernetes' "2Gi" means) and costed at the cluster's GiB-hour rate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import audit_record

from .models import GpuAllocation

logger = logging.getLogger(__name__)

_UNITS = {"m": Decimal("0.001"), "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
          "Ti": Decimal(2) ** 40, "K": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
          "T": Decimal(10) ** 12}
GIB = Decimal(2) ** 30


def quantity(value) -> Decimal:
    """A Kubernetes quantity as a number: "2", "500m" (CPU cores), "16Gi" (bytes)."""
    text = str(value or "0").strip()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * _UNITS[suffix]
    return Decimal(text)


def memory_gib(value) -> Decimal:
    return quantity(value) / GIB if value else Decimal(0)


@dataclass
class Requests:
    """What one workload asks for, summed over its replicas or containers."""

    cpu_cores: Decimal = Decimal(0)
    memory_gib: Decimal = Decimal(0)
    gpus: int = 0
    # Where it runs, when known (the pod collector reads it; the control plane learns it from the pods).
    node: str = ""
    gpu_indexes: list[int] = field(default_factory=list)
    gpu_uuids: list[str] = field(default_factory=list)
    mig_instance: str = ""

    def ledger_fields(self) -> dict:
        return {"cpu_cores": self.cpu_cores, "memory_gb": self.memory_gib, "node": self.node,
                "gpu_indexes": self.gpu_indexes, "gpu_uuids": self.gpu_uuids, "mig_instance": self.mig_instance}


def revision_requests(resources: dict, *, replicas: int) -> Requests:
    """A deployment revision's CPU and memory (its `resources` spec) for `replicas` replicas."""
    return Requests(cpu_cores=quantity(resources.get("cpu")) * replicas,
                    memory_gib=memory_gib(resources.get("memory")) * replicas)


def container_requests(containers) -> Requests:
    """CPU, memory and GPUs of a pod's containers (requests, else limits), as dicts or Kubernetes client models."""
    out = Requests()
    for container in containers or []:
        res = container.get("resources") if isinstance(container, dict) else container.resources
        if res is not None and not isinstance(res, dict):
            res = {"limits": res.limits, "requests": res.requests}
        limits, requests = (res or {}).get("limits") or {}, (res or {}).get("requests") or {}
        out.gpus += int(quantity(limits.get("nvidia.com/gpu") or requests.get("nvidia.com/gpu")))
        out.cpu_cores += quantity(requests.get("cpu") or limits.get("cpu"))
        out.memory_gib += memory_gib(requests.get("memory") or limits.get("memory"))
    return out


def job_requests(manifest: dict) -> Requests:
    """A Job manifest's pod template requests (what the driver applied)."""
    pod_spec = (((manifest or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return container_requests(pod_spec.get("containers"))


GPU_ANNOTATIONS = ("controlplane.io/gpu-indexes", "controlplane.io/gpu-uuids", "controlplane.io/mig-instance")


def pod_placement(pod, requests: Requests) -> Requests:
    """The pod's node and GPUs: from its annotations (set by a device-plugin webhook, or the emulator in tests)
    or its containers' NVIDIA_VISIBLE_DEVICES (indexes, GPU-… uuids or MIG-… instances)."""
    annotations = pod.metadata.annotations or {}
    requests.node = pod.spec.node_name or ""
    visible = [annotations.get(GPU_ANNOTATIONS[0], "")]
    for container in pod.spec.containers or []:
        visible += [e.value or "" for e in container.env or [] if e.name == "NVIDIA_VISIBLE_DEVICES"]
    devices = [d.strip() for text in visible for d in text.split(",") if d.strip()]
    requests.gpu_indexes = sorted({int(d) for d in devices if d.isdigit()})
    uuids = [u.strip() for u in annotations.get(GPU_ANNOTATIONS[1], "").split(",") if u.strip()]
    requests.gpu_uuids = sorted(set(uuids + [d for d in devices if d.startswith("GPU-")]))
    migs = [d for d in devices if d.startswith("MIG-")]
    requests.mig_instance = annotations.get(GPU_ANNOTATIONS[2], "") or (migs[0] if migs else "")
    return requests


def indexes_from_uuids(*, cluster, node: str, uuids: list[str]) -> list[int]:
    """NVML indexes of GPUs known by uuid (the agent reports each device's uuid once)."""
    from .models import GpuDevice

    if not node or not uuids:
        return []
    return sorted(GpuDevice.objects.filter(cluster=cluster, node=node, uuid__in=uuids)
                  .values_list("gpu_index", flat=True))


_LEDGER_LOCK = 7_351_011  # advisory lock class: one deployment's interval changes run one at a time


def deployment_interval_open(*, deployment_id: int, revision_id: int, **allocation) -> GpuAllocation:
    """The revision now serving gets the deployment's one open interval: whatever is open closes now and the
    revision's interval opens from now (its reservation becomes that usage); given `started_at`, the change
    happened then and the previous interval closes then too. Serialised per deployment, so
    parallel revision changes leave exactly one interval open and close each of the others once."""
    from .services import allocation_start_reserved, allocations_stop_for

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LEDGER_LOCK, deployment_id % 2**31])
        allocations_stop_for(deployment_id=deployment_id, stopped_at=allocation.get("started_at"))
        return allocation_start_reserved(deployment_id=deployment_id, revision_id=revision_id, **allocation)


def intervals_stop_for_revision(*, revision_id: int, stopped_at: datetime | None = None) -> int:
    """Close the open intervals of a revision whose workload is gone (torn down, failed, aborted). Idempotent:
    the compare-and-set on stopped_at closes each interval once, whoever else closes it at the same time."""
    now = timezone.now()
    stopped_at = stopped_at or now
    return (GpuAllocation.objects.filter(revision_id=revision_id, stopped_at__isnull=True, started_at__lte=stopped_at)
            .update(stopped_at=stopped_at, updated_at=now))


def _workload_running(allocation: GpuAllocation, deployments: dict, jobs: dict) -> str:
    """Why the interval's workload is not running, or "" when it is."""
    from apps.deployments.choices import JobStatus

    if allocation.job_id is not None:
        job = jobs.get(allocation.job_id)
        if job is None:
            return f"job {allocation.job_id} no longer exists"
        return "" if job.status == JobStatus.RUNNING else f"job {job.name} is {job.status}"
    if allocation.deployment_id is not None:
        deployment = deployments.get(allocation.deployment_id)
        if deployment is None:
            return f"deployment {allocation.deployment_id} no longer exists"
        serving = {deployment.stable_revision_id, deployment.current_revision_id} - {None}
        if allocation.revision_id is not None and allocation.revision_id not in serving:
            return f"revision {allocation.revision_id} of deployment {deployment.name} no longer serves"
        return ""
    return ""  # collector-found work: the pod collector closes it when the pod goes


@transaction.atomic
def open_intervals_check(*, now: datetime | None = None) -> list[dict]:
    """The nightly check: intervals still open whose deployment revision or job is not running any more.
    Reports them (warning log line and one `costs.ledger.open_intervals` audit event); it does not close them,
    since when the work really stopped is not known here: an operator closes them with the right time."""
    from apps.deployments.models import Deployment, Job

    now = now or timezone.now()
    open_rows = list(GpuAllocation.objects.filter(stopped_at__isnull=True, source="control_plane")
                     .select_related("team", "gpu_type"))
    deployments = Deployment.objects.in_bulk({a.deployment_id for a in open_rows if a.deployment_id})
    jobs = Job.objects.in_bulk({a.job_id for a in open_rows if a.job_id})
    found = []
    for allocation in open_rows:
        reason = _workload_running(allocation, deployments, jobs)
        if reason:
            found.append({"allocation": allocation.pk, "team": allocation.team.slug if allocation.team else None,
                          "deployment_id": allocation.deployment_id, "revision_id": allocation.revision_id,
                          "job_id": allocation.job_id, "gpus": allocation.gpu_count,
                          "gpu_type": allocation.gpu_type.name if allocation.gpu_type else "",
                          "started_at": allocation.started_at.isoformat(), "reason": reason})
    if found:
        logger.warning("%s ledger interval(s) open without a running workload", len(found),
                       extra={"intervals": found})
        audit_record(actor=None, action="costs.ledger.open_intervals", object_type="costs.gpuallocation",
                     object_id=found[0]["allocation"],
                     changes={"open_without_workload": [None, found], "checked_at": [None, now.isoformat()]})
    return found
