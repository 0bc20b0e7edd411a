"""FastRouterSession and VideoJob against the simulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest

from fastrouter_async import (
    APIConnectionError,
    AuthenticationError,
    FastRouterSession,
    InsufficientCreditsError,
    InvalidRequestError,
    JobFailedError,
    JobState,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    PollRoute,
    RateLimitError,
    ReplayPolicy,
    RequestBudget,
    ResultSource,
    RetryPolicy,
    SubmitUncertainError,
    Timeouts,
    UnexpectedResponseError,
    VideoJob,
    VideoRequest,
)
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer
from tests._internals import life_of

from .conftest import API_KEY, FAST_POLL, SessionFactory

NO_REPLAYS = ReplayPolicy(enabled=False)  # a lost submit answer raises SubmitUncertainError, as without a cache key


def generation(body: object) -> dict[str, Any]:
    """A submitted body without the response-cache settings (``cache``): the generation parameters."""
    assert isinstance(body, dict)
    return {k: v for k, v in body.items() if k != "cache"}


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing", "length": 8, "aspect_ratio": "16:9"}


# --- the happy path ----------------------------------------------------------------------


async def test_submit_wait_download(session: FastRouterSession, sim: FastRouterSimulator, tmp_path: object) -> None:
    """The issue's example runs end to end: submit, status, await, download, re-attach."""
    job = await session.submit(**VEO)
    assert job.task_id.startswith("fr_")
    snapshot = await job.status()
    assert snapshot.task_id == job.task_id
    video = await job
    assert video.task_id == job.task_id
    assert video.url is not None
    assert video.url.endswith(f"/videos-content/{job.task_id}")
    assert (video.cost_usd, video.credits_used) == (0.21, 0.21)
    path = (await video.download(f"{tmp_path}/out/cat.mp4")).path
    assert path.read_bytes()[4:8] == b"ftyp"
    again = session.job(job.task_id, model="google/veo3")
    assert (await again.result()).task_id == job.task_id
    body = generation(sim.records.submits[0].json)
    assert body == {"model": "google/veo3", "prompt": "a cat surfing", "length": 8, "aspectRatio": "16:9"}


