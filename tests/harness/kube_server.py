"""A Kubernetes API server for tests: kmock's KubernetesEmulator on a loopback port, in its own thread,
extended where the driver relies on behaviour kmock 0.8 simplifies (see the kmock docs' invitation to
subclass). Semantics follow the Kubernetes API reference:

- create (POST) answers 201 Created with the stored object (kmock answers 200);
- server-side apply (PATCH, `application/apply-patch+yaml`, `fieldManager` required) creates a missing
  object (201) or merges into the existing one (200), recording the manager in managedFields;
- metadata.uid, resourceVersion, generation (bumped when spec changes) and creationTimestamp are set;
- discovery serves the KServe InferenceService CRD only when `set_kserve(True)`, and the Gateway API
  (HTTPRoute, Gateway) only when `set_gateway_api(True)`;
- a fake controller moves Deployment / InferenceService / Job status to ready / failed after a delay;
  for an InferenceService it also reports the Knative traffic split that `canaryTrafficPercent` asks for,
  and for an HTTPRoute the parent status a Gateway controller writes (Accepted when the parent Gateway
  exists, ResolvedRefs when every backend Service exists; `route_outcome = "stuck"` writes none);
- every HTTPRoute and InferenceService body applied is kept in `applied_bodies` (schema checks in tests);
- `fail_next(status, count)` and `delay_next(seconds, count)` inject 5xx answers and timeouts.

The driver under test talks to it through the official client only; nothing here is patched into it.
It is one module past 400 lines because each fake controller sits next to the API behaviour it reacts to.
"""
import asyncio
import copy
import datetime
import itertools
import json
import threading
import uuid
from collections import deque

import aiohttp.web
import pytest
from kmock import KubernetesEmulator, KubernetesObjectNotFoundError, Server, resource
from kmock._internal import enums

RESOURCES = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False, "singular": "namespace"},
    "v1/services": {"kind": "Service", "namespaced": True, "singular": "service"},
    "v1/pods": {"kind": "Pod", "namespaced": True, "singular": "pod"},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True, "singular": "deployment"},
    "autoscaling/v2/horizontalpodautoscalers": {"kind": "HorizontalPodAutoscaler", "namespaced": True,
                                                "singular": "horizontalpodautoscaler"},
    "batch/v1/jobs": {"kind": "Job", "namespaced": True, "singular": "job"},
    "networking.k8s.io/v1/networkpolicies": {"kind": "NetworkPolicy", "namespaced": True,
                                             "singular": "networkpolicy"},
}
KSERVE = "serving.kserve.io/v1beta1/inferenceservices"
GATEWAY_API = {"gateway.networking.k8s.io/v1/httproutes": {"kind": "HTTPRoute", "singular": "httproute"},
               "gateway.networking.k8s.io/v1/gateways": {"kind": "Gateway", "singular": "gateway"}}
