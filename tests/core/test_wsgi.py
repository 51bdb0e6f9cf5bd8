"""The WSGI app gunicorn loads: what it loaded at start is frozen out of the garbage collector, so a full
collection during a request scans only what requests left behind (60 ms → 2–4 ms on a large Costs page)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_app_freezes_what_it_loaded():
    code = "import gc, controlplane.wsgi; print(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 50_000
