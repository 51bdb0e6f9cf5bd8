"""The Kubernetes driver, through the official client: server-side apply with one field manager,
watch until ready / failed / timed out, Jobs for training and batch work. Discovery (KServe, Gateway API),
the HTTPRoute and the read-back of the split served live in kubernetes_traffic.py (TrafficRouting).

Errors: 5xx, timeouts and connection failures are DriverUnavailable (the caller retries with backoff);
4xx answers are ApplyFailed with the API server's own message.
"""
import json
import logging
import os
import tempfile
import threading
import time

from . import manifests as m
from . import traffic as t
from .base import STOP_POLL_SECONDS, ApplyFailed, ConnectionCheck, Driver, DriverUnavailable, Observed, WaitInterrupted
from .kubernetes_traffic import KSERVE_GROUP, KSERVE_PLURAL, KSERVE_VERSION, TrafficRouting, routing_mechanism
from .spec import ClusterConnection, DeploymentSpec, JobSpec, KubernetesConfig, RevisionSpec

logger = logging.getLogger(__name__)
FIELD_MANAGER = "controlplane"
APPLY = "application/apply-patch+yaml"
_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()
# Custom resources the driver applies and reads: kind → (group, version, plural).
CUSTOM = {"InferenceService": (KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL),
          "HTTPRoute": (t.GATEWAY_GROUP, t.GATEWAY_VERSION, t.HTTPROUTE_PLURAL),
          "Gateway": (t.GATEWAY_GROUP, t.GATEWAY_VERSION, t.GATEWAY_PLURAL)}


