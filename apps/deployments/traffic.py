"""Traffic splits per cluster, on the control plane's side: which strategies a cluster can run (shadow and
A/B/n only with Gateway API routing; a clear 400 elsewhere), what a requested split becomes there (the
wizard review: exact, or the replica ratio's approximation with a warning when it cannot be met), and
the split the cluster reports serving, read back after every route and reconcile and stored on the
deployment (`served_traffic`). The mechanisms themselves: workers/drivers/traffic.py.
"""
from django.utils import timezone

from apps.core.errors import Conflict, InvalidInput
from workers.drivers import ApplyFailed, DriverUnavailable
from workers.drivers import traffic as t

from .choices import ClusterKind, StrategyKind
from .models import Cluster, Deployment

ROUTER = "router"  # the local target's request router: exact weights and mirroring
READ_BACK_TIMEOUT = 5.0  # how long a route waits for the Gateway / KServe / Deployment controller to report


def capabilities(cluster: Cluster, *, fresh: bool = False) -> t.TrafficCapabilities | None:
    """What a Kubernetes cluster offers (None for the local target). Raises Conflict when it cannot be asked."""
    if cluster.kind != ClusterKind.KUBERNETES:
        return None
    from .drivers import driver_for

    try:
        return driver_for(cluster).driver.traffic_capabilities(fresh=fresh)
    except (DriverUnavailable, ApplyFailed) as exc:
        raise Conflict(f"Cluster {cluster.name} could not be asked what it serves: {exc}. Nothing was applied; "
                       f"check the cluster's connection and try again.", code="cluster_unreachable")


def strategy_check(*, cluster: Cluster, strategy: dict) -> None:
    """400 when the cluster cannot split traffic the way the strategy needs."""
    if strategy["kind"] not in (StrategyKind.SHADOW, StrategyKind.AB):
        return
    caps = capabilities(cluster)
    refusal = t.strategy_refusal(caps, strategy["kind"]) if caps else ""
    if refusal:
        raise InvalidInput(refusal, fields={"strategy": [f"Not served by cluster {cluster.name}."]})


def requested_splits(*, deployment: Deployment | None, strategy: dict) -> list[dict[int | str, int]]:
    """Every split a rollout with this strategy asks the cluster for, in order ("new" is the new revision)."""
    stable = deployment.stable_revision if deployment else None
    kind = strategy.get("kind")
    if stable is None or kind == StrategyKind.ROLLING:
        return [{"new": 100}]
    old = stable.number
    if kind == StrategyKind.CANARY:
        steps = [{old: 100 - s["weight"], "new": s["weight"]} for s in strategy["steps"] if s["weight"] < 100]
        return [*steps, {"new": 100}]
    if kind == StrategyKind.AB:
        split: dict = {}
        for variant in strategy["variants"]:
            split[variant["revision"]] = split.get(variant["revision"], 0) + variant["weight"]
        return [{k: v for k, v in split.items() if v > 0}]
    if kind == StrategyKind.SHADOW:
        return [{old: 100}, {"new": 100}]
    return [{old: 100}, {"new": 100}]  # blue/green


def plan(*, cluster: Cluster, deployment: Deployment | None, strategy: dict, resources: dict,
         new_number: int) -> dict:
    """The wizard review's traffic section: each requested split as this cluster will serve it."""
    caps = capabilities(cluster)
    steps = []
    for split in requested_splits(deployment=deployment, strategy=strategy):
        numbered = {(new_number if k == "new" else int(k)): v for k, v in split.items()}
        if caps is None:
            steps.append({"mechanism": ROUTER, "split": {str(n): w for n, w in sorted(numbered.items())},
                          "exact": True, "note": "exact: the control plane's router splits requests by weight",
                          "warning": ""})
        else:
            steps.append(t.traffic_plan(caps, traffic=numbered, total=int(resources.get("replicas") or 1)))
    return {"mechanism": caps.mechanism if caps else ROUTER, "steps": steps,
            "warnings": [s["warning"] for s in steps if s["warning"]]}


def served_read(*, deployment: Deployment, driver, timeout: float = 0.0) -> dict:
    """The split the deployment's cluster reports serving now (plus when it was read)."""
    traffic = {int(k): v for k, v in (deployment.traffic or {}).items()}
    if not traffic:
        return {}
    if deployment.cluster.kind != ClusterKind.KUBERNETES:
        result = {"mechanism": ROUTER, "split": t.percentages(traffic), "shadow": deployment.shadow or {},
                  "exact": True, "ready": True, "note": "The control plane's router splits requests by weight."}
    else:
        from .drivers import by_workload, deployment_spec, revision_spec, workload_numbers

        spec = deployment_spec(deployment)
        rows = list(deployment.revisions.select_related("model_version__model"))
        revisions = {r.number: revision_spec(r, deployment=spec) for r in rows}
        runs = workload_numbers(rows)
        # Kubernetes reports by workload; shown by the deployment's numbers (the routed revision on each workload).
        public = {runs.get(n, n): n for n in [*traffic, *([int(deployment.shadow["revision"])]
                                                           if deployment.shadow else [])]}
        by_load, shadow = by_workload(traffic, deployment.shadow or {}, runs)
        result = driver.driver.served(deployment=spec, traffic=by_load, revisions=revisions, timeout=timeout)
        result = {**result, "split": {str(public.get(int(k), int(k))): v for k, v in result.get("split", {}).items()}}
        if result.get("pods"):
            result["pods"] = {str(public.get(int(k), int(k))): v for k, v in result["pods"].items()}
        if result.get("warm") and deployment.warm_revision_id:
            warm = deployment.warm_revision.number
            result["warm"] = [warm if n == runs.get(warm, warm) else n for n in result["warm"]]
        if result.get("shadow"):
            result["shadow"] = {**result["shadow"],
                                "revision": public.get(int(result["shadow"]["revision"]), result["shadow"]["revision"])}
    return {**result, "observed_at": timezone.now().isoformat()}


def served_record(*, deployment: Deployment, driver, timeout: float = 0.0) -> dict:
    """Read the served split back and store it (a plain update: it is an observation, not a state change)."""
    try:
        served = served_read(deployment=deployment, driver=driver, timeout=timeout)
    except (DriverUnavailable, ApplyFailed) as exc:
        served = {**(deployment.served_traffic or {}), "note": f"Not read back: {exc}"[:500]}
    Deployment.objects.filter(pk=deployment.pk).update(served_traffic=served)
    return served
