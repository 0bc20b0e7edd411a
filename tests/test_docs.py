"""Every code block of README.md and docs/**/*.md runs against the simulator and passes ``mypy --strict``.

The rules for code blocks in the docs (also in docs/index.md, "Writing docs"):

- A ```python (or ```py) block is a complete program. It is run as ``python block.py`` in an empty
  temporary folder, with ``FASTROUTER_API_KEY`` set to a dummy key and ``FASTROUTER_BASE_URL``
  pointing at a simulator started for these tests (``python -m fastrouter_async.testing``; jobs
  succeed at their first poll), with warnings as errors and a timeout. It must exit with 0.
  So write ``async def main() -> None: ...`` and end with ``asyncio.run(main())``, and use
  ``FastRouterSession()`` (key and base URL from the environment).
- A block that defines top-level ``test_*`` functions is a pytest module: it is run with pytest
  (asyncio_mode = "auto", warnings as errors), next to the page's ``# conftest.py`` block (a block
  whose first line is ``# conftest.py``), if the page has one.
- Every python block is also type-checked: all of them in one ``mypy`` run, with the project's
  configuration (``--strict``) minus its ``files``.
- A comment on the line(s) right above the opening fence changes how a block is treated:

  ``<!-- in: session -->``
      A snippet, run as the body of ``async def main()`` inside ``async with FastRouterSession() as
      session:``, where ``job`` (a submitted ``google/veo3`` job), ``video`` (its ``VideoResult``),
      ``out`` (``Path("out/video.mp4")``), ``prompt``, ``log`` (a ``logging.Logger``) and every public
      name of ``fastrouter_async``, ``asyncio``, ``json``, ``logging``, ``anyio`` and ``Path`` exist.
  ``<!-- in: simulator -->``
      A snippet for docs/testing.md, run with pytest as the body of a test that has the fixtures
      ``sim`` (a fresh ``FastRouterSimulator(api_key=API_KEY)``), ``server``, ``session`` (fast
      policies) and ``tmp_path``, with ``API_KEY``, ``FAST_POLL``, ``FAST_RETRY``, ``FAST_TIMEOUTS``,
      ``os``, ``pytest``, ``AsyncIterator``, ``Path`` and every public name of ``fastrouter_async``
      and ``fastrouter_async.testing`` in scope. A snippet that defines its own ``test_*``
      functions (or fixtures) is placed at module level instead.
  ``<!-- in: notebook -->``
      A notebook cell (docs/notebooks.md), written as in Jupyter or IPython: top-level ``await`` and
      ``async with``, no ``asyncio.run``. A script cannot do that, so all the notebook cells of the
      page are run (and type-checked) in order, as one program: the body of ``async def main()``,
      run by ``asyncio.run``, as Jupyter runs them on its own event loop. Each cell's test runs the
      whole notebook and reports the errors of its own lines.
  ``<!-- continues -->``
      The block continues the python block before it on the page: the two (or more) are run and
      type-checked as one program.
  ``<!-- requires: fastapi pydantic -->``
      The block needs packages that are not dependencies of this project: it is run and
      type-checked only where they are installed, and skipped (saying so) elsewhere.
  ``<!-- no-run: reason -->``
      Type-checked but not run (for what needs a real key or real money); reported as skipped
      with the reason. Keep these rare.
  ``<!-- fragment -->`` (or the info string ```python fragment)
      Not a program (a signature, a listing): only compiled. There may be at most MAX_FRAGMENTS
      of them; prefer a complete program or a snippet.

- Shell blocks (```sh, ```console, ```bash, ```shell): each ``fastrouter-video ... --simulate``
  command is run (with ``--simulate-time-scale 0`` added, so simulated jobs end at once) in a
  temporary folder holding ``prompts.jsonl``, ``prompts.txt`` and ``examples/prompts.jsonl``; it
  must exit with 0, or 1 (a batch with a failed job), and print no traceback. Other commands
  (``make``, ``pip``, ``export``, commands that need a real key) are not run.

Test ids are ``PAGE:LINE`` (the line of the opening fence), so a failure names the block.
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
PYTHON_LANGS = frozenset({"python", "py"})
SHELL_LANGS = frozenset({"sh", "console", "bash", "shell"})
MARKERS = frozenset({"fragment", "no-run", "continues", "in", "requires"})
MAX_FRAGMENTS = 6
BLOCK_TIMEOUT = 60.0
DUMMY_KEY = "sk-v1-docs-test-key-0123456789"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>[\w-]+)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
_TEST_DEF = re.compile(r"^(?:async\s+)?def\s+test_\w*\(|^@pytest\.fixture", re.MULTILINE)


@attrs.frozen
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the project root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    markers: dict[str, str] = attrs.field(hash=False)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON_LANGS

    @property
    def is_fragment(self) -> bool:
        return "fragment" in self.markers

    @property
    def is_conftest(self) -> bool:
        return self.code.lstrip().startswith("# conftest.py")


def _parse(page: Path, root: Path = ROOT) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        info = opening["info"].split()
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        markers: dict[str, str] = {}
        above = index - 1
        while above >= 0 and (marker := _MARKER.match(lines[above])):
            markers[marker["name"]] = marker["arg"] or ""
            above -= 1
        if "fragment" in info[1:]:
            markers["fragment"] = ""
        code = textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n"
        blocks.append(Block(str(page.relative_to(root)), index + 1, info[0] if info else "", code, markers))
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in _parse(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.is_python]


def _simulated_commands(block: Block) -> list[list[str]]:
    """The ``fastrouter-video ... --simulate`` commands of a shell block, as argument lists."""
    commands: list[str] = []
    pending = ""
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if block.lang == "console":
            if not pending and not line.startswith("$ "):
                continue  # output, not a command
            line = line.removeprefix("$ ") if not pending else line
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    found = []
    for command in commands:
        words = shlex.split(command, comments=True)
        if words[:1] == ["fastrouter-video"] and "--simulate" in words:
            found.append([sys.executable, "-m", "fastrouter_async", *words[1:], "--simulate-time-scale", "0"])
    return found


SHELL_BLOCKS = [block for block in ALL_BLOCKS if block.lang in SHELL_LANGS and _simulated_commands(block)]


# -- programs ----------------------------------------------------------------------------------

_SESSION_PREAMBLE = """\
import asyncio
import json
import logging
from pathlib import Path

