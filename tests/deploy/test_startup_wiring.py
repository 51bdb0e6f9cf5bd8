"""What `make run` (scripts/devstack.py), docker-compose.yml and gunicorn.conf.py start: MLflow's registry webhook
registered once the web server is up, a bulk worker that leaves the CPU to control work, mlflow imported before
gunicorn forks. Read from the files themselves; running the stacks is `make run` / `docker compose up`."""
import importlib.util
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_run_registers_the_webhook_and_nices_the_bulk_worker():
    devstack = _load("devstack", ROOT / "scripts" / "devstack.py")
    source = (ROOT / "scripts" / "devstack.py").read_text()
    assert '"mlflow_webhook_register",' in source and '"--if-configured"' in source
    assert devstack.MLFLOW_LOCAL_WEBHOOKS["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
    for cpus, bulk_processes in ((1, 1), (2, 1), (4, 3), (32, 4)):
        workers = dict(devstack.worker_commands("celery", cpus=cpus))
        control, bulk = workers["worker-control"], workers["worker-bulk"]
        assert control[0] == "celery" and control[control.index("-Q") + 1] == "control"
        assert bulk[:3] == ["nice", "-n", "10"] and bulk[bulk.index("-Q") + 1] == "bulk"
        assert bulk[bulk.index("--concurrency") + 1] == str(bulk_processes)


def test_docker_compose_registers_the_webhook_and_nices_the_bulk_worker():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    register = services["mlflow-webhook"]
    assert register["command"] == ["python", "manage.py", "mlflow_webhook_register", "--if-configured"]
    assert register["restart"] == "no" and register["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["mlflow"]["environment"]["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
    assert services["web"]["environment"]["MLFLOW_WEBHOOK_URL"].startswith("http://web:8000/")
    assert services["worker-bulk"]["command"][:3] == ["nice", "-n", "10"]
    assert "-Q" in services["worker-control"]["command"] and services["worker-control"]["command"][0] == "celery"


def test_gunicorn_imports_mlflow_before_forking():
    config = _load("gunicorn_conf", ROOT / "gunicorn.conf.py")
    config.on_starting(server=None)
    assert "mlflow.tracking" in sys.modules


def test_make_run_keeps_mlflows_webhook_encryption_key_across_restarts(tmp_path):
    # A new key per start left MLflow unable to read the webhook it stored before (500 on listing webhooks).
    from cryptography.fernet import Fernet

    devstack = _load("devstack", ROOT / "scripts" / "devstack.py")
    devstack.VAR = tmp_path
    key = devstack.local_webhook_encryption_key()
    assert devstack.local_webhook_encryption_key() == key
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"secret")) == b"secret"
    assert (tmp_path / "mlflow-webhook-key").stat().st_mode & 0o777 == 0o600
    assert '"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"' in (ROOT / "scripts" / "devstack.py").read_text()
