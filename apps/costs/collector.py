"""Kubernetes pod collector: GPU work started outside the control plane still lands in the ledger.

Each run lists the cluster's pods through the official client, keeps the running ones that request
`nvidia.com/gpu`, and reconciles them with the open `kubernetes`-sourced allocations (keyed by pod uid):
a new pod opens an interval from its start time, a pod that finished or vanished closes it. Pods the
control plane made itself (label app.kubernetes.io/managed-by=controlplane, or controlplane.io/job) are
skipped: the deployments app records those when it dispatches them, and counting both would double the cost.
Attribution comes from the pod's labels: `team` (or controlplane.io/team) → team, else "unattributed";
`model` + `model-version` → model version. The GPU type is the pod's `gpu-type` label or its
`nvidia.com/gpu.product` node selector, matched against the cluster's catalog.
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .choices import AllocationSource
from .models import GpuAllocation, GpuType
from .services import allocation_start, allocation_stop

logger = logging.getLogger(__name__)
GPU_RESOURCE = "nvidia.com/gpu"
CONTROL_PLANE_LABELS = (("app.kubernetes.io/managed-by", "controlplane"),)


def _quantity(value) -> Decimal:
    """Kubernetes quantities as numbers: "2", "500m" (CPU), "16Gi" (memory → GB)."""
    text = str(value or "0")
    units = {"m": Decimal("0.001"), "Ki": Decimal(1024) / 10**9, "Mi": Decimal(1024**2) / 10**9,
             "Gi": Decimal(1024**3) / 10**9, "Ti": Decimal(1024**4) / 10**9, "K": Decimal(10**3) / 10**9,
             "M": Decimal(10**6) / 10**9, "G": Decimal(1), "T": Decimal(1000)}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * units[suffix]
    return Decimal(text)


def _resources(pod) -> tuple[int, Decimal, Decimal]:
    gpus, cpu, memory = 0, Decimal(0), Decimal(0)
    for container in pod.spec.containers or []:
        res = container.resources
        limits = (res.limits if res else None) or {}
        requests = (res.requests if res else None) or {}
        gpus += int(_quantity(limits.get(GPU_RESOURCE) or requests.get(GPU_RESOURCE)))
        cpu += _quantity(requests.get("cpu") or limits.get("cpu"))
        memory_raw = requests.get("memory") or limits.get("memory")
        memory += _quantity(memory_raw) if memory_raw else Decimal(0)
    return gpus, cpu, memory


def _made_by_control_plane(labels: dict) -> bool:
    return any(labels.get(k) == v for k, v in CONTROL_PLANE_LABELS) or "controlplane.io/job" in labels


def _gpu_type(cluster, pod, labels: dict) -> GpuType | None:
    wanted = labels.get("gpu-type") or (pod.spec.node_selector or {}).get("nvidia.com/gpu.product")
    if wanted:
        return GpuType.objects.filter(cluster=cluster, name=wanted).first()
    types = list(GpuType.objects.filter(cluster=cluster, parent__isnull=True)[:2])
    return types[0] if len(types) == 1 else None


def _model_version(labels: dict):
    from apps.registry.models import ModelVersion

    name, version = labels.get("model"), labels.get("model-version")
    if not name or not str(version or "").isdigit():
        return None
    return ModelVersion.objects.filter(model__name=name, version=int(version)).first()


def gpu_pods(api_client) -> list:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api_client)
    pods = core.list_pod_for_all_namespaces(_request_timeout=(5, 30)).items
    out = []
    for pod in pods:
        labels = pod.metadata.labels or {}
        if _made_by_control_plane(labels) or (pod.status.phase if pod.status else None) != "Running":
            continue
        gpus, cpu, memory = _resources(pod)
        if gpus > 0:
            out.append((pod, labels, gpus, cpu, memory))
    return out


@transaction.atomic
def collect_pods(*, cluster, api_client=None, now: datetime | None = None) -> dict:
    """Reconcile one cluster's GPU pods with the ledger. Returns counts of what changed."""
    from apps.teams.models import Team

    if api_client is None:
        from workers.drivers.kubernetes import KubernetesDriver

        api_client = KubernetesDriver(cluster).client()
    now = now or timezone.now()
    found = gpu_pods(api_client)
    open_rows = {a.external_uid: a for a in GpuAllocation.objects.select_for_update().filter(
        cluster=cluster, source=AllocationSource.KUBERNETES, stopped_at__isnull=True)}
    teams = {t.slug: t for t in Team.objects.all()}
    started = stopped = 0
    seen = set()
    for pod, labels, gpus, cpu, memory in found:
        uid = pod.metadata.uid or f"{pod.metadata.namespace}/{pod.metadata.name}"
        seen.add(uid)
        if uid in open_rows or GpuAllocation.objects.filter(cluster=cluster, external_uid=uid).exists():
            continue
        start = min((pod.status.start_time if pod.status else None) or now, now)
        fields = {"team": teams.get(labels.get("team") or labels.get("controlplane.io/team") or ""),
                  "cluster": cluster, "started_at": start, "model_version": _model_version(labels),
                  "source": AllocationSource.KUBERNETES, "node": pod.spec.node_name or "", "cpu_cores": cpu,
                  "memory_gb": memory, "external_uid": uid}
        gtype = _gpu_type(cluster, pod, labels)
        if gtype is not None:
            allocation_start(gpu_type=gtype, gpu_count=gpus, **fields)
        else:
            # GPU hours are still counted; without a catalog type there is no price to cost them at.
            logger.warning("Pod %s/%s holds %s GPUs of a type not in the catalog of %s", pod.metadata.namespace,
                           pod.metadata.name, gpus, cluster.name)
            GpuAllocation.objects.create(gpu_type=None, gpu_count=gpus, **fields)
        started += 1
    for uid, allocation in open_rows.items():
        if uid not in seen:
            allocation_stop(allocation=allocation, stopped_at=max(now, allocation.started_at))
            stopped += 1
    if started or stopped:
        logger.info("GPU pod collector", extra={"cluster": cluster.name, "started": started, "stopped": stopped})
    return {"cluster": cluster.name, "pods": len(found), "started": started, "stopped": stopped}


def collect_all() -> list[dict]:
    """Beat job body: every Kubernetes cluster; one that can't be reached is logged and skipped."""
    from apps.deployments.models import Cluster

    results = []
    for cluster in Cluster.objects.filter(kind="kubernetes"):
        try:
            results.append(collect_pods(cluster=cluster))
        except Exception as exc:  # an unreachable cluster must not stop the others
            logger.warning("GPU pod collector could not read cluster %s: %s", cluster.name, exc)
            results.append({"cluster": cluster.name, "error": f"{type(exc).__name__}: {exc}"})
    return results