import anyio

from fastrouter_async import *

log = logging.getLogger("docs")


async def main() -> None:
    async with FastRouterSession() as session:
        job = await session.submit(model="google/veo3", prompt="a cat surfing", length=8)
        video = await job
        out = Path("out/video.mp4")
        prompt = "a cat surfing"
"""
_SESSION_END = "\n\nasyncio.run(main())\n"

_SIMULATOR_PREAMBLE = """\
import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastrouter_async import *
from fastrouter_async.testing import *

API_KEY = "sk-v1-test-key-0123456789"
FAST_POLL = PollPolicy(first_delay=0.0, interval=0.001, max_interval=0.002, jitter=0.0, not_found_grace=5.0)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.002, max_retry_after=0.05)
FAST_TIMEOUTS = Timeouts(connect=2.0, request=5.0, read=5.0)


@pytest.fixture
def sim() -> FastRouterSimulator:
    return FastRouterSimulator(api_key=API_KEY)


@pytest.fixture
async def server(sim: FastRouterSimulator) -> AsyncIterator[SimulatorServer]:
    async with sim.serve() as running:
        yield running


@pytest.fixture
async def session(server: SimulatorServer) -> AsyncIterator[FastRouterSession]:
    async with FastRouterSession(
        API_KEY, base_url=server.base_url, poll_policy=FAST_POLL, retry_policy=FAST_RETRY, timeouts=FAST_TIMEOUTS
    ) as session:
        yield session


