"""The one place deployments talk to the costs app (admission, allocations).

Costs may not be installed yet on a branch; then admission always allows and nothing is allocated, so
the deployment flow works either way. Every call site in this app goes through these functions.
"""
import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class Admission:
    allowed: bool = True
    reason: str = ""
    hourly_cost: float | None = None
    monthly_cost_estimate: float | None = None
    detail: dict = field(default_factory=dict)


def _costs():
    try:
        from apps.costs import services  # noqa: F401
    except ImportError:
        return None
    return services if hasattr(services, "admission_check") else None


def _gpu_count(resources: dict) -> int:
    autoscaling = resources.get("autoscaling") or {}
    replicas = max(resources.get("replicas", 1), autoscaling.get("max", 0) or 0)
    return int(resources.get("gpu_count") or 0) * replicas


def admission_preview(*, team, cluster, resources: dict) -> Admission:
    """What the review step shows: would it be admitted, headroom and the monthly cost estimate."""
    costs = _costs()
    if costs is None:
        return Admission(reason="Cost admission is not configured.")
    try:
        decision = costs.admission_check(team=team, cluster=cluster, gpu_type=resources.get("gpu_type") or "",
                                         gpu_count=_gpu_count(resources))
    except Exception as exc:  # unknown GPU type etc.: the review shows why, submit raises it properly
        return Admission(allowed=False, reason=getattr(exc, "message", str(exc)))
    detail = decision.as_dict() if hasattr(decision, "as_dict") else {}
    return Admission(allowed=bool(decision.allowed), reason=decision.reason or "",
                     hourly_cost=float(decision.hourly_cost), monthly_cost_estimate=float(decision.monthly_cost_estimate),
                     detail=detail)


def admission_require(*, team, cluster, resources: dict) -> None:
    """Raise 409 (the costs app's AdmissionRefused, with usage/request/limit/fits) beyond the team's quota."""
    if not resources.get("gpu_count"):
        return
    costs = _costs()
    if costs is None:
        return
    costs.admission_require(team=team, cluster=cluster, gpu_type=resources["gpu_type"],
                            gpu_count=_gpu_count(resources))


def allocation_start(*, deployment, revision):
    """Open the GPU ledger interval of the revision now serving (closing the previous one)."""
    costs = _costs()
    if costs is None or not revision.resources.get("gpu_count"):
        return None
    try:
        allocation_stop_for(deployment=deployment)
        return costs.allocation_start(team=deployment.team, cluster=deployment.cluster,
                                      gpu_type=revision.resources["gpu_type"],
                                      gpu_count=_gpu_count(revision.resources),
                                      model_version=revision.model_version, deployment_id=deployment.pk)
    except Exception:  # cost attribution must never block serving; the costs app reconciles usage itself
        logger.exception("GPU allocation start failed", extra={"deployment": deployment.pk})
        return None


def allocation_stop_for(*, deployment) -> None:
    costs = _costs()
    if costs is None or not hasattr(costs, "allocations_stop_for"):
        return
    try:
        costs.allocations_stop_for(deployment_id=deployment.pk)
    except Exception:
        logger.exception("GPU allocation stop failed", extra={"deployment": deployment.pk})
