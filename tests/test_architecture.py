"""The package's layers point down only, function-level imports included (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import vlogger

ROOT = Path(vlogger.__file__).parent

# a package may import its own layer's modules of the same package and any lower layer
LAYERS = {
    "core": 0,
    "zoo": 0,
    "body": 1,
    "preprocessing": 2,
    "datasets": 2,
    "models": 2,
    "evaluation": 2,
    "training": 3,
    "generation": 4,
    "benchmark": 5,
    "cli": 6,
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the vlogger modules it imports anywhere in its file (top level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        mod, names = _module(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlogger"):
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names if a.name.startswith("vlogger")}
        graph[mod] = names
    known = set(graph)
    return {m: {n for n in names if n in known and n != m} for m, names in graph.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    packages = {_package(m) for m in import_graph()} - {""}
    assert packages <= set(LAYERS), f"packages without a layer: {packages - set(LAYERS)}"


def test_packages_import_only_lower_layers():
    upward = [
        f"{m} -> {n}"
        for m, names in import_graph().items()
        for n in names
        if _package(m) and _package(n) and _package(n) != _package(m) and LAYERS[_package(n)] >= LAYERS[_package(m)]
    ]
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_module_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)
