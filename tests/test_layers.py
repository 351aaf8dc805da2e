"""The package's import graph: no cycle of any kind, and no layer imports one above it.

Every import counts: top-level, inside a function, and under `TYPE_CHECKING`. The layers, from
the bottom:

- leaf: types, errors, the record, the per-request builder, config and small helpers;
- mechanisms: spans, the watchdog, providers, and the API apps call inside a request
  (`timer()`, `tag()`, `wide_event`);
- views (`otel_bridge.exporters.*`): the leaf layer only, and their own package;
- the engine (`otel_bridge.bridge` and its parts);
- assembly: the view registry;
- entry points: `instrument()`, the ASGI/WSGI wrappers, Django, Flask, zero-code, gunicorn,
  jobs, the CLI, testing helpers, and the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otel_bridge"

LEAF = {
    "otel_bridge._compiled",
    "otel_bridge._context",
    "otel_bridge._current_span",
    "otel_bridge._database",
    "otel_bridge._decorate",
    "otel_bridge._health",
    "otel_bridge._hosts",
    "otel_bridge._http",
    "otel_bridge._lanes",
    "otel_bridge._routeboard",
    "otel_bridge._scoreboard",
    "otel_bridge._supervised",
    "otel_bridge._secrets",
    "otel_bridge._strings",
    "otel_bridge._version",
    "otel_bridge._worker",
    "otel_bridge.builder",
    "otel_bridge.clock",
    "otel_bridge.config",
    "otel_bridge.errors",
    "otel_bridge.record",
    "otel_bridge.types",
}
MECHANISMS = {
    "otel_bridge._counted",
    "otel_bridge._foreign_spans",
    "otel_bridge._timer_plan",
    "otel_bridge._otel",
    "otel_bridge._spans",
    "otel_bridge._timer_spans",
    "otel_bridge._watchdog",
    "otel_bridge.tags",
    "otel_bridge.timers",
    "otel_bridge.wide_event",
}
ENGINE = {
    "otel_bridge.bridge",
    "otel_bridge.child_spans",
    "otel_bridge.closing",
    "otel_bridge.providers",
    "otel_bridge.http_metrics",
    "otel_bridge.timeouts",
}
ASSEMBLY = {"otel_bridge.registry"}
# Old public paths kept working by a lazy import up to where the name lives now (a module
# __getattr__, run only when the old name is used). Each is named here, with its reason.
COMPATIBILITY = {
    ("otel_bridge.exporters.pinba", "otel_bridge.jobs"): "ScriptMonitor's documented old path",
}
# Ranks: a module imports only modules of its own rank or below (and no cycle forms).
RANKS = {"leaf": 0, "mechanisms": 1, "views": 1, "engine": 2, "assembly": 3, "entry": 4}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer(name: str) -> str:
    if name in LEAF or name.startswith("otel_bridge.config."):
        return "leaf"
    if name in MECHANISMS:
        return "mechanisms"
    if name == "otel_bridge.exporters" or name.startswith("otel_bridge.exporters."):
        return "views"
    if name in ENGINE:
        return "engine"
    if name in ASSEMBLY:
        return "assembly"
    return "entry"


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every otel_bridge module `name` imports, wherever the import statement stands."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name`, the
            # module. (A package's __init__ runs for any of its modules, as the root's does
            # for every one: that is not counted, or everything would be one cycle.)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in targets if t in known] or [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {name: imports(name, path, known) for name, path in known.items()}
    for source, target in COMPATIBILITY:
        assert target in edges[source], f"{source} no longer needs its compatibility import"
        edges[source].discard(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_of_any_kind() -> None:
    assert cycles(graph()) == []


def test_no_layer_imports_one_above_it() -> None:
    upward = sorted(
        f"{name} ({layer(name)}) -> {target} ({layer(target)})"
        for name, targets in graph().items()
        for target in targets
        if RANKS[layer(target)] > RANKS[layer(name)]
    )
    assert upward == []


def test_views_import_only_the_leaf_layer_and_their_own_package() -> None:
    crossing = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if layer(name) == "views"
        for target in targets
        if layer(target) != "leaf"
        and not target.startswith(".".join(name.split(".")[:3]))
        and target != "otel_bridge.exporters"
    )
    assert crossing == []


@pytest.mark.parametrize("limit", [450])
def test_no_module_is_over_the_size_limit(limit: int) -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: size for name, size in sizes.items() if size > limit} == {}


def test_the_checker_sees_every_kind_of_import() -> None:
    """The graph counts imports inside functions and under TYPE_CHECKING (otel_bridge.django's
    lazy imports and type-only imports are among them)."""
    edges = graph()
    assert "otel_bridge.builder" in edges["otel_bridge._context"]  # top level
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
