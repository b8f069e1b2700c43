"""The real-time package flows one way: source -> feed -> subscribers -> session -> transports.

Imports are read from the source (``ast``), ``TYPE_CHECKING`` blocks included: a circle that
only type checkers follow still ties the modules into one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import flagstaff.realtime

PACKAGE = "flagstaff.realtime"
ROOT = Path(flagstaff.realtime.__file__).parent

# Each module may import only modules of a lower rank.
RANKS = {
    "events": 0,
    "settings": 0,
    "metrics": 0,
    "budget": 0,
    "memory": 0,
    "source": 1,
    "subscriber": 1,
    "feed": 2,
    "session": 3,
    "sse": 4,
    "websocket": 4,
}
# Layers above this package (and the store, which a relay does not have).
FORBIDDEN = ("flagstaff.server", "flagstaff.store", "flagstaff.sdk", "flagstaff.cli",
             "flagstaff.relay")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def package_graph() -> dict[str, set[str]]:
    """module -> the sibling modules it imports (by short name)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.glob("*.py")):
        if path.stem == "__init__":
            continue
        siblings = {
            name.removeprefix(PACKAGE + ".").split(".")[0]
            for name in imported_modules(path) if name.startswith(PACKAGE + ".")
        }
        graph[path.stem] = siblings - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of modules, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for child in sorted(graph.get(node, ())):
            cycle = visit(child)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circles_in_the_package() -> None:
    assert find_cycle(package_graph()) is None


def test_every_module_imports_only_modules_below_it() -> None:
    graph = package_graph()
    assert set(graph) == set(RANKS), "place new modules in RANKS (and the package docstring)"
    upward = {
        (module, imported) for module, imports in graph.items() for imported in imports
        if RANKS[imported] >= RANKS[module]
    }
    assert not upward


def test_the_package_needs_no_store_server_or_sdk() -> None:
    for path in ROOT.glob("*.py"):
        bad = {n for n in imported_modules(path) if n.startswith(FORBIDDEN)}
        assert not bad, f"{path.name} imports {sorted(bad)}"
