"""Celery worker and beat processes the chaos test starts, SIGKILLs and restarts (each incarnation logs to
its own file, so a failing run shows what every one of them did)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.celery_worker import ROOT, _database_url

CELERY = str(Path(sys.executable).with_name("celery"))


class CeleryProcess:
    def __init__(self, name: str, argv: list[str], *, env: dict, logs: Path, ready: str):
        self.name, self.argv, self.env, self.logs, self.ready = name, argv, env, logs, ready
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0

    @property
    def log(self) -> Path:
        return self.logs / f"{self.name}-{self.incarnation}.log"

    def start(self, wait: bool = True) -> None:
        self.incarnation += 1
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([CELERY, "-A", "controlplane", *self.argv], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.ready not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ack, no status written."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tails(self, size: int = 1500) -> str:
        return "\n".join(f"----- {log.name}\n{log.read_text()[-size:]}" for log in sorted(self.logs.glob(f"{self.name}-*.log")))


def celery_env(*, broker_url: str, mlflow_url: str, extra: dict) -> dict:
    """The environment `make run` would give a worker, pointed at the test database, broker and MLflow."""
    return {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": broker_url, "CELERY_BROKER_URL": broker_url,
            "MLFLOW_TRACKING_URI": mlflow_url, **extra}


def worker(name: str, *, env: dict, logs: Path) -> CeleryProcess:
    return CeleryProcess(name, ["worker", "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
                                "--without-mingle", "--without-gossip", "-n", f"{name}@%h", "-Q", "control,bulk"],
                         env=env, logs=logs, ready="ready.")


def beat(*, env: dict, logs: Path) -> CeleryProcess:
    # The product's schedule (CELERY_BEAT_SCHEDULE) from a file, not the database scheduler: nothing to clean up.
    return CeleryProcess("beat", ["beat", "--loglevel", "INFO", "-S", "celery.beat:PersistentScheduler",
                                  "-s", str(logs / "beat-schedule")], env=env, logs=logs, ready="beat: Starting")
