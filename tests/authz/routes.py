"""Enumerates every route under /api/v1/ from the URL conf, with the capability each method needs."""
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

READ_METHODS = {"get"}
IGNORED_METHODS = {"head", "options"}


@dataclass(frozen=True)
class Route:
    name: str  # "api:team-list"
    method: str  # "get", "post", ...
    action: str  # viewset action or the APIView method
    capability: str
    lookup_capability: str  # what the selector requires to find the object at all (else 404)
    is_detail: bool
    is_list: bool

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.name}"


def _walk(patterns, namespace: str | None, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            yield from _walk(entry.url_patterns, ns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and namespace == "api" and entry.name:
            yield f"api:{entry.name}", prefix + str(entry.pattern), entry.callback


def api_routes() -> list[Route]:
    routes = []
    for name, pattern, callback in _walk(get_resolver().url_patterns, None):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class")
        actions = getattr(callback, "actions", None)
        capabilities = getattr(view_class, "capabilities", None)
        if capabilities is None:
            raise AssertionError(f"{view_class.__name__} ({name}) declares no `capabilities` table")
        is_detail = "<" in pattern or "(?P<" in pattern
        methods = actions.items() if actions else [
            (m, m) for m in view_class.http_method_names if m not in IGNORED_METHODS and hasattr(view_class, m)
        ]
        for method, action in methods:
            if method in IGNORED_METHODS:
                continue
            if action not in capabilities:
                raise AssertionError(f"{view_class.__name__}.capabilities has no entry for action '{action}'")
            routes.append(Route(name=name, method=method, action=action, capability=capabilities[action],
                                lookup_capability=capabilities.get("retrieve", capabilities[action]), is_detail=is_detail, is_list=(action == "list")))
    return sorted(routes, key=lambda r: (r.name, r.method))
