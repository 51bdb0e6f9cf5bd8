"""Traffic objects as rendered (workers/drivers/traffic.py) checked against the upstream CRD schemas, and
the Kubernetes API emulator serving them through the official client: discovery, server-side apply and
the status a fake Gateway / KServe controller writes."""
import time

import kubernetes
import pytest

from tests.harness.crd_schemas import gateway_api_errors, kserve_errors
from tests.harness.kube_server import kube_server  # noqa: F401  (fixture)
from workers.drivers import manifests as m
from workers.drivers import traffic as t

LABELS = m.labels(deployment="fraud", team="fraud-team")


def route(**kw):
    args = {"deployment": "fraud", "namespace": "fraud-staging", "labels": LABELS, "gateway_namespace": "gateways",
            "gateway_name": "public", "traffic": {1: 90, 2: 10}}
    return t.render_http_route(**{**args, **kw})


def isvc(canary):
    ctx = {"deployment": "fraud", "namespace": "fraud-staging", "team": "fraud-team", "revision": 2,
           "model_version": "fraud/2", "storage_uri": "s3://models/fraud/2",
           "resources": {"cpu": "1", "memory": "1Gi", "replicas": 1, "gpu_count": 1, "gpu_type": "A100",
                         "autoscaling": {"min": 1, "max": 4, "target_cpu": 70}}}
    return m.render_inference_service(ctx=ctx, canary_percent=canary)


def test_rendered_routes_and_services_match_the_gateway_api_schema():
    objects = [route(), route(traffic={1: 50, 2: 30, 3: 20}), route(traffic={1: 100}, shadow={"revision": 2, "percent": 10}),
               route(traffic={2: 100}, warm=(1,)),
               t.render_revision_service(deployment="fraud", namespace="fraud-staging", labels=LABELS, revision=1,
                                         target_port=m.SERVING_PORT)]
    assert gateway_api_errors(objects[:4]) == [[], [], [], []]
    broken = route(shadow={"revision": 2, "percent": 10})
    broken["spec"]["rules"][0]["filters"][1]["requestMirror"]["percent"] = 250
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    errors = gateway_api_errors([broken])[0]
    assert any("percent" in e and "<= 100" in e for e in errors), errors
    assert any("weight" in e and ">= 0" in e for e in errors), errors


def test_rendered_inference_services_match_the_kserve_schema():
    assert kserve_errors(isvc(10)) == []
    assert kserve_errors(isvc(None)) == []
    broken = isvc(10)
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "10"
    broken["spec"]["predictor"]["trafficPercent"] = 10
    del broken["spec"]["predictor"]["model"]["modelFormat"]
    assert sorted(kserve_errors(broken)) == [
        "spec.predictor.canaryTrafficPercent: expected int, got str '10'",
        "spec.predictor.model.modelFormat: required by V1beta1ModelSpec",
        "spec.predictor.trafficPercent: unknown field of V1beta1PredictorSpec"]


