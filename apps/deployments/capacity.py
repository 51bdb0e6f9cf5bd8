"""The one place deployments and jobs talk to the costs app: admission (a GPU reservation taken in the
admitting transaction), the reservation's life, and the usage ledger. Every call site in this app goes
through these functions. There is no "costs not installed" path: a control that can't decide refuses.
"""
import logging
from dataclasses import dataclass, field

from apps.costs import ledger
from apps.costs import services as costs

logger = logging.getLogger(__name__)


@dataclass
class Admission:
    allowed: bool = True
    reason: str = ""
    hourly_cost: float | None = None
    monthly_cost_estimate: float | None = None
    detail: dict = field(default_factory=dict)


def replicas(resources: dict) -> int:
    """The most replicas the work may run: what it reserves and is costed for."""
    autoscaling = resources.get("autoscaling") or {}
    return max(resources.get("replicas", 1), autoscaling.get("max", 0) or 0)


def gpu_count(resources: dict) -> int:
    """GPUs the work may hold at its largest: per replica × the most replicas autoscaling allows."""
    return int(resources.get("gpu_count") or 0) * replicas(resources)


def admission_preview(*, team, cluster, resources: dict) -> Admission:
    """What the review step shows: would it be admitted, headroom and the monthly cost estimate."""
    try:
        decision = costs.admission_check(team=team, cluster=cluster, gpu_type=resources.get("gpu_type") or "",
                                         gpu_count=gpu_count(resources))
    except Exception as exc:  # unknown GPU type etc.: the review shows why (refused), submit raises it properly
        return Admission(allowed=False, reason=getattr(exc, "message", str(exc)))
    return Admission(allowed=bool(decision.allowed), reason=decision.reason or "",
                     hourly_cost=float(decision.hourly_cost), monthly_cost_estimate=float(decision.monthly_cost_estimate),
                     detail=decision.as_dict())


def reserve_for_revision(*, deployment, revision) -> None:
    """Admit the revision's GPUs and reserve them in the caller's transaction (409 with what fits beyond the
    quota). CPU-only work needs no quota."""
    if not revision.resources.get("gpu_count"):
        return
    costs.admission_reserve(team=deployment.team, cluster=deployment.cluster, gpu_type=revision.resources["gpu_type"],
                            gpu_count=gpu_count(revision.resources), deployment_id=deployment.pk,
                            revision_id=revision.pk)


def reserve_for_job(*, job) -> None:
    if not job.gpu_count:
        return
    costs.admission_reserve(team=job.team, cluster=job.cluster, gpu_type=job.gpu_type, gpu_count=job.gpu_count,
                            job_id=job.pk)


def revision_running(*, revision) -> None:
    """The revision's pods are ready: its reservation no longer times out."""
    costs.reservations_running(revision_id=revision.pk)


def release(*, reason: str, deployment=None, revision=None, job=None) -> None:
    """Give back the GPUs reserved for work that will not run (failed, aborted, superseded, torn down); a
    revision's workload that is gone also closes its ledger interval."""
    costs.reservations_release(reason=reason, deployment_id=deployment.pk if deployment else None,
                               revision_id=revision.pk if revision else None, job_id=job.pk if job else None)
    if revision is not None:
        ledger.intervals_stop_for_revision(revision_id=revision.pk)


def deployment_stopped(*, deployment) -> dict:
    """A torn-down deployment: every reservation it holds is given back and every open ledger interval closed."""
    return {"reservations_released": costs.reservations_release(reason="deployment torn down",
                                                                deployment_id=deployment.pk),
            "allocations_stopped": costs.allocations_stop_for(deployment_id=deployment.pk)}


def allocation_start(*, deployment, revision):
    """Open the ledger interval of the revision now serving, GPU or CPU-only, with its CPU and memory requests
    (closing the previous revision's interval); its reservation becomes that usage in the same transaction."""
    resources = revision.resources
    try:
        return ledger.deployment_interval_open(
            deployment_id=deployment.pk, revision_id=revision.pk, team=deployment.team, cluster=deployment.cluster,
            gpu_type=resources.get("gpu_type") or "", gpu_count=gpu_count(resources),
            model_version=revision.model_version,
            **ledger.revision_requests(resources, replicas=replicas(resources)).ledger_fields())
    except Exception:
        # Serving must not stop over cost attribution. Nothing is under-counted meanwhile: the revision's
        # reservation keeps holding its GPUs until the ledger takes over.
        logger.exception("GPU allocation start failed", extra={"deployment": deployment.pk})
        return None


def job_running(*, job, manifest: dict) -> None:
    """The job was applied: its ledger interval opens (GPU or CPU-only, with the CPU and memory its manifest
    requests) and its reservation becomes that usage. The pod collector adds the node and GPUs once it runs."""
    requests = ledger.job_requests(manifest)
    costs.allocation_start_reserved(team=job.team, cluster=job.cluster, gpu_type=job.gpu_type if job.gpu_count else "",
                                    gpu_count=job.gpu_count, job_id=job.pk,
                                    cpu_cores=requests.cpu_cores, memory_gb=requests.memory_gib)


def job_finished(*, job) -> None:
    costs.allocations_stop_for(job_id=job.pk)
    costs.reservations_release(reason=f"job {job.status}", job_id=job.pk)
