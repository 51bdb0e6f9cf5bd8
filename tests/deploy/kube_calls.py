"""The Kubernetes API calls a module makes, read from its source and the official client's own request
templates: every `kubernetes.client.<Api>(…).<method>` reference becomes the (API group, resource, verb)
that RBAC checks, so the chart's Roles can be held to what the code really calls.

A PATCH sent as server-side apply (`application/apply-patch+yaml`) that finds no object creates it, and the
API server authorizes that as `create` as well (apiserver endpoints/handlers/patch.go), so a module that
applies needs both verbs on what it patches. Custom-object methods take the group and plural as arguments; they are resolved from the module's string
constants wherever a call or tuple passes (GROUP, VERSION, namespace, PLURAL, …) in that order. A
`Watch().stream(list_fn, …)` turns the module's list calls into list + watch. Discovery (`/apis`, `/version`)
is not a resource and every authenticated client may read it.
"""
import ast
import functools
import importlib.util
import re
from pathlib import Path


VERBS = {("GET", True): "get", ("GET", False): "list", ("PATCH", True): "patch", ("PUT", True): "update",
         ("POST", False): "create", ("DELETE", True): "delete", ("DELETE", False): "deletecollection"}


def _string_constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names, values = ([target], [node.value]) if isinstance(target, ast.Name) else (
                (target.elts, node.value.elts) if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                else ([], []))
            for name, value in zip(names, values):
                if isinstance(name, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    out[name.id] = value.value
    return out


def _custom_resources(tree: ast.Module, constants: dict[str, str]) -> set[tuple[str, str]]:
    """(group, plural) pairs passed positionally as (GROUP, VERSION, namespace, PLURAL)."""
    pairs = set()
    for node in ast.walk(tree):
        seq = node.elts if isinstance(node, ast.Tuple) else node.args if isinstance(node, ast.Call) else []
        for i in range(len(seq) - 3):
            group, version, plural = seq[i], seq[i + 1], seq[i + 3]
            if all(isinstance(n, ast.Name) and n.id in constants for n in (group, version, plural)):
                pairs.add((constants[group.id], constants[plural.id]))
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


def _request(api: str, method: str) -> tuple[str, str]:
    """(HTTP method, path template) of one client method, from its generated serializer."""
    match = re.search(rf"def _{method}_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'",
                      _api_source(api), re.DOTALL)
    return match.group(1), match.group(2)


def calls(path: Path) -> set[tuple[str, str, str, bool]]:
    """(group, resource, verb, namespaced) for every API call in the module at `path`."""
    source = path.read_text()
    tree = ast.parse(source)
    constants = _string_constants(tree)
    custom = _custom_resources(tree, constants)
    watched = "Watch()" in source and ".stream(" in source
    applies = "application/apply-patch" in source
    out = set()
    for api, method in _client_methods(tree):
        http, template = _request(api, method)
        parts = template.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[2:]
        elif parts[0] == "apis" and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            continue  # discovery: /apis, /version, /apis/{group}/{version}
        namespaced = rest[:2] == ["namespaces", "{namespace}"]
        rest = rest[2:] if namespaced else rest
        if not rest:
            continue
        item = len(rest) > 1 and rest[1] == "{name}"
        resource = rest[0] + (f"/{rest[2]}" if item and len(rest) > 2 else "")
        verb = VERBS[(http, item)]
        targets = custom if group == "{group}" else {(group, resource)}
        for target_group, target_resource in targets:
            target_resource = target_resource if group != "{group}" else resource.replace("{plural}", target_resource)
            out.add((target_group, target_resource, verb, namespaced))
            if verb == "list" and watched:
                out.add((target_group, target_resource, "watch", namespaced))
            if verb == "patch" and applies:
                out.add((target_group, target_resource, "create", namespaced))
    return out
