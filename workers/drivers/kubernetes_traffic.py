"""The Kubernetes driver's traffic half: discovery of what the cluster serves (KServe, Gateway API), the
HTTPRoute a Gateway API cluster routes by, and the split read back from the applied objects.

A mixin of KubernetesDriver (kubernetes.py), which gives it `_call`, `client`, `apply_object`, `read` and
`connection`; the objects themselves are rendered by the pure functions in traffic.py.
"""
import time

from . import manifests as m
from . import traffic as t
from .base import ApplyFailed
from .spec import DeploymentSpec, RevisionSpec

DISCOVERY_TTL = 60.0
_DISCOVERY: dict[tuple, tuple[float, tuple[bool, bool]]] = {}
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
READ_BACK_POLL = 0.1


def routing_mechanism(caps: t.TrafficCapabilities, revisions: list[RevisionSpec]) -> str:
    """How a deployment's traffic is split now. A revision rendered as an InferenceService is its own
    router (KServe); otherwise the cluster's Gateway when it has one (revisions rendered before it was set
    get their Service when routed), else the replica ratio."""
    if any(o["kind"] == "InferenceService" for r in revisions for o in r.manifests):
        return t.KSERVE
    return t.GATEWAY_API if caps.gateway_routing else t.REPLICA_RATIO


def _settled(obj: dict | None) -> bool:
    """Whether a controller has reported on the latest spec (status written for this generation)."""
    if obj is None:
        return False
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    observed = [status.get("observedGeneration")] + [c.get("observedGeneration")
                                                     for p in status.get("parents") or []
                                                     for c in p.get("conditions") or []]
    observed = [g for g in observed if g is not None]
    if generation is not None and observed and min(observed) < generation:
        return False
    return bool(status)


