"""fastrouter-async: the async-first client for FastRouter's video generation API.

::

    from fastrouter_async import FastRouterSession

    async with FastRouterSession(max_concurrent_jobs=8) as session:  # key from FASTROUTER_API_KEY
        job = await session.submit(model="google/veo3", prompt="a cat surfing", length=8)
        video = await job
        await video.download("out/cat.mp4")

Everything public is importable from here; ``fastrouter_async.testing`` holds the
FastRouter simulator for tests.
"""

import contextlib as _contextlib
import inspect as _inspect
import logging as _logging
import typing as _typing

from ._batch import BatchOutcome, BatchProgress, BatchRun, OutcomeStatus
from ._budget import RequestBudget
from ._catalog import MODELS
from ._catalog_cache import ListedCatalog, ListedModel, cached_catalog, refresh_catalog
from ._config import DEFAULT_BASE_URL, DEFAULT_REPLAY_POLICY, PollPolicy, PollRoute, ReplayPolicy, RetryPolicy, Timeouts
from ._config import package_version as _package_version
from ._costs import RequestEstimate, SpendEstimate
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    FastRouterError,
    InsufficientCreditsError,
    InvalidRequestError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpendCapError,
    StoreError,
    SubmitUncertainError,
    UnexpectedResponseError,
)
from ._events import (
    DownloadFinished,
    DownloadProgressed,
    Event,
    JobEnded,
    JobSubmitted,
    PollerBehind,
    PollerCaughtUp,
    PollRetried,
    RateLimited,
    StatusChanged,
)
from ._filenames import safe_filename, unique_path
from ._job import VideoJob
from ._job_events import JobEvents
from ._journal import JournalError
from ._journal_read import BatchJournal, JournalRecord, read_journal
from ._lookup import find_model, price_for
from ._models import (
    AcceptedJob,
    Cost,
    DownloadedFile,
    JobState,
    JobStatus,
    ResultSource,
    SubmitEstimate,
    VideoRequest,
    VideoResult,
)
from ._poller import PollerStatistics
from ._session import FastRouterSession
from ._shared import JobRecord
from ._specs import ModelSpec, Price
from ._validate import validate as validate_request

# A library logs, the application decides where it goes (nowhere until it configures logging).
_logging.getLogger("fastrouter_async").addHandler(_logging.NullHandler())

__version__ = _package_version()

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_REPLAY_POLICY",
    "MODELS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AcceptedJob",
    "AuthenticationError",
    "BadRequestError",
    "BatchJournal",
    "BatchOutcome",
    "BatchProgress",
    "BatchRun",
    "Cost",
    "DownloadError",
    "DownloadFinished",
    "DownloadProgressed",
    "DownloadedFile",
    "Event",
    "FastRouterError",
    "FastRouterSession",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobEnded",
    "JobEvents",
    "JobFailedError",
    "JobRecord",
    "JobState",
    "JobStatus",
    "JobSubmitted",
    "JobTimeoutError",
    "JournalError",
    "JournalRecord",
    "ListedCatalog",
    "ListedModel",
    "ModelSpec",
    "NotFoundError",
    "OutcomeStatus",
    "PermissionDeniedError",
    "PollPolicy",
    "PollRetried",
    "PollRoute",
    "PollerBehind",
    "PollerCaughtUp",
    "PollerStatistics",
    "Price",
    "RateLimitError",
    "RateLimited",
    "ReplayPolicy",
    "RequestBudget",
    "RequestEstimate",
    "ResultSource",
    "RetryPolicy",
    "ServerError",
    "SpendCapError",
    "SpendEstimate",
    "StatusChanged",
    "StoreError",
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
]

# Public classes and functions say they live where users import them from (as httpx does): reprs,
# tracebacks, pickles and introspection name ``fastrouter_async.VideoRequest``, not a private module.
# A class's string annotations are resolved first, against the module that wrote them, so that
# ``typing.get_type_hints`` (attrs.resolve_types, cattrs) still finds the names they use.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        with _contextlib.suppress(NameError):  # a name only known to type checkers: left as written
            _obj.__annotations__ = _typing.get_type_hints(_obj, include_extras=True)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = "fastrouter_async"
        if _obj.__name__ != _name:  # exported under another name (validate_request): pickles find it by that name
            _obj.__name__ = _obj.__qualname__ = _name
del _name, _obj
