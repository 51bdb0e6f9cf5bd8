"""A real Celery worker process consuming from the test broker and writing to the test database."""
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(broker_url: str, log: Path, queues: str = "control,bulk"):
    """Start a solo worker on `queues` (both by default, like one `make run` worker of each kind) and
    stop it on exit, printing its log's tail for a failing test to inspect."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": broker_url, "CELERY_BROKER_URL": broker_url}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("celery")), "-A", "controlplane", "worker", "--pool", "solo",
             "--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip", "-Q", queues],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(log.read_text()[-2000:])


@pytest.fixture
def celery_worker_process(private_broker, transactional_db, tmp_path):
    with celery_worker(private_broker.url, tmp_path / "worker.log") as proc:
        yield proc
