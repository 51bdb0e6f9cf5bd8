"""The Kubernetes pod collector, through the official client against kmock's emulator over real HTTP
(tests/harness/kube_server.py): unlabelled GPU pods are "unattributed", labelled ones go to their team
and model version, control-plane pods are not counted twice but reconciled (a Job's missing interval opened, an
ended one closed, node and GPUs recorded), finished pods close their interval."""
from datetime import datetime, timedelta, timezone

import kubernetes
import pytest

from apps.costs.choices import AllocationSource
from apps.costs.collector import collect_all, collect_pods
from apps.costs.models import GpuAllocation
from apps.deployments.choices import JobStatus
from apps.deployments.models import Job
from apps.deployments.services import cluster_create
from apps.registry.models import ModelVersion, RegisteredModel
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)

from . import factories as f

pytestmark = pytest.mark.django_db
STARTED = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)


def pod(name: str, *, gpus: int = 1, labels: dict | None = None, phase: str = "Running", node_selector=None,
        namespace: str = "ml", annotations: dict | None = None, env: list | None = None) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "500m", "memory": "16Gi"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                            "labels": labels or {}, "annotations": annotations},
            "spec": {"nodeName": "gpu-node-3", "nodeSelector": node_selector,
                     "containers": [{"name": "main", "image": "trainer:1", "resources": resources,
                                     "env": env or []}]},
            "status": {"phase": phase, "startTime": STARTED.isoformat()}}


@pytest.fixture
def kube(kube_server):  # noqa: F811
    config = kubernetes.client.Configuration(host=kube_server.url)
    api = kubernetes.client.ApiClient(config)
    core = kubernetes.client.CoreV1Api(api)
    return api, core


@pytest.fixture
def cluster(platform_admin, kube_server):  # noqa: F811
    cluster = cluster_create(actor=platform_admin, name="kind", kind="kubernetes", api_url=kube_server.url,
                             token="secret-token")
    f.gpu_type("A100-80GB", cluster_name="kind")
    f.gpu_type("L4", cluster_name="kind")
    return cluster


def test_pods_outside_the_control_plane_are_attributed(cluster, kube, team):
    api, core = kube
    version = ModelVersion.objects.create(model=RegisteredModel.objects.create(name="ranker", team=team), version=4)
    core.create_namespaced_pod("ml", pod("notebook", gpus=2, node_selector={"nvidia.com/gpu.product": "L4"}))
    core.create_namespaced_pod("ml", pod("trainer", labels={"team": "fraud", "model": "ranker", "model-version": "4",
                                                            "gpu-type": "A100-80GB"},
                                         annotations={"controlplane.io/gpu-indexes": "3"}))
    core.create_namespaced_pod("ml", pod("cpu-only", gpus=0))
    core.create_namespaced_pod("ml", pod("pending", phase="Pending", labels={"gpu-type": "L4"}))
    core.create_namespaced_pod("ml", pod("served", labels={"app.kubernetes.io/managed-by": "controlplane",
                                                           "gpu-type": "L4"}))
    core.create_namespaced_pod("ml", pod("job-pod", labels={"controlplane.io/job": "train-1", "gpu-type": "L4"}))

    result = collect_pods(cluster=cluster, api_client=api)
    assert (result["pods"], result["started"], result["stopped"]) == (2, 2, 0)
    rows = {a.gpu_type.name: a for a in GpuAllocation.objects.filter(source=AllocationSource.KUBERNETES)}
    assert rows["L4"].team is None and rows["L4"].gpu_count == 2  # unattributed
    assert rows["A100-80GB"].team == team and rows["A100-80GB"].model_version == version
    trainer = rows["A100-80GB"]
    assert trainer.started_at == STARTED and trainer.node == "gpu-node-3"
    assert float(trainer.cpu_cores) == 0.5 and trainer.memory_gb == 16  # GiB
    assert trainer.gpu_indexes == [3] and rows["L4"].gpu_indexes == []  # no assignment known: no telemetry

    # Nothing new on a second pass; a finished pod closes its interval.
    assert collect_pods(cluster=cluster, api_client=api)["started"] == 0
    core.delete_namespaced_pod("notebook", "ml")
    result = collect_pods(cluster=cluster, api_client=api)
    assert result["stopped"] == 1
    rows["L4"].refresh_from_db()
    assert rows["L4"].stopped_at is not None and GpuAllocation.objects.filter(stopped_at__isnull=True).count() == 1


