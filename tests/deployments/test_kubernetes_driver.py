"""The Kubernetes driver through the official client against a real HTTP API server on loopback
(kmock's KubernetesEmulator, extended in tests/harness/kube_server.py)."""
import pytest
from kubernetes.client import V1Deployment, V1HorizontalPodAutoscaler, V1Job, V1NetworkPolicy, V1Service

from apps.deployments.jobs import job_poll, job_submit
from apps.deployments.models import Deployment, DeploymentRevision
from apps.deployments.rollout import reconcile_one, rollout_drive
from apps.deployments.services import (deployment_create, deployment_deploy, deployment_promote, deployment_reapply,
                                       deployment_rollback, job_dispatch)
from apps.core.errors import Conflict
from tests.deployments.factories import gpu_quota, kube_cluster, model_version
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)

NS = "fraud-staging"


@pytest.fixture
def cluster(kube_server, team, staging):  # noqa: F811
    return kube_cluster(url=kube_server.url, team=team)


@pytest.fixture
def v1(team):
    return model_version(team, version=1)


@pytest.fixture
def v2(team):
    return model_version(team, version=2)


def live(server, plural, name):
    return server.call(lambda k: k.get(plural, NS, name))


def _deploy(engineer, team, staging, cluster, v1, **kw):
    return deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                             cluster=cluster, **kw)


def test_fallback_objects_canary_and_rollback(kube_server, engineer, team, staging, cluster, v1, v2):  # noqa: F811
    deployment = _deploy(engineer, team, staging, cluster, v1,
                         resources={"cpu": "1", "memory": "1Gi", "replicas": 4,
                                    "autoscaling": None})
    assert [m["kind"] for m in deployment.current_revision.manifests] == ["Deployment", "Service", "NetworkPolicy"]
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy", deployment.status_message
    workload = live(kube_server, "apps/v1/deployments", "fraud-r1")
    assert workload["spec"]["replicas"] == 4
    assert workload["metadata"]["managedFields"][0]["manager"] == "controlplane"
    assert workload["spec"]["template"]["spec"]["containers"][0]["command"][:5] == [
        "mlflow", "models", "serve", "-m", "models:/fraud-classifier/1"]
    assert live(kube_server, "v1/services", "fraud")["spec"]["selector"]["controlplane.io/revision"] == "1"
    assert deployment.current_revision.apply_requested_at is not None or \
        DeploymentRevision.objects.get(pk=deployment.current_revision_id).apply_requested_at

    deployment_deploy(actor=engineer, deployment=deployment, model_version=v2,
                      strategy={"kind": "canary", "steps": [{"weight": 25, "pause": True}, {"weight": 100}]})
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "awaiting_promotion" and deployment.traffic == {"1": 75, "2": 25}
    # Plain Kubernetes splits by ready pods: 3 of r1, 1 of r2 behind a Service selecting both.
    assert live(kube_server, "apps/v1/deployments", "fraud-r1")["spec"]["replicas"] == 3
    assert live(kube_server, "apps/v1/deployments", "fraud-r2")["spec"]["replicas"] == 1
    assert "controlplane.io/revision" not in live(kube_server, "v1/services", "fraud")["spec"]["selector"]

    deployment_promote(actor=engineer, deployment=deployment)
    rollout_drive(deployment_id=deployment.pk)
    assert live(kube_server, "v1/services", "fraud")["spec"]["selector"]["controlplane.io/revision"] == "2"
    # r1 stays scaled (warm) inside the rollback window, just unrouted.
    assert live(kube_server, "apps/v1/deployments", "fraud-r1")["spec"]["replicas"] >= 1

    rollback = deployment_rollback(actor=engineer, deployment=deployment, reason="errors up")
    assert rollback.manifests == DeploymentRevision.objects.get(deployment=deployment, number=1).manifests
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    # r3 serves (its own number), on r1's workload: the Service still selects the r1 pods.
    assert deployment.status == "healthy" and deployment.traffic == {"3": 100}
    assert live(kube_server, "v1/services", "fraud")["spec"]["selector"]["controlplane.io/revision"] == "1"


