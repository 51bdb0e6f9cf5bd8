"""Kubernetes manifests for a deployment revision: a KServe InferenceService when the cluster serves
that CRD, otherwise Deployment + Service + HorizontalPodAutoscaler; a NetworkPolicy per deployment
either way. Pure functions of plain data, with deterministic names, so re-rendering is stable and
server-side apply is idempotent.

Every pod (model servers and Jobs) runs restricted (the Pod Security Standard of that name): non-root
uid, RuntimeDefault seccomp, no privilege escalation, all capabilities dropped, a read-only root
filesystem with a writable emptyDir at /tmp (HOME points there), and no service-account token.
"""
import copy

MANAGED_BY = "controlplane"
SERVING_PORT = 8080
POD_UID = 1000  # any non-zero uid: the model server image needs no user of its own
# Who may reach model pods: pods in namespaces a platform admin labels `controlplane.io/ingress=true`
# (the ingress controller's, the router's), and for KServe its serving path (Knative activator, Istio gateway).
INGRESS_NAMESPACE_LABEL = {"controlplane.io/ingress": "true"}
KSERVE_INGRESS_NAMESPACES = ["knative-serving", "istio-system"]


def labels(*, deployment: str, team: str, revision: int | None = None) -> dict:
    out = {"app.kubernetes.io/name": deployment, "app.kubernetes.io/managed-by": MANAGED_BY,
           "controlplane.io/deployment": deployment, "controlplane.io/team": team}
    if revision is not None:
        out["controlplane.io/revision"] = str(revision)
    return out


def _resources(resources: dict) -> dict:
    requests = {"cpu": resources["cpu"], "memory": resources["memory"]}
    limits = {"memory": resources["memory"]}
    if resources.get("gpu_count"):
        limits["nvidia.com/gpu"] = str(resources["gpu_count"])
        requests["nvidia.com/gpu"] = str(resources["gpu_count"])
    return {"requests": requests, "limits": limits}


def _node_selector(resources: dict) -> dict:
    return {"nvidia.com/gpu.product": resources["gpu_type"]} if resources.get("gpu_count") else {}


def pod_security_context() -> dict:
    return {"runAsNonRoot": True, "runAsUser": POD_UID, "runAsGroup": POD_UID, "fsGroup": POD_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def _restricted(pod_spec: dict, container: dict) -> dict:
    """Pod spec (plain or KServe predictor) and its container, made restricted in place."""
    pod_spec.update({"securityContext": pod_security_context(), "automountServiceAccountToken": False,
                     "volumes": [{"name": "tmp", "emptyDir": {}}]})
    container["securityContext"] = container_security_context()
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    container["env"] = [*container.get("env", []), {"name": "HOME", "value": "/tmp"}]
    return pod_spec


def render_network_policy(*, deployment: str, namespace: str, team: str, kserve: bool) -> dict:
    """Only the ingress (and KServe's serving path) reaches the deployment's pods; nothing else in the
    cluster, other tenants' pods included."""
    peers = [{"namespaceSelector": {"matchLabels": dict(INGRESS_NAMESPACE_LABEL)}}]
    if kserve:
        peers.append({"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In", "values": list(KSERVE_INGRESS_NAMESPACES)}]}})
        selector = {"serving.kserve.io/inferenceservice": deployment}
        rule = {"from": peers}  # Knative's queue-proxy listens on its own ports in front of the model
    else:
        selector = {"controlplane.io/deployment": deployment}
        rule = {"from": peers, "ports": [{"protocol": "TCP", "port": SERVING_PORT}]}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{deployment}-ingress", "namespace": namespace,
                     "labels": labels(deployment=deployment, team=team)},
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": [rule]},
    }


def workload_name(deployment: str, revision: int) -> str:
    return f"{deployment}-r{revision}"


