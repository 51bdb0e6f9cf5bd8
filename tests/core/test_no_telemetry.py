"""Nothing calls the internet: MLflow's usage telemetry is off in every process that loads the settings (and
`make run` / docker-compose pass the same to the MLflow server)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mlflow_telemetry_is_off_once_the_settings_are_loaded():
    code = ("import os, django; os.environ.pop('MLFLOW_DISABLE_TELEMETRY', None); "
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'controlplane.settings'); django.setup(); "
            "import mlflow; from mlflow.telemetry import get_telemetry_client; "
            "from mlflow.telemetry.utils import is_telemetry_disabled; "
            "print(is_telemetry_disabled(), get_telemetry_client())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "None"]


def test_make_run_and_compose_pass_it_to_the_mlflow_server():
    assert '"MLFLOW_DISABLE_TELEMETRY": "true"' in (ROOT / "scripts" / "devstack.py").read_text()
    assert (ROOT / "docker-compose.yml").read_text().count('MLFLOW_DISABLE_TELEMETRY: "true"') == 2