def test_weighted_route_for_canary_ab_shadow_and_warm_revisions():
    rule = route()["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("fraud-r1", 90), ("fraud-r2", 10)]
    assert route()["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                              "namespace": "gateways", "name": "public"}]
    ab = route(traffic={1: 50, 2: 30, 3: 20})["spec"]["rules"][0]["backendRefs"]
    assert [b["weight"] for b in ab] == [50, 30, 20]
    shadow = route(traffic={1: 100}, shadow={"revision": 2, "percent": 10})["spec"]["rules"][0]["filters"][1]
    assert shadow == {"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "fraud-r2", "port": 80}, "percent": 10}}
    # A rollback flips weights on the same backends: the warm revision is listed at weight 0.
    before = route(traffic={2: 100}, warm=(1,))["spec"]["rules"][0]["backendRefs"]
    after = route(traffic={1: 100}, warm=(2,))["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in before] == [("fraud-r1", 0), ("fraud-r2", 100)]
    assert [(b["name"], b["weight"]) for b in after] == [("fraud-r1", 100), ("fraud-r2", 0)]


@pytest.mark.parametrize(("replicas", "traffic", "pods", "split", "note", "warned"), [
    (1, {1: 90, 2: 10}, {"1": 1, "2": 1}, {"1": 50, "2": 50}, "r2 1 of 2 pods ≈ 50 %", True),
    (4, {1: 75, 2: 25}, {"1": 3, "2": 1}, {"1": 75, "2": 25}, "r2 1 of 4 pods ≈ 25 %", False),
    (10, {1: 90, 2: 10}, {"1": 9, "2": 1}, {"1": 90, "2": 10}, "r2 1 of 10 pods ≈ 10 %", False),
    (3, {1: 100}, {"1": 3}, {"1": 100}, "all 3 pods serve one revision", False),
])
def test_replica_ratio_reports_the_achievable_split(replicas, traffic, pods, split, note, warned):
    plan = t.replica_plan(total=replicas, traffic=traffic)
    assert (plan["pods"], plan["split"]) == (pods, split)
    assert note in plan["note"]
    assert bool(plan["warning"]) is warned
    if warned:
        assert "10 pods in all" in plan["warning"] and "approximate: r1 1 of 2 pods ≈ 50 %" in plan["warning"]


def test_mechanism_and_refusals_per_cluster():
    full = t.TrafficCapabilities(cluster="eu", gateway_api=True, kserve=True, gateway_namespace="gw", gateway_name="p")
    unnamed = t.TrafficCapabilities(cluster="eu", gateway_api=True, kserve=False)
    kserve = t.TrafficCapabilities(cluster="eu", gateway_api=False, kserve=True)
    plain = t.TrafficCapabilities(cluster="eu", gateway_api=False, kserve=False)
    assert [c.mechanism for c in (full, unnamed, kserve, plain)] == [t.GATEWAY_API, t.REPLICA_RATIO, t.KSERVE,
                                                                     t.REPLICA_RATIO]
    assert t.strategy_refusal(full, "shadow") == t.strategy_refusal(full, "ab") == ""
    assert "names no Gateway" in t.strategy_refusal(unnamed, "ab")
    assert "KServe only" in t.strategy_refusal(kserve, "shadow")
    assert "neither the Gateway API nor KServe" in t.strategy_refusal(plain, "shadow")
    assert t.strategy_refusal(plain, "canary") == ""


def _api(server):
    config = kubernetes.client.Configuration(host=server.url)
    return kubernetes.client.ApiClient(config)


def _wait(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_emulator_serves_httproutes_with_gateway_status(kube_server):  # noqa: F811
    api = _api(kube_server)
    groups = {g.name for g in kubernetes.client.ApisApi(api).get_api_versions().groups}
    assert "gateway.networking.k8s.io" not in groups
    kube_server.call(lambda k: k.set_gateway_api(True))
    kube_server.call(lambda k: k.add_gateway("gateways", "public"))
    resources = kubernetes.client.CustomObjectsApi(api).get_api_resources("gateway.networking.k8s.io", "v1")
    assert {r.name for r in resources.resources} >= {"httproutes", "gateways"}
    custom = kubernetes.client.CustomObjectsApi(api)
    core = kubernetes.client.CoreV1Api(api)
    core.patch_namespaced_service("fraud-r1", "fraud-staging", t.render_revision_service(
        deployment="fraud", namespace="fraud-staging", labels=LABELS, revision=1, target_port=8080),
        field_manager="controlplane", force=True, _content_type="application/apply-patch+yaml")
    body = route()
    custom.patch_namespaced_custom_object("gateway.networking.k8s.io", "v1", "fraud-staging", "httproutes", "fraud",
                                          body, field_manager="controlplane", force=True,
                                          _content_type="application/apply-patch+yaml")

    def parents():
        live = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", "fraud-staging", "httproutes",
                                                   "fraud")
        return live if (live.get("status") or {}).get("parents") else None

    live = _wait(parents)
    served = t.served_by_http_route(live, deployment="fraud")
    assert served["split"] == {"1": 90, "2": 10}
    # fraud-r2 has no Service yet: the controller says so, and the read-back is not ready.
    assert served["ready"] is False and "fraud-r2" in served["note"]

    kube_server.call(lambda k: setattr(k, "route_outcome", "stuck"))
    body["spec"]["rules"][0]["backendRefs"][1]["weight"] = 20
    custom.patch_namespaced_custom_object("gateway.networking.k8s.io", "v1", "fraud-staging", "httproutes", "fraud",
                                          body, field_manager="controlplane", force=True,
                                          _content_type="application/apply-patch+yaml")
    time.sleep(0.4)
    live = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", "fraud-staging", "httproutes", "fraud")
    assert not (live.get("status") or {}).get("parents")  # a stuck controller reports nothing
    assert t.served_by_http_route(live, deployment="fraud")["note"] == "Not yet accepted by the Gateway."


def test_emulator_reports_kserve_canary_traffic(kube_server):  # noqa: F811
    kube_server.call(lambda k: k.set_kserve(True))
    custom = kubernetes.client.CustomObjectsApi(_api(kube_server))

    def apply(obj):
        custom.patch_namespaced_custom_object("serving.kserve.io", "v1beta1", "fraud-staging", "inferenceservices",
                                              "fraud", obj, field_manager="controlplane", force=True,
                                              _content_type="application/apply-patch+yaml")

    def served(latest, previous, percent):
        live = custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", "fraud-staging",
                                                   "inferenceservices", "fraud")
        result = t.served_by_inference_service(live, latest=latest, previous=previous)
        return result if result["ready"] and result["split"].get(str(latest)) == percent else None

    apply(isvc(None))
    assert _wait(lambda: served(1, None, 100))["split"] == {"1": 100}
    second = isvc(10)
    second["spec"]["predictor"]["model"]["storageUri"] = "s3://models/fraud/3"  # a new Knative revision
    apply(second)
    assert _wait(lambda: served(2, 1, 10))["split"] == {"1": 90, "2": 10}
