"""The interface the rollout engine drives a cluster through.

Errors: `DriverUnavailable` is transient (cluster unreachable, 5xx, timeout) and the caller retries
with backoff; `ApplyFailed` is permanent for that revision (the cluster refused the manifest, the model
server crashed) and carries the cluster's message, which the revision shows.
"""
from dataclasses import dataclass, field
from typing import Callable

from .spec import ClusterConnection, DeploymentSpec, JobSpec, RevisionSpec


class DriverUnavailable(Exception):
    """The cluster could not be reached or answered 5xx/timeout; retry later."""


class ApplyFailed(Exception):
    """The cluster refused the revision or it failed to become ready; its message is shown to users."""


class WaitInterrupted(Exception):
    """`should_stop()` said so during a wait (the desired state moved on): nothing failed, stop driving."""


# How often an interruptible wait asks `should_stop()` (a rollback waits at most about this long for a drive).
STOP_POLL_SECONDS = 0.25


@dataclass
class ConnectionCheck:
    ok: bool
    message: str
    kserve: bool | None = None
    gateway_api: bool | None = None
    details: dict = field(default_factory=dict)


@dataclass
class Observed:
    """What the cluster reports for a deployment: objects found, missing, and fields that differ."""

    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    drift: dict = field(default_factory=dict)


class Driver:
    """One per cluster kind. Every method is idempotent: calling it twice does what calling it once did.

    Drivers are given plain data (workers.drivers.spec), never database rows: the control plane picks the
    driver for a cluster (apps.deployments.drivers.driver_for), resolves credentials and workloads, and
    renders manifests through `render` before it stores them on the revision."""

    def __init__(self, connection: ClusterConnection):
        self.connection = connection

    def test_connection(self) -> ConnectionCheck:
        raise NotImplementedError

    def render(self, *, revision: RevisionSpec, weight: int) -> list[dict]:
        """The manifests this revision applies (stored on the revision, shown in the review)."""
        raise NotImplementedError

    def apply(self, *, revision: RevisionSpec, weight: int, on_request=None) -> None:
        """Bring the revision's workload up (serving `weight` % once routed). `on_request()` is called when
        the first apply request reaches the cluster (the rollback latency the benchmark measures)."""
        raise NotImplementedError

    def wait_ready(self, *, revision: RevisionSpec, timeout: float,
                   should_stop: Callable[[], bool] | None = None) -> None:
        """Return when ready; raise ApplyFailed (failed or timed out) or DriverUnavailable. Between polls (every
        STOP_POLL_SECONDS or so) it calls `should_stop()` (the caller's heartbeat and check for newer desired
        state) and raises WaitInterrupted when that says True; an exception from it propagates."""
        raise NotImplementedError

    def route(self, *, deployment: DeploymentSpec, traffic: dict[int, int], shadow: dict,
              revisions: dict[int, RevisionSpec]) -> str:
        """Send traffic {workload revision number: percent} (+ shadow mirror); return the endpoint URL."""
        raise NotImplementedError

    def retire(self, *, revision: RevisionSpec) -> None:
        """Stop a revision's workload that is neither routed nor kept warm."""
        raise NotImplementedError

    def teardown(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> None:
        """Stop serving the deployment: remove its route and every revision's workload. Re-running it after a
        partial failure finishes the job (what is already gone is skipped)."""
        raise NotImplementedError

    def observe(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> Observed:
        raise NotImplementedError

    # Jobs (training / batch)
    def job_apply(self, *, job: JobSpec) -> dict:
        raise NotImplementedError

    def job_status(self, *, job: JobSpec) -> tuple[str, str]:
        """(status, message) with status one of JobStatus."""
        raise NotImplementedError

    def job_logs_url(self, *, job: JobSpec) -> str:
        return ""
