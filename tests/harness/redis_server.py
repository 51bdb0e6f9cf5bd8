"""A private redis-server on a free loopback port, for tests that stop and restart the broker."""
import subprocess
import time

import pytest
import redis

from tests.harness.mlflow_server import free_port


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def private_broker(settings):
    """Point Celery publishing at a private Redis the test may stop and start."""
    from controlplane.celery import app

    server = RedisServer()
    server.start()
    previous = app.conf.broker_url

    def reset_pools():
        # Forget the cached pools so the next publish connects to the current broker_url
        # (kombu keys its global pools by connection, so each URL gets its own).
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = server.url
    settings.REDIS_URL = server.url
    reset_pools()
    yield server
    app.conf.broker_url = previous
    reset_pools()
    server.stop()