class TrafficRouting:
    # ---------------------------------------------------------------- discovery

    def _discovery_key(self) -> tuple:
        return (self.connection.cluster_id, self.connection.server)

    def discovered(self, *, fresh: bool = False) -> tuple[bool, bool]:
        """(KServe InferenceService served, Gateway API v1 HTTPRoute served), remembered per process for a
        minute (every render asks; "test connection" passes fresh=True)."""
        cached = _DISCOVERY.get(self._discovery_key())
        if not fresh and cached and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        import kubernetes

        groups = {g.name: {v.version for v in g.versions or []}
                  for g in self._call(kubernetes.client.ApisApi(self.client()).get_api_versions).groups or []}
        custom = kubernetes.client.CustomObjectsApi(self.client())

        def served(group: str, version: str, plural: str) -> bool:
            if version not in groups.get(group, set()):
                return False
            resources = self._call(custom.get_api_resources, group, version)
            return any(r.name == plural for r in resources.resources or [])

        found = (served(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL),
                 served(t.GATEWAY_GROUP, t.GATEWAY_VERSION, t.HTTPROUTE_PLURAL))
        _DISCOVERY[self._discovery_key()] = (time.monotonic(), found)
        return found

    def traffic_capabilities(self, *, fresh: bool = False) -> t.TrafficCapabilities:
        kserve, gateway_api = self.discovered(fresh=fresh)
        return t.TrafficCapabilities(cluster=self.connection.name, gateway_api=gateway_api, kserve=kserve,
                                     gateway_namespace=self.connection.gateway_namespace,
                                     gateway_name=self.connection.gateway_name)

    # ---------------------------------------------------------------- Gateway API routing

    def gateway_endpoint(self, deployment: DeploymentSpec) -> str:
        """The route's URL on the Gateway's first reported address (path only while it has none)."""
        path = f"{t.route_path(deployment=deployment.name, namespace=deployment.namespace)}/invocations"
        gateway = {"apiVersion": f"{t.GATEWAY_GROUP}/{t.GATEWAY_VERSION}", "kind": "Gateway",
                   "metadata": {"name": self.connection.gateway_name, "namespace": self.connection.gateway_namespace}}
        try:
            live = self.read(gateway)
        except ApplyFailed:  # no read access to Gateways: the path is still right
            live = None
        addresses = ((live or {}).get("status") or {}).get("addresses") or []
        if addresses:
            return f"http://{addresses[0]['value']}{path}"
        return f"{path} on Gateway {self.connection.gateway_namespace}/{self.connection.gateway_name}"

    def route_gateway(self, *, deployment: DeploymentSpec, traffic: dict[int, int], shadow: dict,
                      revisions: dict[int, RevisionSpec], warm: tuple[int, ...]) -> str:
        """Weights on the deployment's HTTPRoute. Every routed, mirrored or warm revision keeps its full
        replicas and its Service, so moving weights (a rollback included) never waits for pods."""
        if not (self.connection.gateway_namespace and self.connection.gateway_name):
            raise ApplyFailed(f"Cluster {self.connection.name} names no Gateway; a platform admin sets it.")
        backends = set(traffic) | set(warm) | ({int(shadow["revision"])} if shadow else set())
        for number in sorted(backends):
            for manifest in revisions[number].manifests:
                if manifest["kind"] in ("Deployment", "HorizontalPodAutoscaler"):
                    self.apply_object(manifest)
            self.apply_object(t.render_revision_service(
                deployment=deployment.name, namespace=deployment.namespace, revision=number,
                labels=m.labels(deployment=deployment.name, team=deployment.team, revision=number),
                target_port=m.SERVING_PORT))
        self.apply_object(t.render_http_route(
            deployment=deployment.name, namespace=deployment.namespace,
            labels=m.labels(deployment=deployment.name, team=deployment.team),
            gateway_namespace=self.connection.gateway_namespace, gateway_name=self.connection.gateway_name,
            traffic=traffic, shadow=shadow or None, warm=tuple(n for n in warm if n not in traffic)))
        return self.gateway_endpoint(deployment)

    # ---------------------------------------------------------------- read-back

    def served(self, *, deployment: DeploymentSpec, traffic: dict[int, int], revisions: dict[int, RevisionSpec],
               timeout: float = 0.0) -> dict:
        """The split the cluster reports serving, from the applied objects. Waits up to `timeout` for the
        controller (Gateway, KServe, the Deployment controller) to report on the latest spec."""
        mechanism = routing_mechanism(self.traffic_capabilities(), [revisions[n] for n in traffic if n in revisions])
        deadline = time.monotonic() + timeout
        while True:
            if mechanism == t.GATEWAY_API:
                live = self.read({"apiVersion": f"{t.GATEWAY_GROUP}/{t.GATEWAY_VERSION}", "kind": "HTTPRoute",
                                  "metadata": {"name": deployment.name, "namespace": deployment.namespace}})
                result, settled = t.served_by_http_route(live, deployment=deployment.name), _settled(live)
            elif mechanism == t.KSERVE:
                latest = (deployment.serving_revision if deployment.serving_revision in traffic else max(traffic))
                previous = next((n for n in traffic if n != latest), None)
                live = self.read(revisions[latest].manifests[0])
                result = t.served_by_inference_service(live, latest=latest, previous=previous)
                settled = _settled(live)
            else:
                ready, settled = {}, True
                for number in traffic:
                    manifest = next((o for o in revisions[number].manifests if o["kind"] == "Deployment"), None)
                    if manifest is None:  # not a workload of this cluster kind: nothing serves it
                        continue
                    live = self.read(manifest) or {}
                    status = live.get("status") or {}
                    ready[number] = status.get("readyReplicas", 0)
                    settled = settled and _settled(live) and ready[number] >= live.get("spec", {}).get("replicas", 0)
                result = t.served_by_pods(ready)
            if (settled and result["ready"]) or time.monotonic() >= deadline:
                return result
            time.sleep(READ_BACK_POLL)
