"""No lock across the network: while a sync waits on MLflow, every other audited write in the product goes on.

MLflow is reached through a real HTTP proxy on loopback that holds one request (the run of a chosen version)
until the test lets it go; nothing of ours is patched.
"""
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.registry import services
from apps.registry.choices import SyncStatus
from apps.registry.models import RegisteredModel
from apps.teams.services import membership_add
from tests.factories import UserFactory, member

PROMPT_S = 2.0  # an audited write that waited for the sync would wait until the proxy lets go (10 s)


class HoldingProxy:
    """Forwards every request to MLflow; the first whose path contains `hold` waits until `release` is set."""

    def __init__(self, upstream: str, hold: str):
        self.holding, self.release = threading.Event(), threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                if hold in self.path and not proxy.holding.is_set():
                    proxy.holding.set()
                    proxy.release.wait(10)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                forwarded = urllib.request.Request(upstream + self.path, data=body, headers=headers,
                                                   method=self.command)
                try:
                    with urllib.request.urlopen(forwarded, timeout=30) as answer:
                        status, reply, content_type = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    status, reply, content_type = exc.code, exc.read(), exc.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True)
def test_audited_writes_proceed_while_a_sync_waits_on_mlflow(register_version, unique_name, mlflow_uri, team,
                                                             other_team, settings):
    from mlflow import MlflowClient

    # An owned model whose MLflow tag now names another team (an audited change the sync records) and which
    # has a new version (whose run the sync fetches): the sync audits, then calls MLflow for the same model.
    name = unique_name("locks")
    register_version(name, {"accuracy": 0.9})
    services.sync_run_now(actor=None)
    client = MlflowClient(mlflow_uri)
    client.set_registered_model_tag(name, "team", "search")
    new_version = register_version(name, {"accuracy": 0.95})
    run_id = client.get_model_version(name, new_version).run_id
    admin = member(team, "team_admin", "alice")
    UserFactory(username="newcomer")

    proxy = HoldingProxy(mlflow_uri, hold=run_id)
    settings.MLFLOW_TRACKING_URI = proxy.url
    outcome = {}

    def sync():
        try:
            outcome["run"] = services.sync_run_now(actor=None)
        finally:
            connection.close()

    syncing = threading.Thread(target=sync)
    syncing.start()
    try:
        assert proxy.holding.wait(30), "the sync never asked MLflow for the new version's run"
        started = time.monotonic()
        membership_add(actor=admin, team=team, username="newcomer", role="viewer")
        model = RegisteredModel.objects.get(name=name)
        services.model_assign_team(actor=admin, model=model, team=team)
        elapsed = time.monotonic() - started
        assert elapsed < PROMPT_S, f"audited writes waited {elapsed:.1f}s for a sync blocked on MLflow"
        assert syncing.is_alive(), "the sync should still be waiting on MLflow"
    finally:
        proxy.release.set()
        syncing.join(30)
        proxy.close()
    run = outcome["run"]
    assert run.status == SyncStatus.SUCCEEDED
    version = RegisteredModel.objects.get(name=name).versions.get(version=int(new_version))
    assert version.metrics["accuracy"] == 0.95 and version.run_id == run_id
    assert {"membership.add", "registry.model.assign_team", "registry.model.sync_changed"} <= set(
        AuditEvent.objects.values_list("action", flat=True))
