"""The NVML agent: quiet clean exit without GPUs; with (fake) NVML it samples and posts batches stored once."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.db import connection

from apps.costs.services import node_token_create
from workers import nvml_agent

from . import factories as f

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_says_so_once_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "workers.nvml_agent", "--token", "nt_x_y", "--interval", "0.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("no GPU found") == 1
    assert "Traceback" not in output


def test_without_a_gpu_no_token_is_needed():
    done = subprocess.run([sys.executable, "-m", "workers.nvml_agent"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "no GPU found" in done.stderr and "Traceback" not in done.stderr


class FakeNvml:
    """Two GPUs with fixed readings, the shape pynvml returns."""

    def __init__(self):
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=30 + 40 * handle, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=4 * 1048576 * 1024, total=80 * 1048576 * 1024)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=4242, usedGpuMemory=1048576 * 512)]

    def nvmlDeviceGetPowerUsage(self, handle):
        return 250_000

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA A100-SXM4-80GB"


def test_no_driver_in_pynvml_means_no_gpu():
    class Broken(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    assert nvml_agent.init_gpus(Broken()) is None
    assert nvml_agent.run(api_url="http://127.0.0.1:9", token="t", node="n", interval=0.01, batch_size=1,
                          iterations=1, nvml=Broken()) == 0


def test_without_nvidia_ml_py_it_exits_3_saying_what_to_install():
    code = "import sys; sys.modules['pynvml'] = None; from workers import nvml_agent; sys.exit(nvml_agent.main([]))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "nvidia-ml-py is not installed" in done.stderr and "no GPU found" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("error,device_present", [
    ("NVML Shared Library Not Found", True),  # a GPU node whose driver libraries are missing
    ("Insufficient Permissions", False),
])
def test_nvml_that_cannot_answer_is_a_failure_not_no_gpu(error, device_present, tmp_path, monkeypatch, caplog):
    class Broken(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError(error)

    marker = tmp_path / "nvidia0"
    if device_present:
        marker.touch()
    monkeypatch.setattr(nvml_agent, "NVIDIA_DEVICE_MARKERS", (str(marker),))
    assert nvml_agent.run(api_url="http://127.0.0.1:9", token="t", node="n", interval=0.01, batch_size=1,
                          iterations=1, nvml=Broken()) == nvml_agent.EXIT_NVML_UNUSABLE
    assert "cannot sample GPUs on n" in caplog.text and error in caplog.text


def test_sample_shape():
    sample = nvml_agent.read_sample(FakeNvml(), 1, 1, now=1000.0)
    assert sample == {"ts": 1000.0, "gpu_index": 1, "gpu_uuid": "GPU-1", "gpu_name": "NVIDIA A100-SXM4-80GB",
                      "util": 70.0, "mem_used_mb": 4096.0, "mem_total_mb": 81920.0, "power_w": 250.0,
                      "processes": [{"pid": 4242, "used_mb": 512.0}]}


@pytest.mark.django_db(transaction=True)
def test_agent_posts_batches_the_server_stores(live_server, platform_admin):
    f.cluster()
    _, token = node_token_create(actor=platform_admin, cluster="local", node="gpu-node-7", gpu_count=2)
    fake = FakeNvml()
    rc = nvml_agent.run(api_url=live_server.url, token=token, node="gpu-node-7", interval=0.01, batch_size=2,
                        iterations=3, nvml=fake)
    assert rc == 0 and fake.shutdown
    with connection.cursor() as cursor:
        cursor.execute("SELECT node, gpu_index, count(*), avg(util_gpu) FROM costs_gpusample GROUP BY 1, 2 ORDER BY 2")
        assert cursor.fetchall() == [("gpu-node-7", 0, 3, 30.0), ("gpu-node-7", 1, 3, 70.0)]
        cursor.execute("SELECT count(*) FROM costs_samplebatch")
        assert cursor.fetchone()[0] == 2  # 2 samples per GPU per batch: one full batch, then the last one
        # Not a Django model, so the transactional test's flush would leave these rows behind.
        cursor.execute("TRUNCATE costs_gpusample")


def test_unreachable_server_gives_up_without_a_traceback(caplog, monkeypatch):
    monkeypatch.setattr(nvml_agent.time, "sleep", lambda s: None)
    assert nvml_agent.post_batch(api_url="http://127.0.0.1:9", token="t", node="n", samples=[], attempts=2) is None
    assert "Could not reach" in caplog.text