async def test_submit_accepts_a_video_request(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A frozen VideoRequest is submitted with its extra parameters passed through unchanged."""
    request = VideoRequest(model="google/veo3", prompt="p", generate_audio=True, extra={"negativePrompt": "blur"})
    await session.submit(request)
    assert generation(sim.records.submits[0].json) == {
        "model": "google/veo3",
        "prompt": "p",
        "generateAudio": True,
        "negativePrompt": "blur",
    }


async def test_submit_extra_mapping_is_merged(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """submit(extra={...}) sends those parameters (like VideoRequest.extra), merged with other keywords."""
    await session.submit(model="google/veo3", prompt="p", extra={"negativePrompt": "blur"}, fps=24)
    assert generation(sim.records.submits[0].json) == {
        "model": "google/veo3",
        "prompt": "p",
        "negativePrompt": "blur",
        "fps": 24,
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"extra": "blur"}, "extra"), ({"extra": {"fps": 24}, "fps": 30}, "extra['fps']")],
)
async def test_submit_bad_extra_sends_nothing(
    session: FastRouterSession, sim: FastRouterSimulator, kwargs: dict[str, Any], field: str
) -> None:
    """A non-mapping extra, or a parameter given twice, is refused before anything is sent."""
    with pytest.raises(InvalidRequestError) as caught:
        await session.submit(model="google/veo3", prompt="p", **kwargs)
    assert caught.value.field == field
    assert sim.records.requests == []


async def test_submit_rejects_request_and_keywords_together(session: FastRouterSession) -> None:
    """Passing a VideoRequest and keyword arguments at once is a TypeError naming the keywords."""
    with pytest.raises(TypeError, match="prompt"):
        await session.submit(VideoRequest(model="google/veo3", prompt="p"), prompt="q")


async def test_status_is_exactly_one_request(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """job.status() makes one poll request and returns a typed snapshot."""
    sim.default_plan = JobPlan(polls=3)
    job = await session.submit(**VEO)
    before = len(sim.records.polls)
    snapshot = await job.status()
    assert len(sim.records.polls) == before + 1
    assert (snapshot.state, snapshot.raw_status, snapshot.done) == (JobState.RUNNING, "processing", False)


@pytest.mark.parametrize("route", list(PollRoute))
async def test_every_poll_route(make_session: SessionFactory, sim: FastRouterSimulator, route: PollRoute) -> None:
    """Each configurable poll route reaches the result, sending taskId and model where it has a body."""
    session = make_session(poll_route=route)
    sim.default_plan = JobPlan(polls=2)
    video = await (await session.submit(**VEO))
    assert video.source is ResultSource.URL
    poll = sim.records.polls[-1]
    if route is PollRoute.VIDEOS:
        assert (poll.method, poll.json) == ("GET", None)
    else:
        assert poll.path.endswith(route.value)
        assert poll.json == {"taskId": video.task_id, "model": "google/veo3"}


def test_poll_route_by_name_and_bad_name() -> None:
    """poll_route accepts a route's wire name; an unknown one names the allowed values."""
    FastRouterSession(API_KEY, poll_route="getAsyncResponse")
    with pytest.raises(InvalidRequestError, match="poll_route"):
        FastRouterSession(API_KEY, poll_route="getStatus")


@pytest.mark.parametrize(
    "plan",
    [
        JobPlan(polls=2, status_word="succeeded"),
        JobPlan(polls=2, status_word="COMPLETED"),
        JobPlan(polls=2, status_word="success"),
        JobPlan(polls=2, omit_overall_status=True),
        JobPlan(polls=3, running_word="waiting"),
        JobPlan(hidden_polls=2),
    ],
)
async def test_status_vocabulary_variants(session: FastRouterSession, sim: FastRouterSimulator, plan: JobPlan) -> None:
    """Every status vocabulary, a missing data.status and early 404s all end in success."""
    sim.default_plan = plan
    video = await (await session.submit(**VEO))
    assert video.url


# --- failures of the job itself ----------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "message"),
    [("failed", "openai submit: upstream status 400"), ("failed_generation", "nsfw content")],
)
async def test_failed_job_raises_job_failed(
    session: FastRouterSession, sim: FastRouterSimulator, outcome: str, message: str
) -> None:
    """A failed generation raises JobFailedError with the task id and the server's message, every await."""
    sim.default_plan = JobPlan(outcome=outcome, error=message)  # type: ignore[arg-type]
    job = await session.submit(**VEO)
    with pytest.raises(JobFailedError) as caught:
        await job
    assert (caught.value.task_id, caught.value.message) == (job.task_id, message)
    with pytest.raises(JobFailedError):
        await job.result()
    assert job.done
    assert session.jobs_in_flight == 0


async def test_done_without_url_is_an_error(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A job reported done without any URL raises UnexpectedResponseError, not a result."""
    sim.default_plan = JobPlan(outcome="no_url")
    job = await session.submit(**VEO)
    with pytest.raises(UnexpectedResponseError, match="no video URL"):
        await job


async def test_not_found_after_grace_window(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A 404 after the grace window is NotFoundError; inside it, status() reports PENDING."""
    sim.default_plan = JobPlan(hidden_polls=1)
    lenient = make_session()
    job = await lenient.submit(**VEO)
    assert (await job.status()).state is JobState.PENDING
    strict = make_session(poll_policy=PollPolicy(first_delay=0, interval=0.001, not_found_grace=0.0))
    job2 = await strict.submit(**VEO)
    with pytest.raises(NotFoundError):
        await job2
    assert strict.jobs_in_flight == 0


async def test_reattached_unknown_task_is_not_found(session: FastRouterSession) -> None:
    """A re-attached task id the server does not know raises NotFoundError at once (no grace)."""
    with pytest.raises(NotFoundError, match="404"):
        await session.job("fr_DOESNOTEXIST", model="google/veo3")


async def test_vanished_result_is_not_found(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A task whose result expired (404 once done) raises NotFoundError once the grace window is over."""
    session = make_session(poll_policy=PollPolicy(first_delay=0, interval=0.001, not_found_grace=0.0))
    sim.default_plan = JobPlan(outcome="vanish")
    job = await session.submit(**VEO)
    with pytest.raises(NotFoundError):
        await job
    assert session.jobs_in_flight == 0


# --- submit retries: never pay twice ----------------------------------------------------


async def test_create_500_is_one_post_and_uncertain(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With replays off, a create answered with 500 is one POST and SubmitUncertainError carrying the request."""
    session = make_session(replay_policy=NO_REPLAYS)
    sim.inject(Fault.server_error(500, route="submit"))
    with pytest.raises(SubmitUncertainError) as caught:
        await session.submit(**VEO)
    assert sim.records.submit_count == 1
    assert caught.value.request.prompt == "a cat surfing"
    assert isinstance(caught.value.__cause__, Exception)
    assert session.jobs_in_flight == 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault.drop(route="submit", after_processing=True),
        Fault.drop(route="submit", after_processing=False),
        Fault.malformed_json(route="submit"),
        Fault.server_error(502, route="submit"),
    ],
    ids=["drop-after-create", "drop-before-create", "malformed-json", "502"],
)
async def test_lost_create_answer_is_never_resubmitted(
    make_session: SessionFactory, sim: FastRouterSimulator, fault: Fault
) -> None:
    """With replays off, whenever the create may have reached the server: one POST and SubmitUncertainError."""
    session = make_session(replay_policy=NO_REPLAYS)
    sim.inject(fault)
    with pytest.raises(SubmitUncertainError, match="was not resubmitted"):
        await session.submit(**VEO)
    assert sim.records.submit_count == 1


