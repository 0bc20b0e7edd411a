"""The layering rules of tools/layers.py, pinned where they already hold: the simulator package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKER = REPO_ROOT / "tools" / "layers.py"


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
