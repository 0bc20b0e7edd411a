"""The public surface is exactly what __all__ says, and every public name is importable."""

from __future__ import annotations

import inspect
import pickle
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastrouter_async
import fastrouter_async.testing

PUBLIC = {
    "DownloadFinished",
    "DownloadProgressed",
    "Event",
    "JobEnded",
    "JobEvents",
    "JobSubmitted",
    "PollRetried",
    "PollerBehind",
    "PollerCaughtUp",
    "PollerStatistics",
    "RateLimited",
    "StatusChanged",
    "DEFAULT_BASE_URL",
    "DEFAULT_REPLAY_POLICY",
    "MODELS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AcceptedJob",
    "Cost",
    "AuthenticationError",
    "BatchJournal",
    "BatchOutcome",
    "BatchProgress",
    "BatchRun",
    "BadRequestError",
    "DownloadError",
    "DownloadedFile",
    "FastRouterError",
    "FastRouterSession",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobFailedError",
    "JobState",
    "JobStatus",
    "JobTimeoutError",
    "JournalError",
    "JobRecord",
    "JournalRecord",
    "ListedCatalog",
    "ListedModel",
    "ModelSpec",
    "NotFoundError",
    "OutcomeStatus",
    "PermissionDeniedError",
    "PollPolicy",
    "PollRoute",
    "Price",
    "RateLimitError",
    "RequestEstimate",
    "ReplayPolicy",
    "RequestBudget",
    "ResultSource",
    "RetryPolicy",
    "ServerError",
    "SpendCapError",
    "StoreError",
    "SpendEstimate",
    "SubmitEstimate",
    "SubmitUncertainError",
    "Timeouts",
    "UnexpectedResponseError",
    "VideoJob",
    "VideoRequest",
    "VideoResult",
    "__version__",
    "cached_catalog",
    "find_model",
    "price_for",
    "read_journal",
    "refresh_catalog",
    "safe_filename",
    "unique_path",
    "validate_request",
}


def test_exported_members() -> None:
    """__all__ is sorted, complete and importable; no other public name is exposed."""
    assert set(fastrouter_async.__all__) == PUBLIC
    assert fastrouter_async.__all__ == sorted(fastrouter_async.__all__, key=lambda n: (not n.isupper(), n))
    for name in fastrouter_async.__all__:
        assert hasattr(fastrouter_async, name)
    subpackages = {"testing", "cli"}  # imported as fastrouter_async.testing / fastrouter_async.cli
    exposed = {n for n in vars(fastrouter_async) if not n.startswith("_") and n not in subpackages}
    assert exposed <= PUBLIC | {"version", "PackageNotFoundError"}


def test_testing_namespace() -> None:
    """The simulator's public names are importable from fastrouter_async.testing."""
    for name in fastrouter_async.testing.__all__:
        assert hasattr(fastrouter_async.testing, name)
    assert {"FastRouterSimulator", "Fault", "JobPlan", "SimulatorServer"} <= set(fastrouter_async.testing.__all__)


def test_error_tree() -> None:
    """Every error is a FastRouterError; status errors share APIStatusError; timeouts are TimeoutErrors."""
    f = fastrouter_async
    for name in fastrouter_async.__all__:
        obj = getattr(f, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, f.FastRouterError), name
    for cls in (
        f.BadRequestError,
        f.AuthenticationError,
        f.InsufficientCreditsError,
        f.PermissionDeniedError,
        f.NotFoundError,
        f.RateLimitError,
        f.ServerError,
    ):
        assert issubclass(cls, f.APIStatusError)
    assert issubclass(f.APITimeoutError, TimeoutError)
    assert issubclass(f.APITimeoutError, f.APIConnectionError)
    assert issubclass(f.JobTimeoutError, TimeoutError)
    assert issubclass(f.InvalidRequestError, ValueError)


def test_public_classes_and_functions_name_the_public_module() -> None:
    """Every exported class and function reports ``__module__ == "fastrouter_async"`` under its exported name."""
    for name in fastrouter_async.__all__:
        obj = getattr(fastrouter_async, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__module__ == "fastrouter_async", name
            assert obj.__qualname__ == name, name


def test_public_values_and_functions_still_pickle() -> None:
    """Frozen values, enums, classes and functions round-trip through pickle by their public names."""
    f = fastrouter_async
    for value in (f.PollPolicy(), f.Timeouts(), f.JobState.SUCCEEDED, f.validate_request, f.FastRouterSession):
        assert pickle.loads(pickle.dumps(value)) == value


def test_public_classes_type_hints_still_resolve() -> None:
    """typing.get_type_hints on a public value still resolves its annotations after the module rename."""
    hints = typing.get_type_hints(fastrouter_async.VideoRequest)
    assert hints["extra"] == Mapping[str, Any]
    assert typing.get_type_hints(fastrouter_async.PollPolicy)


def test_error_guide_draws_every_error_where_it_sits() -> None:
    """docs/errors.md's tree names every exported error under its direct base class."""
    page = (Path(__file__).parent.parent / "docs" / "errors.md").read_text(encoding="utf-8")
    tree = page.split("## The tree", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    parents: list[str] = []  # the chain of names above the current line, by depth
    drawn: dict[str, str | None] = {}
    for line in tree.splitlines():
        match = re.search(r"[A-Za-z]\w*", line)
        assert match is not None, line
        depth = match.start() // 4
        del parents[depth:]
        drawn[match.group()] = parents[-1] if parents else None
        parents.append(match.group())
    errors = {
        name: obj
        for name in fastrouter_async.__all__
        if isinstance(obj := getattr(fastrouter_async, name), type) and issubclass(obj, Exception)
    }
    assert set(drawn) == set(errors)
    for name, cls in errors.items():
        bases = [b.__name__ for b in cls.__bases__ if issubclass(b, fastrouter_async.FastRouterError)]
        assert drawn[name] == (bases[0] if bases else None), name
