"""OpenTelemetry, as native library instrumentation: an events consumer plus a per-request hook.

With ``opentelemetry-api`` installed, the session uses the globally configured tracer and
meter providers (``opentelemetry.trace.get_tracer("fastrouter_async", version)``): an
application that configured the SDK gets traces and metrics without further code. Without
the API nothing is imported and nothing runs; with the API but neither a tracer nor a meter
provider configured when the session is created, nothing is hooked in at all (no call per
request or event): configure the SDK before creating the session.

Spans: one ``video.generate <model>`` (kind CLIENT) per job, from its submit request to the
poll that saw it end, started with ``start_span`` and ended explicitly (no context is kept
open across the application's awaits); one child span per API request (its submit, its
polls); one ``video.download <model>`` span per download, a child of the job's span.
``traceparent`` goes with every API request (to the API origin only, never to a download
host), so FastRouter's trace view joins the application's trace.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._config import package_version
from ._errors import InvalidRequestError
from ._event_hub import polling_task
from ._events import DownloadFinished, Event, JobEnded, JobSubmitted, RateLimited, StatusChanged
from ._models import JobState

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._event_hub import EventHub
    from ._protocol import HttpCall
    from ._transport import Transport

__all__ = ["OPERATION_NAME", "Telemetry", "sdk_configured"]

logger = logging.getLogger("fastrouter_async")

OPERATION_NAME: Final = "generate_content"
# gen_ai.operation.name: the GenAI semantic conventions' value for a model generating content
# (there is no video-specific operation name in the conventions as of 1.37).

_ENDED_KEPT: Final = 1024
# Contexts of ended job spans kept so that a download started afterwards becomes their child.

_pending_submit: contextvars.ContextVar[Span | None] = contextvars.ContextVar("fastrouter_pending_job", default=None)
"""The job span begun by a submit request, adopted by the ``JobSubmitted`` of the same task."""


def _clean_url(url: str) -> str:
    """``url`` without user-info, query or fragment (span attributes never carry them)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def sdk_configured(trace: Any, metrics: Any) -> bool:
    """True when the application set a tracer or a meter provider (an SDK): something records.

    Without either, the API's proxies record nothing: the session then installs no request hook
    and no event consumer at all (telemetry is decided when the session is created).
    """
    from opentelemetry.trace import ProxyTracerProvider  # noqa: PLC0415 (optional: imported only when used)

    if not isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        return True
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider  # noqa: PLC0415
    except ImportError:  # another API version: assume a provider may be set
        return True
    return not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)


def _nothing(status: int | None, exc: BaseException | None) -> None:
    """The end of a request nobody traces."""