def test_manifests_validate_against_the_kubernetes_schemas(kube_server, engineer, team, staging, cluster, v1):  # noqa: F811
    gpu_quota(cluster=cluster, team=team)
    deployment = _deploy(engineer, team, staging, cluster, v1,
                         resources={"cpu": "500m", "memory": "512Mi", "gpu_type": "a100-80gb", "gpu_count": 1,
                                    "autoscaling": {"min": 1, "max": 3, "target_cpu": 60}})
    models = {"Deployment": V1Deployment, "Service": V1Service, "HorizontalPodAutoscaler": V1HorizontalPodAutoscaler,
              "NetworkPolicy": V1NetworkPolicy}
    for manifest in deployment.current_revision.manifests:
        parsed = models[manifest["kind"]].from_dict(manifest)
        assert parsed.metadata.name
    gpu = deployment.current_revision.manifests[0]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.product": "a100-80gb"}
    with pytest.raises(Exception):
        V1Deployment.from_dict({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "two"}})


def test_kserve_inference_service_when_the_crd_is_served(kube_server, engineer, team, staging, cluster, v1, v2):  # noqa: F811
    kube_server.kmock.set_kserve(True)
    deployment = _deploy(engineer, team, staging, cluster, v1)
    assert [m["kind"] for m in deployment.current_revision.manifests] == ["InferenceService", "NetworkPolicy"]
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy", deployment.status_message
    isvc = live(kube_server, "serving.kserve.io/v1beta1/inferenceservices", "fraud")
    assert isvc["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}

    deployment_deploy(actor=engineer, deployment=deployment, model_version=v2,
                      strategy={"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100}]})
    rollout_drive(deployment_id=deployment.pk)
    isvc = live(kube_server, "serving.kserve.io/v1beta1/inferenceservices", "fraud")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["metadata"]["labels"]["controlplane.io/revision"] == "2"
    deployment_promote(actor=engineer, deployment=deployment)
    rollout_drive(deployment_id=deployment.pk)
    isvc = live(kube_server, "serving.kserve.io/v1beta1/inferenceservices", "fraud")
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]


def test_failed_rollout_shows_the_clusters_message(kube_server, engineer, team, staging, cluster, v1, settings):  # noqa: F811
    kube_server.kmock.outcome = "failed"
    deployment = _deploy(engineer, team, staging, cluster, v1)
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "failed"
    assert "ImagePullBackOff" in deployment.status_message
    assert deployment.current_revision.status == "failed"


def test_5xx_and_timeouts_are_retried_until_they_converge(kube_server, engineer, team, staging, cluster, v1, settings):  # noqa: F811
    settings.DEPLOYMENTS_KUBE_READ_TIMEOUT = 1
    deployment = _deploy(engineer, team, staging, cluster, v1)
    kube_server.kmock.fail_next(503, methods=("PATCH",))
    assert rollout_drive(deployment_id=deployment.pk) == "retry"  # the runner backs off and tries again
    deployment.refresh_from_db()
    assert deployment.status == "progressing"  # not lost, not failed: the retry picks it up
    assert "503" in deployment.last_error and deployment.next_attempt_at is not None
    assert "Cluster unavailable; retrying (attempt 1 of" in deployment.status_message
    assert rollout_drive(deployment_id=deployment.pk) == "not due"  # backing off
    Deployment.objects.filter(pk=deployment.pk).update(next_attempt_at=None)  # the backoff is over
    kube_server.kmock.delay_next(2.5, methods=("PATCH",))
    assert rollout_drive(deployment_id=deployment.pk) == "retry"
    assert "unreachable" in Deployment.objects.get(pk=deployment.pk).last_error
    Deployment.objects.filter(pk=deployment.pk).update(next_attempt_at=None)
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and (deployment.attempts, deployment.last_error) == (0, "")
    assert live(kube_server, "apps/v1/deployments", "fraud-r1") is not None


def test_unreachable_cluster_is_a_clear_409_and_nothing_is_created(engineer, team, staging, v1):
    from tests.harness.mlflow_server import free_port

    cluster = kube_cluster(url=f"http://127.0.0.1:{free_port()}", team=team, name="gone")
    with pytest.raises(Conflict, match="could not be asked"):
        _deploy(engineer, team, staging, cluster, v1)
    assert not Deployment.objects.exists()


def test_drift_and_vanished_objects_are_reported_and_reapplied(kube_server, engineer, team, staging, cluster, v1):  # noqa: F811
    deployment = _deploy(engineer, team, staging, cluster, v1)
    rollout_drive(deployment_id=deployment.pk)

    def edit(k):
        from kmock import resource

        obj = k.objects[resource("apps/v1/deployments"), NS, "fraud-r1"]
        spec = obj["spec"]
        spec["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
        obj["spec"] = spec
    kube_server.call(edit)
    drift = reconcile_one(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "degraded"
    assert any("image" in path for path in drift["changed"]["Deployment/fraud-r1"])

    revision = deployment_reapply(actor=engineer, deployment=deployment)
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy" and revision.reason == "reapply"
    assert live(kube_server, "apps/v1/deployments", "fraud-r1")["spec"]["template"]["spec"]["containers"][0][
        "image"] != "someone/else:latest"
    assert reconcile_one(deployment_id=deployment.pk)["changed"] == {}

    kube_server.call(lambda k: k.objects[__import__("kmock").resource("apps/v1/deployments"), NS, "fraud-r1"].delete())
    drift = reconcile_one(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert drift["missing"] == ["Deployment/fraud-r1"] and deployment.status == "degraded"


def test_job_dispatch_runs_to_completion_with_logs_link_and_retry(kube_server, engineer, team, staging, cluster):  # noqa: F811
    gpu_quota(cluster=cluster, team=team)
    job = job_dispatch(actor=engineer, team=team, cluster=cluster, image="python:3.11",
                       command=["python", "-c", "print(1)"], gpu_type="a100-80gb", gpu_count=1)
    assert job_submit(job_id=job.pk) == "running"
    job.refresh_from_db()
    assert V1Job.from_dict(job.manifest).spec.template.spec.containers[0].image == "python:3.11"
    assert "labelSelector=job-name" in job.logs_url
    from apps.costs.models import GpuAllocation

    interval = GpuAllocation.objects.get(job_id=job.pk)  # the job is costed from its start
    assert (interval.team, interval.gpu_count, interval.stopped_at) == (team, 1, None)
    import time

    time.sleep(0.5)
    assert job_poll(job=job) == "succeeded"
    interval.refresh_from_db()
    assert interval.stopped_at is not None  # and until it finished

    from apps.deployments.services import job_retry

    kube_server.kmock.outcome = "failed"
    failing = job_dispatch(actor=engineer, team=team, cluster=cluster, image="python:3.11", command=["false"])
    job_submit(job_id=failing.pk)
    time.sleep(0.5)
    failing.refresh_from_db()
    assert job_poll(job=failing) == "failed"
    failing.refresh_from_db()
    assert "backoff limit" in failing.message
    kube_server.kmock.outcome = "ready"
    retried = job_retry(actor=engineer, job=failing)
    assert retried.attempt == 2 and retried.status == "pending"
    job_submit(job_id=failing.pk)
    time.sleep(0.5)
    failing.refresh_from_db()
    assert job_poll(job=failing) == "succeeded"


def test_gpu_deployments_are_admitted_and_recorded_in_the_cost_ledger(kube_server, engineer, team, staging, cluster,  # noqa: F811
                                                                      v1, v2):
    from apps.costs.models import GpuAllocation

    gpu_quota(cluster=cluster, team=team, guaranteed=2)
    gpu = {"cpu": "1", "memory": "4Gi", "gpu_type": "a100-80gb", "gpu_count": 1}
    deployment = _deploy(engineer, team, staging, cluster, v1, resources=gpu)
    rollout_drive(deployment_id=deployment.pk)
    first = GpuAllocation.objects.get(deployment_id=deployment.pk)
    assert first.gpu_count == 1 and first.stopped_at is None and first.model_version_id == v1.pk
    assert (first.cpu_cores, first.memory_gb) == (1, 4)  # the revision's requests, memory in GiB
    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2,
                      resources=gpu)
    rollout_drive(deployment_id=deployment.pk)
    first.refresh_from_db()
    assert first.stopped_at is not None
    second = GpuAllocation.objects.get(deployment_id=deployment.pk, stopped_at__isnull=True)
    assert second.model_version_id == v2.pk and second.revision_id is not None
    with pytest.raises(Conflict, match="do not fit"):
        deployment_create(
            actor=engineer, team=team, name="too-big", model_version=v1, environment=staging, cluster=cluster,
            resources={**gpu, "gpu_count": 2})

    # Redeployed CPU-only: the GPU revision's interval closes, the quota shows no GPU in use, CPU and memory
    # stay costed.
    from apps.costs.services import admission_check

    deployment_deploy(actor=engineer, deployment=Deployment.objects.get(pk=deployment.pk), model_version=v2,
                      resources={"cpu": "2", "memory": "1Gi"})
    rollout_drive(deployment_id=deployment.pk)
    second.refresh_from_db()
    assert second.stopped_at is not None
    cpu_only = GpuAllocation.objects.get(deployment_id=deployment.pk, stopped_at__isnull=True)
    assert (cpu_only.gpu_type, cpu_only.gpu_count, cpu_only.cpu_cores, cpu_only.memory_gb) == (None, 0, 2, 1)
    assert admission_check(team=team, cluster=cluster, gpu_type="a100-80gb", gpu_count=1).in_use == 0
