"""Rendered Gateway API and KServe objects checked against the upstream schemas, taken from packages
installed test-side under tests/harness/crds/ (`make test` installs them when missing: scripts/devstack.py):

- Gateway API: @kubernetes-models/gateway-api (npm) ships validators compiled from the CRDs' OpenAPI
  schemas; validate.mjs runs them (types, enums, required fields, bounds such as weight >= 0, percent <= 100).
- KServe: the kserve SDK's models are generated from the InferenceService CRD's OpenAPI schema; their
  `openapi_types` / `attribute_map` (read from the sources, never imported: see kserve-requirements.txt)
  give every field's type, and setters that refuse None mark required fields. Kubernetes core types
  (V1Container, …) come from the official client's models. Unknown fields are errors: the API server
  would prune them silently.
"""
import ast
import functools
import json
import re
import subprocess
from pathlib import Path

CRDS = Path(__file__).parent / "crds"
KSERVE_MODELS = CRDS / "python" / "kserve" / "models"
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}


class SchemasMissing(RuntimeError):
    pass


def gateway_api_errors(objects: list[dict]) -> list[list[str]]:
    """Per object, the schema errors (empty list: valid)."""
    if not (CRDS / "node_modules" / "@kubernetes-models" / "gateway-api").exists():
        raise SchemasMissing("Gateway API schemas are not installed: run `make test`, or `npm ci` in tests/harness/crds.")
    done = subprocess.run(["node", str(CRDS / "validate.mjs")], input=json.dumps(objects), capture_output=True,
                          text=True, cwd=CRDS, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"validate.mjs failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@functools.cache
def _kserve_models() -> dict[str, dict]:
    """{class name: {"fields": {json key: type}, "required": {json key}}} from the kserve SDK's sources."""
    if not KSERVE_MODELS.exists():
        raise SchemasMissing("KServe models are not installed: run `make test`, or `pip install --no-deps --target "
                             "tests/harness/crds/python -r tests/harness/crds/kserve-requirements.txt`.")
    models = {}
    for path in KSERVE_MODELS.glob("*.py"):
        source = path.read_text()
        for node in ast.parse(source).body:
            if not isinstance(node, ast.ClassDef):
                continue
            tables = {}
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name) \
                        and item.targets[0].id in ("openapi_types", "attribute_map"):
                    tables[item.targets[0].id] = ast.literal_eval(item.value)
            if len(tables) == 2:
                required = set(re.findall(r"Invalid value for `(\w+)`, must not be `None`", source))
                models[node.name] = {
                    "fields": {tables["attribute_map"][attr]: kind for attr, kind in tables["openapi_types"].items()},
                    "required": {tables["attribute_map"][attr] for attr in required if attr in tables["attribute_map"]}}
    return models


def _model(name: str) -> dict | None:
    if name in _kserve_models():
        return _kserve_models()[name]
    import kubernetes.client.models as core

    cls = getattr(core, name, None)
    if cls is None:
        return None
    return {"fields": {cls.attribute_map[a]: kind for a, kind in cls.openapi_types.items()}, "required": set()}


def _check(value, kind: str, path: str, errors: list[str]) -> None:
    # kserve writes list[X] / dict(str, X); the Kubernetes client List[X] / Dict[str, X]
    kind = re.sub(r"^List\[(.*)\]$", r"list[\1]", re.sub(r"^Dict\[(.*)\]$", r"dict(\1)", kind))
    if kind == "object":
        return
    if kind.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check(item, kind[5:-1], f"{path}[{index}]", errors)
        return
    if kind.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = kind[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            _check(item, inner, f"{path}.{key}", errors)
        return
    if kind in PRIMITIVES:
        if not isinstance(value, PRIMITIVES[kind]) or (kind == "int" and isinstance(value, bool)):
            errors.append(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
        return
    model = _model(kind)
    if model is None:
        errors.append(f"{path}: no schema for type {kind}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {kind} object, got {type(value).__name__}")
        return
    for key in sorted(model["required"] - set(value)):
        errors.append(f"{path}.{key}: required by {kind}")
    for key, item in value.items():
        if key not in model["fields"]:
            errors.append(f"{path}.{key}: unknown field of {kind}")
        elif item is not None:
            _check(item, model["fields"][key], f"{path}.{key}", errors)


def kserve_errors(obj: dict) -> list[str]:
    """Schema errors of one serving.kserve.io/v1beta1 InferenceService (metadata and status not checked)."""
    errors = []
    if obj.get("apiVersion") != "serving.kserve.io/v1beta1" or obj.get("kind") != "InferenceService":
        return [f"not a serving.kserve.io/v1beta1 InferenceService: {obj.get('apiVersion')} {obj.get('kind')}"]
    _check(obj.get("spec"), "V1beta1InferenceServiceSpec", "spec", errors)
    return errors
