"""How a Kubernetes cluster splits a deployment's traffic between revisions, as pure functions of plain data.

Three mechanisms, best first, chosen per cluster from what its API serves (discovery) and its settings:

- Gateway API: an `HTTPRoute` (gateway.networking.k8s.io/v1) attached to the Gateway the cluster names,
  with one weighted `backendRef` per revision Service (canary, blue/green, A/B/n over any number of
  revisions; warm revisions stay listed at weight 0, so a rollback is a weight flip on the same route) and
  a `RequestMirror` filter with `percent` for shadow traffic. Exact.
- KServe: one `InferenceService` per deployment whose `canaryTrafficPercent` splits the latest revision
  from the previous one. Exact, two revisions only, no mirroring.
- Replica ratio: revisions' pod counts behind one Service; traffic follows ready pods, so the split is
  only what whole pods allow ("approximate: 1 of 2 pods ≈ 50 %"), computed here and shown as such.

The split a cluster actually serves is read back from the applied objects (`served_*`), never assumed
from the request.
"""
import math
from dataclasses import dataclass

GATEWAY_API, KSERVE, REPLICA_RATIO = "gateway-api", "kserve", "replica-ratio"
GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"
HTTPROUTE_PLURAL, GATEWAY_PLURAL = "httproutes", "gateways"
SERVICE_PORT = 80
# A requested share the replica ratio misses by more than this many points is called out as not met.
APPROXIMATION_TOLERANCE = 2


@dataclass(frozen=True)
class TrafficCapabilities:
    """What a cluster offers for splitting traffic: discovery results plus the Gateway it names."""

    cluster: str
    gateway_api: bool
    kserve: bool
    gateway_namespace: str = ""
    gateway_name: str = ""

    @property
    def gateway_routing(self) -> bool:
        return self.gateway_api and bool(self.gateway_namespace and self.gateway_name)

    @property
    def mechanism(self) -> str:
        if self.gateway_routing:
            return GATEWAY_API
        return KSERVE if self.kserve else REPLICA_RATIO


def strategy_refusal(caps: TrafficCapabilities, kind: str) -> str:
    """Why this cluster cannot run a strategy ("" when it can). Shadow and A/B/n need Gateway API routing."""
    if kind not in ("shadow", "ab") or caps.mechanism == GATEWAY_API:
        return ""
    what = {"shadow": "Shadow traffic needs a RequestMirror", "ab": "An A/B/n split over several revisions needs "
            "weighted backendRefs"}[kind]
    if caps.gateway_api:
        return (f"{what} on a Gateway API HTTPRoute. Cluster {caps.cluster} serves the Gateway API but names no "
                f"Gateway; a platform admin sets the cluster's Gateway (namespace and name).")
    if caps.kserve:
        return (f"{what} on a Gateway API HTTPRoute. Cluster {caps.cluster} serves KServe only, whose "
                f"canaryTrafficPercent splits two revisions and cannot mirror; install a Gateway API "
                f"implementation there and set the cluster's Gateway, or use rolling, canary or blue/green.")
    return (f"{what} on a Gateway API HTTPRoute. Cluster {caps.cluster} serves neither the Gateway API nor KServe, "
            f"so traffic is split by replica counts only; install a Gateway API implementation and set the "
            f"cluster's Gateway, or use rolling, canary or blue/green.")


# ---------------------------------------------------------------- Gateway API


def revision_service_name(deployment: str, revision: int) -> str:
    return f"{deployment}-r{revision}"


def route_path(*, deployment: str, namespace: str) -> str:
    return f"/{namespace}/{deployment}"