"""
_SIMULATOR_TEST = (
    "async def test_snippet(\n"
    "    sim: FastRouterSimulator, server: SimulatorServer, session: FastRouterSession, tmp_path: Path\n"
    ") -> None:\n"
)


# Jupyter and IPython run a cell's top-level ``await`` on their own event loop; a script has none.
_NOTEBOOK_PREAMBLE = "import asyncio\n\n\nasync def main() -> None:\n"
_NOTEBOOK_END = "\n\nasyncio.run(main())\n"


@attrs.frozen
class Program:
    """What is run (and type-checked) for a block: its source, and where the block's own lines start."""

    source: str
    body_start: int  # 1-based line of the block's first line in ``source``
    pytest: bool
    conftest: str | None = None


def _program(block: Block) -> Program:
    setup = block.markers.get("in")
    if setup == "session":
        head = _SESSION_PREAMBLE
        body = textwrap.indent(block.code, " " * 8)
        return Program(head + body + _SESSION_END, head.count("\n") + 1, pytest=False)
    if setup == "simulator":
        head = _SIMULATOR_PREAMBLE if _TEST_DEF.search(block.code) else _SIMULATOR_PREAMBLE + _SIMULATOR_TEST
        body = block.code if _TEST_DEF.search(block.code) else textwrap.indent(block.code, " " * 4)
        return Program(head + body, head.count("\n") + 1, pytest=True)
    if setup == "notebook":
        cells = [b for b in PYTHON_BLOCKS if b.page == block.page and b.markers.get("in") == "notebook"]
        earlier = "".join(cell.code + "\n" for cell in cells if cell.line < block.line)
        later = "".join("\n" + cell.code for cell in cells if cell.line > block.line)
        head = _NOTEBOOK_PREAMBLE + textwrap.indent(earlier, " " * 4)
        body = textwrap.indent(block.code + later, " " * 4)
        return Program(head + body + _NOTEBOOK_END, head.count("\n") + 1, pytest=False)
    if setup is not None:
        raise AssertionError(
            f"{block.id}: unknown setup {setup!r} in <!-- in: ... -->; known: session, simulator, notebook"
        )
    head = ""
    if "continues" in block.markers:
        before = _previous_python_block(block)
        head = _program(before).source.rstrip("\n") + "\n\n"
    source = head + block.code
    is_test = bool(_TEST_DEF.search(source)) and not block.is_conftest
    conftest = _page_conftest(block.page) if is_test else None
    return Program(source, head.count("\n") + 1, pytest=is_test, conftest=conftest)


def _previous_python_block(block: Block) -> Block:
    earlier = [b for b in PYTHON_BLOCKS if b.page == block.page and b.line < block.line]
    assert earlier, f"{block.id}: <!-- continues --> but no python block comes before it on the page"
    return earlier[-1]


def _page_conftest(page: str) -> str | None:
    for block in PYTHON_BLOCKS:
        if block.page == page and block.is_conftest:
            return block.code
    return None


def _missing_requirements(block: Block) -> list[str]:
    import importlib.util  # noqa: PLC0415

    names = block.markers.get("requires", "").replace(",", " ").split()
    return [name for name in names if importlib.util.find_spec(name) is None]


def _skip_reason(block: Block) -> str | None:
    """Why a python block is not run, or None."""
    if block.is_fragment:
        return "a fragment: compiled only"
    missing = _missing_requirements(block)
    if missing:
        return f"needs {', '.join(missing)} (not a dependency of this project)"
    if "no-run" in block.markers:
        return f"no-run: {block.markers['no-run'] or 'no reason given'}"
    return None


# -- running -----------------------------------------------------------------------------------

PYTEST_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@attrs.frozen
class Outcome:
    ok: bool
    report: str


