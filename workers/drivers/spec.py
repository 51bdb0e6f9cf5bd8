"""What a driver is given: plain data built by `apps.deployments.drivers`, so nothing under workers/
reads the database, Django settings or another app's code. The control plane resolves credentials,
workloads (a rollback runs an earlier revision's manifests) and settings, then calls a driver with these.
"""
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol


@dataclass(frozen=True)
class KubeCredentials:
    """Decrypted and already checked (SSRF guard, no kubeconfig plugins): safe to build a client from."""

    token: str = ""
    ca_cert: str = ""
    kubeconfig: dict | None = None


@dataclass(frozen=True)
class ClusterConnection:
    """A cluster as a driver sees it. `credentials()` is called only when the driver builds a new API
    client (once per process and `credentials_digest`); it raises ApplyFailed when the connection is refused."""

    cluster_id: int
    name: str
    server: str = ""
    credentials_digest: str = ""
    # The Gateway (namespace, name) that deployments' HTTPRoutes attach to; empty: no Gateway API routing.
    gateway_namespace: str = ""
    gateway_name: str = ""
    credentials: Callable[[], KubeCredentials] = field(default=KubeCredentials, compare=False, repr=False)


@dataclass(frozen=True)
class KubernetesConfig:
    connect_timeout: float
    read_timeout: float
    server_image: str
    tracking_uri: str


@dataclass(frozen=True)
class LocalConfig:
    base_dir: Path
    tracking_uri: str
    ready_timeout: float
    run_as: str | None = None
    memory_limit_mb: int = 0
    cpu_seconds: int = 0


@dataclass(frozen=True)
class DeploymentSpec:
    """The deployment a revision belongs to. `serving_revision`: the workload revision number that the
    current revision runs (None before the first deploy); `warm_revision`: the workload kept warm for a
    rollback, inside its window; `endpoint_url` the one last routed."""

    id: int | None
    name: str
    namespace: str
    team: str
    serving_revision: int | None = None
    endpoint_url: str = ""
    warm_revision: int | None = None


@dataclass(frozen=True)
class RevisionSpec:
    """One workload revision: the model it serves, its resources and (once rendered) its manifests."""

    deployment: DeploymentSpec
    id: int | None
    number: int
    model_name: str
    model_version: str
    artifact_uri: str
    resources: dict = field(default_factory=dict)
    manifests: list = field(default_factory=list)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"


@dataclass(frozen=True)
class JobSpec:
    name: str
    attempt: int
    namespace: str
    team: str
    image: str
    command: list
    gpu_type: str = ""
    gpu_count: int = 0
    manifest: dict = field(default_factory=dict)
    status: str = ""
    message: str = ""


@dataclass
class ProcessRecord:
    """A process the local driver started (or claimed, with pid None, just before starting it)."""

    id: int
    role: str
    pid: int | None
    port: int
    pid_file: str
    log_file: str
    started_at: datetime  # timezone-aware


class ProcessStore(Protocol):
    """Where the local driver records its processes, one per (deployment, role, revision).

    `claim` inserts the unique record before anything is spawned and returns None when another caller's
    claim already holds it; `forget` removes a record only while it still holds the given pid, so a
    caller judging a dead process never deletes the claim that replaced it."""

    def get(self, *, deployment_id: int, role: str, revision: RevisionSpec | None) -> ProcessRecord | None: ...

    def claim(self, *, deployment_id: int, role: str, revision: RevisionSpec | None, host: str, port: int,
              pid_file: str, log_file: str) -> ProcessRecord | None: ...

    def record_pid(self, record: ProcessRecord, pid: int) -> None: ...

    def forget(self, record: ProcessRecord) -> None: ...

    def on_host(self, host: str) -> list[ProcessRecord]: ...
