"""Kubernetes pod collector: every GPU pod lands in the ledger once, and the ledger learns where work runs.

Each run lists the cluster's pods through the official client and reconciles them with the ledger:
- pods the control plane did not make that request `nvidia.com/gpu` get `kubernetes`-sourced intervals (keyed by
  pod uid): a new running pod opens one from its start time, a pod that finished or vanished closes it.
  Attribution comes from the pod's labels: `team` (or controlplane.io/team) → team, else "unattributed";
  `model` + `model-version` → model version; the GPU type is the `gpu-type` label or the
  `nvidia.com/gpu.product` node selector, matched against the cluster's catalog;
- the control plane's own pods (deployment revisions, Jobs) are already in the ledger through the deployments
  app, so they are not counted again; instead the collector reconciles them: a running Job without an open
  interval gets one, a Job interval still open after the Job ended is closed at its end, and open intervals
  learn their node and GPUs (for the idle figure) from their pods.
A pod's node is its spec.nodeName; its GPUs come from its annotations or NVIDIA_VISIBLE_DEVICES (ledger.pod_placement).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .choices import AllocationSource
from .ledger import Requests, container_requests, indexes_from_uuids, pod_placement
from .models import GpuAllocation, GpuType
from .services import allocation_start, allocation_start_reserved, allocation_stop

logger = logging.getLogger(__name__)
CONTROL_PLANE_LABELS = (("app.kubernetes.io/managed-by", "controlplane"),)
JOB_LABEL = "controlplane.io/job"


def _made_by_control_plane(labels: dict) -> bool:
    return any(labels.get(k) == v for k, v in CONTROL_PLANE_LABELS) or JOB_LABEL in labels


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


def _running_pods(api_client) -> list[tuple[object, dict, Requests]]:
    """Running pods with their labels and requests, placement included."""
    import kubernetes

    core = kubernetes.client.CoreV1Api(api_client)
    out = []
    for pod in core.list_pod_for_all_namespaces(_request_timeout=(5, 30)).items:
        if (pod.status.phase if pod.status else None) == "Running":
            out.append((pod, pod.metadata.labels or {}, pod_placement(pod, container_requests(pod.spec.containers))))
    return out


def _placement(cluster, requests: Requests) -> Requests:
    """GPUs known only by uuid get their NVML index from the agent's device list."""
    if requests.gpu_uuids and not requests.gpu_indexes:
        requests.gpu_indexes = indexes_from_uuids(cluster=cluster, node=requests.node, uuids=requests.gpu_uuids)
    return requests


def _locate(allocation: GpuAllocation, placements: list[Requests]) -> bool:
    """Record the node and GPUs of an open interval from its pods, when they all run on one node."""
    nodes = {p.node for p in placements}
    if len(nodes) != 1 or not next(iter(nodes)):
        return False
    fields = {"node": nodes.pop(), "gpu_indexes": sorted({i for p in placements for i in p.gpu_indexes}),
              "gpu_uuids": sorted({u for p in placements for u in p.gpu_uuids}),
              "mig_instance": next((p.mig_instance for p in placements if p.mig_instance), "")}
    if all(getattr(allocation, k) == v for k, v in fields.items()):
        return False
    GpuAllocation.objects.filter(pk=allocation.pk).update(updated_at=timezone.now(), **fields)
    return True