def _env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTROUTER_", "PYTEST_"))}
    env.update(FASTROUTER_API_KEY=DUMMY_KEY, FASTROUTER_BASE_URL=base_url, PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> Outcome:
    env = {**env, "XDG_CACHE_HOME": str(cwd / ".cache")}  # e.g. refresh_catalog() writes no user cache
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return Outcome(False, f"timed out after {BLOCK_TIMEOUT} s: {shlex.join(argv)}\n{exc.stdout!r}\n{exc.stderr!r}")
    output = f"$ {shlex.join(argv)}  (exit {done.returncode})\n{done.stdout}\n{done.stderr}"
    bad_output = "Traceback (most recent call last)" in done.stderr or "ResourceWarning" in done.stderr
    return Outcome(done.returncode in ok_codes and not bad_output, output)


def _run_python(block: Block, workdir: Path, env: dict[str, str]) -> Outcome:
    program = _program(block)
    workdir.mkdir(parents=True)
    if program.pytest:
        (workdir / "pytest.ini").write_text(PYTEST_INI)
        if program.conftest is not None:
            (workdir / "conftest.py").write_text(program.conftest)
        (workdir / "test_block.py").write_text(program.source)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_block.py"]
        return _run(argv, workdir, env)
    (workdir / "block.py").write_text(program.source)
    if block.is_conftest:
        return _run([sys.executable, "-W", "error", "-c", "import block"], workdir, env)
    return _run([sys.executable, "-W", "error", "block.py"], workdir, env)


def _run_shell(block: Block, workdir: Path, env: dict[str, str]) -> Outcome:
    workdir.mkdir(parents=True)
    (workdir / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "prompts.jsonl", workdir / "examples" / "prompts.jsonl")
    (workdir / "prompts.jsonl").write_text('{"prompt": "a cat surfing", "model": "google/veo3", "length": 8}\n')
    (workdir / "prompts.txt").write_text("a cat surfing\na paper boat\n")
    reports = []
    for argv in _simulated_commands(block):
        outcome = _run(argv, workdir, env, ok_codes=(0, 1))
        reports.append(outcome.report)
        if not outcome.ok:
            return Outcome(False, "\n".join(reports))
    return Outcome(True, "\n".join(reports))


def _mypy_config() -> str:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    lines = ["[mypy]"]
    for key, value in config.items():
        if key == "files":
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _typecheck(blocks: list[Block], workdir: Path) -> dict[str, Outcome]:
    """Type-check every block in one mypy run; map each error back to the block (and page line)."""
    workdir.mkdir(parents=True)
    config = workdir / "mypy.ini"
    config.write_text(_mypy_config())
    files: dict[str, tuple[Block, Program]] = {}
    broken: dict[str, Outcome] = {}
    for block in blocks:
        program = _program(block)
        try:
            ast.parse(program.source)
        except SyntaxError as exc:  # mypy would stop at it and check nothing else
            broken[block.id] = Outcome(False, f"does not compile: {exc}")
            continue
        name = "docs_" + re.sub(r"\W", "_", block.page.removesuffix(".md")) + f"_L{block.line}.py"
        (workdir / name).write_text(program.source)
        files[name] = (block, program)
    argv = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(config),
        "--cache-dir",
        str(ROOT / ".mypy_cache" / "docs"),
    ]
    done = subprocess.run([*argv, *files], cwd=workdir, capture_output=True, text=True, timeout=300, check=False)
    errors: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(docs_\w+\.py):(\d+): (error|note): (.*)$", line)
        if not match or match[1] not in files:
            continue
        block, program = files[match[1]]
        offset = int(match[2]) - program.body_start
        if offset < 0 or offset >= block.code.count("\n"):  # a preamble, another block it runs with
            errors.setdefault(block.id, []).append(f"(outside the block, line {match[2]}) {match[3]}: {match[4]}")
            continue
        errors.setdefault(block.id, []).append(f"{block.page}:{block.line + 1 + offset}: {match[3]}: {match[4]}")
    if done.returncode not in (0, 1) or (done.returncode == 1 and not errors):
        raise AssertionError(f"mypy failed to run:\n{done.stdout}\n{done.stderr}")
    checked = {
        block.id: Outcome(block.id not in errors, "\n".join(errors.get(block.id, []))) for block, _ in files.values()
    }
    return checked | broken


