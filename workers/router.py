"""The stable endpoint of one local deployment: splits traffic between revision servers.

    python -m workers.router --port 8200 --config /path/routes.json

The control plane writes routes.json atomically ({"backends": {"3": {"url": ..., "weight": 90}, ...},
"shadow": {"url": ..., "percent": 10}}); the router re-reads it when its mtime changes, so a traffic
switch (promote, rollback to a warm revision) takes effect on the next request. Shadow copies are sent
in the background and their responses discarded. Responses carry X-Revision (which revision answered).
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Routes:
    def __init__(self, path: str):
        self.path = path
        self.mtime = None
        self.data = {"backends": {}, "shadow": {}}
        self.lock = threading.Lock()

    def current(self) -> dict:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return self.data
        if mtime != self.mtime:
            with self.lock:
                with open(self.path) as fh:
                    self.data = json.load(fh)
                self.mtime = mtime
        return self.data


def pick(backends: dict) -> tuple[str, str] | None:
    live = [(rev, b) for rev, b in backends.items() if b.get("weight", 0) > 0]
    if not live:
        return None
    total = sum(b["weight"] for _, b in live)
    point = random.uniform(0, total)
    for rev, b in live:
        point -= b["weight"]
        if point <= 0:
            return rev, b["url"]
    return live[-1][0], live[-1][1]["url"]


def _forward(url: str, body: bytes, timeout: float = 30):
    request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    routes = Routes(args.config)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status: int, data: bytes, revision: str = ""):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if revision:
                self.send_header("X-Revision", revision)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/ping", "/health"):
                self._send(200, json.dumps({"status": "ok", "routes": routes.current()}).encode())
            else:
                self._send(404, b'{"error": "Unknown path"}')

        def do_POST(self):
            if self.path != "/invocations":
                self._send(404, b'{"error": "Unknown path; POST /invocations"}')
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            config = routes.current()
            chosen = pick(config.get("backends", {}))
            if chosen is None:
                self._send(503, b'{"error": "No revision is routed for this deployment yet."}')
                return
            shadow = config.get("shadow") or {}
            if shadow.get("url") and random.uniform(0, 100) < shadow.get("percent", 0):
                threading.Thread(target=_forward, args=(shadow["url"], body, 10), daemon=True).start()
            try:
                status, data = _forward(chosen[1], body)
            except OSError as exc:
                self._send(502, json.dumps({"error": f"Revision {chosen[0]} unreachable: {exc}"}).encode(), chosen[0])
                return
            self._send(status, data, chosen[0])

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: (server.server_close(), sys.exit(0)))
    server.serve_forever()


if __name__ == "__main__":
    main()
