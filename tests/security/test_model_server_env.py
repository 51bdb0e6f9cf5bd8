"""A model whose `predict` hunts for the control plane's secrets (tests/security/models/env_probe.py),
deployed on the local target: it finds none, runs as an unprivileged user with the configured memory
limit, and cannot read its parent's environment."""
import os
from pathlib import Path

import pytest
import requests

from apps.deployments.models import DeploymentRevision, LocalProcess
from apps.deployments.rollout import rollout_drive
from apps.deployments.services import deployment_create
from tests.deployments.conftest import engineer, local, local_dir, staging  # noqa: F401  (fixtures)
from tests.deployments.factories import model_version

pytestmark = pytest.mark.mlflow

SECRETS = {
    "DJANGO_SECRET_KEY": "probe-django-secret",
    "DATABASE_URL": "postgres://controlplane:probe-db-password@127.0.0.1:5432/controlplane",
    "CONTROLPLANE_FERNET_KEYS": "probe-fernet-key",
    "REDIS_URL": "redis://:probe-redis-password@127.0.0.1:6379/0",
    "AWS_SECRET_ACCESS_KEY": "probe-aws-secret",
}
ALLOWED = {"PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "LANG", "LC_ALL",
           "TZ", "MLFLOW_TRACKING_URI", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}


@pytest.fixture(scope="module")
def env_probe_model(mlflow_server):
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).parent / "models" / "env_probe.py"),
                                registered_model_name="env-probe", pip_requirements=["mlflow"])
    return "env-probe"


def test_model_server_gets_no_secrets_runs_unprivileged_with_limits(engineer, team, staging, local, local_dir,
                                                                    env_probe_model, mlflow_uri, settings,
                                                                    monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings.DEPLOYMENTS_LOCAL_MEMORY_LIMIT_MB = 3072
    version = model_version(team, name=env_probe_model, version=1)
    deployment = deployment_create(actor=engineer, team=team, name="probe", model_version=version,
                                   environment=staging, cluster=local, resources={"cpu": "1500m", "memory": "512Mi"})
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    response = requests.post(deployment.endpoint_url, json={"inputs": [[0]]}, timeout=30)
    assert response.status_code == 200, response.text
    seen = response.json()["predictions"][0]

    server = LocalProcess.objects.get(deployment=deployment, role="server")
    started_with = _environ(server.pid)  # the environment it was exec'd with; MLflow adds to its own later
    assert set(started_with) <= ALLOWED, set(started_with) - ALLOWED
    assert not set(SECRETS) & set(seen["environ"])
    leaked = [value for value in SECRETS.values() if value in repr(seen)]
    assert leaked == []
    assert seen["environ"]["MLFLOW_TRACKING_URI"] == mlflow_uri
    assert seen["environ"]["OMP_NUM_THREADS"] == "2"  # 1500m → two threads
    workdir = Path(seen["cwd"])
    assert seen["environ"]["HOME"] == str(workdir) and workdir.name == "server-r1"
    assert workdir.parent == local_dir / f"deployment-{deployment.pk}"
    assert seen["max_address_space"] == str(3072 * 1024 * 1024)
    assert seen["max_core_file_size"] == "0"
    assert seen["allocating_the_limit"] == "MemoryError"
    if os.geteuid() == 0:  # tests and CI run as root: the server must not
        nobody = __import__("pwd").getpwnam("nobody").pw_uid
        assert seen["uid"] == seen["euid"] == nobody
        assert seen["parent_environ"].startswith("refused")
        assert workdir.stat().st_uid == nobody and oct(workdir.stat().st_mode & 0o777) == "0o700"
    else:
        assert seen["uid"] == os.getuid()

    # The control plane, not the sandboxed process, writes the pid file it later trusts to kill by.
    assert Path(server.pid_file).stat().st_uid == os.geteuid()
    assert oct(Path(server.log_file).stat().st_mode & 0o777) == "0o600"
    router = LocalProcess.objects.get(deployment=deployment, role="router")
    assert set(_environ(router.pid)) <= ALLOWED


def _environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return dict(item.decode().split("=", 1) for item in fh.read().split(b"\0") if item)


@pytest.mark.parametrize("run_as, message", [
    ("root", "DEPLOYMENTS_LOCAL_RUN_AS='root' is root; name an unprivileged user."),
    ("no-such-user-xyz", "DEPLOYMENTS_LOCAL_RUN_AS names user 'no-such-user-xyz', which does not exist"),
])
def test_root_control_plane_refuses_to_start_servers_as_root_or_unknown_user(engineer, team, staging, local,
                                                                              local_dir, settings, run_as, message):
    if os.geteuid() != 0:
        pytest.skip("the run-as user only applies when the control plane runs as root")
    settings.DEPLOYMENTS_LOCAL_RUN_AS = run_as
    version = model_version(team, name="never-started", version=1)
    deployment = deployment_create(actor=engineer, team=team, name="refused", model_version=version,
                                   environment=staging, cluster=local)
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    revision = DeploymentRevision.objects.get(deployment=deployment, number=1)
    assert deployment.status == "failed" and revision.status == "failed"
    assert message in revision.message
    assert not LocalProcess.objects.filter(deployment=deployment).exists()