GATEWAY_CONTROLLER = "example.test/gateway-controller"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
APPLY = "application/apply-patch+yaml"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(into: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


class KubeApiEmulator(KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.kserve = False
        self.outcome = "ready"  # what the fake controller reports: "ready", "failed" or "stuck"
        self.route_outcome = "accepted"  # HTTPRoute parent status: "accepted" (when refs resolve) or "stuck"
        self.applied_bodies: list[dict] = []
        self._isvc_revisions: dict[tuple, dict] = {}  # Knative revisions per InferenceService (latest, previous)
        self.controller_delay = 0.2
        self.faults: deque = deque()
        self.applied: list[tuple[float, str, str]] = []  # (monotonic time, kind/namespace/name, fieldManager)
        self._rv = itertools.count(1000)
        for key, info in RESOURCES.items():
            self.resources[key] = {"kind": info["kind"], "namespaced": info["namespaced"],
                                   "singular": info["singular"], "verbs": VERBS, "subresources": ["status"]}
        self.set_kserve(False)
        self.set_gateway_api(False)

    def set_kserve(self, served: bool) -> None:
        self.kserve = served
        if served:
            self.resources[KSERVE] = {"kind": "InferenceService", "namespaced": True, "singular": "inferenceservice",
                                      "verbs": VERBS, "subresources": ["status"], "shortnames": ["isvc"]}
        elif resource(KSERVE) in list(self.resources):
            del self.resources[KSERVE]

    def set_gateway_api(self, served: bool) -> None:
        for key, info in GATEWAY_API.items():
            if served:
                self.resources[key] = {"kind": info["kind"], "namespaced": True, "singular": info["singular"],
                                       "verbs": VERBS, "subresources": ["status"]}
            elif resource(key) in list(self.resources):
                del self.resources[key]

    def add_gateway(self, namespace: str, name: str, address: str = "10.0.0.10") -> None:
        """A Gateway as its implementation reports it: programmed, with an address."""
        body = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"gatewayClassName": "example", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
                "status": {"addresses": [{"type": "IPAddress", "value": address}],
                           "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed"}]}}
        self._stamp(body, manager="gateway-implementation", old=None)
        self._store((resource("gateway.networking.k8s.io/v1/gateways"), namespace, name), body)

    def fail_next(self, status: int = 503, count: int = 1, methods=("PATCH", "POST", "GET")) -> None:
        for _ in range(count):
            self.faults.append(("status", status, set(methods)))

    def delay_next(self, seconds: float, count: int = 1, methods=("PATCH", "POST", "GET")) -> None:
        for _ in range(count):
            self.faults.append(("delay", seconds, set(methods)))

    def get(self, plural_key: str, namespace: str, name: str) -> dict | None:
        key = (resource(plural_key), namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(self._objects[key].raw)

    # ---------------------------------------------------------------- request handling

    def _stamp(self, obj: dict, *, manager: str, old: dict | None) -> dict:
        meta = obj.setdefault("metadata", {})
        old_meta = (old or {}).get("metadata", {})
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or _now()
        meta["resourceVersion"] = str(next(self._rv))
        generation = old_meta.get("generation", 0)
        if old is None or old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation or 1
        if manager:
            meta["managedFields"] = [{"manager": manager, "operation": "Apply", "apiVersion": obj.get("apiVersion"),
                                      "time": _now(), "fieldsType": "FieldsV1"}]
        return obj

    async def _handle(self, request):
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        while self.faults and method in self.faults[0][2]:
            kind, value, _ = self.faults.popleft()
            if kind == "delay":
                await asyncio.sleep(value)
                break
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                              "code": value, "reason": "InternalError" if value == 500 else "ServiceUnavailable",
                                              "message": f"injected {value} from the test API server"}, status=value)
        if request.resource is None:
            # The official client asks for "/apis/" and "/api/" (trailing slash); kmock routes only the bare path.
            if request.url.path == "/apis/":
                return aiohttp.web.json_response(await self._serve_apis(request))
            if request.url.path == "/api/":
                return aiohttp.web.json_response(await self._serve_api(request))
            if request.url.path == "/version/":
                return aiohttp.web.json_response(await self._serve_server_version(request))
            return await super()._handle(request)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if method == "PATCH" and content_type == APPLY and request.name:
            return await self._apply(request)
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            return await self._create(request)
        return await super()._handle(request)

    def _error(self, code: int, reason: str, message: str):
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                          "code": code, "reason": reason, "message": message}, status=code)

    async def _create(self, request):
        body = copy.deepcopy(request.data)
        name = body.get("metadata", {}).get("name")
        namespace = request.namespace or body.get("metadata", {}).get("namespace")
        key = (request.resource, namespace, name)
        async with self._lock:
            if key in self._objects and not self._objects[key].deleted:
                return self._error(409, "AlreadyExists", f'{request.resource.plural} "{name}" already exists')
            if namespace:
                body["metadata"]["namespace"] = namespace
            self._stamp(body, manager=request.params.get("fieldManager", ""), old=None)
            self._store(key, body)
            await self._buses[request.resource].put({"type": "ADDED", "object": body})
        self._controller(request.resource, namespace, name)
        return aiohttp.web.json_response(body, status=201)

    async def _apply(self, request):
        manager = request.params.get("fieldManager")
        if not manager:
            return self._error(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                                               "value: is required for apply patch")
        try:
            body = request.data if isinstance(request.data, dict) else json.loads(request.text)
        except ValueError:
            import yaml

            body = yaml.safe_load(request.text)
        name, namespace = request.name, request.namespace
        if body.get("metadata", {}).get("name") not in (None, name):
            return self._error(400, "BadRequest", "the name of the object does not match the name on the URL")
        key = (request.resource, namespace, name)
        async with self._lock:
            exists = key in self._objects and not self._objects[key].deleted
            old = copy.deepcopy(self._objects[key].raw) if exists else None
            previous_manager = ((old or {}).get("metadata", {}).get("managedFields") or [{}])[0].get("manager")
            if exists and previous_manager != manager:
                merged = _merge(copy.deepcopy(old), body)  # another manager's fields stay
            else:
                # The same manager re-applying owns exactly what it sends now: fields it dropped go away.
                merged = copy.deepcopy(body)
                if exists:
                    merged.setdefault("metadata", {}).update(
                        {k: v for k, v in old["metadata"].items() if k not in merged["metadata"]})
                    if "status" in old:
                        merged["status"] = old["status"]
            merged.setdefault("metadata", {}).update({"name": name, **({"namespace": namespace} if namespace else {})})
            self._stamp(merged, manager=manager, old=old)
            if exists and old.get("status"):
                merged["status"] = old["status"] if old.get("spec") == merged.get("spec") else {}
            self._store(key, merged)
            self.applied.append((asyncio.get_running_loop().time(), f"{body.get('kind')}/{namespace}/{name}", manager))
            if body.get("kind") in ("HTTPRoute", "InferenceService"):
                self.applied_bodies.append(copy.deepcopy(body))
            await self._buses[request.resource].put({"type": "MODIFIED" if exists else "ADDED", "object": merged})
        self._controller(request.resource, namespace, name)
        return aiohttp.web.json_response(merged, status=200 if exists else 201)

    def _store(self, key, body: dict) -> None:
        if key in self._objects:
            self._objects[key].create(body) if self._objects[key].deleted else None
            current = self._objects[key]
            # Replace, not merge: the stored object is exactly what we computed.
            for field in list(current.raw):
                if field not in body:
                    del current[field]
            for field, value in body.items():
                current[field] = value
        else:
            self._objects[key] = body

    async def _serve_fetch(self, request):
        """kmock scans every stored object for each GET; a keyed lookup keeps a thousand objects cheap."""
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise KubernetesObjectNotFoundError(reason="NotFound",
                                                    message=f'{request.resource.plural} "{request.name}" not found')
            return copy.deepcopy(self._objects[key].raw)

    async def _serve_watch(self, request):
        """kmock's watch, honouring `fieldSelector=metadata.name=…` as the real API server does (kmock
        streams every object of the resource, which makes N watchers cost N² events)."""
        selector = request.params.get("fieldSelector", "")
        name = selector.split("=", 1)[1] if selector.startswith("metadata.name=") else None

        def wanted(obj: dict) -> bool:
            meta = obj.get("metadata", {})
            return ((request.namespace is None or meta.get("namespace") == request.namespace)
                    and (name is None or meta.get("name") == name))

        yield b""
        async with self._lock:
            if name is not None and request.namespace is not None:  # keyed: no scan of every object
                key = (request.resource, request.namespace, name)
                existing = [self._objects[key].raw] if key in self._objects and not self._objects[key].deleted else []
            else:
                existing = [obj.raw for (res, _, _), obj in self._objects.items()
                            if res == request.resource and not obj.deleted]
        for raw in existing:
            if wanted(raw):
                yield {"type": "ADDED", "object": raw}
        async for event in self._buses[request.resource]:
            if wanted(event.get("object", {})):
                yield event

    # ---------------------------------------------------------------- fake controller

    def _controller(self, res, namespace, name) -> None:
        if res.plural == "httproutes" and self.route_outcome != "stuck":
            asyncio.get_running_loop().call_later(self.controller_delay,
                                                  lambda: asyncio.ensure_future(self._settle(res, namespace, name)))
        if res.plural in ("deployments", "inferenceservices", "jobs") and self.outcome != "stuck":
            asyncio.get_running_loop().call_later(self.controller_delay,
                                                  lambda: asyncio.ensure_future(self._settle(res, namespace, name)))

    async def _settle(self, res, namespace, name) -> None:
        key = (res, namespace, name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return
            obj = copy.deepcopy(self._objects[key].raw)
            generation = obj["metadata"].get("generation", 1)
            ok = self.outcome == "ready"
            if res.plural == "deployments":
                replicas = obj.get("spec", {}).get("replicas", 1)
                obj["status"] = ({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                                  "readyReplicas": replicas, "availableReplicas": replicas,
                                  "conditions": [{"type": "Available", "status": "True"},
                                                 {"type": "Progressing", "status": "True",
                                                  "reason": "NewReplicaSetAvailable"}]}
                                 if ok else
                                 {"observedGeneration": generation, "replicas": replicas, "unavailableReplicas": replicas,
                                  "conditions": [{"type": "Progressing", "status": "False",
                                                  "reason": "ProgressDeadlineExceeded",
                                                  "message": f'ReplicaSet "{name}" has timed out progressing: '
                                                             f'ImagePullBackOff'}]})
            elif res.plural == "httproutes":
                obj["status"] = {"parents": [self._route_parent(obj, ref) for ref in obj["spec"].get("parentRefs", [])]}
            elif res.plural == "inferenceservices":
                obj["status"] = ({"observedGeneration": generation, "url": f"http://{name}.{namespace}.example.test",
                                  "conditions": [{"type": "Ready", "status": "True"}],
                                  "components": {"predictor": self._isvc_traffic(key, obj)}}
                                 if ok else
                                 {"observedGeneration": generation,
                                  "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed",
                                                  "message": "Revision failed: model could not be loaded"}],
                                  "modelStatus": {"transitionStatus": "BlockedByFailedLoad"}})
            else:  # jobs
                obj["status"] = ({"succeeded": 1, "completionTime": _now(),
                                  "conditions": [{"type": "Complete", "status": "True"}]}
                                 if ok else
                                 {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                               "reason": "BackoffLimitExceeded",
                                                               "message": "Job has reached the specified backoff limit"}]})
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self._store(key, obj)
            await self._buses[res].put({"type": "MODIFIED", "object": obj})


    def _isvc_traffic(self, key, obj: dict) -> dict:
        """Knative makes a new revision when the predictor changes (canaryTrafficPercent aside); KServe then
        sends canaryTrafficPercent to the latest ready revision and the rest to the previous rolled-out one."""
        predictor = copy.deepcopy(obj["spec"]["predictor"])
        canary = predictor.pop("canaryTrafficPercent", None)
        state = self._isvc_revisions.get(key)
        if state is None or state["spec"] != predictor:
            number = (state["number"] + 1) if state else 1
            previous = state["latest"] if state else None
            state = {"spec": predictor, "number": number, "latest": f"{key[2]}-predictor-{number:05d}",
                     "previous": previous}
            self._isvc_revisions[key] = state
        if canary is None or state["previous"] is None:
            traffic = [{"revisionName": state["latest"], "percent": 100, "latestRevision": True, "tag": "latest"}]
        else:
            traffic = [{"revisionName": state["latest"], "percent": canary, "latestRevision": True, "tag": "latest"},
                       {"revisionName": state["previous"], "percent": 100 - canary, "latestRevision": False,
                        "tag": "prev"}]
        return {"latestReadyRevision": state["latest"], "latestCreatedRevision": state["latest"],
                "previousRolledoutRevision": state["previous"], "traffic": traffic}

    def _route_parent(self, route: dict, ref: dict) -> dict:
        """A Gateway controller's verdict on one parentRef of an HTTPRoute."""
        namespace = route["metadata"]["namespace"]
        gateway = (resource("gateway.networking.k8s.io/v1/gateways"), ref.get("namespace", namespace), ref["name"])
        accepted = gateway in self._objects and not self._objects[gateway].deleted
        missing = [b["name"] for rule in route["spec"].get("rules", []) for b in rule.get("backendRefs", [])
                   if (resource("v1/services"), namespace, b["name"]) not in self._objects
                   or self._objects[(resource("v1/services"), namespace, b["name"])].deleted]
        generation = route["metadata"].get("generation", 1)
        return {"parentRef": ref, "controllerName": GATEWAY_CONTROLLER, "conditions": [
            {"type": "Accepted", "status": "True" if accepted else "False",
             "reason": "Accepted" if accepted else "NoMatchingParent", "observedGeneration": generation,
             "message": "" if accepted else f"Gateway {gateway[1]}/{gateway[2]} not found"},
            {"type": "ResolvedRefs", "status": "False" if missing else "True",
             "reason": "BackendNotFound" if missing else "ResolvedRefs", "observedGeneration": generation,
             "message": f"Services not found: {', '.join(missing)}" if missing else ""}]}


class KubeServer:
    """Runs the emulator's event loop in a thread so synchronous test and driver code can call it."""

    def __init__(self):
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.kmock: KubeApiEmulator | None = None
        self.url = ""

    async def _main(self):
        self._stop = asyncio.Event()
        async with KubeApiEmulator() as kmock, Server(kmock) as server:
            self.kmock = kmock
            self.url = f"http://{server.host}:{server.port}"
            self.ready.set()
            await self._stop.wait()

    def start(self) -> "KubeServer":
        self.thread.start()
        if not self.ready.wait(15):
            raise RuntimeError("The Kubernetes test API server did not start")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    def call(self, fn, *args):
        """Run fn(kmock, *args) on the server's loop (for state the loop owns)."""
        return asyncio.run_coroutine_threadsafe(self._call(fn, *args), self.loop).result(10)

    async def _call(self, fn, *args):
        return fn(self.kmock, *args)


@pytest.fixture
def kube_server():
    server = KubeServer().start()
    yield server
    server.stop()
