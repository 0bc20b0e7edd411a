"""The error tree of fastrouter-async.

Every exception the library raises on purpose is a :class:`FastRouterError`;
aiohttp exceptions never escape, they are mapped here and chained as
``__cause__``. The branches say *who* said no::

    FastRouterError
    ├── InvalidRequestError (also ValueError)   bad input, caught before any request
    ├── APIError                                something went wrong talking to the API
    │   ├── APIStatusError                      the server answered with an error status
    │   │   ├── BadRequestError                 400
    │   │   ├── AuthenticationError             401
    │   │   ├── InsufficientCreditsError        402
    │   │   ├── PermissionDeniedError           403 (moderation)
    │   │   ├── NotFoundError                   404 (unknown or expired task)
    │   │   ├── RateLimitError                  429, with retry_after
    │   │   └── ServerError                     5xx
    │   ├── APIConnectionError                  the server could not be reached / the connection broke
    │   │   └── APITimeoutError (also TimeoutError)
    │   └── UnexpectedResponseError             a 2xx answer that cannot be understood
    ├── SubmitUncertainError                    a paid submit may or may not have created a job
    ├── SpendCapError                           a submit was not sent: it could take spend over the cap
    ├── JobFailedError                          the generation itself failed
    ├── JobTimeoutError (also TimeoutError)     result(timeout=...) ran out while the job was running
    └── DownloadError                           the video could not be written to disk

No message ever contains the API key: messages built from server bodies are
scrubbed before they get here (see ``_protocol.scrub``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import JobStatus, VideoRequest

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "DownloadError",
    "FastRouterError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SpendCapError",
    "StoreError",
    "SubmitUncertainError",
    "UnexpectedResponseError",
]


class FastRouterError(Exception):
    """Base class of every error raised by fastrouter-async."""


class InvalidRequestError(FastRouterError, ValueError):
    """Bad input, caught before anything was sent.

    ``field`` is the offending parameter (its Python name), ``value`` what was
    given and ``allowed`` a human-readable description of what is accepted.
    """

    def __init__(self, field: str, value: object, allowed: str, *, model: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.model = model
        shown = _short_repr(value)
        where = f" for model {model!r}" if model else ""
        super().__init__(f"invalid {field}={shown}{where}: {allowed}")


class APIError(FastRouterError):
    """Something went wrong while talking to the FastRouter API."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.message = message
        self.method = method
        self.url = url
        super().__init__(message)


class APIStatusError(APIError):
    """The server answered with an error status.

    ``body`` is the decoded JSON body (a dict), the text of a non-JSON body, or
    ``None``; it has been scrubbed of the API key.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        url: str | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})
        self.error_type = error_type
        self.error_code = error_code
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"HTTP {status_code}{where}: {message}", method=method, url=url)
        self.message = message


class BadRequestError(APIStatusError):
    """400: invalid parameters, model or task id."""


class AuthenticationError(APIStatusError):
    """401: the API key is invalid, disabled or expired."""


class InsufficientCreditsError(APIStatusError):
    """402: the account or key has run out of credits."""


class PermissionDeniedError(APIStatusError):
    """403: typically the input was flagged by the model's content moderation."""


class NotFoundError(APIStatusError):
    """404: unknown task id, or a result that has expired."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server or the upstream model failed (502 is "model down")."""


class APIConnectionError(APIError):
    """The API could not be reached, or the connection broke.

    ``request_sent`` tells whether the request may have reached the server:
    ``False`` only when the connection failed before a byte was written.
    """

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool = True,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.request_sent = request_sent
        super().__init__(message, method=method, url=url)


class APITimeoutError(APIConnectionError, TimeoutError):
    """A request timed out (connecting, or waiting for the answer)."""


