"""Every manifest the Kubernetes driver renders (Deployment, Service, HPA, NetworkPolicy, Job; KServe
InferenceService) passes the official schemas offline (kubernetes-validate, strict: unknown fields are
errors) and runs restricted; the NetworkPolicy reaches the API server through server-side apply, before
any pod it guards."""
import kubernetes_validate
import pytest

from apps.deployments.jobs import job_submit
from apps.deployments.models import DeploymentRevision
from apps.deployments.rollout import rollout_drive
from apps.deployments.services import deployment_create, deployment_deploy, deployment_promote, job_dispatch
from tests.deployments.conftest import engineer, staging  # noqa: F401  (fixtures)
from tests.deployments.factories import gpu_quota, kube_cluster, model_version
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)
from workers.drivers import manifests

K8S_VERSION = kubernetes_validate.latest_version()
NS = "fraud-staging"


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def assert_restricted(pod_spec: dict, containers: list[dict]) -> None:
    pod = pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    scratch = {v["name"] for v in pod_spec["volumes"] if "emptyDir" in v}
    for container in containers:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1 and tmp[0]["name"] in scratch  # the one writable place


def predictor_as_pod(isvc: dict) -> dict:
    """KServe's predictor inlines a PodSpec and its model a Container; kubernetes-validate has no schema for
    the CRD, so those parts are checked as the core Pod they become."""
    predictor = isvc["spec"]["predictor"]
    container = {"name": "kserve-container", "image": "kserve-runtime",
                 **{k: v for k, v in predictor["model"].items() if k in ("securityContext", "volumeMounts", "env",
                                                                         "resources")}}
    spec = {k: v for k, v in predictor.items() if k in ("securityContext", "automountServiceAccountToken",
                                                         "volumes", "nodeSelector")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"]},
            "spec": {**spec, "containers": [container]}}


@pytest.mark.parametrize("kserve", [False, True], ids=["deployment", "kserve"])
def test_rendered_manifests_validate_run_restricted_and_policy_is_applied_first(
        kube_server, engineer, team, staging, kserve):  # noqa: F811
    kube_server.kmock.set_kserve(kserve)
    cluster = kube_cluster(url=kube_server.url, team=team)
    gpu_quota(cluster=cluster, team=team, guaranteed=12, capacity=16)  # three revisions of up to 3 GPUs each
    v1, v2 = model_version(team, version=1), model_version(team, version=2)
    deployment = deployment_create(actor=engineer, team=team, name="fraud", model_version=v1, environment=staging,
                                   cluster=cluster, strategy={"kind": "rolling"},
                                   resources={"cpu": "500m", "memory": "512Mi", "gpu_type": "a100-80gb",
                                              "gpu_count": 1, "autoscaling": {"min": 1, "max": 3, "target_cpu": 60}})
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=deployment, model_version=v2,
                      strategy={"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100}]})
    rollout_drive(deployment_id=deployment.pk)
    deployment_promote(actor=engineer, deployment=deployment)
    rollout_drive(deployment_id=deployment.pk)
    deployment_deploy(actor=engineer, deployment=deployment, model_version=v1, resources={"cpu": "1", "memory": "1Gi"},
                      strategy={"kind": "blue_green"})
    rollout_drive(deployment_id=deployment.pk)

    rendered = [m for r in DeploymentRevision.objects.filter(deployment=deployment) for m in r.manifests]
    kinds = {m["kind"] for m in rendered}
    assert kinds == ({"InferenceService", "NetworkPolicy"} if kserve
                     else {"Deployment", "HorizontalPodAutoscaler", "Service", "NetworkPolicy"})
    assert any(m["kind"] == "InferenceService" and "canaryTrafficPercent" in m["spec"]["predictor"]
               for m in rendered) == kserve
    for manifest in rendered + ([] if kserve else [manifests.render_service(
            deployment="fraud", namespace=NS, team=team.slug, pinned_revision=None)]):
        if manifest["kind"] == "InferenceService":
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                validate(manifest)
            pod = predictor_as_pod(manifest)
            validate(pod)
            assert_restricted(manifest["spec"]["predictor"], [manifest["spec"]["predictor"]["model"]])
            continue
        validate(manifest)
        if manifest["kind"] == "Deployment":
            pod_spec = manifest["spec"]["template"]["spec"]
            assert_restricted(pod_spec, pod_spec["containers"])
            assert {"name": "HOME", "value": "/tmp"} in pod_spec["containers"][0]["env"]

    policy = kube_server.call(lambda k: k.get("networking.k8s.io/v1/networkpolicies", NS, "fraud-ingress"))
    assert policy is not None and policy["metadata"]["managedFields"][0]["manager"] == "controlplane"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    pods = policy["spec"]["podSelector"]["matchLabels"]
    assert pods == ({"serving.kserve.io/inferenceservice": "fraud"} if kserve
                    else {"controlplane.io/deployment": "fraud"})
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"controlplane.io/ingress": "true"}}} in peers
    assert (len(peers) == 2) == kserve  # KServe adds its activator and gateway namespaces, nothing else
    order = [key for _, key, _ in kube_server.kmock.applied]
    workload = f"InferenceService/{NS}/fraud" if kserve else f"Deployment/{NS}/fraud-r1"
    assert order.index(f"NetworkPolicy/{NS}/fraud-ingress") < order.index(workload)


def test_jobs_validate_and_run_restricted(kube_server, engineer, team, staging):  # noqa: F811
    cluster = kube_cluster(url=kube_server.url, team=team)
    gpu_quota(cluster=cluster, team=team)
    job = job_dispatch(actor=engineer, team=team, cluster=cluster, image="python:3.11",
                       command=["python", "-c", "print(1)"], gpu_type="a100-80gb", gpu_count=1)
    assert job_submit(job_id=job.pk) == "running"
    job.refresh_from_db()
    validate(job.manifest)
    pod_spec = job.manifest["spec"]["template"]["spec"]
    assert_restricted(pod_spec, pod_spec["containers"])
    live = kube_server.call(lambda k: k.get("batch/v1/jobs", NS, job.manifest["metadata"]["name"]))
    assert live["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