class KubernetesDriver(TrafficRouting, Driver):
    def __init__(self, connection: ClusterConnection, config: KubernetesConfig):
        super().__init__(connection)
        self.config = config
        self._api = None

    # ---------------------------------------------------------------- connection

    def client(self):
        """One ApiClient (and connection pool) per cluster and credentials per process, shared by threads."""
        if self._api is not None:
            return self._api
        key = (self.connection.cluster_id, self.connection.server, self.connection.credentials_digest)
        with _CLIENTS_LOCK:
            if key not in _CLIENTS:
                _CLIENTS[key] = self._new_client()
            self._api = _CLIENTS[key]
        return self._api

    def _new_client(self):
        import kubernetes

        creds = self.connection.credentials()  # checked before a kubeconfig is loaded
        if creds.kubeconfig is not None:
            return kubernetes.config.new_client_from_config_dict(creds.kubeconfig, persist_config=False)
        if not creds.token:
            raise ApplyFailed(f"Cluster {self.connection.name} has no credentials; a platform admin sets them.")
        config = kubernetes.client.Configuration(host=self.connection.server)
        config.api_key = {"BearerToken": creds.token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        if creds.ca_cert:
            handle, path = tempfile.mkstemp(prefix="cluster-ca-", suffix=".crt")
            with os.fdopen(handle, "w") as fh:
                fh.write(creds.ca_cert)
            config.ssl_ca_cert = path
        config.retries = 0  # retries are the task's, with backoff; never stack urllib3's under them
        config.connection_pool_maxsize = 32  # worker threads share the pool
        return kubernetes.client.ApiClient(config)

    def _call(self, fn, *args, **kwargs):
        """One API call with the driver's timeout and error mapping."""
        import kubernetes
        import urllib3

        try:
            # connect, read: a hung API server must not hang a worker
            timeout = (self.config.connect_timeout, self.config.read_timeout)
            return fn(*args, _request_timeout=timeout, **kwargs)
        except kubernetes.client.ApiException as exc:
            message = _status_message(exc)
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise DriverUnavailable(f"Kubernetes API answered {exc.status}: {message}") from exc
            raise ApplyFailed(f"Kubernetes API refused it ({exc.status} {exc.reason}): {message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DriverUnavailable(f"Kubernetes API at {self.connection.server or 'kubeconfig'} unreachable: "
                                    f"{type(exc).__name__}: {exc}") from exc

    def test_connection(self) -> ConnectionCheck:
        import kubernetes

        try:
            version = self._call(kubernetes.client.VersionApi(self.client()).get_code)
            kserve, gateway_api = self.discovered(fresh=True)
        except (DriverUnavailable, ApplyFailed) as exc:
            return ConnectionCheck(ok=False, message=str(exc))
        return ConnectionCheck(ok=True, kserve=kserve, gateway_api=gateway_api,
                               message=f"Kubernetes {version.git_version}; KServe {'served' if kserve else 'not served'}; "
                                       f"Gateway API {'served' if gateway_api else 'not served'}")

    # ---------------------------------------------------------------- rendering

    def _ctx(self, revision: RevisionSpec) -> dict:
        deployment = revision.deployment
        return {"deployment": deployment.name, "namespace": deployment.namespace, "team": deployment.team,
                "revision": revision.number, "model_version": f"{revision.model_name}/{revision.model_version}",
                "model_uri": revision.model_uri, "storage_uri": revision.artifact_uri,
                "image": self.config.server_image, "tracking_uri": self.config.tracking_uri,
                "resources": revision.resources}

    def render(self, *, revision: RevisionSpec, weight: int) -> list[dict]:
        ctx = self._ctx(revision)
        deployment = revision.deployment
        mechanism = self.traffic_capabilities().mechanism
        policy = m.render_network_policy(deployment=deployment.name, namespace=deployment.namespace,
                                         team=deployment.team, kserve=mechanism == t.KSERVE)
        if mechanism == t.KSERVE:
            return [m.render_inference_service(ctx=ctx, canary_percent=weight if 0 < weight < 100 else None), policy]
        objects = m.render_workload(ctx=ctx)
        if mechanism == t.GATEWAY_API:  # the revision's own Service: the backend its route weights
            objects.append(t.render_revision_service(
                deployment=deployment.name, namespace=deployment.namespace, revision=revision.number,
                labels=m.labels(deployment=deployment.name, team=deployment.team, revision=revision.number),
                target_port=m.SERVING_PORT))
        else:
            objects.append(m.render_service(deployment=deployment.name, namespace=deployment.namespace,
                                            team=deployment.team, pinned_revision=revision.number))
        objects.append(policy)
        return objects

    # ---------------------------------------------------------------- apply / watch

    def apply_object(self, manifest: dict) -> None:
        import kubernetes

        api = self.client()
        kind, meta = manifest["kind"], manifest["metadata"]
        common = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
        if kind == "Deployment":
            fn, args = kubernetes.client.AppsV1Api(api).patch_namespaced_deployment, (meta["name"], meta["namespace"])
        elif kind == "Service":
            fn, args = kubernetes.client.CoreV1Api(api).patch_namespaced_service, (meta["name"], meta["namespace"])
        elif kind == "HorizontalPodAutoscaler":
            fn, args = (kubernetes.client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler,
                        (meta["name"], meta["namespace"]))
        elif kind == "Job":
            fn, args = kubernetes.client.BatchV1Api(api).patch_namespaced_job, (meta["name"], meta["namespace"])
        elif kind == "NetworkPolicy":
            fn, args = kubernetes.client.NetworkingV1Api(api).patch_namespaced_network_policy, (meta["name"], meta["namespace"])
        elif kind in CUSTOM:
            group, version, plural = CUSTOM[kind]
            fn = kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object
            args = (group, version, meta["namespace"], plural, meta["name"])
        else:
            raise ApplyFailed(f"Don't know how to apply a {kind}.")
        self._call(fn, *args, manifest, **common)

    def apply(self, *, revision: RevisionSpec, weight: int, on_request=None) -> None:
        objects = [o for o in revision.manifests if o["kind"] != "Service"]  # the Service follows routing
        objects.sort(key=lambda o: o["kind"] != "NetworkPolicy")  # no pod is reachable before its policy
        for index, manifest in enumerate(objects):
            self.apply_object(manifest)
            if index == 0 and on_request:
                on_request()

    def read(self, manifest: dict) -> dict | None:
        import kubernetes

        api = self.client()
        meta = manifest["metadata"]
        try:
            if manifest["kind"] in CUSTOM:
                group, version, plural = CUSTOM[manifest["kind"]]
                return self._call(kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object,
                                  group, version, meta["namespace"], plural, meta["name"])
            fn = {
                "Deployment": kubernetes.client.AppsV1Api(api).read_namespaced_deployment,
                "Service": kubernetes.client.CoreV1Api(api).read_namespaced_service,
                "HorizontalPodAutoscaler": kubernetes.client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler,
                "Job": kubernetes.client.BatchV1Api(api).read_namespaced_job,
                "NetworkPolicy": kubernetes.client.NetworkingV1Api(api).read_namespaced_network_policy,
            }[manifest["kind"]]
            return api.sanitize_for_serialization(self._call(fn, meta["name"], meta["namespace"]))
        except ApplyFailed as exc:
            if "(404" in str(exc):
                return None
            raise

    def wait_ready(self, *, revision: RevisionSpec, timeout: float, should_stop=None) -> None:
        """Watch the primary object until ready, failed or timed out (briefly at a time with `should_stop`)."""
        import kubernetes

        primary = revision.manifests[0]
        meta = primary["metadata"]
        deadline = time.monotonic() + timeout
        while True:
            state, message = _readiness(self.read(primary))
            if state == "ready":
                return
            if state == "failed":
                raise ApplyFailed(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApplyFailed(f"{primary['kind']} {meta['name']} was not ready after {timeout:.0f}s: {message}")
            if should_stop is not None and should_stop():
                raise WaitInterrupted(f"Stopped waiting for {primary['kind']} {meta['name']}.")
            remaining = min(remaining, 2 * STOP_POLL_SECONDS) if should_stop is not None else remaining
            api = self.client()
            if primary["kind"] == "InferenceService":
                list_fn = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object
                args = (KSERVE_GROUP, KSERVE_VERSION, meta["namespace"], KSERVE_PLURAL)
            else:
                list_fn = kubernetes.client.AppsV1Api(api).list_namespaced_deployment
                args = (meta["namespace"],)
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(list_fn, *args, field_selector=f"metadata.name={meta['name']}",
                                          timeout_seconds=max(1, int(min(remaining, 30))),
                                          _request_timeout=(3, max(min(remaining, 1.0), min(remaining, 5)))):
                    obj = event["object"]
                    obj = obj if isinstance(obj, dict) else api.sanitize_for_serialization(obj)
                    if obj.get("metadata", {}).get("name") != meta["name"]:
                        continue  # selectors are a server courtesy; never trust them blindly
                    state, message = _readiness(obj)
                    if state in ("ready", "failed"):
                        break
            except Exception as exc:  # a broken watch is not an answer: read again, then watch again
                logger.info("Watch interrupted; reading again", extra={"error": f"{type(exc).__name__}: {exc}"})
            finally:
                watch.stop()

    # ---------------------------------------------------------------- routing

    def route(self, *, deployment: DeploymentSpec, traffic: dict[int, int], shadow: dict,
              revisions: dict[int, RevisionSpec]) -> str:
        caps = self.traffic_capabilities()
        involved = set(traffic) | ({int(shadow["revision"])} if shadow else set())
        mechanism = routing_mechanism(caps, [revisions[n] for n in involved])
        if mechanism == t.GATEWAY_API:
            warm = (deployment.warm_revision,) if deployment.warm_revision in revisions else ()
            return self.route_gateway(deployment=deployment, traffic=traffic, shadow=shadow, revisions=revisions,
                                      warm=warm)
        if shadow or (mechanism == t.KSERVE and len(traffic) > 2):
            raise ApplyFailed(t.strategy_refusal(caps, "shadow" if shadow else "ab"))
        serving = deployment.serving_revision
        newest = serving if serving is not None and serving in traffic else max(traffic)
        manifests = revisions[newest].manifests
        if mechanism == t.KSERVE:
            isvc = dict(manifests[0])
            predictor = dict(isvc["spec"]["predictor"])
            predictor.pop("canaryTrafficPercent", None)
            if traffic.get(newest, 100) < 100:
                predictor["canaryTrafficPercent"] = traffic[newest]
            isvc["spec"] = {**isvc["spec"], "predictor": predictor}
            self.apply_object(isvc)
            return f"http://{deployment.name}.{deployment.namespace}.svc.cluster.local/v2/models/{deployment.name}/infer"
        total = max(1, revisions[newest].resources.get("replicas", 1))
        for number, weight in traffic.items():
            objects = [o for o in revisions[number].manifests if o["kind"] in ("Deployment", "HorizontalPodAutoscaler")]
            replicas = total if len(traffic) == 1 else max(1, round(total * weight / 100))
            for manifest in m.with_replicas(objects, replicas):
                self.apply_object(manifest)
        pinned = next(iter(traffic)) if len(traffic) == 1 else None
        self.apply_object(m.render_service(deployment=deployment.name, namespace=deployment.namespace,
                                           team=deployment.team, pinned_revision=pinned))
        return f"http://{deployment.name}.{deployment.namespace}.svc.cluster.local/invocations"

    def retire(self, *, revision: RevisionSpec) -> None:
        """Scale an unrouted revision that left the warm window to zero (kept for the record, no pods)."""
        for manifest in revision.manifests:
            if manifest["kind"] == "Deployment":
                live = self.read(manifest)
                if live is not None and live.get("spec", {}).get("replicas", 0) != 0:
                    self.apply_object(m.with_replicas([manifest], 0)[0])

    def teardown(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> None:
        """Delete the HTTPRoute, the stable Service, then every revision's objects (InferenceService, Deployment,
        HPA, its Service, the policy); the control plane keeps the manifests as history."""
        def stub(kind: str, name: str) -> dict:
            return {"kind": kind, "metadata": {"name": name, "namespace": deployment.namespace}}

        objects = [stub("HTTPRoute", deployment.name), stub("Service", deployment.name)]
        for revision in revisions:
            objects.append(stub("Service", t.revision_service_name(deployment.name, revision.number)))
            objects.extend(revision.manifests)
        seen = set()
        for manifest in objects:
            key = (manifest["kind"], manifest["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                self.delete_object(manifest)

    def delete_object(self, manifest: dict) -> None:
        """Delete one object; one already gone (or a kind this cluster does not serve) is fine."""
        import kubernetes

        api = self.client()
        kind, name, namespace = manifest["kind"], manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        if kind in CUSTOM:
            group, version, plural = CUSTOM[kind]
            fn, args = (kubernetes.client.CustomObjectsApi(api).delete_namespaced_custom_object,
                        (group, version, namespace, plural, name))
        else:
            fn, args = {
                "Deployment": kubernetes.client.AppsV1Api(api).delete_namespaced_deployment,
                "Service": kubernetes.client.CoreV1Api(api).delete_namespaced_service,
                "HorizontalPodAutoscaler":
                    kubernetes.client.AutoscalingV2Api(api).delete_namespaced_horizontal_pod_autoscaler,
                "NetworkPolicy": kubernetes.client.NetworkingV1Api(api).delete_namespaced_network_policy,
            }[kind], (name, namespace)
        try:
            self._call(fn, *args)
        except ApplyFailed as exc:
            if "(404" not in str(exc):
                raise

    def observe(self, *, deployment: DeploymentSpec, revisions: list[RevisionSpec]) -> Observed:
        observed = Observed()
        seen = set()
        for revision in revisions:
            for manifest in revision.manifests:
                if manifest["kind"] == "Service":
                    continue
                key = f"{manifest['kind']}/{manifest['metadata']['name']}"
                if key in seen:
                    continue
                seen.add(key)
                live = self.read(manifest)
                if live is None:
                    observed.missing.append(key)
                    continue
                observed.present.append(key)
                desired = {k: v for k, v in manifest["spec"].items() if k not in ("replicas", "canaryTrafficPercent")}
                if manifest["kind"] == "InferenceService":
                    desired = {"predictor": {k: v for k, v in manifest["spec"]["predictor"].items()
                                             if k != "canaryTrafficPercent"}}
                diff = m.subset_diff(desired, live.get("spec", {}))
                if diff:
                    observed.drift[key] = diff
        return observed

    # ---------------------------------------------------------------- jobs

    def job_manifest(self, *, job: JobSpec) -> dict:
        name = job.name if job.attempt == 1 else f"{job.name}-a{job.attempt}"[:63]
        return m.render_job(name=name, namespace=job.namespace, team=job.team, image=job.image,
                            command=job.command, gpu_type=job.gpu_type, gpu_count=job.gpu_count)

    def job_apply(self, *, job: JobSpec) -> dict:
        manifest = self.job_manifest(job=job)
        self.apply_object(manifest)
        return manifest

    def job_status(self, *, job: JobSpec):
        live = self.read(job.manifest or self.job_manifest(job=job))
        if live is None:
            return "failed", "The Job object vanished from the cluster."
        status = live.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("status") == "True" and condition.get("type") == "Complete":
                return "succeeded", ""
            if condition.get("status") == "True" and condition.get("type") == "Failed":
                return "failed", condition.get("message") or condition.get("reason") or "Job failed"
        return "running", ""

    def job_logs_url(self, *, job: JobSpec) -> str:
        name = (job.manifest or {}).get("metadata", {}).get("name", job.name)
        return f"{self.connection.server.rstrip('/')}/api/v1/namespaces/{job.namespace}/pods?labelSelector=job-name%3D{name}"


def _status_message(exc) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _readiness(obj: dict | None) -> tuple[str, str]:
    if obj is None:
        return "missing", "object not found yet"
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    if status.get("observedGeneration") is not None and generation is not None \
            and status["observedGeneration"] < generation:
        return "progressing", "the controller has not seen the latest spec yet"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if obj.get("kind") == "InferenceService" or "modelStatus" in status or "url" in status:
        ready = conditions.get("Ready", {})
        if ready.get("status") == "True":
            return "ready", ""
        if (status.get("modelStatus") or {}).get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
            return "failed", ready.get("message") or "the model failed to load"
        return "progressing", ready.get("message") or "waiting for the InferenceService to be ready"
    progressing = conditions.get("Progressing", {})
    if progressing.get("status") == "False":
        return "failed", progressing.get("message") or progressing.get("reason") or "the rollout failed"
    wanted = obj.get("spec", {}).get("replicas", 1)
    if status.get("availableReplicas", 0) >= wanted and status.get("updatedReplicas", 0) >= wanted:
        return "ready", ""
    return "progressing", f"{status.get('availableReplicas', 0)}/{wanted} replicas available"
