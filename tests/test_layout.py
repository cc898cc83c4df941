"""The package layout shows the architecture: the contract, the loader and the engine never
import what plugs into them (adapters, mutants), and no module imports itself in a circle,
counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spec_model", "harness", "suites")
PLUG_INS = ("harness.adapters", "harness.mutants")
CORE = ("harness.contract", "harness.loader", "harness.engine", "harness.results")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its body)."""
    modules = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    found.add(t)
        graph[name] = found
    return graph


def test_core_never_imports_its_plug_ins():
    graph = imports()
    bad = [(m, t) for m, ts in graph.items() if m.startswith(CORE) for t in ts
           if t.startswith(PLUG_INS)]
    assert not bad, bad


def test_spec_model_imports_nothing_outside_itself():
    graph = imports()
    bad = [(m, t) for m, ts in graph.items() if m.startswith("spec_model") for t in ts
           if not t.startswith("spec_model")]
    assert not bad, bad


def test_no_import_circles():
    graph = imports()
    # a package's __init__ that re-exports its own modules is not a circle of concepts
    def edges(m):
        return {t for t in graph[m] if not (m.startswith(t + ".") or t.startswith(m + "."))}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges(m)):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:10])
