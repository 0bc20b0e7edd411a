"""Values: what is asked (VideoRequest), what a poll said (JobStatus), what came out (VideoResult).

All are frozen attrs classes with a dumb ``__init__``; parsing from wire payloads
lives in :mod:`fastrouter_async._protocol`.
"""

from __future__ import annotations

import datetime
import enum
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol

import attrs

from ._errors import InvalidRequestError

__all__ = [
    "CACHE_KEY_ALLOWED",
    "CACHE_KEY_MAX_LENGTH",
    "WIRE_NAMES",
    "AcceptedJob",
    "Cost",
    "DownloadedFile",
    "JobState",
    "JobStatus",
    "ResultSource",
    "SubmitEstimate",
    "VideoRequest",
    "VideoResult",
    "validate_user_cache_key",
]

DownloadProgress = Callable[[int, int | None], object]
"""``progress(bytes_received, total_or_None)``; may be a plain function or a coroutine function."""

CACHE_KEY_MAX_LENGTH: Final = 128
CACHE_KEY_ALLOWED: Final = "letters A-Z a-z, digits 0-9 and _ - : ."
# FastRouter's documented limit for a ``cache_key``: "at most 128 characters of [A-Za-z0-9_\\-:.]".
_CACHE_KEY = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")


def validate_user_cache_key(value: object) -> str:
    """``value`` if it is a key FastRouter accepts (1 to 128 of ``[A-Za-z0-9_\\-:.]``), else InvalidRequestError."""
    if not isinstance(value, str) or _CACHE_KEY.fullmatch(value) is None:
        raise InvalidRequestError(
            "cache_key", value, f"a string of 1 to {CACHE_KEY_MAX_LENGTH} characters: {CACHE_KEY_ALLOWED}"
        )
    return value


_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
# Shared by every request without extra parameters (most): one object fewer per job for the
# garbage collector to walk, which counts with 100,000 jobs in flight.


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not value:
        return _NO_EXTRA
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class VideoRequest:
    """One video generation request, in Python names.

    The wire names differ (``aspect_ratio`` is sent as ``aspectRatio``,
    ``generate_audio`` as ``generateAudio``). ``extra`` holds further API
    parameters, sent unchanged under the names given (for example
    ``{"negativePrompt": "blurry"}``). ``allow_retired`` is for this client
    only: it lets validation pass a model the catalog marks retired.
    """

    model: str
    prompt: str
    image: str | None = None
    length: int | None = None
    seconds: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    mode: str | None = None
    seed: int | None = None
    generate_audio: bool | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)
    allow_retired: bool = False
    """Submit even to a model the catalog marks retired (never sent to the server)."""
    cache_key: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(lambda _i, _a, v: _check_key(v))
    )
    """Your own key for this one job (FastRouter's ``cache_key`` header, never part of the body);
    ``None``: the session makes a fresh one. Requests sent with the same key and the same
    parameters are the same job: the second gets the first one's task id, unbilled."""

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> VideoRequest:
        """Build a request from a mapping, e.g. one line of a JSONL batch file.

        Keys may be the Python names (``aspect_ratio``) or FastRouter's wire names
        (``aspectRatio``); other keys become ``extra`` parameters, sent unchanged.
        An ``extra`` key holding a mapping is merged into them. Values are not
        converted: validation (``validate_request``) reports wrong types.
        """
        if not isinstance(fields, Mapping):
            raise InvalidRequestError(
                "request", fields, "a mapping of submit fields, e.g. {'model': ..., 'prompt': ...}"
            )
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in fields.items():
            if not isinstance(key, str):
                raise InvalidRequestError("request", key, "field names that are strings")
            name = _PYTHON_NAMES.get(key, key)
            if name == "extra":
                if not isinstance(value, Mapping):
                    raise InvalidRequestError("extra", value, "a mapping of further API parameters")
                for extra_key, extra_value in value.items():
                    _put_once(extra, str(extra_key), extra_value)
            elif name in _FIELD_NAMES:
                _put_once(known, name, value)
            else:
                _put_once(extra, key, value)
        for required in ("model", "prompt"):
            if known.get(required) is None:
                raise InvalidRequestError(required, None, "a non-empty string is required")
        return cls(**known, extra=extra)

    def describe(self) -> str:
        """A one-line summary for logs and messages (the prompt is shortened)."""
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return f"{self.model}: {prompt!r}"


WIRE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "model": "model",
        "prompt": "prompt",
        "image": "image",
        "length": "length",
        "seconds": "seconds",
        "resolution": "resolution",
        "aspect_ratio": "aspectRatio",
        "size": "size",
        "mode": "mode",
        "seed": "seed",
        "generate_audio": "generateAudio",
    }
)
"""``VideoRequest`` field sent to FastRouter -> the name its JSON body uses. The one list of the
request's parameters: building the body, reading a batch line and validation derive from it."""
_CLIENT_ONLY_FIELDS = frozenset({"allow_retired", "cache_key"})  # never part of the body
_FIELD_NAMES = frozenset(WIRE_NAMES) | _CLIENT_ONLY_FIELDS
_PYTHON_NAMES = {wire: field for field, wire in WIRE_NAMES.items() if wire != field}


