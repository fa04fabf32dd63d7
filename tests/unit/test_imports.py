"""The import rules of docs/architecture.md, checked on the source (ast, nothing imported).

Every ``import`` counts, wherever it sits (module level, inside a function, under
``if TYPE_CHECKING``): an import moved into a function hides a cycle, it does not
remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fgcp", "inspection", "topologies", "lab", "fgcplab")
# package -> the project packages it must never import
FORBIDDEN = {
    "fgcp": {"topologies", "lab", "fgcplab"},  # a leaf: one cluster member
    "inspection": {"fgcp", "topologies", "lab", "fgcplab"},  # pure engines
    "topologies": {"fgcplab"},
    "lab": {"fgcplab"},  # the umbrella CLI sees everything, nothing sees it
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mods[module_name(path)] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (``from pkg import mod`` names the module mod)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            # the longest known module the name starts with (a.b.c -> a.b if c is a name)
            parts = t.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                out.add(".".join(parts))
    return out


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_walker_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "fgcp.component" in graph["fgcp.daemon"]  # from fgcp.component import ...
    assert "fgcp.ctl" in graph["fgcp.daemon"]  # from fgcp import ctl
    assert {"fgcp.ctl", "lab.cli", "topologies.cli"} <= graph["fgcplab.cli"]  # in functions
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_packages_import_only_downwards(pkg: str) -> None:
    bad = sorted(
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        if mod.split(".")[0] == pkg
        for dep in deps
        if dep.split(".")[0] in FORBIDDEN[pkg]
    )
    assert bad == []