def render_inference_service(*, ctx: dict, canary_percent: int | None) -> dict:
    res = ctx["resources"]
    autoscaling = res.get("autoscaling") or {}
    predictor = {
        "minReplicas": autoscaling.get("min", res["replicas"]),
        "maxReplicas": autoscaling.get("max", res["replicas"]),
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "storageUri": ctx["storage_uri"],
            "resources": _resources(res),
        },
    }
    _restricted(predictor, predictor["model"])
    if autoscaling:
        predictor.update({"scaleMetric": "cpu", "scaleTarget": autoscaling["target_cpu"]})
    if _node_selector(res):
        predictor["nodeSelector"] = _node_selector(res)
    if canary_percent is not None and canary_percent < 100:
        predictor["canaryTrafficPercent"] = canary_percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": ctx["deployment"], "namespace": ctx["namespace"],
                     "labels": labels(deployment=ctx["deployment"], team=ctx["team"], revision=ctx["revision"]),
                     "annotations": {"controlplane.io/model-version": ctx["model_version"]}},
        "spec": {"predictor": predictor},
    }


def render_workload(*, ctx: dict, replicas: int | None = None) -> list[dict]:
    """Deployment (+ HPA) of one revision. `replicas` overrides the requested count (traffic weighting)."""
    res = ctx["resources"]
    name = workload_name(ctx["deployment"], ctx["revision"])
    pod_labels = labels(deployment=ctx["deployment"], team=ctx["team"], revision=ctx["revision"])
    container = {
        "name": "model-server",
        "image": ctx["image"],
        "command": ["mlflow", "models", "serve", "-m", ctx["model_uri"], "--env-manager", "local",
                    "-h", "0.0.0.0", "-p", str(SERVING_PORT)],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": ctx["tracking_uri"]}],
        "ports": [{"name": "http", "containerPort": SERVING_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": SERVING_PORT}, "periodSeconds": 5},
        "resources": _resources(res),
    }
    pod_spec = _restricted({"containers": [container]}, container)
    if _node_selector(res):
        pod_spec["nodeSelector"] = _node_selector(res)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ctx["namespace"], "labels": pod_labels,
                     "annotations": {"controlplane.io/model-version": ctx["model_version"]}},
        "spec": {
            "selector": {"matchLabels": {"controlplane.io/deployment": ctx["deployment"],
                                         "controlplane.io/revision": str(ctx["revision"])}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }
    autoscaling = res.get("autoscaling")
    if not autoscaling:
        deployment["spec"]["replicas"] = res["replicas"] if replicas is None else replicas
        return [deployment]
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ctx["namespace"], "labels": pod_labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": autoscaling["min"] if replicas is None else max(1, min(replicas, autoscaling["min"])),
            "maxReplicas": autoscaling["max"],
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": autoscaling["target_cpu"]}}}],
        },
    }
    return [deployment, hpa]


def render_service(*, deployment: str, namespace: str, team: str, pinned_revision: int | None) -> dict:
    """The stable endpoint. Pinned to one revision when it takes all traffic (blue/green switch, rollback,
    warm revisions unrouted); otherwise it selects every revision and traffic follows ready pods."""
    selector = {"controlplane.io/deployment": deployment}
    if pinned_revision is not None:
        selector["controlplane.io/revision"] = str(pinned_revision)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": deployment, "namespace": namespace, "labels": labels(deployment=deployment, team=team)},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": SERVING_PORT}]},
    }


def render_job(*, name: str, namespace: str, team: str, image: str, command: list[str], gpu_type: str,
               gpu_count: int) -> dict:
    container = {"name": "main", "image": image, "command": command}
    pod_spec = _restricted({"restartPolicy": "Never", "containers": [container]}, container)
    if gpu_count:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpu_count)}}
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": gpu_type}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "controlplane.io/team": team}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"controlplane.io/job": name}},
                                                 "spec": pod_spec}},
    }


def with_replicas(manifests: list[dict], replicas: int) -> list[dict]:
    out = copy.deepcopy(manifests)
    for manifest in out:
        if manifest["kind"] == "Deployment" and "replicas" in manifest["spec"]:
            manifest["spec"]["replicas"] = replicas
    return out


def subset_diff(desired, live, path: str = "") -> dict:
    """Fields of `desired` that the live object lacks or holds differently ({path: [desired, live]}).
    Live objects carry defaults and status, so only what we set is compared."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return {path or "/": [desired, live]}
        out = {}
        for key, value in desired.items():
            out.update(subset_diff(value, live.get(key), f"{path}.{key}" if path else key))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return {path: [desired, live]}
        out = {}
        for i, (d, l) in enumerate(zip(desired, live)):
            out.update(subset_diff(d, l, f"{path}[{i}]"))
        return out
    return {} if desired == live else {path: [desired, live]}
