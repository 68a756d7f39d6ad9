"""The package's import graph has no cycle (issue 23 item 4: one composition root).

Function-level imports count: a lazy import hides a cycle from Python, not from the design.
Only ``bootstrap`` and the CLI map config to adapters; the domain imports none.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"

# No cycle is allowed, function-level imports included.
ALLOWED: set[frozenset[str]] = set()


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Nodes under a top-level ``if TYPE_CHECKING:``: never imported at run time."""
    hidden: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for n in ast.walk(node)}
    return hidden


def _targets(node: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    """What one import statement names, relative imports resolved (each ``from`` name too,
    as it may be a submodule)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            # A module's package is its parent; a package is its own.
            anchor = name.split(".") if is_package else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The module an import lands in: the longest known prefix of ``target``."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (module or function level)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = _type_checking_only(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            for target in _targets(node, name, is_package):
                found = _resolve(target, known) if target.startswith("pipeline") else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return found


def _package_and_children(component: set[str]) -> bool:
    """A package re-exporting its own submodules (parent <-> child) is not a design cycle."""
    return any(all(m == p or m.startswith(p + ".") for m in component) for p in component)


def test_the_walker_sees_function_level_and_relative_imports() -> None:
    tree = ast.parse("def f():\n    from .warehouse import DuckDBStore\n")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    targets = set(_targets(node, "pipeline.data.predlog", is_package=False))
    assert "pipeline.data.warehouse" in targets
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles() -> None:
    found = [c for c in cycles(import_graph()) if not _package_and_children(c) and c not in ALLOWED]
    shown = "\n".join(" <-> ".join(sorted(c)) for c in found)
    assert not found, f"import cycles in pipeline/ (function-level imports included):\n{shown}"


def test_the_domain_imports_no_adapter() -> None:
    adapters = ("pipeline.data", "pipeline.tracking", "pipeline.serving", "pipeline.cli")
    imported = import_graph()["pipeline.domain"]
    named = sorted(m for m in imported if m.startswith(adapters) or m == "pipeline.bootstrap")
    assert not named, f"pipeline.domain holds the ports; adapters are chosen in bootstrap: {named}"
