"""Check the package's layering: import cycles, long modules, private imports.

Usage: ``python tools/layers.py [DIRECTORY]`` (default: ``fastrouter_async``).

It reads every ``*.py`` under the directory with :mod:`ast` (nothing is imported
or run) and reports:

- import cycles among the package's modules, counting every import: those under
  ``if TYPE_CHECKING:`` and those inside functions too. One pair is allowed:
  ``_errors`` <-> ``_models`` (each names the other in annotations);
- modules longer than 500 lines;
- ``from ._x import _private``: a module taking another module's private name;
- for the client package itself, a module missing from :data:`LAYERS` (every module has a
  place), and an import that goes up a layer (type-only imports included).

It prints one line per finding and exits 1 if there is any, 0 otherwise.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

MAX_LINES: Final = 500
LONG_ALLOWED: Final = frozenset({"fastrouter_async._catalog"})  # the catalog's data table

LAYERS: Final[dict[str, tuple[str, ...]]] = {
    # Each module imports only from its own layer or the ones above it in this table.
    "L0 values": (
        "_errors", "_models", "_config", "_specs", "_catalog", "_events", "_batch_values", "_urls",
    ),
    "L1 pure logic": (
        "_protocol", "_interpret", "_lookup", "_integrity", "_validate", "_retry", "_estimates", "_schedule",
        "_filenames", "_untrusted", "_answers", "_accept", "_sniff", "_cachekey", "_concurrency", "_costs", "_spend",
        "_batch_keys", "_arguments",
    ),
    "L2 I/O primitives": (
        "_limits", "_http_parts", "_transport", "_rawbody", "_hosts", "_budget", "_partfs", "_writer", "_partfile",
        "_inline",        "_journal_lock", "_journal", "_journal_read", "_catalog_cache", "_batch_inputs", "_event_hub",
        "_job_record", "_namespace", "_shared", "_shared_values", "_redis", "_sqlite_db", "_sqlite_shared", "_stores",
    ),
    "L3 engine": (
        "_api", "_sharing", "_replays", "_submits", "_submitter", "_slots", "_poller", "_download", "_fetch", "_otel",
        "_engine",
    ),
    "L4 entities": (
        "_job_life", "_job_events", "_job", "_batch_plan", "_batch_spend", "_batch_hooks", "_batch_tally",
        "_batch_resume", "_batch_job", "_batch_shared", "_batch", "_watcher",
    ),
    "L5 facade": ("_session_views", "_session"),
    "package": ("__init__", "__main__"),
}  # fmt: skip
ALLOWED_PAIRS: Final = frozenset({frozenset({"fastrouter_async._errors", "fastrouter_async._models"})})


def module_name(path: Path, root: Path) -> str:
    """The dotted name of ``path``, a file under the package directory ``root``."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_root(directory: Path) -> Path:
    """The top package holding ``directory``: the highest ancestor that still has an ``__init__.py``."""
    root = directory
    while (root.parent / "__init__.py").is_file():
        root = root.parent
    return root


def imported_modules(tree: ast.Module, name: str, *, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of ``known`` that the module ``name`` imports, anywhere in its body."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            if base is None:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # from . import _payloads
                    yield submodule
                elif base in known:
                    yield base


def private_imports(tree: ast.Module, name: str, *, is_package: bool) -> Iterator[str]:
    """``from X import _y`` lines of the module ``name`` where ``X`` is a module and ``_y`` a private name in it."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = _resolve(node, package)
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and node.module is not None:  # "from . import _mod" imports a module, which is fine
                yield f"{name}:{node.lineno}: from {'.' * node.level}{node.module} import {alias.name} ({base})"


def _resolve(node: ast.ImportFrom, package: str) -> str | None:
    if node.level == 0:
        return node.module
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        return None
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted, minus allowed pairs."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
            if len(component) > 1 and frozenset(component) not in ALLOWED_PAIRS:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest import cycle through the first module of ``component``, as a path back to it."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    for node in queue:  # breadth first, within the component
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{start} is in a cycle")  # pragma: no cover  (a component always has one)


def layer_of(name: str) -> int | None:
    """The layer number of a module of the client package (``None``: not in :data:`LAYERS`)."""
    short = name.rpartition(".")[2] if name.count(".") == 1 else None
    if name == "fastrouter_async":
        short = "__init__"
    for number, modules in enumerate(LAYERS.values()):
        if short in modules:
            return number
    return None


def layer_findings(graph: dict[str, set[str]]) -> list[str]:
    """Modules of ``fastrouter_async`` without a layer, and imports that go up a layer."""
    findings: list[str] = []
    names = list(LAYERS)
    for name in sorted(graph):
        short = name.rpartition(".")[2]
        if not name.startswith("fastrouter_async") or name.count(".") > 1 or not (short == name or short[0] == "_"):
            continue  # cli/ and testing/ are applications of the package, checked on their own
        layer = layer_of(name)
        if layer is None:
            findings.append(f"unplaced module: {name} (add it to LAYERS in tools/layers.py)")
            continue
        for target in sorted(graph[name]):
            if target.count(".") > 1 or not target.startswith("fastrouter_async"):
                continue
            upper = layer_of(target)
            if upper is not None and upper > layer:
                findings.append(f"upward import: {name} ({names[layer]}) imports {target} ({names[upper]})")
    return findings


def _parsed(directory: Path) -> Iterator[tuple[str, str, ast.Module, bool, set[str]]]:
    """Each module under ``directory``: its name, source, syntax tree, whether it is a package, all names."""
    directory = directory.resolve()
    root = package_root(directory)
    paths = sorted(directory.rglob("*.py"))
    names = {path: module_name(path, root) for path in paths}
    known = set(names.values())
    for path, name in names.items():
        source = path.read_text(encoding="utf-8")
        yield name, source, ast.parse(source, filename=str(path)), path.name == "__init__.py", known


def import_graph(directory: Path) -> dict[str, set[str]]:
    """Each module under ``directory`` -> the modules under it that it imports (type-only and local imports too)."""
    return {
        name: set(imported_modules(tree, name, is_package=is_package, known=known)) - {name}
        for name, _, tree, is_package, known in _parsed(directory)
    }


def cycles_touching(directory: Path, modules: Iterable[str]) -> list[list[str]]:
    """The import cycles under ``directory`` (as :func:`cycles` finds them) that pass through any of ``modules``."""
    wanted = set(modules)
    return [cycle for cycle in cycles(import_graph(directory)) if wanted.intersection(cycle)]


def check(directory: Path) -> list[str]:
    """Every finding for the modules under ``directory``, one line each."""
    graph: dict[str, set[str]] = {}
    findings: list[str] = []
    for name, source, tree, is_package, known in _parsed(directory):
        graph[name] = set(imported_modules(tree, name, is_package=is_package, known=known)) - {name}
        lines = len(source.splitlines())
        if lines > MAX_LINES and name not in LONG_ALLOWED:
            findings.append(f"long module: {name} has {lines} lines (more than {MAX_LINES})")
        findings.extend(f"private import: {line}" for line in private_imports(tree, name, is_package=is_package))
    findings[:0] = [
        f"import cycle among {len(c)} modules: {', '.join(c)} (e.g. {' -> '.join(shortest_cycle(graph, c))})"
        for c in cycles(graph)
    ]
    if "fastrouter_async" in graph:  # the client package itself: every module has a layer, imports look down
        findings.extend(layer_findings(graph))
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    """Print the findings for the directory named in ``argv`` (default ``fastrouter_async``); 1 if any."""
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "fastrouter_async"
    findings = check(directory)
    for line in findings:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