def render_revision_service(*, deployment: str, namespace: str, labels: dict, revision: int,
                            target_port: int) -> dict:
    """One Service per revision: the backend an HTTPRoute weights (a route cannot select pods itself)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": revision_service_name(deployment, revision), "namespace": namespace,
                     "labels": dict(labels)},
        "spec": {"selector": {"controlplane.io/deployment": deployment, "controlplane.io/revision": str(revision)},
                 "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": target_port}]},
    }


def render_http_route(*, deployment: str, namespace: str, labels: dict, gateway_namespace: str, gateway_name: str,
                      traffic: dict[int, int], shadow: dict | None = None, warm: tuple[int, ...] = ()) -> dict:
    """The route of one deployment: `/<namespace>/<deployment>/…` on the cluster's Gateway, rewritten to `/…`,
    weighted over the revisions in `traffic` ({revision: percent}); `warm` revisions are listed at weight 0
    so switching back to them only changes weights; `shadow` ({revision, percent}) mirrors requests."""
    numbers = sorted(set(traffic) | {n for n in warm if n not in traffic})
    backends = [{"group": "", "kind": "Service", "name": revision_service_name(deployment, n), "port": SERVICE_PORT,
                 "weight": int(traffic.get(n, 0))} for n in numbers]
    filters = [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
    if shadow:
        mirror = {"backendRef": {"group": "", "kind": "Service",
                                 "name": revision_service_name(deployment, int(shadow["revision"])),
                                 "port": SERVICE_PORT}}
        if int(shadow["percent"]) < 100:
            mirror["percent"] = int(shadow["percent"])
        filters.append({"type": "RequestMirror", "requestMirror": mirror})
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}", "kind": "HTTPRoute",
        "metadata": {"name": deployment, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parentRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": gateway_namespace,
                            "name": gateway_name}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix",
                                             "value": route_path(deployment=deployment, namespace=namespace)}}],
                       "filters": filters, "backendRefs": backends}],
        },
    }


def _revision_of(service_name: str, deployment: str) -> int | None:
    prefix = f"{deployment}-r"
    tail = service_name[len(prefix):] if service_name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def served_by_http_route(route: dict | None, *, deployment: str) -> dict:
    """The split an applied HTTPRoute carries, and whether the Gateway's controller accepted it."""
    if route is None:
        return {"mechanism": GATEWAY_API, "split": {}, "shadow": {}, "exact": True, "ready": False,
                "note": f"HTTPRoute {deployment} not found on the cluster."}
    rule = (route.get("spec", {}).get("rules") or [{}])[0]
    weights = {}
    for ref in rule.get("backendRefs") or []:
        number = _revision_of(ref.get("name", ""), deployment)
        if number is not None:
            weights[number] = weights.get(number, 0) + int(ref.get("weight", 1))
    shadow = {}
    for item in rule.get("filters") or []:
        if item.get("type") == "RequestMirror":
            mirror = item.get("requestMirror") or {}
            number = _revision_of((mirror.get("backendRef") or {}).get("name", ""), deployment)
            if "fraction" in mirror:
                fraction = mirror["fraction"]
                percent = 100 * fraction.get("numerator", 0) / (fraction.get("denominator") or 100)
            else:
                percent = mirror.get("percent", 100)
            shadow = {"revision": number, "percent": round(percent)}
    problems = []
    parents = (route.get("status") or {}).get("parents") or []
    for parent in parents:
        for condition in parent.get("conditions") or []:
            if condition.get("type") in ("Accepted", "ResolvedRefs") and condition.get("status") != "True":
                problems.append(f"{condition['type']}: {condition.get('reason', '')} {condition.get('message', '')}".strip())
    ready = bool(parents) and not problems
    note = ("; ".join(problems) if problems else
            "Accepted by the Gateway, backends resolved." if parents else "Not yet accepted by the Gateway.")
    routed = {n: w for n, w in weights.items() if w > 0}
    return {"mechanism": GATEWAY_API, "split": percentages(routed), "shadow": shadow, "exact": True,
            "warm": sorted(n for n, w in weights.items() if w == 0), "ready": ready, "note": note}


# ---------------------------------------------------------------- KServe


def served_by_inference_service(isvc: dict | None, *, latest: int, previous: int | None) -> dict:
    """KServe reports the split in status.components.predictor.traffic (Knative traffic targets): the
    target marked latestRevision is the newest revision applied, the other the one before it."""
    if isvc is None:
        return {"mechanism": KSERVE, "split": {}, "shadow": {}, "exact": True, "ready": False,
                "note": "InferenceService not found on the cluster."}
    status = isvc.get("status") or {}
    targets = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
    split = {}
    for target in targets:
        number = latest if target.get("latestRevision") else previous
        if number is not None and target.get("percent"):
            split[number] = split.get(number, 0) + int(target["percent"])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    note = "Ready; split reported by KServe." if targets and ready else "KServe has not reported its traffic yet."
    return {"mechanism": KSERVE, "split": {str(k): v for k, v in sorted(split.items())}, "shadow": {},
            "exact": True, "ready": ready and bool(targets), "note": note}


