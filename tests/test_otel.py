"""OpenTelemetry: spans, metrics and traceparent with the SDK's in-memory exporters, against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from fastrouter_async import BadRequestError, FastRouterSession, InvalidRequestError
from fastrouter_async.testing import FastRouterSimulator, Fault, SimulatorServer

from .conftest import API_KEY, SessionFactory

PROMPT = "a secret cat surfing at dawn"
VEO: dict[str, Any] = {"model": "google/veo3", "prompt": PROMPT, "length": 8}


def _reset_globals() -> None:
    """Forget the global providers (the API sets them once per process; tests need a fresh pair each)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.spans.get_finished_spans()

    def metric_points(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        if data is None:
            return points
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def metric_total(self, name: str) -> float:
        return float(sum(p.value for p in self.metric_points().get(name, [])))


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """The SDK configured globally with in-memory exporters, as an application would."""
    _reset_globals()
    telemetry = Telemetry()
    trace.set_tracer_provider(telemetry.tracer_provider)
    metrics.set_meter_provider(telemetry.meter_provider)
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()
    _reset_globals()


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[FastRouterSimulator, SimulatorServer]]:
    """A second simulator on another port: a download host."""
    other = FastRouterSimulator()
    async with other.serve() as running:
        yield other, running


def traceparent(headers: dict[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "traceparent"), None)


def job_spans(otel: Telemetry) -> list[ReadableSpan]:
    return [s for s in otel.finished() if s.name.startswith("video.generate")]


