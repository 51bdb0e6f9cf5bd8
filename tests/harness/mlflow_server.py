"""Starts a real MLflow tracking server on a free loopback port for the test session.

Backend store: a fresh PostgreSQL database (dropped at the end); artifacts: a temp folder.
The server is started lazily, only when a test asks for the `mlflow_server` fixture, so the rest
of the suite doesn't pay for it.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings


# MLflow delivers registry webhooks only to https URLs on public addresses by default; the tests' receiver is
# plain http on loopback. Webhook lists are cached for 60 s by default, so a webhook a test registers would
# miss the events right after it; secrets are encrypted with a fixed key so they survive for the session.
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _admin_dsn() -> str:
    db = settings.DATABASES["default"]
    return f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres" + (
        f" password={db['PASSWORD']}" if db.get("PASSWORD") else "")


def _sqlalchemy_url(dbname: str) -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgresql+psycopg://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{dbname}"


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MLflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"MLflow server did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


class MlflowServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dbname = f"mlflow_test_{uuid.uuid4().hex[:8]}"
        self.workdir = Path(tempfile.mkdtemp(prefix="mlflow-test-"))
        self.log = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [mlflow_bin, "server", "--backend-store-uri", _sqlalchemy_url(self.dbname),
                 "--artifacts-destination", str(self.workdir / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MLFLOW_TRACKING_URI": "", **WEBHOOK_ENV},
            )
        wait_healthy(self.url, self.proc, self.log)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        try:
            with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server():
    server = MlflowServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_uri(mlflow_server, settings, monkeypatch):
    """Point the control plane and the MLflow client at the test server."""
    settings.MLFLOW_TRACKING_URI = mlflow_server.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return mlflow_server.url