# ---------------------------------------------------------------- replica ratio


def replica_counts(*, total: int, traffic: dict[int, int]) -> dict[int, int]:
    """Pods per revision for a requested split, `total` being the new revision's requested replicas: each
    routed revision keeps at least one pod, so small shares are overstated."""
    total = max(1, total)
    if len(traffic) == 1:
        return {n: total for n in traffic}
    return {n: max(1, round(total * weight / 100)) for n, weight in traffic.items()}


def percentages(weights: dict[int, int]) -> dict[str, int]:
    """Weights as whole percents adding up to 100 (largest remainder), keyed by revision as a string."""
    total = sum(weights.values())
    if total <= 0:
        return {str(n): 0 for n in sorted(weights)}
    exact = {n: 100 * w / total for n, w in weights.items()}
    floors = {n: math.floor(v) for n, v in exact.items()}
    for n in sorted(exact, key=lambda k: (floors[k] - exact[k], k))[:100 - sum(floors.values())]:
        floors[n] += 1
    return {str(n): floors[n] for n in sorted(floors)}


def approximate_note(pods: dict[int, int]) -> str:
    total = sum(pods.values())
    if len(pods) <= 1:
        return f"all {total} pod{'s' if total != 1 else ''} serve one revision"
    split = percentages(pods)
    parts = [f"r{n} {pods[n]} of {total} pods ≈ {split[str(n)]} %" for n in sorted(pods)]
    return "approximate: " + ", ".join(parts)


def pods_for_exact(traffic: dict[int, int]) -> int:
    """The fewest pods in all that give exactly this split (10/90 needs 10)."""
    return 100 // math.gcd(100, *[int(w) for w in traffic.values()])


def replica_plan(*, total: int, traffic: dict[int, int]) -> dict:
    """What the replica ratio achieves for a requested split, for the wizard review and the deployment page."""
    pods = replica_counts(total=total, traffic=traffic)
    achieved = percentages(pods)
    met = all(abs(achieved[str(n)] - w) <= APPROXIMATION_TOLERANCE for n, w in traffic.items())
    warning = ""
    if not met:
        asked = ", ".join(f"r{n} {w} %" for n, w in sorted(traffic.items()))
        warning = (f"This cluster splits traffic by pods: {asked} cannot be met with {max(1, total)} replica(s); "
                   f"it will serve {approximate_note(pods)}. Exact splits need a Gateway API or KServe cluster, "
                   f"or {pods_for_exact(traffic)} pods in all.")
    return {"mechanism": REPLICA_RATIO, "pods": {str(n): c for n, c in sorted(pods.items())}, "split": achieved,
            "exact": all(achieved[str(n)] == w for n, w in traffic.items()),
            "note": approximate_note(pods), "warning": warning}


def traffic_plan(caps: TrafficCapabilities, *, traffic: dict[int, int], total: int) -> dict:
    """What a requested split becomes on this cluster (the wizard review shows it before submit)."""
    if caps.mechanism == REPLICA_RATIO:
        return replica_plan(total=total, traffic=traffic)
    how = ("weighted backendRefs on HTTPRoute, Gateway " f"{caps.gateway_namespace}/{caps.gateway_name}"
           if caps.mechanism == GATEWAY_API else "KServe canaryTrafficPercent")
    return {"mechanism": caps.mechanism, "split": {str(n): w for n, w in sorted(traffic.items())}, "exact": True,
            "note": f"exact: {how}", "warning": ""}


def served_by_pods(ready: dict[int, int]) -> dict:
    """The split ready pods give behind one Service (what the replica ratio actually serves)."""
    pods = {n: c for n, c in ready.items() if c > 0}
    if not pods:
        return {"mechanism": REPLICA_RATIO, "split": {}, "shadow": {}, "exact": False, "ready": False,
                "pods": {}, "note": "No ready pods."}
    return {"mechanism": REPLICA_RATIO, "split": percentages(pods), "shadow": {}, "exact": len(pods) == 1,
            "ready": True, "pods": {str(n): c for n, c in sorted(pods.items())}, "note": approximate_note(pods)}
