"""Read the package's import graph and check it against the layers of docs/architecture.md.

    python tools/import_layers.py          # prints cycles, upward imports and long modules; exit 1 if any

Only imports executed when a module loads count (module level, outside ``if TYPE_CHECKING``);
an import inside a function is a deliberate lazy edge (start-up time, optional dependencies) and
is listed separately when it runs upward. tests/test_architecture.py runs the same checks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "glompo_hpc"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 400

# The layer order, written once (docs/architecture.md explains it). Lowest first; a module may
# import from its own layer and the layers below. The longest prefix that matches a module's dotted
# name (without the package) decides its layer: ``optimizers.conformance`` (the kit that runs a
# third-party optimizer through a real backend) is a front end, although it sits beside the optimizers.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("protocol", ("errors", "env_settings", "protocol", "validation", "combinable", "compat", "core.seeds", "core.signals")),
    ("components", ("stoppers", "exit_conditions", "generators", "selectors", "optimizers", "tasks",
                    "checkpointing", "defaults", "optimizer_logs")),
    ("core", ("core",)),
    ("backends+outputs", ("backends", "outputs")),
    ("entry points", ("jobfile", "run", "run_support", "resume_policy", "slurm", "cli", "__main__", "",
                      "optimizers.conformance")),
)


@dataclass
class Module:
    name: str                      # dotted, without the package prefix ("" for the package itself)
    path: Path
    lines: int
    eager: set[str] = field(default_factory=set)   # modules imported when this one loads
    lazy: set[str] = field(default_factory=set)    # modules imported inside functions


def layer_of(name: str) -> int:
    """The index in LAYERS of the layer whose longest prefix matches ``name``."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == "" if prefix == "" else name == prefix or name.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    if best is None:
        raise ValueError(f"module {name!r} belongs to no layer: add it to LAYERS in tools/import_layers.py")
    return best[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: Module, node: ast.ImportFrom | ast.Import, known: set[str]) -> set[str]:
    """The package modules an import statement loads (``from . import x`` may name a module)."""
    if isinstance(node, ast.Import):
        bases = [alias.name for alias in node.names]
        return {b[len(PACKAGE) + 1:] if b != PACKAGE else "" for b in bases
                if b == PACKAGE or b.startswith(PACKAGE + ".")} & known
    if node.level == 0:
        if not node.module or not (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
            return set()
        base = node.module[len(PACKAGE) + 1:] if node.module != PACKAGE else ""
    else:
        here = module.name.split(".") if module.name else []
        if module.path.name != "__init__.py":
            here = here[:-1]
        here = here[: len(here) - (node.level - 1)] if node.level > 1 else here
        base = ".".join([*here, *(node.module.split(".") if node.module else [])])
    found = set()
    for alias in node.names:
        child = f"{base}.{alias.name}" if base else alias.name
        found.add(child if child in known else base)
    return found & known


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(module: Module, body: list[ast.stmt], known: set[str], eager: bool) -> None:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (module.eager if eager else module.lazy).update(_resolve(module, node, known) - {module.name})
        elif isinstance(node, ast.If) and _is_type_checking(node):
            continue
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _walk(module, node.body, known, eager=False)
        elif isinstance(node, ast.ClassDef):
            _walk(module, node.body, known, eager)
        else:
            for attr in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, attr, None)
                if isinstance(inner, list):
                    _walk(module, [n for n in inner if isinstance(n, ast.AST)], known, eager)


def read_modules() -> dict[str, Module]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p): Module(_module_name(p), p, len(p.read_text().splitlines())) for p in paths}
    known = set(modules)
    for module in modules.values():
        _walk(module, ast.parse(module.path.read_text()).body, known, eager=True)
        # importing a.b loads package a first: that is not an edge the code chose; nor is reading
        # the package's own ``__version__`` (the package is loaded before any of its modules)
        module.eager = {m for m in module.eager if not module.name.startswith(m + ".") and m != ""}
        module.lazy = {m for m in module.lazy if not module.name.startswith(m + ".") and m != ""}
    return modules


def cycles(modules: dict[str, Module], lazy: bool = False) -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph (Tarjan).

    With ``lazy`` the imports inside functions count too: such a cycle does not fail at import
    time, but it still ties two modules into one that cannot be understood or changed alone.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        edges = modules[name].eager | (modules[name].lazy if lazy else set())
        for target in sorted(edges - {""}):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for name in sorted(modules):
        if name not in index:
            visit(name)
    return found


def upward_imports(modules: dict[str, Module], lazy: bool = False) -> list[tuple[str, str]]:
    edges = []
    for module in modules.values():
        for target in sorted(module.lazy if lazy else module.eager):
            if layer_of(target) > layer_of(module.name):
                edges.append((module.name, target))
    return edges


def long_modules(modules: dict[str, Module]) -> list[tuple[str, int]]:
    return [(m.name, m.lines) for m in modules.values() if m.lines > MAX_LINES]


def main() -> int:
    modules = read_modules()
    problems = 0
    for component in cycles(modules, lazy=True):
        print("cycle:", " <-> ".join(component))
        problems += 1
    for source, target in upward_imports(modules):
        print(f"upward import: {source} ({LAYERS[layer_of(source)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})")
        problems += 1
    for name, lines in long_modules(modules):
        print(f"long module: {name} ({lines} lines > {MAX_LINES})")
        problems += 1
    for source, target in upward_imports(modules, lazy=True):
        print(f"(lazy, allowed) upward import: {source} -> {target}")
    print(f"{len(modules)} modules, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