@attrs.frozen
class Results:
    runs: dict[str, Outcome]
    types: dict[str, Outcome]


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    """A simulator in its own process, on a free loopback port, for the blocks to talk to."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fastrouter_async.testing", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"base URL: (\S+)", first)
        assert match, f"the simulator did not start: {first!r}"
        yield match[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def results(simulator_url: str) -> Iterator[Results]:
    """Run every block (four at a time) and one mypy over all python blocks, once for the module."""
    env = _env(simulator_url)
    with tempfile.TemporaryDirectory(prefix="docs-blocks-") as tmp:
        root = Path(tmp)
        to_run = [b for b in PYTHON_BLOCKS if _skip_reason(b) is None] + SHELL_BLOCKS
        to_check = [b for b in PYTHON_BLOCKS if not b.is_fragment and not _missing_requirements(b)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            types = pool.submit(_typecheck, to_check, root / "mypy")
            futures = {
                block.id: pool.submit(_run_python if block.is_python else _run_shell, block, root / f"run{number}", env)
                for number, block in enumerate(to_run)
            }
            runs = {block_id: future.result() for block_id, future in futures.items()}
            yield Results(runs, types.result())


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_block_runs(block: Block, results: Results) -> None:
    """A python block of the docs runs to completion against the simulator (or is skipped by its marker)."""
    compile(block.code, block.id, "exec", flags=_TOP_LEVEL_AWAIT)
    reason = _skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    outcome = results.runs[block.id]
    assert outcome.ok, f"{block.id} failed:\n{outcome.report}"


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if not b.is_fragment], ids=lambda b: b.id)
def test_python_block_typechecks(block: Block, results: Results) -> None:
    """A python block of the docs passes mypy --strict (with its setup, if it is a snippet)."""
    missing = _missing_requirements(block)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not a dependency of this project)")
    outcome = results.types[block.id]
    assert outcome.ok, f"{block.id} does not type-check:\n{outcome.report}"


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_simulated_command_runs(block: Block, results: Results) -> None:
    """A ``fastrouter-video ... --simulate`` command of the docs runs and exits 0 (or 1: a failed job)."""
    outcome = results.runs[block.id]
    assert outcome.ok, f"{block.id} failed:\n{outcome.report}"


def test_markers_are_known() -> None:
    """A comment right above a code block is one of the documented markers (a typo would silently skip it)."""
    for block in ALL_BLOCKS:
        unknown = set(block.markers) - MARKERS
        assert not unknown, f"{block.id}: unknown marker(s) {sorted(unknown)}; known: {sorted(MARKERS)}"
        if "no-run" in block.markers:
            assert block.markers["no-run"], f"{block.id}: <!-- no-run: reason --> needs a reason"


def test_fragments_stay_few() -> None:
    """Fragments (compiled only, never run) stay few: docs examples are programs or snippets that run."""
    fragments = [block.id for block in PYTHON_BLOCKS if block.is_fragment]
    assert len(fragments) <= MAX_FRAGMENTS, f"{len(fragments)} fragments (at most {MAX_FRAGMENTS}): {fragments}"


def test_the_docs_have_blocks() -> None:
    """The parser finds the docs' code blocks (a broken parser would make every other test vacuous)."""
    assert len(PYTHON_BLOCKS) >= 30
    assert any(block.page == "README.md" for block in PYTHON_BLOCKS)
    assert SHELL_BLOCKS


_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # fragments and snippets may show an ``await`` line


