"""Configuration values, their defaults (each with the reason for its number), and the
one place environment variables are read.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn
from urllib.parse import urlsplit

import attrs

from ._errors import InvalidRequestError
from ._urls import loggable

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENT_DOWNLOADS",
    "DEFAULT_MAX_CONCURRENT_JOBS",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_LINK_REFRESHES",
    "DEFAULT_POLL_POLICY",
    "DEFAULT_REPLAY_POLICY",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUTS",
    "PollPolicy",
    "PollRoute",
    "ReplayPolicy",
    "RetryPolicy",
    "Secret",
    "Timeouts",
]

API_KEY_ENV = "FASTROUTER_API_KEY"
BASE_URL_ENV = "FASTROUTER_BASE_URL"

DEFAULT_BASE_URL = "https://go.fastrouter.ai/api/v1"
# FastRouter's documented primary gateway; https://api.fastrouter.ai/api/v1 is equivalent.

DEFAULT_MAX_CONCURRENT_JOBS = 8
# Every job in flight is money being spent and a slot at the upstream provider, whose
# per-account concurrency is typically 5-20 (Runway tiers: 1-20). Eight keeps a batch
# busy without tripping those limits; raise it deliberately, not by accident.

DEFAULT_MAX_CONCURRENT_DOWNLOADS = 4
# Downloads are limited by bandwidth, not by FastRouter: a few parallel streams fill a typical
# link, and more only split it while each holds a connection, a 1 MiB write buffer and a partial
# file. Separate from the jobs limit, so that a batch of jobs finishing together does not open a
# stream per job, and a slow download never keeps a new job from being submitted.

DEFAULT_MAX_DOWNLOAD_BYTES = 8 * 1024**3
# 8 GiB. The longest generated videos (a minute of 4K) are a few hundred MB, so this never refuses a
# real one; it stops a body that never ends (or a small gzip bomb a server sends despite
# "Accept-Encoding: identity": bytes are counted as written, after decoding) before it fills the disk.
# Pass max_download_bytes=None to lift it.

DEFAULT_MAX_LINK_REFRESHES = 2
# When every link of a result answers 403/404/410, the task is polled again for fresh links.
# Signed provider links can expire between the poll and the download, so one refresh is often
# needed; a second covers a refresh that raced with an expiry. More would only poll a task whose
# result is gone for good.

MIN_CACHE_TTL_S = 60
MAX_CACHE_TTL_S = 604_800
# The documented range of FastRouter's response cache ``cache.expiration_time`` for images and video
# (one minute to seven days).
PENDING_TIMEOUT_S = 30 * 60
# FastRouter's documented "pending-job safety timeout": an unfinished task is matched for at most this
# long after its first request, so a replay must be sent well inside it (the replay window is shorter).

MAX_JSON_BYTES = 8 * 1024 * 1024
# An API answer larger than this is not JSON we want in memory (a video body is streamed instead).


class PollRoute(enum.Enum):
    """Which route answers "how is task X doing?". FastRouter has documented all three."""

    GET_VIDEO_RESPONSE = "getVideoResponse"
    """``POST {base}/getVideoResponse`` with ``{"taskId", "model"}``: the video status route
    of FastRouter's own cheat-sheet, and the one that may answer with the video itself."""
    GET_ASYNC_RESPONSE = "getAsyncResponse"
    """``POST {base}/getAsyncResponse`` with ``{"taskId", "model"}``: the current generic route."""
    VIDEOS = "videos"
    """``GET {base}/videos/{task_id}``: the REST form, called "recommended" in newer docs."""


