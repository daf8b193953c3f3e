"""The tree keeps the shape docs/architecture.md describes: no import circles, few loose modules, short functions."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fttool"
LOOSE_MODULES_ALLOWED = {"__init__", "__main__", "cli"}
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Every fttool module `name` imports, at module level or inside functions, as modules rather than names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("fttool"):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported_modules(name, path, known) for name, path in modules.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles():
    assert import_circles(import_graph()) == []


def test_few_loose_modules():
    loose = {path.stem for path in PACKAGE.glob("*.py")}
    assert loose <= LOOSE_MODULES_ALLOWED, f"move {sorted(loose - LOOSE_MODULES_ALLOWED)} into a package"


def test_functions_are_short():
    long_functions = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length})")
    assert long_functions == []


def test_the_checker_sees_a_circle():
    assert import_circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_tests_share_helpers_through_support_not_each_other():
    tests = Path(__file__).resolve().parent
    modules = {path.stem for path in tests.glob("test_*.py")}
    crossing = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            crossing += [f"{path.name} imports {name}" for name in names if name.split(".")[0] in modules]
    assert crossing == []


LIBRARIES = ("data", "pii", "fairness", "augment", "training", "evaluation")
# What a library may use besides the libraries: the plan's data types and digests, the operator's private files
# (training seals its checkpoints), and the recipe's error type.
LIBRARY_MAY_ALSO_IMPORT = ("fttool.pipeline.plan", "fttool.pipeline.params", "fttool.pipeline.digest",
                           "fttool.pipeline.private_files", "fttool.pipeline.errors", "fttool.recipe.errors")


def test_libraries_are_usable_without_the_runner():
    """data, pii, fairness, augment, training and evaluation never import stages, the runner, the report,
    governance, policy or the CLI, so each can be used as a library (docs/architecture.md)."""
    allowed = tuple(f"fttool.{name}" for name in LIBRARIES) + LIBRARY_MAY_ALSO_IMPORT
    reaching = [f"{module} imports {target}" for module, targets in import_graph().items()
                if module.split(".")[1:2] and module.split(".")[1] in LIBRARIES
                for target in sorted(targets) if not target.startswith(allowed)]
    assert reaching == []
