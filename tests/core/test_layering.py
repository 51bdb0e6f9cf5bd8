"""Arrows point down, checked on the import graph (every import statement, lazy ones inside functions
included, read with ast from the source; nothing is imported):

- workers/ imports nothing from apps/ or Django: drivers are given plain data (workers/drivers/spec.py);
- apps/core imports no other app;
- the import cycles between apps packages are the known ones below and no others. Each is a real two-way
  dependency that needs a design change to break; when one is broken, remove it here (the test says so).
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Strongly connected groups of apps packages that import each other, and why they still do.
KNOWN_CYCLES = {
    frozenset({"audit", "outbox", "teams"}): (
        "teams' writes record audit events and enqueue webhooks (outbox); the audit log and the outbox admin "
        "are scoped by team membership (teams.selectors). Breaking it means moving membership checks below them."),
    frozenset({"costs", "deployments", "monitoring"}): (
        "the cost ledger attributes GPU time to clusters, deployments and revisions (deployments' models) and "
        "counts predictions from the monitoring log, while deployments admit and record usage through costs "
        "(capacity.py) and monitoring's alerts roll deployments back."),
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(top: str) -> dict[str, set[str]]:
    """{module under `top`: every module name it imports}, relative imports made absolute."""
    found = {}
    for path in sorted((ROOT / top).rglob("*.py")):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    names.add(".".join(base + ([node.module] if node.module else [])))
                else:
                    names.add(node.module)
        found[module] = names
    return found


def _top(name: str, depth: int) -> str:
    return ".".join(name.split(".")[:depth])


def app_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, names in imports("apps").items():
        source = module.split(".")[1] if module.count(".") else None
        if source is None:
            continue
        graph.setdefault(source, set())
        for name in names:
            if name.startswith("apps.") and name.count(".") and name.split(".")[1] != source:
                graph[source].add(name.split(".")[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset]:
    """Strongly connected components with more than one package (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), set()

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_workers_import_nothing_from_apps_or_django():
    wrong = sorted(f"{module} imports {name}" for module, names in imports("workers").items()
                   for name in names if _top(name, 1) in ("apps", "django", "controlplane"))
    assert not wrong, wrong


def test_core_imports_no_other_app():
    wrong = sorted(f"{module} imports {name}" for module, names in imports("apps/core").items()
                   for name in names if name.startswith("apps.") and _top(name, 2) != "apps.core")
    assert not wrong, wrong


def test_import_cycles_between_apps_are_only_the_known_ones():
    found = cycles(app_graph())
    new = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"New import cycles between apps packages: {new}; make one side stop importing the other"
    gone = [sorted(known) for known in KNOWN_CYCLES if known not in found]
    assert not gone, f"These cycles are (partly) broken, well done: update KNOWN_CYCLES to what remains: {gone}"


def test_the_graph_reader_sees_lazy_and_relative_imports():
    graph = imports("apps/deployments")
    assert "apps.deployments.drivers" in graph["apps.deployments.rollout"]  # from .drivers import driver_for
    assert "apps.registry.selectors" in graph["apps.deployments.review"]  # inside a function
