"""The Kubernetes API emulator (tests/harness/kube_server.py) in a process of its own, for bench/dispatch/run.py.

In the bench process it competed for one interpreter (and its GIL) with the sequential loop and the
publishing, and at ~600 deployments it became the bottleneck; here it has an interpreter to itself, and
`--processes K` starts K of them (one per cluster) when one event loop is still not enough.

Protocol on stdout, one line each: `URL <base url>` once it listens, then `APPLY <json>` for every
server-side apply it accepted: [unix time, "Kind/namespace/name", pinned revision of a Service or null].
Stops on SIGTERM.
"""
import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kmock import Server  # noqa: E402

from tests.harness.kube_server import KubeApiEmulator, KubeServer  # noqa: E402


class ReportingEmulator(KubeApiEmulator):
    async def _handle(self, request):
        # kmock keeps every request for the tests' assertions and routes each one by asking every reaction whether
        # its view of that history holds this request (by identity): O(requests so far) per request, quadratic
        # over a run (41 ms of CPU a request after 1,200, 5 requests/s). The bench asserts nothing on the
        # history: keep only the request at hand (the routing itself is unchanged).
        del self._requests[:-1]
        return await super()._handle(request)

    async def _apply(self, request):
        before = len(self.applied)
        response = await super()._apply(request)
        if len(self.applied) > before:
            key = self.applied[-1][1]
            pinned = None
            if key.startswith("Service/"):
                _, namespace, name = key.split("/", 2)
                service = self.get("v1/services", namespace, name) or {}
                pinned = service.get("spec", {}).get("selector", {}).get("controlplane.io/revision")
            sys.stdout.write("APPLY " + json.dumps([time.time(), key, pinned]) + "\n")
            sys.stdout.flush()
        return response


class ReportingServer(KubeServer):
    def __init__(self, ready_delay: float):
        super().__init__()
        self.ready_delay = ready_delay

    async def _main(self):
        import asyncio

        self._stop = asyncio.Event()
        async with ReportingEmulator() as kmock, Server(kmock) as server:
            kmock.controller_delay = self.ready_delay
            self.kmock = kmock
            self.url = f"http://{server.host}:{server.port}"
            self.ready.set()
            await self._stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-delay", type=float, default=3.0)
    args = parser.parse_args()
    server = ReportingServer(args.ready_delay).start()
    print(f"URL {server.url}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
