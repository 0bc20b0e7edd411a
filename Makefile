# Two commands are the contract: `make demo` and `make test`, on a machine with only python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit docs bench simulator clean help

help:
	@echo "make demo   install everything and run a batch of example prompts against the embedded simulator"
	@echo "make test   install everything and run the whole check: lint, types, tests, the docs build"
	@echo "make docs   build the documentation site into site/ with --strict (serve it: .venv/bin/mkdocs serve)"
	@echo "make bench  install everything and run every benchmark (benchmarks/), printing each table (minutes)"

$(STAMP): pyproject.toml tools/bootstrap_venv.py
	$(PYTHON) tools/bootstrap_venv.py $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,docs]'
	@touch $(STAMP)

# A batch of the example prompts against the embedded simulator: the live display, ./videos and its
# manifest. One prompt is blocked by (simulated) moderation on purpose, so the batch exits 1: that is
# the expected outcome here; any other failure fails the target. examples/demo.py shows the library way.
demo: $(STAMP)
	rm -rf videos
	@echo "(one example prompt is blocked by simulated moderation on purpose, to show a failure)"
	$(BIN)/fastrouter-video batch examples/prompts.jsonl --simulate --out videos --concurrency 3 || test $$? -eq 1

test: lint typecheck unit docs

PY_SOURCES := fastrouter_async tests examples tools benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-branch --cov-report=term

# The documentation site (mkdocs.yml) into site/, with --strict: a broken link, anchor or API reference,
# a griffe warning about a docstring, or a page left out of the nav fails the build. A few seconds.
# Never add --quiet: it hides the warnings, and --strict then counts none and passes.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Every benchmark at its default size, one after the other, each printing its table; see
# docs/performance.md. BENCH_ARGS passes options on, e.g. make bench BENCH_ARGS="--repeat 5 --json results".
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

simulator: $(STAMP)
	$(BIN)/python -m fastrouter_async.testing --port 8765

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov videos site
