"""The package's import structure: no cycle among its modules (counting the imports made inside
functions too: a cycle there still ties modules together), every module importable on its own,
and a CLI whose start-up imports neither redis nor pyarrow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "wordcount"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__")


def imported_modules(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("wordcount."))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 or node.module == "wordcount":
                module = None if node.level == 1 and not node.module else node.module
                if module in (None, "wordcount"):  # from . import a, b
                    found.update(a.name for a in node.names)
                else:
                    found.add(module.split(".")[0])  # from .a import x
            elif node.level == 0 and (node.module or "").startswith("wordcount."):
                found.add(node.module.split(".")[1])  # type: ignore[union-attr]
    return found


def import_graph() -> dict[str, set[str]]:
    names = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: (imported_modules(p) & names) - {p.stem, "__init__"}
            for p in PACKAGE.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    graph = import_graph()
    assert "cli" not in graph["embedded"] and "cli" not in graph["bench"]


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module):
    name = "wordcount" if module == "__init__" else f"wordcount.{module}"
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_version_imports_neither_redis_nor_pyarrow():
    code = ("import sys\nfrom wordcount.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "heavy = sorted(m for m in ('redis', 'pyarrow') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wordcount ")