def _check_key(value: object) -> None:
    validate_user_cache_key(value)


@attrs.frozen(kw_only=True)
class SubmitEstimate:
    """What the create answer's ``estimate_usage`` said the job costs.

    A submit answered from FastRouter's response cache (a replay that found the job an earlier
    attempt created) shows no credits or 0: it is the same job, never a second cost.
    """

    credits: float | None = None
    """The credits charged for the job, as estimated at submit (``None``: not stated)."""
    usd: float | None = None
    """The same in US dollars, when the answer states it."""


CostKind = Literal["estimated", "final", "unknown", "free"]


@attrs.frozen(kw_only=True)
class Cost:
    """What a job costs, and how sure that is: ``kind`` says which figure it is.

    ``"estimated"``: the submit answer's estimate (``estimate_usage``); ``"final"``: what the finished
    job's answer billed; ``"free"``: a cache hit or a job found again by a replay (never billed twice),
    or a failed job (FastRouter bills no failed job); ``"unknown"``: FastRouter did not say (some
    providers' prices arrive late). ``usd`` is in US dollars: FastRouter's credits are dollars
    (``credits_used`` 0.21 for ``costUsd`` 0.21 in its docs), so ``usd`` falls back on ``credits``.
    """

    kind: CostKind
    usd: float | None = None
    """US dollars (``None`` when unknown; 0 when free)."""
    credits: float | None = None
    """FastRouter credits as its answer gave them (``credits_used``), if it gave them."""

    @classmethod
    def unknown(cls) -> Cost:
        return cls(kind="unknown")

    @classmethod
    def free(cls) -> Cost:
        return cls(kind="free", usd=0.0, credits=0.0)

    @classmethod
    def of(cls, kind: Literal["estimated", "final"], *, usd: float | None, credits: float | None) -> Cost:
        """``kind`` with these figures; neither given: unknown."""
        usd = usd if usd is not None else credits
        return cls.unknown() if usd is None else cls(kind=kind, usd=usd, credits=credits)


def _put_once(target: dict[str, Any], key: str, value: Any) -> None:
    if key in target:
        raise InvalidRequestError(key, value, "each field once (it was given under two spellings)")
    target[key] = value


class JobState(enum.Enum):
    """Where a job stands, normalised from FastRouter's mixed status words."""

    PENDING = "pending"
    """Submitted but not visible to polls yet (a 404 inside the grace window)."""
    RUNNING = "running"
    """Queued or generating (any status word that is neither success nor failure)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class ResultSource(enum.Enum):
    """Where the finished video's bytes come from."""

    URL = "url"
    """Download from ``VideoResult.url`` (FastRouter's hosted copy first, then the provider's)."""
    POLL_BODY = "poll_body"
    """The poll route answers with the video itself; downloading re-requests it."""
    INLINE_BASE64 = "inline_base64"
    """The poll answer carried the video inline as base64 (``bytesBase64Encoded``)."""


@attrs.frozen(kw_only=True)
class JobStatus:
    """A snapshot of one poll: what the server said about a task at one moment."""

    task_id: str
    model: str | None
    state: JobState
    raw_status: str | None = None
    """The server's own status word (``"processing"``, ``"succeed"``, ...), if any."""
    urls: tuple[str, ...] = ()
    """Video URLs in priority order: FastRouter's hosted copy, then provider URLs."""
    error: str | None = None
    """The server's failure message when ``state`` is FAILED."""
    cost_usd: float | None = None
    credits_used: float | None = None
    source: ResultSource | None = None
    """Set when ``state`` is SUCCEEDED: where the video's bytes are."""
    payload: Mapping[str, Any] | None = attrs.field(default=None, repr=False, eq=False)
    """The decoded JSON answer (``None`` when the body was the video itself)."""

    @property
    def done(self) -> bool:
        return self.state.done

    def describe(self) -> str:
        """``"running (processing)"``, ``"failed: upstream status 400"``, ..."""
        text = self.state.value
        if self.raw_status and self.raw_status.lower() != text:
            text += f" ({self.raw_status})"
        if self.error:
            text += f": {self.error}"
        return text