def test_beat_job_uses_the_cluster_credentials(cluster, kube, kube_server):  # noqa: F811
    _, core = kube
    core.create_namespaced_pod("ml", pod("notebook", labels={"gpu-type": "L4"}))
    assert collect_all() == [{"cluster": "kind", "pods": 1, "started": 1, "stopped": 0, "jobs_opened": 0,
                              "jobs_closed": 0, "located": 0}]
    sent = [r.headers.get("Authorization") for r in kube_server.kmock._requests]
    assert "Bearer secret-token" in sent


def test_an_unreachable_cluster_is_reported_not_raised(platform_admin):
    cluster_create(actor=platform_admin, name="gone", kind="kubernetes", api_url="http://127.0.0.1:9",
                   token="secret-token")
    [result] = collect_all()
    assert result["cluster"] == "gone" and "error" in result


def test_control_plane_jobs_are_reconciled_not_skipped(cluster, kube, team):
    """A running Job whose interval is missing gets one (with its node, GPUs, CPU and memory); an interval
    still open after its Job ended is closed at the Job's end; nothing is counted twice."""
    api, core = kube
    job = Job.objects.create(team=team, cluster=cluster, namespace="ml", name="train-7", image="trainer:1",
                             gpu_type="L4", gpu_count=1, status=JobStatus.RUNNING, started_at=STARTED)
    core.create_namespaced_pod("ml", pod("train-7-abcde", labels={"controlplane.io/job": "train-7"},
                                         env=[{"name": "NVIDIA_VISIBLE_DEVICES", "value": "1"}]))
    result = collect_pods(cluster=cluster, api_client=api)
    assert (result["pods"], result["started"], result["jobs_opened"]) == (0, 0, 1)
    interval = GpuAllocation.objects.get(job_id=job.pk)
    assert (interval.source, interval.team, interval.gpu_type.name, interval.gpu_count) == (
        AllocationSource.CONTROL_PLANE, team, "L4", 1)
    assert (interval.node, interval.gpu_indexes, interval.started_at) == ("gpu-node-3", [1], STARTED)
    assert float(interval.cpu_cores) == 0.5 and interval.memory_gb == 16
    assert collect_pods(cluster=cluster, api_client=api)["jobs_opened"] == 0  # once

    ended = STARTED + timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=ended)
    assert collect_pods(cluster=cluster, api_client=api)["jobs_closed"] == 1
    interval.refresh_from_db()
    assert interval.stopped_at == ended and GpuAllocation.objects.filter(job_id=job.pk).count() == 1


def test_serving_pods_tell_their_interval_its_node_and_gpus(cluster, kube, team):
    from apps.costs.models import GpuDevice
    from apps.costs.services import allocation_start
    from tests.deployments.factories import deployment_in

    api, core = kube
    deployment = deployment_in(team, cluster=cluster)
    serving = allocation_start(team=team, cluster=cluster, gpu_type="L4", gpu_count=1, deployment_id=deployment.pk,
                               revision_id=deployment.current_revision_id)
    GpuDevice.objects.create(cluster=cluster, node="gpu-node-3", gpu_index=5, uuid="GPU-abc", last_seen_at=STARTED)
    labels = {"app.kubernetes.io/managed-by": "controlplane", "controlplane.io/deployment": deployment.name,
              "controlplane.io/team": team.slug, "controlplane.io/revision": "2"}
    core.create_namespaced_pod("ml", pod("fraud-r2-x", labels=labels, annotations={
        "controlplane.io/gpu-uuids": "GPU-abc", "controlplane.io/mig-instance": "MIG-1"}))
    result = collect_pods(cluster=cluster, api_client=api)
    assert (result["pods"], result["started"], result["located"]) == (0, 0, 1)  # not counted again
    serving.refresh_from_db()
    assert (serving.node, serving.gpu_indexes, serving.gpu_uuids, serving.mig_instance) == (
        "gpu-node-3", [5], ["GPU-abc"], "MIG-1")
    assert GpuAllocation.objects.count() == 1
