"""Too many jobs at once: telling a concurrency limit from a request rate, and the adaptive job cap.

A 429 usually means "too many requests": the session's throttle then pauses
every request (see :mod:`._budget`). Some upstream providers answer 429 to a
*submit* when the account already runs as many jobs as it may ("too many
concurrent tasks"). Pausing the polls then helps nothing; what helps is fewer
jobs in flight. :func:`is_concurrency_limit` tells the two apart from the
answer's text, and :class:`JobCap` lowers the session's effective
``max_concurrent_jobs`` on such an answer and restores it gradually as submits
are accepted again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from ._errors import APIStatusError

__all__ = ["JobCap", "is_concurrency_limit", "is_concurrency_limit_error"]

logger = logging.getLogger("fastrouter_async")

_S = r"[\s_-]+"  # words may be spaced, snake_cased or kebab-cased ("too_many_jobs")
_JOBS = r"(?:jobs?|tasks?|generations?|videos?)"
_JOBS_OR_REQUESTS = r"(?:jobs?|tasks?|generations?|videos?|requests?)"
_STATE = rf"(?:running|active|pending|queued|processing|ongoing|unfinished|open|in{_S}progress)"
_CONCURRENCY_LIMIT = re.compile(
    "|".join(
        (
            r"concurren(?:t|cy)",  # "too many concurrent tasks", "concurrency_limit_exceeded", "max_concurrent"
            rf"in{_S}flight",  # "at most 5 jobs in flight"
            r"simultaneous",
            rf"parallel{_S}{_JOBS_OR_REQUESTS}",
            rf"too{_S}many{_S}{_STATE}{_S}{_JOBS_OR_REQUESTS}",  # "too many running jobs"
            rf"too{_S}many{_S}{_JOBS}",  # "too many tasks" (but not "too many requests": a rate)
            rf"{_JOBS_OR_REQUESTS}{_S}at{_S}(?:once|a{_S}time|the{_S}same{_S}time)",  # "requests at once"
            rf"(?:max|maximum|limit)\w*{_S}(?:number{_S}of{_S}|of{_S})?{_STATE}{_S}{_JOBS}",  # "max active tasks"
        )
    ),
    re.IGNORECASE,
)

_SCAN_LIMIT = 4096  # characters of an answer worth reading: error texts are short


def is_concurrency_limit(*parts: object) -> bool:
    """Whether an error answer (raw bytes, text, or decoded JSON) says "too many jobs at once".

    Pure: it reads the words of every string given (and every key and string value
    of a decoded JSON body, to a small depth), the first few kilobytes only.
    """
    texts: list[str] = []
    for part in parts:
        _collect(part, texts, depth=0)
    return any(_CONCURRENCY_LIMIT.search(text[:_SCAN_LIMIT]) for text in texts)


def is_concurrency_limit_error(exc: BaseException) -> bool:
    """Whether a 429 error raised for a submit says "too many jobs at once" (not a request rate)."""
    if not isinstance(exc, APIStatusError) or exc.status_code != 429:
        return False
    return is_concurrency_limit(exc.message, exc.error_code, exc.error_type, exc.body)


def _collect(value: object, into: list[str], *, depth: int) -> None:
    if isinstance(value, bytes):
        into.append(value[:_SCAN_LIMIT].decode("utf-8", "replace"))
    elif isinstance(value, str):
        into.append(value)
    elif depth < 4 and isinstance(value, Mapping):
        for key, item in list(value.items())[:50]:
            _collect(key, into, depth=depth + 1)
            _collect(item, into, depth=depth + 1)
    elif depth < 4 and isinstance(value, list | tuple):
        for item in value[:50]:
            _collect(item, into, depth=depth + 1)


class JobCap:
    """The session's effective ``max_concurrent_jobs``: lowered by "too many jobs at once", restored by successes.

    On such an answer the cap drops to one less than the jobs in flight (the refused
    submit's slot included), never below 1 nor above the cap it had. Each accepted
    submit then counts towards the way back: once as many submits as the cap has
    been accepted, it rises by one, up to the configured limit (one more job per
    "round" of jobs, as TCP widens its window), so a cap that finds the account's
    limit again costs at most one refused submit per round.
    """

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._current = limit
        self._accepted = 0
        self.times_limited = 0
        """How many "too many jobs at once" answers the session has had."""

    @property
    def current(self) -> int | None:
        """The effective cap (``None``: the session has no cap)."""
        return self._current

    def limited(self, in_flight: int) -> int | None:
        """A submit was refused with ``in_flight`` jobs in flight (its own included); returns the new cap."""
        self.times_limited += 1
        self._accepted = 0
        if self._current is None:
            return None
        self._current = max(1, min(self._current, in_flight) - 1)
        return self._current

    def accepted(self) -> int | None:
        """A submit was accepted; returns the new cap if it rose, else ``None``."""
        if self._current is None or self._limit is None or self._current >= self._limit:
            return None
        self._accepted += 1
        if self._accepted < self._current:
            return None
        self._accepted = 0
        self._current += 1
        return self._current
