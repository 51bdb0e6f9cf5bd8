"""A real HTTP server on loopback that records what it receives (webhook receivers, callbacks)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.statuses: list[int] = []  # answered first, one per request, before falling back to `status`
        self.response_headers: dict[str, str] = {}  # e.g. a Location for a redirect
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "json": json.loads(body or b"null"), "body": body,
                                          "headers": dict(self.headers)})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else receiver.status)
                for name, value in receiver.response_headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_receiver():
    with Receiver() as receiver:
        yield receiver