@attrs.frozen(kw_only=True)
class PollPolicy:
    """When to poll a running job.

    The first poll comes ``first_delay`` seconds after submit: cache hits and
    instant rejections are known at once. After that, with ``learn`` (the
    default), the gaps follow how long jobs of the same model (and video
    length) have taken, learned from the jobs this session saw finish and
    starting from documented priors per model (``docs/usage.md``, "Polling"):

    - while the job is unlikely to end soon polls are sparse: the next poll is
      set where the dense phase starts, but never more than ``max_interval``
      away. The dense phase starts when the estimated chance that the job ends
      within the next ``interval`` reaches ``dense_hazard``, and at the latest
      one ``interval`` after the estimated ``sparse_share`` quantile;
    - from there polls come every ``interval`` seconds on average;
    - a job running much longer than expected (past the estimated 99.8th
      percentile) is polled at gaps growing by ``multiplier``, up to
      ``max_interval``.

    Without ``learn`` the gaps start at ``interval`` and grow by ``multiplier``
    up to ``max_interval``. ``jitter`` spreads the polls of a batch submitted in
    one burst, by one rule: a gap is drawn evenly within ``(1 +- jitter)`` times
    its length, but never past its ceiling: ``max_interval``, the start of the
    dense phase for a sparse gap, the planned gap itself without ``learn``. So
    dense gaps average ``interval``, and no gap is ever longer than
    ``max_interval``.
    """

    first_delay: float = 1.0
    # Soon: cache hits and instant upstream rejections (an invalid prompt at the provider)
    # are known within a second or two, and nobody should wait minutes to learn them.
    interval: float = 4.5
    # The mean gap around the expected completion: the detection delay of most jobs is at most
    # about this (spread evenly within it: median about 2.3 s). Fixed 5 s polling, a common choice,
    # has a 95th percentile of 4.75 s; 4.5 s leaves room for the few jobs that finish while polling
    # is sparse, so the 95th percentile stays at fixed 5 s's (benchmarks/polling.py).
    multiplier: float = 1.5
    max_interval: float = 30.0
    # The cap between two polls of a running job, whatever was learned: a failure that happens
    # while polling is sparse (moderation after rendering) is seen within half a minute.
    jitter: float = 0.05
    # Gaps vary by +-5 % (dense ones around interval, so the mean stays interval); a gap at its ceiling
    # is only shortened, by up to 5 % (1.5 s of a 30 s gap): polls of jobs submitted together spread out.
    learn: bool = True
    dense_hazard: float = 0.1
    # Dense polling starts when a running job has a 10 % chance of ending within the next interval
    # (the hazard over one gap): a poll is then worth sending. One threshold for every kind of job
    # puts the few late detections where they save the most polls (long jobs stay sparse longer).
    sparse_share: float = 0.07
    # ... and at the latest one interval after the estimated 7th percentile of the duration: whatever
    # the hazard says, at most about 7 % of a kind of job finish while polled sparsely (and some of
    # those are still noticed within interval: only the ones ending well before a sparse poll wait).
    # 0.1 and 0.07 are the boldest pair that kept the 95th percentile at fixed 5 s's in a model of
    # benchmarks/polling.py (most warm batches); bolder settings save polls but lose that in most.
    duration_scale: float = 1.0
    # Multiplies the built-in duration priors (for a simulator that runs jobs faster than real time).
    not_found_grace: float = 60.0
    # A task can answer 404 for "the first seconds" after submit before it becomes visible.
    # Within this window after our own submit a 404 means "not visible yet"; after it, NotFoundError.

    def __attrs_post_init__(self) -> None:
        _check_non_negative("first_delay", self.first_delay)
        _check_non_negative("interval", self.interval)
        _check_non_negative("max_interval", self.max_interval)
        _check_non_negative("not_found_grace", self.not_found_grace)
        check_number("multiplier", self.multiplier, "a number >= 1", at_least=1)
        check_number("jitter", self.jitter, "a fraction in [0, 1)", at_least=0, below=1)
        if not isinstance(self.learn, bool):
            _invalid("learn", self.learn, "True or False")
        check_number("dense_hazard", self.dense_hazard, "a fraction in [0, 1)", at_least=0, below=1)
        check_number("sparse_share", self.sparse_share, "a fraction in [0, 0.5)", at_least=0, below=0.5)
        check_number("duration_scale", self.duration_scale, "a finite number > 0", above=0, below=math.inf)
        if self.interval > self.max_interval:
            _invalid("interval", self.interval, f"at most max_interval ({self.max_interval})")

    @classmethod
    def fixed(cls, interval: float, *, first_delay: float | None = None, jitter: float = 0.0) -> PollPolicy:
        """Poll every ``interval`` seconds (the first poll after ``first_delay``, default ``interval``)."""
        _check_non_negative("interval", interval)
        return cls(
            first_delay=interval if first_delay is None else first_delay,
            interval=interval,
            multiplier=1.0,
            max_interval=interval,
            jitter=jitter,
            learn=False,
        )

    def scaled(self, factor: float) -> PollPolicy:
        """This policy with every duration multiplied by ``factor``, priors included.

        For a simulator whose jobs run ``factor`` times as long as real ones
        (``factor=0.01``: a 5-minute job takes 3 seconds).
        """
        check_number("factor", factor, "a finite number > 0", above=0, below=math.inf)
        return attrs.evolve(
            self,
            first_delay=self.first_delay * factor,
            interval=self.interval * factor,
            max_interval=self.max_interval * factor,
            not_found_grace=self.not_found_grace * factor,
            duration_scale=self.duration_scale * factor,
        )

    def base_delay(self, polls_done: int) -> float:
        """The delay before the next poll (without jitter or learning) once ``polls_done`` polls were made."""
        if polls_done <= 0:
            return self.first_delay
        grown = self.interval * float(self.multiplier) ** min(polls_done - 1, 64)
        return min(grown, self.max_interval)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How to retry a request that failed transiently.

    Delays use exponential backoff with full jitter (a uniform draw in
    ``[0, min(max_delay, base_delay * 2**attempt)]``). A ``Retry-After`` from the
    server is honoured instead, capped at ``max_retry_after``.
    """

    max_attempts: int = 8
    # Polls are free: eight attempts ride out roughly a minute of outage before an error
    # surfaces. Submits are retried only when no job can have been created.
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # A server asking for longer than two minutes is treated as asking for two minutes.

    def __attrs_post_init__(self) -> None:
        check_integer("max_attempts", self.max_attempts, "an integer >= 1", at_least=1)
        _check_non_negative("base_delay", self.base_delay)
        _check_non_negative("max_delay", self.max_delay)
        _check_non_negative("max_retry_after", self.max_retry_after)

    def backoff_ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered delay after failed attempt number ``attempt`` (0-based)."""
        return min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 64))


