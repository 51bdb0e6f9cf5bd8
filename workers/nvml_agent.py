"""NVML GPU agent: samples every GPU on this node and posts batches to the control plane.

    python -m workers.nvml_agent --api-url http://cp:8000 --token nt_xxx_yyy [--interval 15] [--batch 20]

Per GPU and sample: utilization (%), memory used/total (MiB), power (W) and GPU memory per process.
Batches carry a UUID, so a post that timed out is retried with the same id and stored once. On a node with
no NVIDIA driver and no device (or a driver that sees no GPU) it logs "no GPU found" once and exits 0. When it
cannot tell — nvidia-ml-py missing, an NVIDIA device present but NVML not loadable, no permission — it exits
3 with what to fix, so a broken agent never looks like a healthy node without GPUs. Never a stack trace.
Standard library + nvidia-ml-py only: it runs on GPU nodes that don't have the control plane installed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

log = logging.getLogger("nvml_agent")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_NVML_UNUSABLE = 3

# Where the kernel driver shows itself: without these, a node has no NVIDIA GPU we could sample.
NVIDIA_DEVICE_MARKERS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version")


class NvmlUnusable(Exception):
    """NVML can't be used here, and that says nothing about whether the node has GPUs: the agent is broken."""


def load_nvml():
    """The pynvml module, or None when nvidia-ml-py isn't installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def nvidia_device_present() -> bool:
    return any(os.path.exists(path) for path in NVIDIA_DEVICE_MARKERS)


def _no_driver(exc: Exception) -> bool:
    """NVML's own 'no library' / 'no driver' errors (pynvml's NVMLError_LibraryNotFound, _DriverNotLoaded)."""
    text = f"{type(exc).__name__} {exc}".replace(" ", "").lower()
    return any(marker in text for marker in ("librarynotfound", "sharedlibrarynotfound", "drivernotloaded"))


def init_gpus(nvml) -> list | None:
    """Initialise NVML and return the device handles; None when the node has no GPU. Raises NvmlUnusable when
    NVML can't answer the question (library missing on a node with an NVIDIA device, no permission, ...)."""
    if nvml is None:
        raise NvmlUnusable("nvidia-ml-py is not installed, so this agent can't read GPUs: "
                           "pip install nvidia-ml-py (Python 3) and start it again")
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:
        if _no_driver(exc) and not nvidia_device_present():
            log.debug("NVML init failed on a node without NVIDIA devices: %s", exc)
            return None
        raise NvmlUnusable(f"NVML could not be initialised ({type(exc).__name__}: {exc}); check the NVIDIA "
                           "driver and that this user may read /dev/nvidia*") from None
    if count == 0:
        return None
    return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]


def probe(nvml, node: str) -> tuple[list | None, int | None]:
    """(handles, None) to sample; (None, exit code) when there is nothing to do, said once in the log."""
    try:
        handles = init_gpus(nvml)
    except NvmlUnusable as exc:
        log.error("cannot sample GPUs on %s: %s", node, exc)
        return None, EXIT_NVML_UNUSABLE
    if handles is None:
        log.warning("no GPU found on %s (no NVIDIA driver or no device); nothing to sample, exiting", node)
        return None, EXIT_OK
    return handles, None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(fn, default=None):
    try:
        return fn()
    except Exception:  # a metric this GPU doesn't support (power on some MIG/consumer boards)
        return default


def read_sample(nvml, index: int, handle, *, now: float | None = None) -> dict:
    util = nvml.nvmlDeviceGetUtilizationRates(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    processes = _optional(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle), []) or []
    power_mw = _optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle), 0) or 0
    return {
        "ts": now if now is not None else time.time(),
        "gpu_index": index,
        "gpu_uuid": _text(_optional(lambda: nvml.nvmlDeviceGetUUID(handle), "")),
        "gpu_name": _text(_optional(lambda: nvml.nvmlDeviceGetName(handle), "")),
        "util": float(util.gpu),
        "mem_used_mb": memory.used / 1048576,
        "mem_total_mb": memory.total / 1048576,
        "power_w": power_mw / 1000.0,
        "processes": [{"pid": p.pid, "used_mb": (p.usedGpuMemory or 0) / 1048576} for p in processes],
    }


def post_batch(*, api_url: str, token: str, node: str, samples: list[dict], batch_id: str | None = None,
               attempts: int = 5, timeout: float = 10.0) -> dict | None:
    """POST one batch; retries with the same batch id (the server stores it once). None if it never got through."""
    batch_id = batch_id or str(uuid.uuid4())
    body = json.dumps({"batch_id": batch_id, "node": node, "samples": samples}).encode()
    request = urllib.request.Request(f"{api_url.rstrip('/')}/api/v1/costs/samples/", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if 400 <= exc.code < 500:  # our fault: retrying won't help
                log.error("Control plane refused batch %s (%s): %s", batch_id, exc.code, detail)
                return None
            log.warning("Control plane answered %s for batch %s (attempt %s)", exc.code, batch_id, attempt)
        except (urllib.error.URLError, OSError) as exc:
            log.warning("Could not reach %s for batch %s (attempt %s): %s", api_url, batch_id, attempt, exc)
        time.sleep(min(2 ** attempt, 30))
    return None


def run(*, api_url: str, token: str, node: str, interval: float, batch_size: int, iterations: int | None,
        nvml=None) -> int:
    nvml = nvml if nvml is not None else load_nvml()
    handles, exit_code = probe(nvml, node)
    if handles is None:
        return exit_code
    log.info("Sampling %d GPU(s) on %s every %ss", len(handles), node, interval)
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    pending: list[dict] = []
    done = 0
    try:
        while not stopping["now"] and (iterations is None or done < iterations):
            now = time.time()
            for index, handle in enumerate(handles):
                try:
                    pending.append(read_sample(nvml, index, handle, now=now))
                except Exception as exc:  # a GPU that fell off the bus shouldn't stop the others
                    log.warning("Could not read GPU %d: %s", index, exc)
            done += 1
            if len(pending) >= batch_size * len(handles) or (iterations is not None and done >= iterations):
                result = post_batch(api_url=api_url, token=token, node=node, samples=pending)
                if result is not None:
                    log.info("Posted %d samples: %s", len(pending), result)
                pending = []
            if iterations is None or done < iterations:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if pending:
            post_batch(api_url=api_url, token=token, node=node, samples=pending, attempts=1)
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", default=os.environ.get("CONTROLPLANE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("NODE_TOKEN", ""), help="node token (or NODE_TOKEN)")
    parser.add_argument("--node", default=os.environ.get("NODE_NAME", socket.gethostname()))
    parser.add_argument("--interval", type=float, default=float(os.environ.get("NVML_INTERVAL_SECONDS", "15")))
    parser.add_argument("--batch", type=int, default=20, help="samples per GPU in one post")
    parser.add_argument("--iterations", type=int, default=None, help="stop after this many samples (testing)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s nvml_agent: %(message)s")
    if args.interval <= 0 or args.batch <= 0:
        log.error("--interval and --batch must be positive")
        return EXIT_CONFIG
    nvml = load_nvml()
    # No GPU is checked before the token: a node without GPUs needs no configuration at all.
    handles, exit_code = probe(nvml, args.node)
    if handles is None:
        return exit_code
    if not args.token:
        log.error("No node token: pass --token or set NODE_TOKEN (create one with POST /api/v1/costs/node-tokens/)")
        return EXIT_CONFIG
    return run(api_url=args.api_url, token=args.token, node=args.node, interval=args.interval,
               batch_size=args.batch, iterations=args.iterations, nvml=nvml)


if __name__ == "__main__":
    sys.exit(main())