def test_parser_reads_markers_and_commands(tmp_path: Path) -> None:
    """Markers above a fence (stacked, with arguments) and --simulate commands are read as documented."""
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n<!-- requires: fastapi -->\n<!-- in: session -->\n```python\nprint(video)\n```\n\n"
        "<!-- no-run: billed -->\n```py\nx = 1\n```\n\n```python fragment\ndef f(a, b): ...\n```\n\n"
        "  ```console\n  $ fastrouter-video batch p.txt --simulate \\\n      --out v  # a comment\n"
        "  output line\n  $ make demo\n  ```\n"
    )
    snippet, no_run, fragment, shell = _parse(page, tmp_path)
    assert (snippet.id, snippet.markers) == ("page.md:5", {"in": "session", "requires": "fastapi"})
    assert snippet.code == "print(video)\n"
    assert (no_run.lang, no_run.markers) == ("py", {"no-run": "billed"})
    assert fragment.is_fragment
    command = ["batch", "p.txt", "--simulate", "--out", "v", "--simulate-time-scale", "0"]
    assert _simulated_commands(shell) == [[sys.executable, "-m", "fastrouter_async", *command]]


# -- the docs site (mkdocs.yml; `make docs` builds it with --strict) --------------------------------


def _public_names(module_name: str) -> list[str]:
    import importlib  # noqa: PLC0415

    return list(importlib.import_module(module_name).__all__)


def test_reference_renders_every_public_name() -> None:
    """Every name of ``fastrouter_async.__all__`` (and of ``.testing``) has a ``:::`` entry in docs/reference."""
    reference = "\n".join(page.read_text(encoding="utf-8") for page in (ROOT / "docs" / "reference").glob("*.md"))
    rendered = set(re.findall(r"^::: (fastrouter_async(?:\.testing)?\.\w+)\s*$", reference, re.MULTILINE))
    for module_name in ("fastrouter_async", "fastrouter_async.testing"):
        missing = [name for name in _public_names(module_name) if f"{module_name}.{name}" not in rendered]
        assert not missing, f"not in docs/reference/*.md as '::: {module_name}.NAME': {missing}"


def test_every_page_is_in_the_site_nav() -> None:
    """Each page under docs/ is listed in mkdocs.yml's nav (the site would hide it otherwise)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", config, re.MULTILINE))
    pages = {str(page.relative_to(ROOT / "docs")) for page in PAGES if page.parent != ROOT}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"mkdocs.yml's nav lists missing pages: {sorted(listed - pages)}"


def test_notebook_cells_run_as_one_script() -> None:
    """``<!-- in: notebook -->`` cells (top-level ``await``) run as one script: all the page's cells, in order."""
    cells = [block for block in PYTHON_BLOCKS if block.markers.get("in") == "notebook"]
    assert len(cells) >= 2, "docs/notebooks.md shows a notebook in several cells"
    for cell in cells:
        program = _program(cell)
        compile(program.source, cell.id, "exec")  # no top-level await left: a plain script
        positions = [program.source.index(textwrap.indent(other.code, " " * 4)) for other in cells]
        assert positions == sorted(positions)
        assert program.source.splitlines()[program.body_start - 1].strip() == cell.code.splitlines()[0].strip()


def test_docstring_roles_become_markdown() -> None:
    """The site's griffe extension turns reST roles into code spans and drops ``::`` literal markers."""
    pytest.importorskip("griffe")
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("griffe_rest", ROOT / "tools" / "griffe_rest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Takes a :class:`~fastrouter_async.VideoJob`, see :meth:`VideoJob.result`.\n\nLike this::\n\n    x = 1\n"
    expected = "Takes a `VideoJob`, see `VideoJob.result`.\n\nLike this:\n\n    x = 1\n"
    assert module.rest_to_markdown(text) == expected
    assert module.rest_to_markdown("Text.\n\n::\n\n    code\n") == "Text.\n\n\n\n    code\n"
