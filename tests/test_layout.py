"""The package's layout rules: no import circle, imports only down the floors, files of a readable size.

Floors, lowest first (a module may import its own floor or lower ones, never a higher one):
errors/redaction/_lazy/synthetic and the root package (which imports nothing eagerly) < retry,
storage < format < hierarchy < streaming/integrations < curation < sharding < commands/cli. The sharder and the
streamer never import each other. Imports under ``if TYPE_CHECKING:`` and the names of the lazy
export tables are not imports at run time and are not counted.
"""
from __future__ import annotations

import ast
from pathlib import Path

import imagenet_stream

ROOT = Path(imagenet_stream.__file__).parent
FLOORS = {
    "": 0, "errors": 0, "redaction": 0, "_lazy": 0, "synthetic": 0,
    "urls": 0, "rows": 0, "thumbnails": 0, "units": 0, "retry": 1, "storage": 1,
    "format": 2,
    "hierarchy": 3,
    "streaming": 4, "integrations": 4,
    "curation": 5,
    "sharding": 6, "visual": 6,
    "commands": 7, "cli": 7,
}
NEVER = {("sharding", "streaming"), ("streaming", "sharding"), ("streaming", "integrations"),
         ("visual", "sharding"), ("sharding", "visual")}
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports (anywhere in the file, TYPE_CHECKING blocks excluded)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:
                    out.add(full)
                elif node.module in modules:
                    out.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_relative_imports() -> None:
    """Absolute imports only: a module's dependencies read the same wherever it moves."""
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.ImportFrom) and node.level), f"{name}: relative import"


def test_every_area_has_a_floor() -> None:
    assert {_area(m) for m in _modules()} <= set(FLOORS)


def test_imports_only_go_down_a_floor() -> None:
    wrong = [(a, b) for a, targets in _graph().items() for b in targets
             if FLOORS[_area(b)] > FLOORS[_area(a)] or (_area(a), _area(b)) in NEVER]
    assert wrong == []


def test_no_import_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])
    assert circles == []


def test_the_checker_sees_a_circle(tmp_path: Path) -> None:
    """The rules above would fail on a circle: the walk finds one in a planted graph."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from pkg.b import x\n")
    b.write_text("import pkg.a\nif TYPE_CHECKING:\n    import pkg.c\n")
    modules = {"pkg.a": a, "pkg.b": b, "pkg.c": b}
    assert _imports(a, modules) == {"pkg.b"} and _imports(b, modules) == {"pkg.a"}


def test_files_stay_readable() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
