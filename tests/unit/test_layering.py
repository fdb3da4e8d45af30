"""enduro's packages form layers: no import cycle between them, and storage at the bottom.

The graph is read from the source with `ast`, nothing is imported, so a cycle that only lazy
(function-level) or `TYPE_CHECKING` imports close is found too: those are still dependencies,
just hidden from the interpreter. A node of the graph is one subpackage of `enduro`
(`enduro.budgets`) or one top-level module (`enduro.cli`); imports inside one node are free.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "enduro"
ROOT = "enduro"
INIT = "enduro"
"""The node of `enduro/__init__.py`, which `from enduro import X` of a re-exported name hits."""
BOTTOM = "enduro.storage"
BENEATH = frozenset({"enduro.errors", "enduro._redact"})
"""Modules even storage may import: the error classes and the redaction rule, which import
nothing of enduro themselves (checked below), so they cannot close a cycle."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _node_of(module: str) -> str | None:
    """The graph node that owns dotted `module`, or None when it is outside enduro."""
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) == 1:
        return INIT
    return f"{ROOT}.{parts[1]}"


def _is_submodule(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).is_dir() or (PACKAGE / rel).with_suffix(".py").is_file()


def _imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every enduro module `path` imports, at any depth of the file, with its line."""
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from enduro import budgets` imports the subpackage, not a name of __init__.
                full = f"{base}.{alias.name}"
                yield (full if _is_submodule(full) else base), node.lineno


def _edges() -> dict[str, dict[str, list[str]]]:
    """node -> imported node -> the `file:line`s where the import is written."""
    edges: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = INIT if path == PACKAGE / "__init__.py" else _node_of(_module_name(path))
        assert source is not None
        edges.setdefault(source, {})
        for module, line in _imported(path):
            target = _node_of(module)
            if target is not None and target != source:
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                found = edges[source].setdefault(target, [])
                if where not in found:
                    found.append(where)
    return edges


def _cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_the_imports_it_must_judge() -> None:
    # Guards the test itself: a walker that found no edges would pass every layering check.
    edges = _edges()
    assert BOTTOM in edges["enduro.runner"]
    assert BOTTOM in edges["enduro.budgets"]
    assert "enduro.threads" in edges["enduro._cli_run"]  # `from enduro import threads`
    assert "enduro.graph" in edges[INIT]
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [
        ["a", "b", "c"]
    ]


def test_no_import_cycle_between_packages() -> None:
    edges = _edges()
    cycles = _cycles(edges)
    detail = [
        f"{a} -> {b} ({', '.join(edges[a][b])})"
        for cycle in cycles
        for a in cycle
        for b in cycle
        if b in edges.get(a, {})
    ]
    assert not cycles, "import cycle between enduro's packages:\n" + "\n".join(detail)


def test_storage_imports_nothing_above_it() -> None:
    edges = _edges()
    upward = {target: where for target, where in edges[BOTTOM].items() if target not in BENEATH}
    assert not upward, (
        f"{BOTTOM} is the bottom layer and may import only {sorted(BENEATH)}, the standard "
        f"library, psycopg, aiosqlite and LangGraph's savers, but imports {upward}"
    )


def test_what_storage_may_import_is_beneath_it() -> None:
    edges = _edges()
    for module in BENEATH:
        assert not edges[module], f"{module} must import nothing of enduro: {edges[module]}"