def _reconcile_control_plane(*, cluster, pods: list, now: datetime) -> dict:
    """The control plane's own pods: open missing Job intervals, close ended ones, record node and GPUs."""
    from apps.deployments.choices import JobStatus
    from apps.deployments.models import Deployment, Job

    counts = {"jobs_opened": 0, "jobs_closed": 0, "located": 0}
    by_job, by_revision = defaultdict(list), defaultdict(list)
    for pod, labels, requests in pods:
        if JOB_LABEL in labels:
            by_job[(pod.metadata.namespace, labels[JOB_LABEL])].append((pod, requests))
        elif labels.get("controlplane.io/deployment") and str(labels.get("controlplane.io/revision", "")).isdigit():
            key = (labels.get("controlplane.io/team", ""), labels["controlplane.io/deployment"],
                   int(labels["controlplane.io/revision"]))
            by_revision[key].append(requests)
    for (namespace, name), job_pods in by_job.items():
        job = Job.objects.select_related("team").filter(cluster=cluster, namespace=namespace, name=name).first()
        if job is None or job.status != JobStatus.RUNNING:
            continue
        placements = [_placement(cluster, requests) for _, requests in job_pods]
        interval = GpuAllocation.objects.filter(job_id=job.pk, stopped_at__isnull=True).first()
        if interval is None:
            started = min([(p.status.start_time if p.status else None) or now for p, _ in job_pods] + [now])
            # One pod: its node and GPUs too; several: their requests summed, placed by _locate if on one node.
            total = placements[0] if len(placements) == 1 else Requests(
                cpu_cores=sum(p.cpu_cores for p in placements), memory_gib=sum(p.memory_gib for p in placements))
            interval = allocation_start_reserved(team=job.team, cluster=cluster, gpu_count=job.gpu_count,
                                                 gpu_type=job.gpu_type if job.gpu_count else "", job_id=job.pk,
                                                 started_at=max(started, job.started_at or started),
                                                 **total.ledger_fields())
            counts["jobs_opened"] += 1
            logger.warning("Job %s ran without a ledger interval; the collector opened one", job.name)
        counts["located"] += _locate(interval, placements)
    ended = (GpuAllocation.objects.filter(cluster=cluster, stopped_at__isnull=True, job_id__isnull=False)
             .exclude(job_id__in=Job.objects.filter(status=JobStatus.RUNNING).values("pk")))
    finished = dict(Job.objects.filter(pk__in=ended.values("job_id")).values_list("pk", "finished_at"))
    for interval in ended:
        stop = finished.get(interval.job_id) or now
        allocation_stop(allocation=interval, stopped_at=max(min(stop, now), interval.started_at))
        counts["jobs_closed"] += 1
    for (team, name, number), placements in by_revision.items():
        deployment = Deployment.objects.filter(cluster=cluster, team__slug=team, name=name).first()
        revision = deployment.revisions.filter(number=number).first() if deployment else None
        interval = GpuAllocation.objects.filter(deployment_id=getattr(deployment, "pk", None),
                                                revision_id=getattr(revision, "pk", None),
                                                stopped_at__isnull=True).first()
        if interval is not None:
            counts["located"] += _locate(interval, [_placement(cluster, p) for p in placements])
    return counts


@transaction.atomic
def collect_pods(*, cluster, api_client=None, now: datetime | None = None) -> dict:
    """Reconcile one cluster's pods with the ledger. Returns counts of what changed."""
    from apps.teams.models import Team

    if api_client is None:
        from apps.deployments.drivers import driver_for

        api_client = driver_for(cluster).client()
    now = now or timezone.now()
    pods = _running_pods(api_client)
    own = [p for p in pods if _made_by_control_plane(p[1])]
    found = [p for p in pods if not _made_by_control_plane(p[1]) and p[2].gpus > 0]
    open_rows = {a.external_uid: a for a in GpuAllocation.objects.select_for_update().filter(
        cluster=cluster, source=AllocationSource.KUBERNETES, stopped_at__isnull=True)}
    teams = {t.slug: t for t in Team.objects.all()}
    started = stopped = 0
    seen = set()
    for pod, labels, requests in found:
        uid = pod.metadata.uid or f"{pod.metadata.namespace}/{pod.metadata.name}"
        seen.add(uid)
        if uid in open_rows or GpuAllocation.objects.filter(cluster=cluster, external_uid=uid).exists():
            continue
        start = min((pod.status.start_time if pod.status else None) or now, now)
        fields = {"team": teams.get(labels.get("team") or labels.get("controlplane.io/team") or ""),
                  "cluster": cluster, "started_at": start, "model_version": _model_version(labels),
                  "source": AllocationSource.KUBERNETES, "external_uid": uid,
                  **_placement(cluster, requests).ledger_fields()}
        gtype = _gpu_type(cluster, pod, labels)
        if gtype is not None:
            allocation_start(gpu_type=gtype, gpu_count=requests.gpus, **fields)
        else:
            # GPU hours are still counted; without a catalog type there is no price to cost them at.
            logger.warning("Pod %s/%s holds %s GPUs of a type not in the catalog of %s", pod.metadata.namespace,
                           pod.metadata.name, requests.gpus, cluster.name)
            GpuAllocation.objects.create(gpu_type=None, gpu_count=requests.gpus, **fields)
        started += 1
    for uid, allocation in open_rows.items():
        if uid not in seen:
            allocation_stop(allocation=allocation, stopped_at=max(now, allocation.started_at))
            stopped += 1
    control_plane = _reconcile_control_plane(cluster=cluster, pods=own, now=now)
    if started or stopped or any(control_plane.values()):
        logger.info("GPU pod collector", extra={"cluster": cluster.name, "started": started, "stopped": stopped,
                                                **control_plane})
    return {"cluster": cluster.name, "pods": len(found), "started": started, "stopped": stopped, **control_plane}


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
