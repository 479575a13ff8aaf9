"""The package's import structure: no cycle among its modules (counting the imports made inside
functions too: a cycle there still ties modules together), every module importable on its own,
a CLI whose start-up imports neither redis nor pyarrow, and the direction between the product
and its tooling: no module of the product (src/wordcount/ outside lab/) imports the lab
(``wordcount.lab``) or the chaos monkey (``chaos``), except the lazy imports inside the
functions named in ``LAB_DOORS``; the lab and chaos may import anything."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "wordcount"
CHAOS = Path(__file__).resolve().parent.parent / "chaos"
TOOLING = ("wordcount.lab", "chaos")  # the product's modules must not import these
# The only places of the product that import the tooling: (module, function), the import
# inside that very function (so run only when the lab's command or a fault option is used)
LAB_DOORS = {
    ("cli", "cmd_corpus"), ("cli", "_bench_parser"), ("cli", "_chaos_parser"),
    ("cli", "_soak_parser"), ("cli", "_experiment_parser"), ("cli", "cmd_graph"),
    ("workeropts", "WorkerOptions.faults"),
}


def module_name(path: Path) -> str:
    """``worker`` for src/wordcount/worker.py, ``lab.soak`` for src/wordcount/lab/soak.py,
    ``lab`` for src/wordcount/lab/__init__.py (``__init__`` for the package's own)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


FILES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.stem != "__main__"}
MODULES = sorted(FILES)


def _package_of(module: str) -> list[str]:
    """The package a module's relative imports start from, as name parts under wordcount."""
    path = FILES[module]
    parts = module.split(".") if module != "__init__" else []
    return parts if path.name == "__init__.py" else parts[:-1]


def import_nodes(path: Path) -> list[tuple[ast.AST, list[str]]]:
    """Every import statement in ``path`` with the names of the classes and functions it is
    inside (``["WorkerOptions", "faults"]``; ``[]``: at module level)."""
    found: list[tuple[ast.AST, list[str]]] = []

    def walk(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, scope))
            inner = (scope + [child.name] if isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else scope)
            walk(child, inner)

    walk(ast.parse(path.read_text(encoding="utf-8")), [])
    return found


def resolve(node: ast.AST, module: str) -> set[str]:
    """The dotted names (absolute) that one import statement of ``module`` imports."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = ["wordcount"] + _package_of(module)
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return {target} | {f"{target}.{a.name}" for a in node.names}


def _local(name: str) -> str | None:
    """A dotted name's module of this package (``lab.soak``), or None."""
    if name == "wordcount":
        return "__init__"
    if not name.startswith("wordcount."):
        return None
    parts = name.split(".")[1:]
    while parts:  # wordcount.lab.soak.Soak -> lab.soak
        if ".".join(parts) in FILES:
            return ".".join(parts)
        parts.pop()
    return None


def imported_modules(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in it."""
    found: set[str] = set()
    for node, _scope in import_nodes(FILES[module]):
        found.update(m for n in resolve(node, module) if (m := _local(n)))
    return found


def import_graph() -> dict[str, set[str]]:
    # a module's own package (its __init__) is imported by Python anyway: not an edge
    return {m: imported_modules(m) - {m, "__init__"} - {".".join(_package_of(m)) or None}
            for m in FILES}


def tooling_imports(module: str, path: Path) -> list[str]:
    """The imports of the lab or chaos that ``module`` (a product module at ``path``) makes
    outside its ``LAB_DOORS``: "line N (scope): name" each."""
    found = []
    for node, scope in import_nodes(path):
        where = ".".join(scope)
        if (module, where) in LAB_DOORS:
            continue
        for name in sorted(resolve(node, module)):
            if any(name == t or name.startswith(t + ".") for t in TOOLING):
                found.append(f"line {node.lineno} ({where or 'module level'}): {name}")
                break
    return found


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
    assert "cli" not in graph["embedded"] and "cli" not in graph["lab.bench"]
    assert "lab.corpus" in graph["lab.soak"] and "client" in graph["lab.soak"]


PRODUCT = [m for m in MODULES if m != "lab" and not m.startswith("lab.")]


@pytest.mark.parametrize("module", PRODUCT)
def test_the_product_does_not_import_the_lab(module):
    bad = tooling_imports(module, FILES[module])
    assert not bad, (f"src/wordcount/{FILES[module].relative_to(PACKAGE)} imports the lab or "
                     f"chaos: {bad}; only the functions in LAB_DOORS may, lazily")


def test_the_lab_doors_exist_and_are_functions():
    """Each door names a function that exists and imports the tooling (a renamed function
    must not leave a stale door, nor a moved import an unused one)."""
    for module, where in LAB_DOORS:
        scopes = {".".join(scope) for node, scope in import_nodes(FILES[module])
                  if any(n == t or n.startswith(t + ".")
                         for n in resolve(node, module) for t in TOOLING)}
        assert where in scopes, (module, where, scopes)


def test_the_direction_check_catches_a_forbidden_import(tmp_path):
    """The check itself: a product module importing the lab at module level, in a function
    that is not a door, or in a door of another module, is reported."""
    (tmp_path / "m.py").write_text(
        "from .lab import soak\n"
        "import chaos.monkey\n"
        "def cmd_corpus():\n    from .lab.corpus import generate\n"
        "def helper():\n    from wordcount.lab import faults\n"
        "class WorkerOptions:\n    def faults(self):\n        from .lab import faults\n")
    FILES["__probe__"] = tmp_path / "m.py"
    try:
        bad = tooling_imports("__probe__", tmp_path / "m.py")
    finally:
        del FILES["__probe__"]
    assert bad == ["line 1 (module level): wordcount.lab",
                   "line 2 (module level): chaos.monkey",
                   "line 4 (cmd_corpus): wordcount.lab.corpus",
                   "line 6 (helper): wordcount.lab",
                   "line 9 (WorkerOptions.faults): wordcount.lab"], bad


def test_the_product_imports_without_the_lab():
    """Every product module imports, and the CLI parses a worker's and a run's flags, with the
    lab and chaos unimportable (as an image without them would be)."""
    names = [f"wordcount.{m}" for m in PRODUCT if m != "__init__"]
    code = ("import sys\nsys.modules['wordcount.lab'] = None\nsys.modules['chaos'] = None\n"
            + "".join(f"import {n}\n" for n in names)
            + "from wordcount.workeropts import WorkerOptions\n"
            "WorkerOptions.parse(['--commit', 'atomic']).faults()\n"
            "assert not [m for m in sys.modules if m.startswith(('wordcount.lab.', 'chaos.'))]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", MODULES + ["chaos", "chaos.monkey"])
def test_each_module_imports_alone(module):
    name = ("wordcount" if module == "__init__" else module if module.startswith("chaos")
            else f"wordcount.{module}")
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