@attrs.frozen(kw_only=True)
class ReplayPolicy:
    """Exactly-once submits: how a submit whose answer was lost is sent again.

    Every submit carries a ``cache_key`` header (one key per intended job) and a ``cache`` body
    object, so FastRouter's documented response cache answers a repeat of it with the **same task
    id, unbilled**. When a submit's answer is lost after sending (timeout, 5xx, a broken
    connection), it is re-sent with the same key and an identical body while the first attempt is
    younger than ``window`` seconds, at most ``max_replays`` times: a hit returns the task the first
    attempt created, a miss creates it now, once. ``enabled=False`` sends no key and never replays
    (a lost answer raises :class:`SubmitUncertainError`, as before).
    """

    enabled: bool = True
    window: float = 1200.0
    # 20 minutes after the first attempt. FastRouter matches an unfinished task for at most 30 minutes
    # (its "pending-job safety timeout"): past that a replay could miss although the job exists, and
    # pay twice. Ten minutes of margin cover clock skew, backoff and a slow answer.
    ttl: int = 86_400
    # One day: the cache entry (``cache.expiration_time``) must outlive the window by a wide margin so a
    # replay never misses because the entry expired; a key names one job only, so a long life is safe.
    max_replays: int = 5
    # Each replay is free when the job exists; five ride out a few minutes of a flaky connection
    # (with the retry policy's backoff between them) without hammering a server in trouble.

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            _invalid("enabled", self.enabled, "True or False")
        check_number(
            "window",
            self.window,
            f"a number of seconds > 0 and <= {PENDING_TIMEOUT_S} (FastRouter's 30-minute pending-job timeout)",
            above=0,
            at_most=PENDING_TIMEOUT_S,
        )
        ttl_allowed = f"an integer number of seconds from {MIN_CACHE_TTL_S} to {MAX_CACHE_TTL_S}"
        check_integer("ttl", self.ttl, ttl_allowed, at_least=MIN_CACHE_TTL_S, at_most=MAX_CACHE_TTL_S)
        if self.ttl < self.window:
            _invalid(
                "ttl", self.ttl, f"at least the window ({self.window:g} s), so a replay never finds the entry gone"
            )
        check_integer("max_replays", self.max_replays, "an integer >= 0", at_least=0)


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts in seconds."""

    connect: float = 10.0
    # Establishing a TCP+TLS connection. A connect that fails sent nothing, so even a submit may retry it.
    request: float = 60.0
    # One whole API exchange. FastRouter answers submits and polls in well under a second;
    # a minute means something is wrong.
    read: float = 60.0
    # The longest silence tolerated between two chunks of a download.

    def __attrs_post_init__(self) -> None:
        for name in ("connect", "request", "read"):
            check_number(name, getattr(self, name), "a positive number of seconds", above=0)


class Secret:
    """Holds the API key so that it never shows up by accident.

    ``repr``/``str`` are masked and pickling is refused, so the key cannot leak
    into logs, tracebacks or files written by ``pickle``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("the API key is not picklable")