async def test_create_timeout_is_uncertain(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With replays off, a create that times out after being sent raises SubmitUncertainError after one POST."""
    session = make_session(timeouts=Timeouts(connect=2, request=0.05, read=2), replay_policy=NO_REPLAYS)
    sim.inject(Fault.slow(0.3, route="submit"))
    with pytest.raises(SubmitUncertainError, match="timed out"):
        await session.submit(**VEO)
    assert sim.records.submit_count == 1


@pytest.mark.parametrize("retry_after", [None, 0.01, "0"])
async def test_create_429_is_retried(session: FastRouterSession, sim: FastRouterSimulator, retry_after: object) -> None:
    """A 429 on create (with or without Retry-After) is retried: nothing was created."""
    sim.inject(Fault.rate_limit(route="submit", retry_after=retry_after, times=2))  # type: ignore[arg-type]
    job = await session.submit(**VEO)
    assert sim.records.submit_count == 3
    assert sim.records.jobs_created == 1
    assert job.task_id


async def test_create_429_gives_up_after_max_attempts(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A create that keeps answering 429 raises RateLimitError after its rate-limit allowance of POSTs."""
    session = make_session(request_budget=RequestBudget(rate=10_000, recovery=0.001))
    sim.inject(Fault.rate_limit(route="submit", retry_after=0, times=None))
    with pytest.raises(RateLimitError) as caught:
        await session.submit(**VEO)
    assert caught.value.retry_after == 0.0
    assert sim.records.submit_count == 4 * 4  # max_attempts times the allowance for 429s
    assert sim.records.jobs_created == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (402, InsufficientCreditsError), (403, PermissionDeniedError)],
)
async def test_create_refusals_are_not_retried(
    session: FastRouterSession, sim: FastRouterSimulator, status: int, error: type[Exception]
) -> None:
    """401, 402 and 403 on create raise their error after exactly one POST."""
    sim.inject(Fault.status(status, route="submit"))
    with pytest.raises(error):
        await session.submit(**VEO)
    assert sim.records.submit_count == 1


async def test_wrong_key_is_authentication_error(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A key the server rejects gives AuthenticationError after one POST, without echoing the key."""
    wrong = "sk-v1-WRONGKEY0000000000000000000"
    session = make_session(api_key=wrong)
    with pytest.raises(AuthenticationError) as caught:
        await session.submit(**VEO)
    assert sim.records.submit_count == 1
    assert wrong not in str(caught.value)
    assert caught.value.status_code == 401


async def test_unreachable_server_is_retried_then_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection sent nothing, so a submit retries it, then raises APIConnectionError."""
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # the port is now closed: connections are refused
    async with FastRouterSession(
        API_KEY, base_url=f"http://127.0.0.1:{port}/api/v1", retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001)
    ) as session:
        with caplog.at_level(logging.WARNING, "fastrouter_async"), pytest.raises(APIConnectionError) as caught:
            await session.submit(**VEO)
    assert caught.value.request_sent is False
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