class UnexpectedResponseError(APIError):
    """A successful HTTP answer whose content cannot be understood.

    For example malformed JSON, a success without any video URL, or a create
    response without a task id. ``body`` holds what was received (scrubbed).
    """

    def __init__(
        self,
        message: str,
        *,
        body: object = None,
        status_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.body = body
        self.status_code = status_code
        super().__init__(message, method=method, url=url)


class SubmitUncertainError(FastRouterError):
    """A submit may have created a paid job, but its answer was lost.

    Raised when the request was sent and then timed out, the connection broke,
    the server answered 5xx, or the answer could not be read, and it could not be
    sent again safely: replays are off (``ReplayPolicy(enabled=False)``), the
    first attempt is older than the replay window, or the replays ran out.

    ``cache_key`` is the key the submit was sent with and ``first_attempt_at``
    (a unix time) when it was first sent. Within the window, re-sending with the
    same key is safe, and finds the job if it exists, unbilled:
    ``await session.submit(attrs.evolve(exc.request, cache_key=exc.cache_key))``.
    Without a key (replays off) check the FastRouter dashboard (or your journal)
    before submitting ``request`` again: resubmitting could pay twice.

    ``task_id`` is a task id salvaged from the raw answer (a best-effort scan of
    an answer that could not be interpreted), or ``None`` when it showed none:
    with one, re-attach with ``session.job(task_id, model=...)`` instead of
    submitting again. ``status_code`` is the HTTP status of the answer, if any.
    """

    def __init__(
        self,
        request: VideoRequest,
        reason: str,
        *,
        task_id: str | None = None,
        status_code: int | None = None,
        cache_key: str | None = None,
        first_attempt_at: float | None = None,
    ) -> None:
        self.request = request
        self.reason = reason
        self.task_id = task_id
        self.status_code = status_code
        self.cache_key = cache_key
        self.first_attempt_at = first_attempt_at
        if task_id is None and cache_key is not None:
            advice = (
                f"it was not resubmitted automatically. It was sent with cache_key {cache_key!r}: within the "
                "replay window after the first attempt (ReplayPolicy.window, 20 minutes by default) re-sending the "
                "same request with that key finds the job if it exists, unbilled; later, check before submitting again."
            )
        elif task_id is None:
            advice = "it was not resubmitted. Check before submitting it again."
        else:
            advice = (
                f"the answer showed task id {task_id!r}, so the job is probably {task_id}: re-attach it with "
                f"session.job({task_id!r}, model={request.model!r}) instead of submitting again."
            )
        super().__init__(
            f"submit of model {request.model!r} may have created a paid job, but its answer was lost "
            f"({reason}); {advice}"
        )


class SpendCapError(FastRouterError):
    """A submit was not sent: its cost, reserved on top of what is spent and reserved, would exceed the cap.

    ``cap_usd`` is the cap (``max_spend_usd``), ``spent_usd`` the final costs of jobs that ended,
    ``reserved_usd`` the estimates of jobs still running and ``cost_usd`` what this job would cost
    (``None``: its price is unknown, and no ``unknown_price_usd`` was given to assume one). Nothing
    was sent or billed; raise the cap (or give ``unknown_price_usd``) and submit again.
    """

    def __init__(
        self,
        *,
        cap_usd: float,
        spent_usd: float,
        reserved_usd: float,
        cost_usd: float | None,
        model: str | None = None,
    ) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.cost_usd = cost_usd
        self.model = model
        job = f"a job of model {model!r}" if model else "the job"
        if cost_usd is None:
            why = (
                f"the price of {job} is unknown (no price table entry and nothing paid for it before), so it "
                "cannot be kept under the cap; pass unknown_price_usd= (--unknown-price USD) to assume one"
            )
        else:
            why = f"{job} would cost ${cost_usd:.4f}"
        super().__init__(
            f"spend cap ${cap_usd:.2f} reached: ${spent_usd:.4f} spent and ${reserved_usd:.4f} reserved; {why}. "
            "Nothing was sent."
        )


class JobFailedError(FastRouterError):
    """The generation failed on the server (or was cancelled there)."""

    def __init__(self, task_id: str, model: str | None, message: str, *, status: JobStatus | None = None) -> None:
        self.task_id = task_id
        self.model = model
        self.message = message
        self.status = status
        super().__init__(f"job {task_id} ({model or 'unknown model'}) failed: {message}")


class JobTimeoutError(FastRouterError, TimeoutError):
    """Waiting for a job ran out of time. The job itself may still finish.

    ``last_status`` is the last snapshot seen (``None`` if no poll answered yet).
    The same ``VideoJob`` can be awaited again, or re-attached later by task id.
    """

    def __init__(self, task_id: str, model: str | None, waited: float, last_status: JobStatus | None) -> None:
        self.task_id = task_id
        self.model = model
        self.waited = waited
        self.last_status = last_status
        state = last_status.describe() if last_status is not None else "no status received yet"
        super().__init__(
            f"gave up waiting for job {task_id} ({model or 'unknown model'}) after {waited:.1f}s; "
            f"last status: {state}. The job was not cancelled: await it again or re-attach it by task id."
        )


class DownloadError(FastRouterError):
    """The finished video could not be downloaded and written to disk.

    The generation is *not* repeated: the result and its task id stay valid, so
    the download can be retried.
    """

    def __init__(self, message: str, *, task_id: str | None = None, url: str | None = None) -> None:
        self.task_id = task_id
        self.url = url
        super().__init__(message)


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StoreError(FastRouterError):
    """The store shared with other processes (``FastRouterSession(store=...)``) could not be used.

    Raised before anything is sent (a submit whose intent could not be recorded, a job slot that
    could not be taken): nothing was paid for. A store that fails after a job was accepted does not
    lose it: the job handle is returned, and the failure is logged.
    """
