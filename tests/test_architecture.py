"""The shape fedlm keeps (issue 24): modules short enough to read in one sitting, functions that
do one thing, and imports that never run in a circle. Pure Python over the source: no import of
fedlm itself."""

import ast
from pathlib import Path

FEDLM = Path(__file__).resolve().parents[1] / "fedlm"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the fedlm package."""
    found = {}
    for path in sorted(FEDLM.rglob("*.py")):
        parts = path.relative_to(FEDLM.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(tree: ast.Module, known: dict[str, Path]) -> set[str]:
    """The fedlm modules that ``tree`` imports anywhere (function-level imports too): for
    ``from package import name``, the submodule ``package.name`` where there is one."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> what it imports): each strongly connected set of
    more than one module, or one module that imports itself (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_finds_a_circle_and_only_that():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_longer_than_400_lines_and_no_function_than_80():
    long_modules, long_functions = [], []
    for path in modules().values():
        text = path.read_text()
        where = path.relative_to(FEDLM.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append(f"{where}:{node.lineno} {node.name}: {lines} lines")
    assert long_modules == [], f"modules over {MAX_MODULE_LINES} lines (split them)"
    assert long_functions == [], f"functions over {MAX_FUNCTION_LINES} lines (split them)"


def test_no_import_cycle_in_fedlm():
    known = modules()
    graph = {
        name: imports(ast.parse(path.read_text()), known) - {name} for name, path in known.items()
    }
    assert sum(len(targets) for targets in graph.values()) > 100  # the imports were found
    assert cycles(graph) == []