# --- poll retries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limit(route="poll", retry_after=0.01, times=2),
        Fault.rate_limit(route="poll", times=2),
        Fault.server_error(503, route="poll", times=2),
        Fault.status(408, route="poll", times=1),
        Fault.status(409, route="poll", times=1),
        Fault.status(425, route="poll", times=1),
        Fault.malformed_json(route="poll", times=2),
        Fault.drop(route="poll", times=2),
    ],
    ids=["429-retry-after", "429", "503", "408", "409", "425", "malformed", "drop"],
)
async def test_polls_retry_transient_failures(
    session: FastRouterSession, sim: FastRouterSimulator, fault: Fault
) -> None:
    """Polls are free: transient answers and broken connections are retried until the result arrives."""
    sim.inject(fault)
    video = await (await session.submit(**VEO))
    assert video.url
    assert sim.records.submit_count == 1


async def test_poll_401_is_not_retried(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """An authentication failure while polling is raised at once, not retried."""
    job = await session.submit(**VEO)
    sim.inject(Fault.status(401, route="poll", times=None))
    with pytest.raises(AuthenticationError):
        await job
    assert len(sim.records.polls) == 1


async def test_retry_after_is_capped(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A huge Retry-After is honoured only up to max_retry_after."""
    session = make_session(retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001, max_retry_after=0.01))
    sim.inject(Fault.rate_limit(route="poll", retry_after=3600, times=1))
    with anyio.fail_after(5):
        assert (await (await session.submit(**VEO))).url


# --- concurrency -------------------------------------------------------------------------


async def test_fifty_jobs_never_exceed_five_in_flight(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """50 jobs with max_concurrent_jobs=5 never have more than 5 in flight on the server, and all finish."""
    session = make_session(max_concurrent_jobs=5)
    sim.default_plan = JobPlan(polls=3)
    peak = 0

    async def one(i: int) -> str:
        nonlocal peak
        job = await session.submit(model="google/veo3", prompt=f"video {i}")
        peak = max(peak, session.jobs_in_flight)
        return (await job).task_id

    results = await asyncio.gather(*(one(i) for i in range(50)))
    assert len(set(results)) == 50
    assert sim.records.jobs_created == 50
    assert sim.records.max_in_flight == 5  # reached, never exceeded
    assert peak <= 5
    assert session.jobs_in_flight == 0


async def test_submit_everything_then_await(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Submitting all jobs before awaiting any does not deadlock at the cap: waiting submits poll held jobs."""
    session = make_session(max_concurrent_jobs=3)
    sim.default_plan = JobPlan(polls=2)
    with anyio.fail_after(10):
        jobs = [await session.submit(model="google/veo3", prompt=f"video {i}") for i in range(10)]
        assert sim.records.max_in_flight <= 3
        polls_before = len(sim.records.polls)
        finished = [job for job in jobs if job.done]
        assert len(finished) >= 7  # ends seen by the waiting submits' polling
        videos = await asyncio.gather(*jobs)
    assert len({v.task_id for v in videos}) == 10
    assert len(sim.records.polls) - polls_before <= 2 * (10 - len(finished))  # finished ones cost nothing more
    assert sim.records.max_in_flight == 3
    assert session.jobs_in_flight == 0


async def test_waiting_submit_frees_slots_of_vanished_jobs(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A held job that the server no longer knows (404 after the grace window) gives its slot to a waiting submit."""
    session = make_session(
        max_concurrent_jobs=1, poll_policy=PollPolicy(first_delay=0, interval=0.001, not_found_grace=0)
    )
    sim.plan_next(JobPlan(outcome="vanish"))
    held = await session.submit(**VEO)
    with anyio.fail_after(10):
        second = await session.submit(**VEO)
    assert held.task_id != second.task_id
    assert not held.done  # the vanished job has no outcome, only a freed slot
    await second


async def test_unbounded_session(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """max_concurrent_jobs=None lets every submit through at once."""
    session = make_session(max_concurrent_jobs=None)
    sim.default_plan = JobPlan(polls=2)
    jobs = [await session.submit(model="google/veo3", prompt=f"v{i}") for i in range(12)]
    assert sim.records.in_flight == 12
    await asyncio.gather(*jobs)


async def test_submit_waits_for_a_slot(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A submit beyond the cap waits until a job ends, then goes through."""
    session = make_session(max_concurrent_jobs=1)
    sim.default_plan = JobPlan(polls=2)
    first = await session.submit(**VEO)
    second = asyncio.create_task(session.submit(**VEO))
    await until(lambda: session.submits_waiting == 1)
    assert not second.done()
    assert sim.records.submit_count == 1
    await first
    job2 = await second
    assert sim.records.submit_count == 2
    await job2


async def test_slot_released_when_submit_fails(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A submit that raises gives its slot back."""
    session = make_session(max_concurrent_jobs=1, replay_policy=NO_REPLAYS)
    sim.inject(Fault.server_error(500, route="submit"))
    with pytest.raises(SubmitUncertainError):
        await session.submit(**VEO)
    assert session.jobs_in_flight == 0
    await (await session.submit(**VEO))


async def test_slot_released_when_waiting_submit_is_cancelled(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A submit cancelled while waiting for a slot takes no slot and sends nothing."""
    session = make_session(max_concurrent_jobs=1)
    sim.default_plan = JobPlan(polls=3)
    first = await session.submit(**VEO)
    waiting = asyncio.create_task(session.submit(**VEO))
    await until(lambda: session.submits_waiting == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert session.submits_waiting == 0
    assert sim.records.submit_count == 1
    await first
    assert session.jobs_in_flight == 0


async def test_dropped_handle_releases_its_slot(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A job handle dropped without being awaited gives its slot back when collected."""
    session = make_session(max_concurrent_jobs=1)
    sim.default_plan = JobPlan(polls=5)
    job: VideoJob | None = await session.submit(**VEO)
    assert session.jobs_in_flight == 1
    del job
    gc.collect()
    await asyncio.sleep(0)  # the release is scheduled onto the loop
    assert session.jobs_in_flight == 0
    with anyio.fail_after(5):
        await session.submit(**VEO)


async def test_close_wakes_submits_waiting_for_a_slot(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Closing the session makes submits waiting for a slot fail with a precise RuntimeError."""
    session = make_session(max_concurrent_jobs=1)
    sim.default_plan = JobPlan(polls=5)
    held = await session.submit(**VEO)  # kept referenced: a dropped handle would free its slot
    waiting = asyncio.create_task(session.submit(**VEO))
    await until(lambda: session.submits_waiting == 1)
    await session.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await waiting
    assert sim.records.submit_count == 1
    assert held.task_id in sim.jobs


async def test_concurrent_waiters_share_one_poll_loop(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """Two coroutines awaiting the same job get the same result from a single polling loop."""
    sim.default_plan = JobPlan(polls=4)
    job = await session.submit(**VEO)
    a, b = await asyncio.gather(job.result(), job.result())
    assert a is b
    assert len(sim.records.polls) == 4


# --- cancellation and deadlines ----------------------------------------------------------


async def test_cancelled_result_can_be_awaited_again(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """Cancelling result() loses nothing: the same job is awaited again and succeeds."""
    sim.default_plan = JobPlan(polls=1000)
    job = await session.submit(**VEO)
    waiter = asyncio.create_task(job.result())
    while len(sim.records.polls) < 3:
        await asyncio.sleep(0.001)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await waiter
    assert job.task_id in "\n".join(getattr(caught.value, "__notes__", []))
    sim.jobs[job.task_id].plan = JobPlan(polls=1)
    video = await job
    assert video.task_id == job.task_id
    assert sim.records.submit_count == 1


async def test_caller_timeout_names_the_task(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """asyncio.timeout around result() raises TimeoutError whose cause names the task and its last status."""
    sim.default_plan = JobPlan(polls=1000)
    job = await session.submit(**VEO)
    await job.status()  # a known last status, however slow the machine
    with pytest.raises(TimeoutError) as caught:
        async with asyncio.timeout(0.05):
            await job
    notes = "\n".join(getattr(caught.value.__cause__, "__notes__", []))
    assert job.task_id in notes
    assert "running (processing)" in notes


async def test_result_timeout_option(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """result(timeout=) raises JobTimeoutError (a TimeoutError) with the task and last status; the job goes on."""
    sim.default_plan = JobPlan(polls=1000)
    job = await session.submit(**VEO)
    await job.status()  # a known last status, however slow the machine
    with pytest.raises(JobTimeoutError) as caught:
        await job.result(timeout=0.03)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.task_id == job.task_id
    assert caught.value.last_status is not None
    assert job.task_id in str(caught.value)
    assert "running (processing)" in str(caught.value)
    assert session.jobs_in_flight == 1  # still in flight: only the wait ended
    sim.jobs[job.task_id].plan = JobPlan(polls=1)
    assert (await job.result(timeout=5)).task_id == job.task_id


async def test_result_timeout_covers_waiting_behind_another_waiter(
    session: FastRouterSession, sim: FastRouterSimulator
) -> None:
    """result(timeout=) counts the time spent behind another coroutine already polling the job."""
    sim.default_plan = JobPlan(polls=1000)
    job = await session.submit(**VEO)
    first = asyncio.create_task(job.result())
    await until(lambda: life_of(job).waits() == 1)
    started = anyio.current_time()
    with pytest.raises(JobTimeoutError):
        await job.result(timeout=0.05)
    assert anyio.current_time() - started < 2
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
async def test_result_timeout_validated(session: FastRouterSession, timeout: object) -> None:
    """A timeout that is not a number of seconds >= 0 is an InvalidRequestError naming it."""
    job = session.job("fr_1", model="google/veo3")
    with pytest.raises(InvalidRequestError, match="timeout"):
        await job.result(timeout=timeout)  # type: ignore[arg-type]


async def test_anyio_deadline(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """anyio.fail_after around result() stops the wait with TimeoutError and the job stays awaitable."""
    sim.default_plan = JobPlan(polls=1000)
    job = await session.submit(**VEO)
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.03):
            await job
    sim.jobs[job.task_id].plan = JobPlan(polls=1)
    await job


async def test_cancelled_submit_reports_the_task_id(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A submit cancelled while its request is in flight still learns the task id and reports it."""
    session = make_session(max_concurrent_jobs=1)
    sim.inject(Fault.slow(0.1, route="submit"))
    task = asyncio.create_task(session.submit(**VEO))
    while sim.records.submit_count == 0:
        await asyncio.sleep(0.001)
    task.cancel()
    with caplog.at_level(logging.WARNING, "fastrouter_async"), pytest.raises(asyncio.CancelledError) as caught:
        await task
    (task_id,) = sim.jobs
    assert task_id in "\n".join(caught.value.__notes__)
    assert any(task_id in r.getMessage() for r in caplog.records)
    assert session.jobs_in_flight == 0
    assert (await session.job(task_id, model="google/veo3")).task_id == task_id


async def test_reattach_from_another_session(
    server: SimulatorServer, make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A task submitted by one session is picked up by task id from another (a restart)."""
    sim.default_plan = JobPlan(polls=3)
    first = make_session()
    task_id = (await first.submit(**VEO)).task_id
    await first.aclose()
    second = make_session()
    video = await second.job(task_id, model="google/veo3")
    assert video.task_id == task_id
    assert sim.records.submit_count == 1


async def test_reattach_with_submit_time_gets_the_grace_window(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Another worker passing submitted_at rides out the not-visible-yet 404s; without it, NotFoundError at once."""
    sim.default_plan = JobPlan(hidden_polls=3)
    submitter = make_session()
    first = await submitter.submit(**VEO)
    second = await submitter.submit(**VEO)
    assert first.submitted_at is not None
    worker = make_session()
    with pytest.raises(NotFoundError):
        await worker.job(first.task_id, model="google/veo3")  # no submit time: the 404 is final
    job = worker.job(second.task_id, model="google/veo3", submitted_at=second.submitted_at)
    assert (await job.status()).state is JobState.PENDING
    assert (await job).task_id == second.task_id
    again = worker.job(first.task_id, model="google/veo3", submitted_at=first.submitted_at.timestamp())
    assert (await again).task_id == first.task_id
    assert sim.records.submit_count == 2


async def test_reattach_long_after_the_submit_has_no_grace(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """A submit time older than the grace window gives no grace: the 404 is NotFoundError."""
    sim.default_plan = JobPlan(hidden_polls=3)
    task_id = (await make_session().submit(**VEO)).task_id
    worker = make_session()
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=FAST_POLL.not_found_grace + 1)
    with pytest.raises(NotFoundError):
        await worker.job(task_id, model="google/veo3", submitted_at=long_ago)


async def test_submitted_at_is_kept(session: FastRouterSession) -> None:
    """job.submitted_at is the aware UTC time given; a job re-attached without one has None."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert session.job("fr_A", model="google/veo3", submitted_at=when).submitted_at == when
    assert session.job("fr_A", model="google/veo3", submitted_at=1_700_000_000.5).submitted_at == (
        datetime.datetime.fromtimestamp(1_700_000_000.5, datetime.UTC)
    )
    assert session.job("fr_A", model="google/veo3").submitted_at is None


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 1, 2, 3, 4, 5),  # naive: which clock?
        time.time() + 3600,  # an hour in the future
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
        "2026-01-02T03:04:05Z",
        True,
        float("nan"),
    ],
)
def test_bad_submitted_at_is_refused(session: FastRouterSession, value: object) -> None:
    """A naive, future, non-numeric or non-finite submit time is an InvalidRequestError naming submitted_at."""
    with pytest.raises(InvalidRequestError) as caught:
        session.job("fr_A", model="google/veo3", submitted_at=value)  # type: ignore[arg-type]
    assert caught.value.field == "submitted_at"


# --- lifecycle and configuration ---------------------------------------------------------


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key and no FASTROUTER_API_KEY is a clear error when the session is built."""
    monkeypatch.delenv("FASTROUTER_API_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="FASTROUTER_API_KEY"):
        FastRouterSession()


async def test_key_and_base_url_from_environment(
    monkeypatch: pytest.MonkeyPatch, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """The key and base URL fall back to FASTROUTER_API_KEY and FASTROUTER_BASE_URL."""
    monkeypatch.setenv("FASTROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("FASTROUTER_BASE_URL", server.base_url + "/")
    async with FastRouterSession(poll_policy=FAST_POLL) as session:
        assert session.base_url == server.base_url
        await (await session.submit(**VEO))
    assert sim.records.submits[0].headers["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    "url",
    ["http://go.fastrouter.ai/api/v1", "ftp://127.0.0.1/x", "https://", "https://user:pw@host/api", "not a url"],
)
def test_base_url_must_be_https_unless_loopback(url: str) -> None:
    """A non-https base URL is refused unless it is a loopback address."""
    with pytest.raises(InvalidRequestError, match="base_url"):
        FastRouterSession(API_KEY, base_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/api/v1", "http://localhost/api/v1", "http://[::1]:9/api/v1"])
def test_loopback_http_is_allowed(url: str) -> None:
    """Plain http is accepted for loopback addresses (the simulator)."""
    assert FastRouterSession(API_KEY, base_url=url).base_url == url


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "8"])
def test_max_concurrent_jobs_validated(value: object) -> None:
    """max_concurrent_jobs must be an integer >= 1 or None."""
    with pytest.raises(InvalidRequestError, match="max_concurrent_jobs"):
        FastRouterSession(API_KEY, max_concurrent_jobs=value)  # type: ignore[arg-type]


async def test_use_after_close_is_a_precise_runtime_error(session: FastRouterSession) -> None:
    """Every entry point of a closed session raises RuntimeError saying it is closed; aclose is idempotent."""
    job = await session.submit(**VEO)
    await session.aclose()
    await session.aclose()
    assert session.closed
    for attempt in (session.submit(**VEO), job.status(), job.result()):
        with pytest.raises(RuntimeError, match="FastRouterSession is closed"):
            await attempt
    with pytest.raises(RuntimeError, match="closed"):
        session.job("fr_x")


async def test_unclosed_session_warns_when_garbage_collected() -> None:
    """A session used and never closed warns ResourceWarning naming FastRouterSession when collected."""
    session = FastRouterSession(API_KEY, base_url="http://127.0.0.1:9")
    await session.__aenter__()  # used, never closed (no request: no aiohttp session to leak)

    def drop() -> None:
        nonlocal session
        del session  # collected here (no reference cycle holds it), or by the collection below
        gc.collect()

    with pytest.warns(ResourceWarning, match=r"unclosed FastRouterSession.*async with.*aclose\(\)"):
        drop()


async def test_closed_or_unused_session_does_not_warn_when_garbage_collected() -> None:
    """A closed session, and one never used, are collected without a ResourceWarning."""
    async with FastRouterSession(API_KEY, base_url="http://127.0.0.1:9") as closed:
        pass
    unused = FastRouterSession(API_KEY, base_url="http://127.0.0.1:9")
    del closed, unused
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "FastRouterSession" in str(w.message)]


async def test_caller_owned_aiohttp_session_is_not_closed(server: SimulatorServer) -> None:
    """A ClientSession handed in is used and never closed by FastRouterSession."""
    async with aiohttp.ClientSession() as http:
        async with FastRouterSession(
            API_KEY, base_url=server.base_url, http_session=http, poll_policy=FAST_POLL
        ) as session:
            await (await session.submit(**VEO))
        assert not http.closed


async def test_caller_session_raising_for_status_still_maps_errors(server: SimulatorServer) -> None:
    """A caller-owned ClientSession(raise_for_status=True) does not turn a refused submit into uncertainty."""
    async with (
        aiohttp.ClientSession(raise_for_status=True) as http,
        FastRouterSession("sk-v1-WRONGKEY0000000000", base_url=server.base_url, http_session=http) as session,
    ):
        with pytest.raises(AuthenticationError):
            await session.submit(**VEO)


async def test_oversized_create_answer_is_uncertain(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """With replays off, a 2xx create answer too large to be one is SubmitUncertainError after one POST."""
    session = make_session(replay_policy=NO_REPLAYS)
    sim.inject(Fault.status(200, route="submit", body="x" * (9 * 1024 * 1024)))
    with pytest.raises(SubmitUncertainError, match=r"too large|exceeds"):
        await session.submit(**VEO)
    assert sim.records.submit_count == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": "p"}, "model"),
        ({"model": "google/veo3"}, "prompt"),
        ({"model": "google/veo3", "prompt": "   "}, "prompt"),
        ({"model": "google/veo3", "prompt": "p", "length": 7}, "length"),
        ({"model": "google/veo3", "prompt": "p", "image": "data:image/png;base64,AAAA"}, "image"),
        ({"model": "runway/runway-gen-4-turbo", "prompt": "p"}, "image"),
        ({"model": "openai/sora-2", "prompt": "p", "seconds": 10}, "seconds"),
        ({"model": "google/veo3", "prompt": "p", "aspectRatio": "16:9"}, "extra"),
        ({"model": "unknown/brand-new", "prompt": ""}, "prompt"),
    ],
)
async def test_invalid_input_sends_nothing(
    session: FastRouterSession, sim: FastRouterSimulator, kwargs: dict[str, object], field: str
) -> None:
    """Invalid input raises InvalidRequestError (a ValueError) naming the field, and sends no request at all."""
    with pytest.raises(InvalidRequestError) as caught:
        await session.submit(**kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert caught.value.field.startswith(field)
    assert sim.records.requests == []


async def test_unknown_models_pass_through(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A model the catalog does not know is submitted with its parameters unchanged."""
    await session.submit(model="newlab/model-x", prompt="p", length=7, resolution="8k", extra={"fps": 60})
    assert generation(sim.records.submits[0].json) == {
        "model": "newlab/model-x",
        "prompt": "p",
        "length": 7,
        "resolution": "8k",
        "fps": 60,
    }


async def test_validation_can_be_turned_off(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """validate=False sends what catalog rules would refuse (the server is then the judge)."""
    session = make_session(validate=False)
    await session.submit(model="google/veo3", prompt="p", length=7)
    assert sim.records.submits[0].json["length"] == 7


def test_repr_shows_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's repr shows its state and settings."""
    session = FastRouterSession(API_KEY)
    assert repr(session) == (
        "<FastRouterSession open base_url='https://go.fastrouter.ai/api/v1' max_concurrent_jobs=8 jobs_in_flight=0>"
    )
