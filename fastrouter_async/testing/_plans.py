"""What the simulator is told to do: job plans (how a job behaves) and faults (what goes wrong)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, get_args

import attrs

__all__ = ["Fault", "FaultKind", "FaultRoute", "JobPlan", "Outcome"]

Outcome = Literal[
    "succeed",
    "failed",
    "failed_generation",
    "video_body",
    "inline_base64",
    "no_url",
    "vanish",
]
FaultRoute = Literal["submit", "poll", "download", "any"]
FaultKind = Literal["status", "slow", "malformed_json", "drop", "truncate", "corrupt", "serve"]


def _video_repr(video: bytes | None) -> str:
    return "None" if video is None else f"<{len(video)} bytes>"


@attrs.frozen(kw_only=True)
class JobPlan:
    """How one simulated job behaves, from submit to its final poll answer.

    **When is it done?** Counting only the polls that see the job (not the
    404s while it is hidden, see below), the N-th poll answers with the final
    outcome when ``N >= polls`` *and* at least ``duration`` seconds (of the
    simulator's clock, the event loop's by default) have passed since the
    submit. So the default ``JobPlan()`` (``polls=1, duration=0``) is done at
    the first poll, and ``JobPlan(polls=3)`` answers "processing" twice first.
    Once done, a job stays done: every later poll gives the same final answer.

    **Hidden right after submit.** A poll answers 404 (as if the task id were
    unknown) while fewer than ``hidden_polls`` polls have been made for it,
    or while less than ``visible_after`` seconds have passed since the submit.

    **Outcomes** (the answer once done):

    - ``"succeed"``: the documented success shape with a provider CDN URL in
      ``data.generations[0].url`` and FastRouter's hosted copy in
      ``fastrouter_assets.urls``.
    - ``"failed"``: the live-observed failure, HTTP 200 with ``code: "failed"``,
      ``data.status: "failed"``, no generations and a top-level string ``error``.
    - ``"failed_generation"``: ``data.status: "failed"`` and one generation with
      ``status: "failed"`` and ``failMsg: error``; no top-level ``error``.
    - ``"video_body"``: the poll answers with the MP4 bytes themselves
      (``Content-Type: video/mp4``), as the legacy getVideoResponse did for Sora.
    - ``"inline_base64"``: the success shape, but the generation carries the
      video as ``bytesBase64Encoded`` with an empty ``url``, and there is no
      ``fastrouter_assets``.
    - ``"no_url"``: a success status with no video anywhere (empty ``url``, no
      ``fastrouter_assets``); clients should treat it as an error.
    - ``"vanish"``: once done, polls answer 404 as if the result had expired.
    """

    duration: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """Seconds from submit before the job can be done."""
    polls: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """The job is done at the earliest at this (visible) poll."""
    outcome: Outcome = attrs.field(default="succeed", validator=attrs.validators.in_(get_args(Outcome)))
    error: str = "openai submit: upstream status 400"
    """The failure message of the ``failed`` and ``failed_generation`` outcomes."""
    status_word: str = "succeed"
    """The success word in ``data.status`` and ``generations[].status`` (``"succeeded"``, ``"completed"``...)."""
    omit_overall_status: bool = False
    """Leave ``data.status`` out of every poll answer, so clients must read ``generations[].status``."""
    running_word: str = "processing"
    """The status word while running (Pollo also uses ``"waiting"``)."""
    cost_usd: float | None = 0.21
    """The job's price: ``data.costUsd`` of the final answer, and the ``credits_used`` of the create
    answer's ``estimate_usage`` and of the final answer's ``usage`` (FastRouter bills in USD credits).
    ``None``: a price that arrives late (some providers): both answers state it as ``null``."""
    credits: float = 3.5
    """The upstream provider's own credit count: ``data.credit`` of the final answer (clients ignore it)."""
    visible_after: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """Polls answer 404 until this many seconds have passed since the submit."""
    hidden_polls: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Polls answer 404 until this many have been made for the job."""
    video: bytes | None = attrs.field(default=None, repr=_video_repr)
    """The video served for this job; ``None`` serves the bundled sample."""


def _frozen_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


def _frozen_body(value: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str | None:
    if value is None or isinstance(value, str):
        return value
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Fault:
    """Something that goes wrong for some requests; injected with ``FastRouterSimulator.inject``.

    Build faults with the named constructors (``Fault.rate_limit(route="poll")``
    and so on). A fault matches requests of its ``route`` (``"any"`` matches
    submits, polls and downloads, never ``/healthz``). It lets the first
    ``skip`` matching requests through, then affects the next ``times``
    (``None``: all of them). Faults are tried in injection order and the first
    one that applies wins; a request it lets through (skipped) may still be
    taken by a later fault.

    A submit answered by a fault creates no job, except ``drop`` and ``slow``
    with ``after_processing=True``, which create the job first.
    """

    route: FaultRoute = attrs.field(validator=attrs.validators.in_(get_args(FaultRoute)))
    kind: FaultKind = attrs.field(validator=attrs.validators.in_(get_args(FaultKind)))
    times: int | None = 1
    skip: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    http_status: int | None = None
    """The status answered by a ``"status"`` fault."""
    body: Mapping[str, Any] | str | None = attrs.field(default=None, converter=_frozen_body, hash=False)
    """A ``"status"`` fault's body: a mapping is sent as JSON, a string as text, ``None`` as the standard error."""
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_headers, hash=False)
    """Extra headers of a ``"status"`` fault's answer (``Retry-After`` for rate limits)."""
    delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """Seconds a ``"slow"`` fault waits."""
    after_processing: bool = False
    """``drop``/``slow``: handle the request first (a submit creates its job), then drop or wait."""
    nbytes: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """How many body bytes a ``"truncate"`` fault sends before dropping the connection."""
    video: bytes | None = attrs.field(default=None, repr=_video_repr)
    """The bytes a ``"serve"`` fault answers with instead of the job's video."""

    def __attrs_post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1 (or None for every request), got {self.times}")
        if self.kind == "status" and self.http_status is None:
            raise ValueError("a status fault needs http_status")
        if self.kind == "serve" and self.video is None:
            raise ValueError("a serve fault needs the video to serve")

    @classmethod
    def status(
        cls,
        code: int,
        *,
        route: FaultRoute,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> Fault:
        """Answer with HTTP ``code``.

        ``body``: a mapping is sent as JSON, a string as ``text/plain``, and
        ``None`` sends FastRouter's standard error object for ``code``.
        """
        return cls(route=route, kind="status", http_status=code, body=body, headers=headers, times=times, skip=skip)

    @classmethod
    def rate_limit(
        cls,
        *,
        route: FaultRoute,
        retry_after: float | str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> Fault:
        """429 with the standard error object.

        ``retry_after`` becomes the ``Retry-After`` header: a number of seconds
        (fractions are kept, so tests can ask for ``0.01``) or a string sent
        verbatim (an HTTP date, or garbage to test parsing). ``None`` sends no
        header, like the real API.
        """
        headers = {} if retry_after is None else {"Retry-After": _retry_after_text(retry_after)}
        return cls(route=route, kind="status", http_status=429, headers=headers, times=times, skip=skip)

    @classmethod
    def server_error(cls, code: int = 500, *, route: FaultRoute, times: int | None = 1, skip: int = 0) -> Fault:
        """A 5xx answer with the standard error object (500 by default; 502 is FastRouter's "model down")."""
        if not 500 <= code <= 599:
            raise ValueError(f"server_error needs a 5xx status, got {code}")
        return cls(route=route, kind="status", http_status=code, times=times, skip=skip)

    @classmethod
    def slow(
        cls,
        delay: float,
        *,
        route: FaultRoute,
        times: int | None = 1,
        skip: int = 0,
        after_processing: bool = False,
    ) -> Fault:
        """Wait ``delay`` seconds, then answer normally.

        With ``after_processing=True`` the request is handled first (a submit
        creates its job) and only the answer is delayed: the case of a client
        timing out on a submit that did reach the server. A server that shuts
        down while a slow fault waits drops the connection.
        """
        return cls(route=route, kind="slow", delay=delay, times=times, skip=skip, after_processing=after_processing)

    @classmethod
    def malformed_json(cls, *, route: FaultRoute, times: int | None = 1, skip: int = 0) -> Fault:
        """HTTP 200, ``Content-Type: application/json``, and a body that is cut-off JSON. A submit creates no job."""
        return cls(route=route, kind="malformed_json", times=times, skip=skip)

    @classmethod
    def drop(
        cls,
        *,
        route: FaultRoute,
        times: int | None = 1,
        skip: int = 0,
        after_processing: bool = False,
    ) -> Fault:
        """Close the connection without any HTTP answer (clients see a disconnect).

        ``after_processing=True`` handles the request first: a submit's job is
        created, recorded and counted in flight, and a poll counts, before the
        answer is lost. This is the worst case for a client.

        Note that aiohttp's client silently retries an idempotent request (GET,
        HEAD) once when the server disconnects, so one dropped ``GET`` poll or
        download is invisible to it; use ``times=2`` or more to make it see one.
        """
        return cls(route=route, kind="drop", times=times, skip=skip, after_processing=after_processing)

    @classmethod
    def truncate(cls, nbytes: int, *, route: FaultRoute = "download", times: int | None = 1, skip: int = 0) -> Fault:
        """Send the headers with the full ``Content-Length``, then ``nbytes`` of the body, then drop the connection.

        Meant for downloads, but works for any answer (a JSON poll answer, or a
        ``video_body`` poll).
        """
        return cls(route=route, kind="truncate", nbytes=nbytes, times=times, skip=skip)

    @classmethod
    def corrupt(cls, *, route: FaultRoute = "download", times: int | None = 1, skip: int = 0) -> Fault:
        """Send a video with one byte changed, under headers that describe the real one.

        Status, ``Content-Length``, ``Content-Range``, ``ETag`` and checksum headers
        are those of the true bytes; only the middle byte of the body sent is flipped.
        A client notices only by checking a checksum (``download_checksums``).
        Applies to video answers (downloads, ``video_body`` polls); others pass unchanged.
        """
        return cls(route=route, kind="corrupt", times=times, skip=skip)

    @classmethod
    def serve(cls, video: bytes, *, route: FaultRoute = "download", times: int | None = 1, skip: int = 0) -> Fault:
        """Answer with ``video`` instead of the job's video, as if the file had changed on the server.

        Everything follows the new bytes: length, ranges, ``ETag`` and checksums.
        So a client resuming with ``If-Range`` gets the new file whole, and one
        resuming without a validator gets a ``Content-Range`` with another size.
        Applies to video answers (downloads, ``video_body`` polls); others pass unchanged.
        """
        return cls(route=route, kind="serve", video=video, times=times, skip=skip)

    def matches(self, route: str) -> bool:
        """Whether this fault is about requests of ``route`` (``"submit"``, ``"poll"``, ``"download"``)."""
        return self.route == route or (self.route == "any" and route in ("submit", "poll", "download"))


def _retry_after_text(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value < 0:
        raise ValueError(f"retry_after must not be negative, got {value}")
    return str(int(value)) if float(value).is_integer() else str(value)
