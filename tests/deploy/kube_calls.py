"""The Kubernetes API calls a module makes, read from its source and the official client's own request
templates: every `kubernetes.client.<Api>(…).<method>` reference becomes the (API group, resource, verb)
that RBAC checks, so the chart's Roles can be held to what the code really calls.

- A PATCH sent as server-side apply (`application/apply-patch+yaml`) that finds no object creates it, and
  the API server authorizes that as `create` as well (apiserver endpoints/handlers/patch.go), so a module
  that applies needs both verbs on what it patches.
- A `Watch().stream(list_fn, …)` turns the module's list calls into list + watch.
- Custom-object methods take the group and plural as arguments. They are resolved from the string
  constants of the module's package wherever a tuple or call passes (GROUP, VERSION, PLURAL) or
  (GROUP, VERSION, namespace, PLURAL); each custom verb the module uses is counted for each custom resource
  it names, an over-approximation marked `exact=False`.
- Discovery (`/apis`, `/apis/{group}/{version}`, `/version`) is not a resource; every authenticated client
  may read it.
"""
import ast
import functools
import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

VERBS = {("GET", True): "get", ("GET", False): "list", ("PATCH", True): "patch", ("PUT", True): "update",
         ("POST", False): "create", ("DELETE", True): "delete", ("DELETE", False): "deletecollection"}
GROUP, VERSION, PLURAL = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+"), re.compile(r"v\d+(alpha\d+|beta\d+)?"), \
    re.compile(r"[a-z]+")


class Call(NamedTuple):
    group: str
    resource: str
    verb: str
    namespaced: bool
    exact: bool  # False: a custom-object verb counted for every custom resource the module names


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "…"` and `A, B = "…", "…"`."""
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                pairs = [(target, node.value)]
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts))
            else:
                pairs = []
            for name, value in pairs:
                if isinstance(name, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    out[name.id] = value.value
    return out


def _constant(node: ast.AST, constants: dict[str, str]) -> str | None:
    """A constant by name (`KSERVE_GROUP`) or through its module (`t.GATEWAY_GROUP`)."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return constants.get(name)


def _custom_resources(tree: ast.Module, constants: dict[str, str]) -> set[tuple[str, str]]:
    pairs = set()
    for node in ast.walk(tree):
        seq = node.elts if isinstance(node, ast.Tuple) else node.args if isinstance(node, ast.Call) else []
        values = [_constant(n, constants) for n in seq]
        for i in range(len(values) - 2):
            group, version = values[i], values[i + 1]
            if not (group and version and GROUP.fullmatch(group) and VERSION.fullmatch(version)):
                continue
            for plural in values[i + 2:i + 4]:
                if plural and PLURAL.fullmatch(plural):
                    pairs.add((group, plural))
                    break
    return pairs


def _api_class(node: ast.AST) -> str | None:
    """`kubernetes.client.<Api>(…)` → "<Api>"."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.endswith("Api") \
            and ast.unparse(node.func.value) == "kubernetes.client":
        return node.func.attr
    return None


def _client_methods(tree: ast.Module) -> set[tuple[str, str]]:
    """(Api class, method) for every `kubernetes.client.<Api>(…).<method>` in the module, directly or through
    a name bound to the Api object (`core = kubernetes.client.CoreV1Api(api)`; `core.list_…`)."""
    bound = {node.targets[0].id: _api_class(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
             and _api_class(node.value)}
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        api = _api_class(node.value) or (bound.get(node.value.id) if isinstance(node.value, ast.Name) else None)
        if api:
            out.add((api, node.attr))
    return out


@functools.cache
def _api_source(api: str) -> str:
    # Found, not imported: importing the generated CoreV1Api module alone takes seconds.
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", api).lower()
    return (Path(importlib.util.find_spec("kubernetes").origin).parent / "client" / "api" / f"{module}.py").read_text()


def _request(api: str, method: str) -> tuple[str, str] | None:
    """(HTTP method, path template) of one client method, from its generated serializer."""
    match = re.search(rf"def _{method}_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'",
                      _api_source(api), re.DOTALL)
    return (match.group(1), match.group(2)) if match else None


def calls(path: Path) -> set[Call]:
    """Every API call of the module at `path` (constants resolved across its package)."""
    source = path.read_text()
    tree = ast.parse(source)
    constants = {}
    for sibling in sorted(path.parent.glob("*.py")):
        constants.update(_string_constants(ast.parse(sibling.read_text())))
    custom = _custom_resources(tree, constants)
    watched = "Watch()" in source and ".stream(" in source
    applies = "application/apply-patch" in source
    out = set()
    for api, method in _client_methods(tree):
        request = _request(api, method)
        if request is None:
            continue  # not an API request (e.g. api_client helpers)
        http, template = request
        parts = template.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[2:]
        elif parts[0] == "apis" and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            continue  # discovery
        namespaced = rest[:2] == ["namespaces", "{namespace}"]
        rest = rest[2:] if namespaced else rest
        if not rest:
            continue
        item = len(rest) > 1 and rest[1] == "{name}"
        subresource = f"/{rest[2]}" if item and len(rest) > 2 else ""
        verb = VERBS[(http, item)]
        if group == "{group}":
            targets = [(g, plural + subresource, False) for g, plural in custom]
        else:
            targets = [(group, rest[0] + subresource, True)]
        for target_group, resource, exact in targets:
            out.add(Call(target_group, resource, verb, namespaced, exact))
            if verb == "list" and watched:
                out.add(Call(target_group, resource, "watch", namespaced, exact))
            if verb == "patch" and applies:
                out.add(Call(target_group, resource, "create", namespaced, exact))
    return out
