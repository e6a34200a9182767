"""The package's structure: its import graph has no cycle, and no layer imports a higher one.

Every ``import`` of ``luigis_async`` counts, the lazy ones inside functions included.
The layers are written down once, here, lowest first; a module may import its own layer's
package (``cli`` importing ``cli.journal``) and anything below it, nothing above.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import luigis_async.reconcile

ROOT = Path(__file__).resolve().parents[1] / "luigis_async"

#: Lowest first. The name is the first component under ``luigis_async``.
LAYERS: list[set[str]] = [
    {"errors", "_version", "auth", "gate", "source"},
    {"validators", "jsonenc"},
    {"config", "events", "models", "retry", "transport", "pacing"},
    {"convert"},
    {"endpoints"},
    {"decode"},
    {"client", "runs"},
    {"batch"},
    {"bulk"},
    {"reconcile"},
    {"sync"},  # the deprecated shim: re-exports reconcile
    {"jsonl"},
    {"sandbox"},
    {"pytest_plugin"},
    {"cli"},
    {"__init__"},
    {"__main__"},
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in ROOT.rglob("*.py")}


def imported(name: str) -> set[str]:
    """The luigis_async modules ``name`` imports, anywhere in its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - max(0, node.level - 1)]
            module = ".".join([*base, node.module] if node.module else base)
            if not node.level:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names}
            # `from . import endpoints` imports a module; `from .x import Name`, module x.
            found |= (submodules & MODULES.keys()) or {module}
    return {module for module in found if module in MODULES}


GRAPH = {name: imported(name) for name in MODULES}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer() -> None:
    """A new top-level module must be placed in LAYERS before it can be imported."""
    assert [] == sorted({component(m) for m in MODULES} - LAYER_OF.keys())


def test_no_module_imports_a_higher_layer() -> None:
    """Data flows one way: errors, models, client, then what is built on the client."""
    upward = [
        f"{module} -> {dependency}"
        for module, dependencies in GRAPH.items()
        for dependency in dependencies
        if component(dependency) != component(module)
        and LAYER_OF[component(dependency)] >= LAYER_OF[component(module)]
    ]
    assert [] == sorted(upward)


def test_the_import_graph_has_no_cycle() -> None:
    """No chain of imports, lazy ones included, leads back to where it started.

    ``pytest -s tests/test_layers.py`` prints the graph, layer by layer.
    """
    for level, names in enumerate(LAYERS):
        for module in sorted(m for m in GRAPH if component(m) in names):
            below = sorted({component(d) for d in GRAPH[module]} - {component(module)})
            print(f"{level:2} {module}: {', '.join(below) or '-'}")
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for dependency in sorted(GRAPH[module]):
            if state.get(dependency) == "open":
                cycles.append([*trail[trail.index(dependency):], dependency])
            elif dependency not in state:
                visit(dependency, [*trail, dependency])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert [] == cycles


def test_the_deprecated_sync_module_warns_and_is_reconcile() -> None:
    """``luigis_async.sync`` (renamed ``reconcile``) still imports, for one release, and
    warns; every name it had is reconcile's own object."""
    sys.modules.pop("luigis_async.sync", None)
    with pytest.warns(DeprecationWarning, match=r"import from luigis_async\.reconcile"):
        shim = importlib.import_module("luigis_async.sync")
    reconcile = luigis_async.reconcile
    assert reconcile.__all__ == shim.__all__
    assert all(getattr(shim, name) is getattr(reconcile, name) for name in shim.__all__)