async def test_a_job_is_one_client_span_with_genai_attributes_and_a_child_per_request(
    otel: Telemetry, session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """One CLIENT span per job (GenAI attributes, task id, status, cost, polls) and a child span per request."""
    video = await session.generate(**VEO)
    (job,) = job_spans(otel)
    assert job.name == "video.generate google/veo3"
    assert job.kind is SpanKind.CLIENT
    attributes = dict(job.attributes or {})
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.request.model"] == "google/veo3"
    assert attributes["gen_ai.output.type"] == "video"
    assert attributes["fastrouter.task_id"] == video.task_id
    assert attributes["fastrouter.cost_usd"] == video.cost_usd
    assert attributes["fastrouter.polls"] == len(sim.records.polls)
    assert attributes["fastrouter.status"]
    assert job.context is not None
    children = [s for s in otel.finished() if s.parent is not None and s.parent.span_id == job.context.span_id]
    assert len(children) == 1 + len(sim.records.polls)  # the submit and each poll
    for child in children:
        child_attributes = dict(child.attributes or {})
        assert child_attributes["http.response.status_code"] == 200
        assert "?" not in str(child_attributes["url.full"])


async def test_traceparent_sent_to_fastrouter_joins_the_applications_trace(
    otel: Telemetry, session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """Every API request carries the traceparent of its own span, in the application's trace."""
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("handle request") as app:
        await session.generate(**VEO)
    trace_id = f"{app.get_span_context().trace_id:032x}"
    (job,) = job_spans(otel)
    assert job.parent is not None
    assert job.parent.span_id == app.get_span_context().span_id
    requests = {f"{s.context.span_id:016x}" for s in otel.finished() if s.context and s.name in ("GET", "POST")}
    sent = [traceparent(r.headers) for r in sim.records.submits + sim.records.polls]
    assert sent
    assert all(value is not None for value in sent)
    for value in sent:
        assert value is not None
        _, sent_trace, sent_span, _ = value.split("-")
        assert sent_trace == trace_id
        assert sent_span in requests


async def test_metrics_count_jobs_polls_429s_bytes_and_spend(
    otel: Telemetry, session: FastRouterSession, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """Submits, polls, 429s, bytes downloaded and spend are counted; jobs in flight go back to zero."""
    sim.inject(Fault.status(429, route="poll", headers={"Retry-After": "0"}))
    video = await session.generate(**VEO)
    file = await video.download(tmp_path / "v.mp4")
    assert otel.metric_total("fastrouter.submits") == 1
    assert otel.metric_total("fastrouter.polls") == len(sim.records.polls)
    assert otel.metric_total("fastrouter.rate_limited") == 1
    assert otel.metric_total("fastrouter.download.bytes") == file.size
    assert otel.metric_total("fastrouter.spend") == pytest.approx(video.cost_usd)
    assert otel.metric_total("fastrouter.jobs.in_flight") == 0
    (download,) = [s for s in otel.finished() if s.name.startswith("video.download")]
    assert dict(download.attributes or {})["fastrouter.download.bytes"] == file.size


async def test_download_hosts_never_get_traceparent(
    otel: Telemetry,
    session: FastRouterSession,
    sim: FastRouterSimulator,
    cdn: tuple[FastRouterSimulator, SimulatorServer],
    tmp_path: Path,
) -> None:
    """traceparent goes to the API origin only: a download host never receives it."""
    other, other_server = cdn
    sim.asset_origin = other_server.origin
    video = await session.generate(**VEO)
    await video.download(tmp_path / "v.mp4")
    assert other.records.downloads
    assert all(traceparent(h) is None for h in other.records.headers_seen("any"))
    assert all(traceparent(r.headers) is not None for r in sim.records.submits + sim.records.polls)


def _everything_recorded(otel: Telemetry) -> str:
    texts: list[str] = []
    for span in otel.finished():
        texts.append(span.name)
        texts.extend(f"{k}={v!s}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            texts.extend(f"{k}={v!s}" for k, v in (event.attributes or {}).items())
    for points in otel.metric_points().values():
        for point in points:
            texts.extend(f"{k}={v}" for k, v in (point.attributes or {}).items())
    return "\n".join(texts)


async def test_no_key_and_by_default_no_prompt_in_spans_or_metrics(
    otel: Telemetry, make_session: SessionFactory, tmp_path: Path
) -> None:
    """No span name, attribute, event or metric attribute holds the key, nor the prompt unless asked for."""
    async with make_session() as session:
        video = await session.generate(**VEO)
        await video.download(tmp_path / "v.mp4")
    recorded = _everything_recorded(otel)
    assert "fastrouter.task_id" in recorded
    assert API_KEY not in recorded
    assert PROMPT not in recorded
    async with make_session(telemetry_prompts=True) as session:
        await session.generate(**VEO)
    assert PROMPT in _everything_recorded(otel)
    assert API_KEY not in _everything_recorded(otel)


async def test_telemetry_off_records_and_sends_nothing(
    otel: Telemetry, make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """telemetry=False: no span, no metric, no traceparent, even with an SDK configured."""
    async with make_session(telemetry=False) as session:
        await session.generate(**VEO)
    assert otel.finished() == ()
    assert otel.metric_points() == {}
    assert all(traceparent(h) is None for h in sim.records.headers_seen("any"))


async def test_without_an_sdk_nothing_is_sent(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """With only the API installed and no SDK configured, requests carry no traceparent."""
    _reset_globals()
    await session.generate(**VEO)
    assert all(traceparent(h) is None for h in sim.records.headers_seen("any"))


async def test_a_refused_submit_ends_its_job_span_as_an_error(
    otel: Telemetry, session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """A submit FastRouter refuses ends its job span with an error status (no span is left open)."""
    sim.inject(Fault.status(400, route="submit", body='{"error": "bad"}'))
    with pytest.raises(BadRequestError):
        await session.submit(**VEO)
    (job,) = job_spans(otel)
    assert not job.status.is_ok
    assert dict(job.attributes or {})["fastrouter.status"] == "submit failed"


async def test_polls_of_a_reattached_job_are_root_spans(
    otel: Telemetry, make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A job re-attached by task id has no job span: its polls are root spans, not children of another job's."""
    async with make_session(telemetry=False) as other:
        task_id = (await other.submit(**VEO)).task_id
    tracer = trace.get_tracer("app")
    async with make_session() as session:
        with tracer.start_as_current_span("unrelated"):
            await session.job(task_id, model="google/veo3")
    polls = [s for s in otel.finished() if s.name in ("GET", "POST")]
    assert polls
    assert all(s.parent is None for s in polls)
    assert all(traceparent(r.headers) is not None for r in sim.records.polls[-len(polls) :])


@pytest.mark.parametrize("name", ["telemetry", "telemetry_prompts"])
async def test_telemetry_flags_must_be_booleans(make_session: SessionFactory, name: str) -> None:
    """A non-boolean telemetry option is refused at construction, naming the field."""
    with pytest.raises(InvalidRequestError, match=name):
        make_session(**{name: "yes"})


async def test_telemetry_is_decided_when_the_session_is_created(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A session created before any SDK was configured installs no hook: configuring one later records nothing."""
    _reset_globals()
    session = make_session()
    late = Telemetry()
    trace.set_tracer_provider(late.tracer_provider)
    metrics.set_meter_provider(late.meter_provider)
    try:
        await session.generate(**VEO)
        assert late.finished() == ()
        assert late.metric_points() == {}
        assert all(traceparent(h) is None for h in sim.records.headers_seen("any"))
    finally:
        late.tracer_provider.shutdown()
        late.meter_provider.shutdown()
        _reset_globals()


async def test_a_meter_provider_alone_still_counts_polls(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """With only metrics configured (no tracer provider), the session still counts its polls."""
    _reset_globals()
    only_metrics = Telemetry()
    metrics.set_meter_provider(only_metrics.meter_provider)
    try:
        async with make_session() as session:
            await session.generate(**VEO)
        assert only_metrics.metric_total("fastrouter.polls") >= 1
        assert all(traceparent(h) is None for h in sim.records.headers_seen("any"))
    finally:
        only_metrics.tracer_provider.shutdown()
        only_metrics.meter_provider.shutdown()
        _reset_globals()
