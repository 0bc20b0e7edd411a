"""The layering rules of tools/layers.py, pinned on the whole client package and on the simulator."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKER = REPO_ROOT / "tools" / "layers.py"
PACKAGE = REPO_ROOT / "fastrouter_async"


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


def test_client_package_passes_every_check() -> None:
    """No import cycle, no module without a layer, no import up a layer, no long module, no private import."""
    assert _layers().check(PACKAGE) == []


def test_every_module_of_the_package_has_a_layer() -> None:
    """Each client module is placed in exactly one layer of the table (docs/explanation/layout.md)."""
    layers = _layers()
    placed = [name for modules in layers.LAYERS.values() for name in modules]
    assert len(placed) == len(set(placed))
    on_disk = {path.stem for path in PACKAGE.glob("*.py")}
    assert on_disk <= set(placed)


def test_private_names_are_checked_in_the_whole_package() -> None:
    """ruff's SLF001 has no per-file exception anywhere in fastrouter_async/."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignores = pyproject["tool"]["ruff"]["lint"]["per-file-ignores"]
    assert [path for path, rules in ignores.items() if path.startswith("fastrouter_async") and "SLF001" in rules] == []


def test_only_the_transport_imports_aiohttp() -> None:
    """Of the client's modules, only _transport (and _rawbody, its raw body reader) import aiohttp at run time
    (others may name ``aiohttp.ClientSession`` in annotations, the type of a session handed in)."""
    importers = set()
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "aiohttp" for a in node.names):
                importers.add(path.stem)
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp" and not node.level:
                importers.add(path.stem)
    assert importers <= {"_transport", "_rawbody"}
    assert "_transport" in importers


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            stack.extend(node.orelse)
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def test_checker_finds_an_upward_import_and_an_unplaced_module(tmp_path: Path) -> None:
    """In the client package, a value module importing the engine, and a module of no layer, are reported."""
    package = tmp_path / "fastrouter_async"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_models.py").write_text("from ._poller import Poller\n")
    (package / "_poller.py").write_text("Poller = 1\n")
    (package / "_stray.py").write_text("")
    assert _layers().check(package) == [
        "upward import: fastrouter_async._models (L0 values) imports fastrouter_async._poller (L3 engine)",
        "unplaced module: fastrouter_async._stray (add it to LAYERS in tools/layers.py)",
    ]


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
