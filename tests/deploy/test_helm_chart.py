"""The Helm chart (deploy/helm/controlplane) rendered offline by helm-python-sdk — Helm's own Go SDK as a
library, no binary, no cluster — for the default values and both CI overlays. Every object passes the
Kubernetes schemas (kubernetes-validate, strict) of the oldest version the chart declares and of the newest
known; every container is sized and restricted; probes resolve to real views; migrations run as a hook
before any pod of the release; RBAC grants nothing the Kubernetes driver does not call; the values schema
refuses bad values."""
import ast
import base64
import os
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings
from django.urls import resolve

from apps.core import health
from apps.core.metrics import MetricsView
from tests.deploy import kube_calls

ROOT = Path(settings.BASE_DIR)
CHART = ROOT / "deploy" / "helm" / "controlplane"
VALUE_SETS = {"default": None, "minimal": "ci/minimal-values.yaml", "production": "ci/production-values.yaml"}
RELEASE, NAMESPACE = "cp", "mlops"
DRIVERS = sorted((ROOT / "workers" / "drivers").glob("*.py"))
COST_COLLECTOR = ROOT / "apps" / "costs" / "collector.py"
CRD_KINDS = {"ServiceMonitor"}  # Prometheus Operator's; no schema in kubernetes-validate, checked below


def chart_metadata() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def declared_min_version() -> str:
    """The lower bound of Chart.yaml's kubeVersion (">=1.30.0-0" → "1.30.0")."""
    match = re.fullmatch(r">=\s*v?(\d+\.\d+\.\d+)(-0)?", chart_metadata()["kubeVersion"].strip())
    assert match, "kubeVersion must be a plain lower bound the tests can validate against"
    return match.group(1)


def overlay(name: str) -> dict | None:
    path = VALUE_SETS[name]
    return yaml.safe_load((CHART / path).read_text()) if path else None


def render(values: dict | None) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [doc for name, text in sorted(files.items()) if name.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(overlay(name)) for name in VALUE_SETS}


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    [obj] = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return obj


def pod_templates(objects: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"])
            for o in objects if o["kind"] in ("Deployment", "Job")]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def settings_env_reads() -> list[ast.Call]:
    """Every `env…("NAME", …)` call of controlplane/settings/."""
    return [node for path in (ROOT / "controlplane" / "settings").glob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("env")
            and node.args and isinstance(node.args[0], ast.Constant)]


def production_required_settings() -> set[str]:
    """Environment variables the settings refuse to start without in production (required_in_production)."""
    return {node.args[0].value for node in settings_env_reads()
            if any(k.arg == "required_in_production" and getattr(k.value, "value", False) is True
                   for k in node.keywords)}


def secret_settings() -> set[str]:
    """Settings named as secrets (…_SECRET, …_TOKEN, …_KEY, …_KEYS, …_PASSWORD), public keys aside."""
    return {node.args[0].value for node in settings_env_reads()
            if re.search(r"(SECRET|TOKEN|PASSWORD|_KEYS?)$", node.args[0].value) and "PUBLIC" not in node.args[0].value}


# ------------------------------------------------------------------------------------------ rendering

