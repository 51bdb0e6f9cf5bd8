"""The local target: every revision is a model server process on a loopback port, and every deployment
has one router process on a stable port that splits traffic between them.

Processes run in their own session, so they outlive the worker that started them; their pid and port
are recorded in a process store (the control plane's `LocalProcess` rows) and pid files (written by the
control plane, never by the sandboxed process), and `local_adopt()` (worker start, reconcile beat) keeps
the healthy ones and removes the rest.
Every process starts through `workers.sandbox`: allow-listed environment, its own working directory,
an unprivileged user when the control plane is root, memory and CPU limits.
"""
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from .. import sandbox
from .base import STOP_POLL_SECONDS, ApplyFailed, ConnectionCheck, Driver, DriverUnavailable, Observed, WaitInterrupted
from .spec import ClusterConnection, DeploymentSpec, JobSpec, LocalConfig, ProcessRecord, ProcessStore, RevisionSpec

logger = logging.getLogger(__name__)
MODULES = {"server": "workers.model_server", "router": "workers.router"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int | None, role: str | None = None) -> bool:
    """Alive, not a zombie, and (when role is given) running our module, so a recycled pid isn't ours."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            _reap(pid)
            return False
        if role and MODULES[role].encode() not in _cmdline(pid):
            return False
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return True


def _cmdline(pid: int) -> bytes:
    """The process's command line. It reads empty for a moment while the process execs (the sandbox launcher
    becoming the server: the new image's arguments are not mapped yet), so an empty read is retried for up to
    0.5 s before it counts: read once, a router checked 60 ms after its start was taken for dead."""
    deadline = time.monotonic() + 0.5
    while True:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        if cmdline or time.monotonic() > deadline:
            return cmdline
        time.sleep(0.01)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def kill(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap(pid)


def healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ping", timeout=timeout).ok
    except requests.RequestException:
        return False


class LocalDriver(Driver):
    def __init__(self, connection: ClusterConnection, config: LocalConfig, store: ProcessStore):
        super().__init__(connection)
        self.config = config
        self.store = store

    def _dir(self, deployment: DeploymentSpec) -> Path:
        path = Path(self.config.base_dir) / f"deployment-{deployment.id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def test_connection(self) -> ConnectionCheck:
        path = Path(self.config.base_dir)
        path.mkdir(parents=True, exist_ok=True)
        return ConnectionCheck(ok=os.access(path, os.W_OK), message=f"Local processes; state in {path}",
                               kserve=False)

    def render(self, *, revision: RevisionSpec, weight: int) -> list[dict]:
        return [{
            "kind": "LocalModelServer",
            "name": f"{revision.deployment.name}-r{revision.number}",
            "modelUri": revision.model_uri,
            "command": [sys.executable, "-m", MODULES["server"], "--model-uri", revision.model_uri],
            "resources": revision.resources,
            "weight": weight,
        }]

    def _process(self, deployment: DeploymentSpec, role: str, revision: RevisionSpec | None = None):
        return self.store.get(deployment_id=deployment.id, role=role, revision=revision)

    def _spawn(self, deployment: DeploymentSpec, role: str, args: list[str], revision: RevisionSpec | None = None,
               port: int | None = None) -> tuple[ProcessRecord, bool]:
        """Start the process unless it runs: the unique record is claimed first and only the winner of the
        claim spawns, so two workers converging the same revision never leave an orphan behind."""
        existing = self._process(deployment, role, revision)
        if existing and (pid_alive(existing.pid, role) or _starting(existing)):
            return existing, False
        if existing:
            port = port or existing.port
            # Only the caller that removes the dead record goes on to claim; the other finds the new claim.
            self.store.forget(existing)
        if port is None or not port_free(port):
            port = free_port()
        folder = self._dir(deployment)
        name = f"{role}-r{revision.number}" if revision else role
        pid_file, log_file = folder / f"{name}.pid", folder / f"{name}.log"
        row = self.store.claim(deployment_id=deployment.id, role=role, revision=revision, host=socket.gethostname(),
                               port=port, pid_file=str(pid_file), log_file=str(log_file))
        if row is None:
            return self._process(deployment, role, revision), False
        try:
            proc = self._start(folder / name, [sys.executable, "-m", MODULES[role], "--port", str(port), *args],
                               log_file=log_file, reads=(folder,) if role == "router" else (),
                               threads=_threads(revision.resources.get("cpu")) if revision else 1)
        except BaseException as exc:
            self.store.forget(row)  # nothing runs under the claim: the next converge claims again
            if isinstance(exc, sandbox.SandboxError):
                raise ApplyFailed(f"Cannot start the {role} process: {exc}") from exc
            raise
        tmp = pid_file.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps({"pid": proc.pid, "port": port, "role": role,
                                   "revision": revision.number if revision else None}))
        os.replace(tmp, pid_file)
        self.store.record_pid(row, proc.pid)
        row.pid = proc.pid
        logger.info("Started local process", extra={"role": role, "pid": proc.pid, "port": port})
        return row, True

    def _start(self, workdir: Path, argv: list[str], *, log_file: Path, reads: tuple, threads: int) -> subprocess.Popen:
        """The process in its sandbox; the log file is the control plane's (0600), handed over as stdout."""
        policy = sandbox.SandboxPolicy(run_as=self.config.run_as, memory_mb=self.config.memory_limit_mb,
                                       cpu_seconds=self.config.cpu_seconds)
        plan = sandbox.plan(policy=policy, workdir=workdir, reads=reads)
        # Numeric libraries size their thread pools to the host; the revision's CPU request caps them.
        limits = {var: str(threads) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        env = sandbox.child_env(workdir=workdir, extra={"MLFLOW_TRACKING_URI": self.config.tracking_uri, **limits})
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return subprocess.Popen(sandbox.command(plan, argv), cwd=workdir, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(log)

    def apply(self, *, revision: RevisionSpec, weight: int, on_request=None) -> None:
        self._spawn(revision.deployment, "server",
                    ["--model-uri", revision.model_uri, "--revision", str(revision.number)], revision=revision)
        if on_request:
            on_request()

    def wait_ready(self, *, revision: RevisionSpec, timeout: float, should_stop=None) -> None:
        deployment = revision.deployment
        row = self._process(deployment, "server", revision)
        if row is None:
            raise DriverUnavailable(f"No server process recorded for revision {revision.number}.")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy(row.port):
                return
            if should_stop is not None and should_stop():
                raise WaitInterrupted(f"Stopped waiting for revision {revision.number}.")
            if row.pid is None and _starting(row):  # another worker won the claim and is spawning it
                time.sleep(STOP_POLL_SECONDS)
                row = self._process(deployment, "server", revision) or row
                continue
            if not pid_alive(row.pid, "server"):
                tail = _tail(row.log_file)
                self.store.forget(row)
                raise ApplyFailed(f"Model server for revision {revision.number} exited: {tail}")
            time.sleep(STOP_POLL_SECONDS)
        tail = _tail(row.log_file)
        kill(row.pid)
        self.store.forget(row)
        raise ApplyFailed(f"Model server for revision {revision.number} was not ready after {timeout:.0f}s. {tail}")

    def _ensure_server(self, revision: RevisionSpec) -> ProcessRecord | None:
        """A routed revision whose server died (crash, host reboot) is started again before routing."""
        row = self._process(revision.deployment, "server", revision)
        if row is not None and pid_alive(row.pid, "server"):
            return row
        self.apply(revision=revision, weight=0)
        try:
            self.wait_ready(revision=revision, timeout=self.config.ready_timeout)
        except ApplyFailed as exc:
            raise DriverUnavailable(str(exc)) from exc
        return self._process(revision.deployment, "server", revision)

    def _ensure_router(self, deployment: DeploymentSpec) -> int:
        config = self._dir(deployment) / "routes.json"
        previous = None
        if deployment.endpoint_url:
            try:
                previous = int(deployment.endpoint_url.rsplit(":", 1)[1].split("/")[0])
            except (IndexError, ValueError):
                previous = None
        row, started = self._spawn(deployment, "router", ["--config", str(config)], port=previous)
        if started:
            deadline = time.monotonic() + 30  # two interpreter starts (launcher, router) on a busy host
            while not healthy(row.port):
                if time.monotonic() > deadline or not pid_alive(row.pid, "router"):
                    raise DriverUnavailable(f"Router did not start: {_tail(row.log_file)}")
                time.sleep(0.05)
        return row.port

    def route(self, *, deployment: DeploymentSpec, traffic: dict[int, int], shadow: dict,
              revisions: dict[int, RevisionSpec]) -> str:
        backends = {}
        for number, weight in traffic.items():
            row = self._ensure_server(revisions[int(number)])
            backends[str(number)] = {"url": f"http://127.0.0.1:{row.port}", "weight": weight}
        mirror = {}
        if shadow:
            row = self._ensure_server(revisions[int(shadow["revision"])])
            if row is not None:
                mirror = {"url": f"http://127.0.0.1:{row.port}", "percent": shadow["percent"],
                          "revision": str(shadow["revision"])}
        folder = self._dir(deployment)
        tmp = folder / "routes.json.tmp"
        tmp.write_text(json.dumps({"backends": backends, "shadow": mirror}))
        os.replace(tmp, folder / "routes.json")  # atomic: the router never reads half a file
        port = self._ensure_router(deployment)
        return f"http://127.0.0.1:{port}/invocations"

    def retire(self, *, revision: RevisionSpec) -> None:
        row = self._process(revision.deployment, "server", revision)
        if row is not None:
            kill(row.pid)
            self.store.forget(row)

    def teardown(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> None:
        router = self._process(deployment, "router")
        if router is not None:  # the endpoint first: no request reaches a server being stopped
            kill(router.pid)
            self.store.forget(router)
        (self._dir(deployment) / "routes.json").unlink(missing_ok=True)
        for revision in revisions:
            self.retire(revision=revision)

    def observe(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> Observed:
        observed = Observed()
        for revision in revisions:
            row = self._process(deployment, "server", revision)
            name = f"server r{revision.number}"
            (observed.present if row and pid_alive(row.pid, "server") else observed.missing).append(name)
        router = self._process(deployment, "router")
        (observed.present if router and pid_alive(router.pid, "router") else observed.missing).append("router")
        return observed

    def job_apply(self, *, job: JobSpec) -> dict:
        raise ApplyFailed("Jobs run on Kubernetes clusters; the local target serves models only.")

    def job_status(self, *, job: JobSpec):
        return job.status, job.message


SPAWN_CLAIM_SECONDS = 60


def _starting(row: ProcessRecord) -> bool:
    """Claimed but its pid not yet recorded: a spawn in progress, unless the claim is too old to be one."""
    return row.pid is None and (datetime.now(timezone.utc) - row.started_at).total_seconds() < SPAWN_CLAIM_SECONDS


def _threads(cpu) -> int:
    """Kubernetes CPU quantity ("500m", "2", 1.5) → whole threads, at least one."""
    text = str(cpu or "1")
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        cores = 1
    return max(1, math.ceil(cores))


def _tail(path: str, size: int = 600) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


def local_adopt(*, store: ProcessStore, base_dir: Path) -> dict:
    """After a worker restart: keep the processes that are alive and ours, forget dead ones, and kill
    stray processes whose pid file no record knows about (started by a worker that died before recording).
    Only this host's records are judged: a pid means nothing on another machine."""
    counts = {"adopted": 0, "forgotten": 0, "killed": 0}
    known = set()
    for row in store.on_host(socket.gethostname()):
        if _starting(row):
            known.add(row.pid_file)
        elif pid_alive(row.pid, row.role):
            counts["adopted"] += 1
            known.add(row.pid_file)
        else:
            store.forget(row)
            counts["forgotten"] += 1
    base = Path(base_dir)
    for pid_file in base.glob("deployment-*/*.pid") if base.exists() else []:
        if str(pid_file) in known:
            continue
        try:
            info = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(info.get("pid"), info.get("role")):
            kill(info["pid"])
            counts["killed"] += 1
        pid_file.unlink(missing_ok=True)
    return counts