@attrs.frozen(kw_only=True)
class AcceptedJob:
    """A submit FastRouter accepted: a paid job exists. Handed to the session's ``on_accepted`` callback.

    It is built for every accepted submit, also when the caller of ``submit()`` was
    cancelled meanwhile (``cancelled=True``: no :class:`VideoJob` reaches the caller).
    Store ``task_id``, ``model`` and ``submitted_at``; any process can then pick the
    job up with ``session.job(task_id, model=model, submitted_at=submitted_at)``.
    """

    task_id: str
    """FastRouter's id for the task."""
    model: str
    """The model the task was submitted with (status requests send it along)."""
    request: VideoRequest
    """The request that was submitted."""
    submitted_at: datetime.datetime
    """When FastRouter's answer arrived (wall clock, timezone-aware UTC)."""
    cancelled: bool = False
    """True when the caller of ``submit()`` had been cancelled by the time the answer arrived:
    it gets a ``CancelledError`` (carrying this value) instead of a job."""
    cache_key: str | None = None
    """The ``cache_key`` the submit was sent with (``None``: replays were off)."""
    found_again: bool | None = None
    """True: a replay found the job an earlier attempt had created (unbilled); False: this attempt
    created it; None: the answer does not say."""
    submit_estimate: SubmitEstimate | None = None
    """The cost the create answer stated (``estimate_usage``), or ``None`` when it stated none."""

    @classmethod
    def from_exception(cls, exc: BaseException) -> AcceptedJob | None:
        """The accepted submit an exception stands for, if any: the ``CancelledError`` of a submit
        cancelled after FastRouter accepted it, or an error raised from it (the ``TimeoutError`` of
        ``asyncio.timeout``), searched through ``__cause__``, ``__context__`` and exception groups."""
        seen: set[int] = set()
        pending: list[BaseException] = [exc]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            found = getattr(current, "fastrouter_accepted", None)
            if isinstance(found, AcceptedJob):
                return found
            if isinstance(current, BaseExceptionGroup):
                pending.extend(current.exceptions)
            pending.extend(e for e in (current.__context__, current.__cause__) if e is not None)
        return None


@attrs.frozen(kw_only=True)
class DownloadedFile(os.PathLike[str]):
    """A video written to disk, complete and verified: where, how big, and its sha256.

    It is path-like (``open(f)``, ``Path(f)``, ``os.fspath(f)`` all work) and
    ``str(f)`` is the path, so code that treated ``download()``'s answer as a
    path (or printed it) keeps working; ``repr(f)`` shows every field.
    """

    path: Path
    size: int
    """Bytes written."""
    sha256: str
    """Hex SHA-256 of the whole file, computed while writing it (and over the kept part when resumed)."""
    task_id: str | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return os.fspath(self.path)

    def exists(self) -> bool:
        """Whether the file is still at ``path`` (a shortcut for ``self.path.exists()``)."""
        return self.path.exists()


class VideoFetcher(Protocol):
    """What a :class:`VideoResult` downloads itself with (the session's engine)."""

    async def download_video(
        self,
        result: VideoResult,
        path: Path,
        *,
        overwrite: bool,
        progress: DownloadProgress | None,
        max_bytes: int | None,
    ) -> DownloadedFile: ...


@attrs.frozen(kw_only=True)
class VideoResult:
    """A finished video: where it is, what it cost, and ``download()``."""

    task_id: str
    model: str | None
    url: str | None
    """The best URL (FastRouter's hosted copy when present); ``None`` when the
    video comes as the poll body or inline."""
    urls: tuple[str, ...] = ()
    cost_usd: float | None = None
    credits_used: float | None = None
    source: ResultSource = ResultSource.URL
    payload: Mapping[str, Any] | None = attrs.field(default=None, repr=False, eq=False)
    _fetcher: VideoFetcher | None = attrs.field(default=None, repr=False, eq=False, alias="fetcher")

    @property
    def final_cost(self) -> Cost:
        """What the finished job was billed (``kind="final"``), or ``kind="unknown"`` when the answer did not say."""
        return Cost.of("final", usd=self.cost_usd, credits=self.credits_used)

    async def download(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        progress: DownloadProgress | None = None,
        max_bytes: int | None = None,
    ) -> DownloadedFile:
        """Stream the video to ``path`` and return the :class:`DownloadedFile` (path, size, sha256).

        The bytes go to ``.NAME.part`` beside ``path``, which is renamed into
        place only once complete and verified (size, and any checksum the
        server sent), so ``path`` never holds a partial or corrupt video. An
        interrupted transfer resumes with an HTTP range request; expired links
        are replaced by polling the task again (never by resubmitting it).
        Parent folders are created. With ``overwrite=False`` an existing file
        is an error. ``progress(received, total)`` is called as chunks arrive
        (``total`` is ``None`` when the size is unknown; ``received`` starts
        again from 0 if the transfer has to start over). ``max_bytes`` refuses
        a larger video (default: the session's ``max_download_bytes``).
        """
        if self._fetcher is None:
            raise RuntimeError(
                "this VideoResult is not bound to a FastRouterSession; get it from VideoJob.result() to download it"
            )
        return await self._fetcher.download_video(
            self, Path(path), overwrite=overwrite, progress=progress, max_bytes=max_bytes
        )