def test_chart_declares_its_kubernetes_version_and_renders_every_value_set(rendered):
    assert chart_metadata()["appVersion"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert kubernetes_validate.utils.major_minor(declared_min_version()) in {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    kinds = {name: {o["kind"] for o in objects} for name, objects in rendered.items()}
    assert {"Deployment", "Service", "Job", "ServiceAccount"} <= kinds["minimal"]
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds["default"]
    assert {"Role", "RoleBinding", "ClusterRole", "ServiceMonitor", "Ingress", "Secret"} <= kinds["production"]


@pytest.mark.parametrize("version", ["declared", "latest"])
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_passes_the_kubernetes_schemas(rendered, value_set, version):
    target = declared_min_version() if version == "declared" else kubernetes_validate.latest_version()
    checked = 0
    for obj in rendered[value_set]:
        if obj["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, target, strict=True)
        checked += 1
    assert checked >= 7


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_finds_nothing_at_the_declared_version(value_set):
    report = helm.lint(CHART, overlay(value_set), strict=True, kube_version=f"v{declared_min_version()}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], problems or report["errors"]


# ------------------------------------------------------------------------------------------ pods

@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_container_is_sized_and_restricted(rendered, value_set):
    templates = pod_templates(rendered[value_set])
    assert len(templates) >= 5  # web, a worker per queue, beat, migrations
    for where, template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            label = f"{where} container {container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], label
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True, label
            assert security["allowPrivilegeEscalation"] is False, label
            assert security["capabilities"] == {"drop": ["ALL"]}, label
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, label
            assert "privileged" not in security and "add" not in security["capabilities"], label
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in scratch, label


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_credentials_come_only_from_the_existing_secret(rendered, value_set):
    secret = (overlay(value_set) or {}).get("existingSecret", "controlplane-secrets")
    required = production_required_settings() | ({"METRICS_TOKEN"} if value_set == "production" else set())
    assert {"DJANGO_SECRET_KEY", "CONTROLPLANE_FERNET_KEYS", "DATABASE_URL", "REDIS_URL"} <= required
    for where, template in pod_templates(rendered[value_set]):
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            env = env_of(container)
            assert len(env) == len(container["env"]), f"{where}: a variable set twice"
            assert env["CONTROLPLANE_ENV"]["value"] == "production"
            for name in required:
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": secret, "key": name}, f"{where}: {name} must come from {secret}"
            for name in secret_settings():
                assert "secretKeyRef" in env[name]["valueFrom"], f"{where}: {name} is a secret; pass it from {secret}"
            mlflow = env["MLFLOW_TRACKING_URI"]
            assert mlflow.get("value", "").startswith("http") or mlflow["valueFrom"]["secretKeyRef"]["name"] == secret


def test_extra_secret_keys_pass_from_the_secret_too():
    [web] = [d for d in render({"extraSecretKeys": ["SSO_EXTRA_TOKEN"]}) if d["kind"] == "Deployment"
             and d["metadata"]["name"].endswith("-web")]
    env = env_of(web["spec"]["template"]["spec"]["containers"][0])
    assert env["SSO_EXTRA_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "controlplane-secrets", "key": "SSO_EXTRA_TOKEN", "optional": True}


def test_probes_point_at_the_health_views(rendered):
    for value_set, objects in rendered.items():
        [web] = named(objects, "Deployment", f"{RELEASE}-controlplane-web")["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for p in web["ports"]}
        names = [e["name"] for e in web["env"]]
        # The kubelet (and Prometheus) send Host: <pod IP>:<port>; Django answers 400 to a host it does not
        # allow, so the pod's own address is allowed, expanded from a variable defined before it.
        assert env_of(web)["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert "$(POD_IP)" in env_of(web)["DJANGO_ALLOWED_HOSTS"]["value"].split(",")
        assert names.index("POD_IP") < names.index("DJANGO_ALLOWED_HOSTS")
        for probe, view in (("readinessProbe", health.readyz), ("livenessProbe", health.healthz),
                            ("startupProbe", health.healthz)):
            get = web[probe]["httpGet"]
            assert resolve(get["path"]).func is view, f"{value_set}: {probe} {get['path']}"
            assert get["port"] in ports and "host" not in get and "httpHeaders" not in get
        assert web["command"][:2] == ["gunicorn", "controlplane.wsgi"]


def test_migrations_run_as_a_hook_before_any_pod_starts(rendered):
    for value_set, objects in rendered.items():
        [job] = of_kind(objects, "Job")
        hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
        assert hooks == {"pre-install", "pre-upgrade"}, value_set
        assert "migrate --noinput" in " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
        for obj in objects:
            if obj is not job:
                assert "helm.sh/hook" not in (obj["metadata"].get("annotations") or {}), obj["metadata"]["name"]
        for deployment in of_kind(objects, "Deployment"):
            init = deployment["spec"]["template"]["spec"]["initContainers"]
            assert any("migrate --check" in " ".join(c["command"]) for c in init), deployment["metadata"]["name"]


def test_production_values_pass_the_deploy_check_the_migration_job_runs(rendered, tmp_path):
    """The migration Job's environment (production overlay) with well-formed credentials in the Secret: the
    settings load and `manage.py check --deploy` finds nothing, so the hook does not stop a correct upgrade."""
    [job] = of_kind(rendered["production"], "Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1].startswith("python manage.py check --deploy --fail-level WARNING && ")
    secret = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
              "CONTROLPLANE_FERNET_KEYS": Fernet.generate_key().decode(),
              "AUDIT_HMAC_KEYS": f"k1:{secrets.token_hex(20)}",
              "AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
              "DATABASE_URL": "postgres://controlplane@127.0.0.1:5432/controlplane",
              "REDIS_URL": "redis://127.0.0.1:6379/0", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
              "METRICS_TOKEN": "scrape-token"}
    env = {"PATH": os.environ["PATH"]}
    for item in container["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if item["name"] == "POD_IP":
            env["POD_IP"] = "10.244.3.17"
        elif ref is None:  # $(NAME) expanded from the variables above, as the kubelet does
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif ref["key"] in secret:
            env[item["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional") is True, f"{ref['key']} is required but has no value here"
    env.update(HOME=str(tmp_path), CONTROLPLANE_DATA_DIR=str(tmp_path))
    started = subprocess.run([sys.executable, "-c", DEPLOY_CHECK_AND_SCRAPE], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode == 0 and started.stdout.split()[-2:] == ["200", "200"], started.stdout + started.stderr


# One Django start-up: the deploy check, then what the kubelet and Prometheus send (Host: <pod IP>:8000) through
# the whole middleware stack of these settings.
DEPLOY_CHECK_AND_SCRAPE = """
import os
os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
import django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("check", "--deploy", "--fail-level", "WARNING")
host = os.environ["POD_IP"] + ":8000"
print(Client().get("/healthz", HTTP_HOST=host).status_code)
print(Client().get("/metrics", HTTP_HOST=host, HTTP_AUTHORIZATION="Bearer scrape-token").status_code)
"""


# ------------------------------------------------------------------------------------------ processes

def test_a_worker_deployment_and_hpa_per_celery_queue(rendered):
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert queues == {"control", "bulk"}
    for value_set, objects in rendered.items():
        workers = {d["metadata"]["labels"]["controlplane.io/queue"]: d for d in of_kind(objects, "Deployment")
                   if "controlplane.io/queue" in d["metadata"]["labels"]}
        assert set(workers) == queues, f"{value_set}: a queue without a worker waits forever"
        for queue, deployment in workers.items():
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            command = container["command"]
            assert command[command.index("-Q") + 1] == queue
        sizes = {q: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
                 for q, d in workers.items()}
        assert sizes["control"] != sizes["bulk"], "each queue sized on its own"
        hpas = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")}
        expect = set() if value_set == "minimal" else {d["metadata"]["name"] for d in workers.values()}
        assert expect <= hpas and (value_set != "minimal" or not hpas)
        for name in hpas:
            assert "replicas" not in named(objects, "Deployment", name)["spec"], "the HPA owns the count"


def test_a_worker_liveness_probe_passes_while_a_real_worker_runs_and_fails_once_it_stops(
        rendered, private_broker, db, tmp_path, monkeypatch):
    from tests.harness.celery_worker import celery_worker

    probes = set()
    for value_set, objects in rendered.items():
        for deployment in of_kind(objects, "Deployment"):
            if "controlplane.io/queue" in deployment["metadata"]["labels"]:
                [container] = deployment["spec"]["template"]["spec"]["containers"]
                assert env_of(container)["CELERY_WORKER_LIVENESS_FILE"]["value"] == "/tmp/worker-alive"
                probes.add(tuple(container["livenessProbe"]["exec"]["command"]))
    [command] = probes
    alive = tmp_path / "worker-alive"
    probe = [sys.executable if part == "python" else part.replace("/tmp/worker-alive", str(alive)) for part in command]
    monkeypatch.setenv("CELERY_WORKER_LIVENESS_FILE", str(alive))
    with celery_worker(private_broker.url, tmp_path / "worker.log"):
        assert subprocess.run(probe).returncode == 0
    assert subprocess.run(probe, stderr=subprocess.DEVNULL).returncode != 0, "a stopped worker removes its file"
    alive.touch()
    os.utime(alive, (alive.stat().st_mtime - 120,) * 2)
    assert subprocess.run(probe).returncode != 0, "a file untouched for 2 minutes fails the probe"


def test_web_autoscales_behind_a_disruption_budget(rendered):
    objects = rendered["default"]
    web = named(objects, "Deployment", f"{RELEASE}-controlplane-web")
    [hpa] = [h for h in of_kind(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] ==
             web["metadata"]["name"]]
    assert hpa["spec"]["minReplicas"] >= 2
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    [pdb] = [p for p in of_kind(objects, "PodDisruptionBudget")
             if p["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()]
    assert pdb["spec"]["maxUnavailable"] == 1
    service = named(objects, "Service", web["metadata"]["name"])
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_beat_is_one_replica_replaced_not_rolled(rendered):
    for objects in rendered.values():
        beat = named(objects, "Deployment", f"{RELEASE}-controlplane-beat")
        assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
        assert not [h for h in of_kind(objects, "HorizontalPodAutoscaler")
                    if h["spec"]["scaleTargetRef"]["name"] == beat["metadata"]["name"]]


# ------------------------------------------------------------------------------------------ access

def rbac_grants(objects: list[dict], kind: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for role in of_kind(objects, kind) for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}


def test_rbac_grants_only_what_the_driver_calls_in_the_namespaces_it_manages(rendered):
    driver_calls = {c for path in DRIVERS for c in kube_calls.calls(path) if c.namespaced}
    driver = {(c.group, c.resource, c.verb) for c in driver_calls}
    exact = {(c.group, c.resource, c.verb) for c in driver_calls if c.exact}
    collector = {(c.group, c.resource, c.verb) for c in kube_calls.calls(COST_COLLECTOR) if not c.namespaced}
    assert ("apps", "deployments", "patch") in exact and ("", "pods", "list") in collector  # the reader works
    objects = rendered["production"]
    granted = rbac_grants(objects, "Role")
    assert granted <= driver, f"granted but never called: {sorted(granted - driver)}"
    # Built-in resources are resolved exactly; a missing grant would be a 403 on dispatch.
    assert exact <= granted, f"called but not granted: {sorted(exact - granted)}"
    assert {("serving.kserve.io", "inferenceservices", "patch"), ("gateway.networking.k8s.io", "httproutes", "patch")} \
        <= granted
    assert rbac_grants(objects, "ClusterRole") <= collector
    rbac = overlay("production")["rbac"]
    managed, gateway = set(rbac["namespaces"]), rbac["gatewayApi"]["gateway"]
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in of_kind(objects, "Role")}
    assert set(roles) == {(ns, f"{RELEASE}-controlplane-dispatch") for ns in managed} | {
        (gateway["namespace"], f"{RELEASE}-controlplane-gateway-reader")}
    assert roles[(gateway["namespace"], f"{RELEASE}-controlplane-gateway-reader")] == [{
        "apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways"], "resourceNames": [gateway["name"]],
        "verbs": ["get"]}]  # the one Gateway, read only
    for binding in of_kind(objects, "RoleBinding"):
        assert (binding["metadata"]["namespace"], binding["roleRef"]["name"]) in roles
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-controlplane",
                                        "namespace": NAMESPACE}]
    assert not of_kind(rendered["default"], "Role") and not of_kind(rendered["default"], "ClusterRole")


def test_network_policies_admit_only_the_ingress_and_listed_egress(rendered):
    objects = rendered["default"]
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(objects, "NetworkPolicy")}
    base, web = policies[f"{RELEASE}-controlplane-default"], policies[f"{RELEASE}-controlplane-web"]
    assert base["ingress"] == [] and set(base["policyTypes"]) == {"Ingress", "Egress"}
    for _, template in pod_templates(objects):
        assert base["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert {p["port"] for rule in base["egress"] for p in rule["ports"]} >= {53, 5432, 6379}
    assert [p["port"] for p in web["ingress"][0]["ports"]] == [8000]
    assert not of_kind(rendered["minimal"], "NetworkPolicy")


def test_service_monitor_scrapes_metrics_with_its_token(rendered):
    objects = rendered["production"]
    [monitor] = of_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["endpoints"]
    assert resolve(endpoint["path"]).func.view_class is MetricsView
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
        "name": overlay("production")["existingSecret"], "key": "METRICS_TOKEN"}}
    service = named(objects, "Service", f"{RELEASE}-controlplane-web")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert not of_kind(rendered["default"], "ServiceMonitor")


# ------------------------------------------------------------------------------------------ values schema

BAD_VALUES = {
    "web replicas zero": {"web": {"replicas": 0}},
    "unknown key": {"web": {"replicaCount": 3}},
    "container without requests": {"workers": {"bulk": {"resources": {"requests": None}}}},
    "container without a memory limit": {"web": {"resources": {"limits": {"memory": None}}}},
    "bad quantity": {"beat": {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}},
    "no existing secret": {"existingSecret": ""},
    "any host allowed": {"config": {"allowedHosts": ["*"]}},
    "pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "image digest not sha256": {"image": {"digest": "latest"}},
    "namespace not a DNS label": {"rbac": {"namespaces": ["ML_Serving"]}},
    "egress port out of range": {"networkPolicy": {"egress": [{"name": "x", "to": [{}], "ports": [70000]}]}},
    "queue name with spaces": {"workers": {"bulk jobs": {}}},
    "log level": {"config": {"logLevel": "LOUD"}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_schema_refuses_bad_values(values):
    with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications"):
        render(values)


def test_autoscaling_bounds_are_checked_across_values():
    with pytest.raises(helm.HelmRenderError, match="workers.bulk.autoscaling: minReplicas .5. is above maxReplicas .2."):
        render({"workers": {"bulk": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}})
