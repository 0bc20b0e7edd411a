"""The layering rules of tools/layers.py, pinned where they already hold: the simulator package and the
client's lower layers (values, pure logic, I/O primitives)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKER = REPO_ROOT / "tools" / "layers.py"
PACKAGE = REPO_ROOT / "fastrouter_async"

# The client's lower layers, bottom up (docs/explanation/design.md, "Layers that only look down").
LAYERS: dict[str, frozenset[str]] = {
    "values": frozenset({"_errors", "_models", "_config", "_specs", "_catalog", "_urls"}),
    "pure logic": frozenset(
        {"_cachekey", "_untrusted", "_sniff", "_protocol", "_interpret", "_integrity", "_validate", "_lookup"}
        | {"_retry", "_schedule", "_estimates", "_filenames"}
    ),
    "I/O primitives": frozenset(
        {"_http_parts", "_transport", "_rawbody", "_budget", "_partfs", "_writer", "_partfile"}
        | {"_batch_keys", "_journal_lock", "_journal", "_journal_read"}
    ),
}
LOWER = frozenset().union(*LAYERS.values())


def _layers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers", CHECKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in files.items():
        (package / name).write_text(textwrap.dedent(source))
    return package


def test_simulator_package_has_no_cycle_no_long_module_and_no_private_import() -> None:
    """The simulator package has no import cycle (type-only ones included), no long module, no private import."""
    assert _layers().check(REPO_ROOT / "fastrouter_async" / "testing") == []


def test_checker_finds_a_cycle_through_a_type_checking_import(tmp_path: Path) -> None:
    """An import under `if TYPE_CHECKING:` closes a cycle as much as a runtime one does."""
    package = _package(
        tmp_path,
        {
            "_a.py": "from ._b import B\n",
            "_b.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from ._a import A
                B = 1
            """,
            "_c.py": "from . import _a\n",
        },
    )
    cycle = "import cycle among 2 modules: pkg._a, pkg._b (e.g. pkg._a -> pkg._b -> pkg._a)"
    assert _layers().check(package) == [cycle]


def test_checker_finds_private_imports_and_long_modules(tmp_path: Path) -> None:
    """`from ._x import _private` and a module of 501 lines are reported; `from . import _module` is not."""
    package = _package(
        tmp_path,
        {
            "_x.py": "_private = 1\n" + "pass\n" * 500,
            "_y.py": "from . import _x\nfrom ._x import _private\n",
        },
    )
    assert _layers().check(package) == [
        "long module: pkg._x has 501 lines (more than 500)",
        "private import: pkg._y:2: from ._x import _private (pkg._x)",
    ]


def test_checker_exits_1_with_findings_and_0_without(tmp_path: Path) -> None:
    """Run as a script, the checker prints its findings and exits 1, or prints nothing and exits 0."""
    bad = _package(tmp_path, {"_a.py": "from ._b import x\n", "_b.py": "from ._a import y\n"})
    failed = subprocess.run([sys.executable, CHECKER, bad], capture_output=True, text=True, check=False)
    cycle = "import cycle among 2 modules: pkg._a, pkg._b (e.g. pkg._a -> pkg._b -> pkg._a)\n"
    assert (failed.returncode, failed.stdout) == (1, cycle)
    good = REPO_ROOT / "fastrouter_async" / "testing"
    passed = subprocess.run([sys.executable, CHECKER, good], capture_output=True, text=True, check=False)
    assert (passed.returncode, passed.stdout) == (0, "")


def _short(module: str) -> str:
    return module.rpartition(".")[2]


def test_lower_layers_have_no_import_cycle() -> None:
    """No import cycle (type-only imports included) passes through a module of the values, logic or I/O layers."""
    lower = {f"fastrouter_async.{name}" for name in LOWER}
    assert _layers().cycles_touching(PACKAGE, lower) == []


def test_lower_layers_only_look_down() -> None:
    """A module of the lower layers imports only modules of its own layer or below, none of the engine or above."""
    graph = _layers().import_graph(PACKAGE)
    allowed: set[str] = set()
    wrong = []
    for layer, modules in LAYERS.items():
        allowed |= modules
        for module in sorted(modules):
            above = sorted(_short(m) for m in graph[f"fastrouter_async.{module}"] if _short(m) not in allowed)
            wrong += [f"{module} ({layer}) imports {target}" for target in above]
    assert wrong == []


def test_lower_layers_are_short_and_take_no_private_names() -> None:
    """Every lower-layer module is at most 500 lines and takes no other module's private name."""
    findings = _layers().check(PACKAGE)
    mine = [f for f in findings if not f.startswith("import cycle") and _finding_module(f) in LOWER]
    assert mine == []


def _finding_module(finding: str) -> str:
    # "long module: pkg._x has ..." / "private import: pkg._x:12: ..."
    return _short(finding.split(": ", 1)[1].split(" ", 1)[0].split(":", 1)[0])


def test_only_the_transport_imports_aiohttp_among_the_lower_layers() -> None:
    """Of the lower layers, only _transport (and _rawbody, its raw body reader) import aiohttp."""
    importers = set()
    for name in LOWER:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "aiohttp" for a in node.names):
                importers.add(name)
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp" and not node.level:
                importers.add(name)
    assert importers <= {"_transport", "_rawbody"}
    assert "_transport" in importers


def test_cycles_touching_keeps_only_the_cycles_through_the_modules_named(tmp_path: Path) -> None:
    """cycles_touching reports a cycle through a named module and leaves out one elsewhere."""
    package = _package(
        tmp_path,
        {
            "_a.py": "from ._b import x\n",
            "_b.py": "from ._a import y\n",
            "_c.py": "from ._d import x\n",
            "_d.py": "from ._c import y\n",
        },
    )
    layers = _layers()
    assert layers.cycles_touching(package, {"pkg._a"}) == [["pkg._a", "pkg._b"]]
    assert layers.cycles_touching(package, {"pkg._x"}) == []