class Telemetry:
    """Traces and metrics for one session (see the module docstring)."""

    @classmethod
    def start(
        cls, hub: EventHub, transport: Transport, *, submit_url: str, enabled: bool, prompts: bool
    ) -> Telemetry | None:
        """Hook into ``hub`` and ``transport``; ``None`` when turned off or ``opentelemetry-api`` is missing."""
        for name, value in (("telemetry", enabled), ("telemetry_prompts", prompts)):
            if not isinstance(value, bool):
                raise InvalidRequestError(name, value, "True or False")
        if not enabled:
            return None
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415 (optional: imported only when used)
        except ImportError:
            return None
        if not sdk_configured(trace, metrics):
            return None  # decided once: no hook on each request, no consumer of each event
        telemetry = cls(trace, metrics, prompts=prompts, submit_url=submit_url)
        hub.add_consumer(telemetry.on_event)
        transport.request_hook = telemetry.on_request
        return telemetry

    def __init__(self, trace: Any, metrics: Any, *, prompts: bool, submit_url: str) -> None:
        from opentelemetry import propagate  # noqa: PLC0415
        from opentelemetry.context import Context  # noqa: PLC0415
        from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode  # noqa: PLC0415

        self._trace = trace
        self._metrics = metrics
        self._inject = propagate.inject
        self._root = Context
        self._proxy_tracer = ProxyTracerProvider
        self._client = SpanKind.CLIENT
        self._status = Status
        self._codes = StatusCode
        self._prompts = prompts
        self._submit_url = submit_url
        self._tracer = trace.get_tracer("fastrouter_async", package_version())
        meter = metrics.get_meter("fastrouter_async", package_version())
        self._in_flight = meter.create_up_down_counter(
            "fastrouter.jobs.in_flight", unit="{job}", description="Jobs submitted and not yet seen to end"
        )
        self._submits = meter.create_counter("fastrouter.submits", unit="{job}", description="Submits accepted")
        self._polls = meter.create_counter("fastrouter.polls", unit="{request}", description="Poll requests sent")
        self._rate_limited = meter.create_counter(
            "fastrouter.rate_limited", unit="{response}", description="429 answers received"
        )
        self._bytes = meter.create_counter(
            "fastrouter.download.bytes", unit="By", description="Bytes of video downloaded"
        )
        self._spend = meter.create_counter("fastrouter.spend", unit="USD", description="Cost of the jobs that ended")
        self._jobs: dict[str, Span] = {}
        self._running: set[str] = set()  # task ids counted in fastrouter.jobs.in_flight
        self._pending: set[Span] = set()  # job spans begun by a submit request, not yet adopted or ended
        self._ended: OrderedDict[str, Span] = OrderedDict()

    # --- the request hook -------------------------------------------------------------------

    def on_request(self, call: HttpCall, headers: dict[str, str]) -> Any:
        """A span for one API request, its ``traceparent`` in ``headers``; returns its end (never raises)."""
        try:
            return self._request_span(call, headers)
        except Exception:  # tracing must never cost a request
            logger.exception("could not trace %s %s", call.method, _clean_url(call.url))
            return _nothing

    def _request_span(self, call: HttpCall, headers: dict[str, str]) -> Any:
        trace = self._trace
        task_id = polling_task.get()
        if isinstance(trace.get_tracer_provider(), self._proxy_tracer):  # no SDK: no span, nothing to send
            if task_id is not None:
                self._polls.add(1)
            return _nothing
        parent = None
        if task_id is not None:
            self._polls.add(1)
            job_span = self._jobs.get(task_id)
            # A job this session did not see submitted (re-attached) gets root spans: the poller's
            # context is whatever was current when its timer was armed, another job's caller maybe.
            parent = trace.set_span_in_context(job_span) if job_span is not None else self._root()
        elif call.method == "POST" and call.url == self._submit_url:
            job_span = self._tracer.start_span("video.generate", kind=self._client)
            _pending_submit.set(job_span)
            self._pending.add(job_span)
            parent = trace.set_span_in_context(job_span)
        url = _clean_url(call.url)
        span = self._tracer.start_span(
            call.method,
            context=parent,
            kind=self._client,
            attributes={
                "http.request.method": call.method,
                "url.full": url,
                "server.address": urlsplit(url).hostname or "",
            },
        )
        self._inject(headers, context=trace.set_span_in_context(span))

        def ended(status: int | None, exc: BaseException | None) -> None:
            try:
                finish(status, exc)
            except Exception:  # tracing must never cost a request
                logger.exception("could not end the span of %s %s", call.method, url)

        def finish(status: int | None, exc: BaseException | None) -> None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if exc is not None or (status is not None and status >= 400):
                error = type(exc).__name__ if exc is not None else str(status)
                span.set_attribute("error.type", error)
                span.set_status(self._status(self._codes.ERROR))
                if task_id is None and call.method == "POST" and call.url == self._submit_url:
                    self._submit_failed(error)
            span.end()

        return ended

    def _submit_failed(self, error: str) -> None:
        pending = _pending_submit.get()
        if pending is not None:
            _pending_submit.set(None)
            self._pending.discard(pending)
            pending.set_attribute("fastrouter.status", "submit failed")
            pending.set_attribute("error.type", error)
            pending.set_status(self._status(self._codes.ERROR))
            pending.end()

    # --- the events consumer ----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Spans and metrics from the session's events."""
        if isinstance(event, JobSubmitted):
            self._submitted(event)
        elif isinstance(event, JobEnded):
            self._job_ended(event)
        elif isinstance(event, StatusChanged):
            span = self._jobs.get(event.task_id)
            if span is not None:
                span.add_event("status", {"fastrouter.status": event.status.raw_status or event.status.state.value})
        elif isinstance(event, RateLimited):
            self._rate_limited.add(1, {"http.request.method": event.method})
        elif isinstance(event, DownloadFinished):
            self._downloaded(event)

    def _submitted(self, event: JobSubmitted) -> None:
        model = {"gen_ai.request.model": event.model}
        self._submits.add(1, model)
        self._in_flight.add(1, model)
        self._running.add(event.task_id)
        span = _pending_submit.get()
        _pending_submit.set(None)
        if span is not None:
            self._pending.discard(span)
        else:
            if isinstance(self._trace.get_tracer_provider(), self._proxy_tracer):
                return
            span = self._tracer.start_span("video.generate", kind=self._client)
        span.update_name(f"video.generate {event.model}")
        span.set_attributes(
            {
                "gen_ai.operation.name": OPERATION_NAME,
                "gen_ai.request.model": event.model,
                "gen_ai.output.type": "video",
                "fastrouter.task_id": event.task_id,
                "fastrouter.status": "submitted",
            }
        )
        if self._prompts:
            span.set_attribute("fastrouter.prompt", event.request.prompt)
        self._jobs[event.task_id] = span

    def _job_ended(self, event: JobEnded) -> None:
        model = {"gen_ai.request.model": event.model or "unknown"}
        span = self._jobs.pop(event.task_id, None)
        if event.task_id in self._running:
            self._running.discard(event.task_id)
            self._in_flight.add(-1, model)
        if event.cost_usd is not None:
            self._spend.add(event.cost_usd, model)
        if span is None:
            return
        span.set_attribute("fastrouter.status", event.status.raw_status or event.state.value)
        span.set_attribute("fastrouter.polls", event.polls)
        if event.cost_usd is not None:
            span.set_attribute("fastrouter.cost_usd", event.cost_usd)
        if event.state is JobState.FAILED:
            span.set_attribute("error.type", "job_failed")
            span.set_status(self._status(self._codes.ERROR, event.error))
        span.end()
        self._ended[event.task_id] = span
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    def _downloaded(self, event: DownloadFinished) -> None:
        model = event.model or "unknown"
        self._bytes.add(event.bytes, {"gen_ai.request.model": model})
        if isinstance(self._trace.get_tracer_provider(), self._proxy_tracer):
            return
        job_span = self._ended.get(event.task_id) or self._jobs.get(event.task_id)
        parent = None if job_span is None else self._trace.set_span_in_context(job_span)
        end = time.time_ns()
        span = self._tracer.start_span(
            f"video.download {model}",
            context=parent,
            kind=self._client,
            start_time=end - int(event.seconds * 1e9),
            attributes={
                "gen_ai.request.model": model,
                "fastrouter.task_id": event.task_id,
                "fastrouter.download.bytes": event.bytes,
            },
        )
        span.end(end_time=end)

    def close(self) -> None:
        """The session closed: end the spans of jobs nobody saw end (their jobs go on)."""
        for span in self._jobs.values():
            span.set_attribute("fastrouter.status", "unfinished")
            span.end()
        self._jobs.clear()
        for span in self._pending:  # a submit answered 2xx whose answer could not be read
            span.set_attribute("fastrouter.status", "submit outcome unknown")
            span.set_status(self._status(self._codes.ERROR))
            span.end()
        self._pending.clear()
