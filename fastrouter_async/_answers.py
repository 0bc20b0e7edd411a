"""What an answer of the submit or a poll route means, whatever the server sent.

The parsers of ``_protocol`` read the answers FastRouter documents. These functions wrap them
with the rules for everything else, so that each route has exactly the documented outcomes:

* submit (a paid ``POST``): a :class:`SubmitAccepted`; an :class:`APIStatusError` when the server
  refused (4xx, or a redirect, which this client never follows for a submit); or
  :class:`SubmitUncertainError` when the job may exist (5xx, ``303 See Other``, any answer that
  cannot be read), carrying the task id salvaged from the raw bytes when they show one.
* poll: a :class:`JobStatus`; an :class:`APIStatusError` for an error status; or
  :class:`UnexpectedResponseError` (transient: polled again) for any answer that cannot be read.

No other exception leaves these functions, and none is chained to the errors they raise: the
exception of a decoder or a bug could hold the raw body, and with it an echoed key.
"""

from __future__ import annotations

from ._config import Secret
from ._errors import APIStatusError, FastRouterError, SubmitUncertainError, UnexpectedResponseError
from ._interpret import parse_poll_response, parse_submit_response, usable_task_id
from ._models import JobStatus, VideoRequest
from ._protocol import HttpCall, Response, SubmitAccepted, body_preview, error_for_status
from ._untrusted import salvage_task_id
from ._urls import loggable

__all__ = ["detached", "poll_outcome", "submit_outcome", "unexpected_error"]

_SEE_OTHER = 303


def submit_outcome(
    response: Response, request: VideoRequest, *, call: HttpCall, secret: Secret | None, now: float
) -> SubmitAccepted:
    """The accepted job of a submit answer, or the documented error it amounts to."""
    status = response.status
    where = loggable(call.url)
    if 300 <= status < 400:
        raise _redirected_submit(response, request, where, secret)
    if 400 <= status < 500:
        raise error_for_status(response, method=call.method, url=where, scrub_secret=secret, now=now)
    if not 200 <= status < 300:  # 5xx, or a status no server should send: the job may exist
        error = error_for_status(response, method=call.method, url=where, scrub_secret=secret, now=now)
        raise SubmitUncertainError(
            request,
            f"the server answered HTTP {status}: {error.message}",
            task_id=usable_task_id(salvage_task_id(response.body), secret),
            status_code=status,
        ) from error  # our own error, scrubbed: the server's status, message and headers
    failure: FastRouterError | None = None
    try:
        return parse_submit_response(response, scrub_secret=secret)
    except APIStatusError:
        raise  # the body itself reports a refusal and shows no task id: no job was created
    except FastRouterError as exc:
        failure = exc
    except Exception as exc:  # any answer, however odd, ends in a documented error
        failure = unexpected_error(exc, f"the answer to {call.method} {where}", status)
    raise SubmitUncertainError(
        request,
        str(failure),
        task_id=usable_task_id(salvage_task_id(response.body), secret),
        status_code=status,
    )


def poll_outcome(
    response: Response,
    *,
    task_id: str,
    model: str | None,
    call: HttpCall,
    secret: Secret | None,
    now: float,
) -> JobStatus:
    """The job status a poll answer shows, or the documented error it amounts to."""
    if not 200 <= response.status < 300:  # the URL is made loggable only for an error: not on every poll
        raise error_for_status(response, method=call.method, url=loggable(call.url), scrub_secret=secret, now=now)
    failure: FastRouterError | None = None
    try:
        return parse_poll_response(response, task_id=task_id, model=model, scrub_secret=secret)
    except FastRouterError as exc:
        failure = exc
    except Exception as exc:  # any answer, however odd, ends in a documented error
        failure = unexpected_error(exc, f"the status answer for task {task_id}", response.status)
    failure.__context__ = None
    raise failure


def detached(error: FastRouterError) -> FastRouterError:
    """``error`` (and the errors chained to it) without traceback frames, to be raised again at once.

    The frames below the session's request boundary hold the raw answer in their local variables
    (bodies, headers, the aiohttp response): a server that echoes the key would put it there, and
    error trackers record every frame's locals. The message and fields say what happened.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        pending += [linked for linked in (exc.__cause__, exc.__context__) if linked is not None]
    return error


def unexpected_error(exc: BaseException, what: str, status: int | None = None) -> UnexpectedResponseError:
    """Our error for an exception no rule foresaw; it names the exception's type, never its text."""
    return UnexpectedResponseError(f"{what} could not be interpreted ({type(exc).__name__})", status_code=status)


def _redirected_submit(response: Response, request: VideoRequest, where: str, secret: Secret | None) -> FastRouterError:
    """A submit answered with a redirect: refused, never re-sent; uncertain only if a job may exist."""
    status = response.status
    location = response.headers.get("location")
    target = loggable(location) if location else "no Location"
    salvaged = usable_task_id(salvage_task_id(response.body), secret)
    if salvaged is None and location:
        salvaged = usable_task_id(salvage_task_id(location.encode("utf-8", "replace")), secret)
    if status == _SEE_OTHER or salvaged is not None:
        # "See Other" answers a POST that was processed; a body showing a task id is evidence too.
        return SubmitUncertainError(
            request,
            f"the server answered the submit with HTTP {status} to {target}, which this client does not follow",
            task_id=salvaged,
            status_code=status,
        )
    return APIStatusError(
        f"the submit was redirected to {target}; a paid request is never re-sent to another address, so "
        "nothing was created by it. FastRouter does not redirect submits: check base_url "
        f"(the answer: {body_preview(response.body, secret, 100)})",
        status_code=status,
        headers={"location": target},
        method="POST",
        url=where,
    )