def resolve_api_key(explicit: str | None) -> Secret:
    """The key given, else ``FASTROUTER_API_KEY``; a clear error when there is none."""
    value = explicit if explicit is not None else os.environ.get(API_KEY_ENV)
    if value is None or not value.strip():
        raise InvalidRequestError(
            "api_key",
            "<missing>" if value is None else "<empty>",
            f"pass api_key=... or set the {API_KEY_ENV} environment variable (FastRouter keys start with 'sk-v1-')",
        )
    if any(ch.isspace() for ch in value.strip()) or value != value.strip():
        # Not echoed: a key with stray whitespace is still a secret.
        raise InvalidRequestError("api_key", "<redacted>", "a single token without spaces or newlines")
    return Secret(value)


def resolve_base_url(explicit: str | None) -> str:
    """The base URL given, else ``FASTROUTER_BASE_URL``, else the default; normalised."""
    value = explicit if explicit is not None else os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return normalize_base_url(value)


def normalize_base_url(url: str) -> str:
    """Check ``url`` is https (or http on a loopback address) and drop a trailing slash.

    A refused URL is never echoed whole: its user-info and query string may hold a key or a
    password, so the error shows it through ``loggable`` (both redacted).
    """
    allowed = "an https:// URL (plain http:// only for a loopback address such as 127.0.0.1)"
    if not isinstance(url, str):
        _invalid("base_url", url, allowed)
    shown = loggable(url.strip())
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
        _ = parts.port  # a port that is not a number in range raises here
    except ValueError:  # its message quotes the URL: not kept as the context of our error
        parts = None
    if parts is None:
        _invalid("base_url", shown, f"{allowed}, with a valid host and port")
    if parts.scheme not in ("http", "https") or not hostname:
        _invalid("base_url", shown, allowed)
    if "@" in parts.netloc:
        _invalid(
            "base_url",
            shown,
            "a URL without credentials: the API key is passed as api_key= (or FASTROUTER_API_KEY), never in the URL",
        )
    if parts.query or parts.fragment:
        _invalid("base_url", shown, "a URL without query or fragment (the API key is passed as api_key=)")
    if not url.strip().isprintable():
        _invalid("base_url", shown, "a URL without control characters")
    if parts.scheme == "http" and not is_loopback_host(hostname):
        _invalid("base_url", shown, allowed)
    return url.strip().rstrip("/")


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def package_version() -> str:
    """This package's installed version; ``"0+unknown"`` when running from a source tree that was not installed."""
    try:
        return version("fastrouter-async")
    except PackageNotFoundError:  # pragma: no cover - an uninstalled source tree
        return "0+unknown"


def check_wait_timeout(timeout: object) -> None:
    """A ``timeout=`` on a wait: seconds >= 0, or ``None`` to wait as long as it takes."""
    if timeout is not None:
        check_number("timeout", timeout, "a number of seconds >= 0, or None to wait as long as it takes", at_least=0)


def check_number(
    name: str,
    value: object,
    allowed: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> float:
    """``value`` as a float if it is a number (not a bool) within the bounds given; else InvalidRequestError.

    The error names ``name`` and says what is ``allowed``. ``below=math.inf`` asks for a finite
    number; NaN fails every bound.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        _invalid(name, value, allowed)
    if (
        (above is not None and not value > above)
        or (at_least is not None and not value >= at_least)
        or (below is not None and not value < below)
        or (at_most is not None and not value <= at_most)
    ):
        _invalid(name, value, allowed)
    return float(value)


def check_integer(
    name: str, value: object, allowed: str, *, at_least: int | None = None, at_most: int | None = None
) -> int:
    """``value`` if it is an int (not a bool) within the bounds given; else InvalidRequestError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        _invalid(name, value, allowed)
    if (at_least is not None and value < at_least) or (at_most is not None and value > at_most):
        _invalid(name, value, allowed)
    return value


def check_limit(name: str, value: object, allowed: str) -> int | None:
    """A limit: ``None`` (no bound) or an int >= 1 (not a bool); else InvalidRequestError naming ``name``."""
    return None if value is None else check_integer(name, value, allowed, at_least=1)


def _check_non_negative(name: str, value: object) -> None:
    check_number(name, value, "a number of seconds >= 0", at_least=0)


def _invalid(name: str, value: object, allowed: str) -> NoReturn:
    raise InvalidRequestError(name, value, allowed)


DEFAULT_POLL_POLICY = PollPolicy()
DEFAULT_REPLAY_POLICY = ReplayPolicy()
DEFAULT_RETRY_POLICY = RetryPolicy()
DEFAULT_TIMEOUTS = Timeouts()
