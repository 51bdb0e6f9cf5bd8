"""A loopback HTTP proxy in front of a real server (the harness MLflow server) that injects faults and logs
what it forwarded, so a test can count effects (e.g. alias sets) without patching the code under test.

Faults are queued and taken by the next request whose method and path match:
- `fail_next(status)`: answer `status` without forwarding (the server never saw the request);
- `fail_after_next(status)`: forward, then answer `status` anyway (the effect happened, the caller thinks not);
- `drop_next(seconds)`: hold the request `seconds`, then close the connection without forwarding (a timeout).
"""
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    kind: str  # "fail", "fail_after" or "drop"
    value: float
    methods: set = field(default_factory=lambda: {"POST", "PATCH", "DELETE"})
    path: str = ""  # a substring the request path must contain


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.faults: deque[Fault] = deque()
        self.forwarded: list[dict] = []  # {"method", "path", "status", "body"} of every request the server answered
        self.injected: list[tuple[str, str, str]] = []  # (fault kind, method, path)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                fault = proxy._take(self.command, self.path)
                if fault is not None and fault.kind == "drop":
                    time.sleep(fault.value)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "fail":
                    return self._answer(int(fault.value), b'{"error_code": "TEMPORARILY_UNAVAILABLE", '
                                                          b'"message": "injected by the test proxy"}', "application/json")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers,
                                                 method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, reply, content_type = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    status, reply, content_type = exc.code, exc.read(), exc.headers.get("Content-Type")
                with proxy._lock:
                    proxy.forwarded.append({"method": self.command, "path": self.path, "status": status,
                                            "body": body or b""})
                if fault is not None:  # fail_after: the server did it, the caller hears otherwise
                    status, reply = int(fault.value), b'{"error_code": "INTERNAL_ERROR", "message": "injected"}'
                self._answer(status, reply, content_type or "application/json")

            def _answer(self, status: int, reply: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in list(self.faults):
                if method in fault.methods and fault.path in path:
                    self.faults.remove(fault)
                    self.injected.append((fault.kind, method, path))
                    return fault
        return None

    def fail_next(self, status: int = 503, count: int = 1, **match) -> None:
        self.faults.extend(Fault("fail", status, **match) for _ in range(count))

    def fail_after_next(self, status: int = 503, count: int = 1, **match) -> None:
        self.faults.extend(Fault("fail_after", status, **match) for _ in range(count))

    def drop_next(self, seconds: float, count: int = 1, **match) -> None:
        self.faults.extend(Fault("drop", seconds, **match) for _ in range(count))

    def succeeded(self, method: str, path: str) -> list[dict]:
        """Forwarded requests the server answered 2xx (its effects), whatever the caller was told."""
        with self._lock:
            return [r for r in self.forwarded if r["method"] == method and path in r["path"] and r["status"] < 300]

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.faults.clear()
        self.server.shutdown()
        self.server.server_close()
