"""The package's layout keeps its promises (issue 14): data flows one way through the
stages, each library stays behind its door, and no module grows into several rooms.

The import graph is read from the source with ``ast`` (imports inside functions and
``TYPE_CHECKING`` blocks count too), so nothing here depends on import order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

# Floors, lowest first: a module imports only from lower floors and from its own stage
# (its package). Modules sharing a floor are peers that never import one another: the
# five stages of the pipeline's floor, for one.
FLOORS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "",
            "errors",
            "models",
            "urls",
            "sanitize",
            "metrics",
            "config_help",
            "demo",
            "processes",
            "packed_terms",
        }
    ),
    frozenset({"config_checks"}),  # rules between feeds.yaml's entries, over plain values
    frozenset({"config"}),
    frozenset({"fetch", "parse", "extract", "cluster", "storage"}),
    frozenset({"publish"}),
    frozenset({"pipeline"}),
    frozenset({"serve", "reload", "scheduler"}),
    frozenset({"daemon"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
# Third-party libraries that only one stage may import: its door.
DOORS = {"sqlite3": "storage", "sqlite_utils": "storage", "httpx": "fetch", "httpcore": "fetch"}
MAX_LINES_OF_CODE = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports (a name imported from a package, when it is a
    submodule, counts as that submodule)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module


def stage_of(module: str) -> str:
    """``aggregator.fetch.dns`` -> ``fetch``; ``aggregator.config`` -> ``config``;
    ``aggregator`` (the package's version) -> ``""``."""
    return module.split(".")[1] if "." in module else ""


def floor_of(module: str) -> int:
    stage = stage_of(module)
    return next(index for index, floor in enumerate(FLOORS) if stage in floor)


GRAPH = {
    module: sorted({name for name in imports_of(path) if name in MODULES and name != module})
    for module, path in MODULES.items()
}


def test_every_module_has_a_floor() -> None:
    for module in MODULES:
        assert floor_of(module) >= 0, module


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One import cycle of ``graph``, or [] (depth-first search with a path stack)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return []

    for module in graph:
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def test_no_import_cycles() -> None:
    assert find_cycle(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert find_cycle(graph) in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_data_flows_one_way(module: str) -> None:
    """A module imports only lower floors and its own stage; floor-1 stages are peers."""
    own_floor, own_stage = floor_of(module), stage_of(module)
    for target in GRAPH[module]:
        if stage_of(target) == own_stage and own_stage:
            continue
        assert floor_of(target) < own_floor, f"{module} imports {target} (same or higher floor)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_libraries_stay_behind_their_door(module: str) -> None:
    for imported in imports_of(MODULES[module]):
        door = DOORS.get(imported.split(".")[0])
        assert door is None or stage_of(module) == door, f"{module} imports {imported}"


def lines_of_code(path: Path) -> int:
    """Non-blank lines that are not comments (docstrings count: they are read too)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return sum(1 for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_holds_several_rooms(module: str) -> None:
    assert lines_of_code(MODULES[module]) <= MAX_LINES_OF_CODE


# Loaded where pages are extracted (the workers), never by merely importing the service:
# together about a second of CPU that every CLI command and cron refresh would pay.
WORKER_LIBRARIES = ("trafilatura", "wordfreq", "py3langid", "htmldate", "justext")


def test_commands_start_without_the_extraction_libraries() -> None:
    code = (
        "import sys, aggregator.cli, aggregator.pipeline, aggregator.daemon\n"
        f"print(' '.join(name for name in {WORKER_LIBRARIES!r} if name in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.split() == []
