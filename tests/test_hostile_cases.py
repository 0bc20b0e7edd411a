"""Each hostile answer seen in the field, on the submit and poll routes, ends in a documented outcome."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import (
    APIStatusError,
    FastRouterSession,
    JobState,
    OutcomeStatus,
    PollRoute,
    ResultSource,
    SubmitUncertainError,
    UnexpectedResponseError,
)

from ._hostile import Answer, HostileServer, Received, json_answer, serve
from .conftest import API_KEY, FAST_POLL, FAST_RETRY, FAST_TIMEOUTS

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}
TASK = "fr_01HOSTILE0000000000000001"
HUGE = int("9" * 400)
DEEP = "[" * 1000 + "]" * 1000
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64)
RUNNING = json_answer({"data": {"taskId": TASK, "status": "processing"}})


def raw_json(text: str, status: int = 200, content_type: str | None = "application/json") -> Answer:
    headers = () if content_type is None else (("Content-Type", content_type),)
    return Answer(status=status, headers=headers, body=text.encode())


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with serve() as server:
        yield server


@pytest.fixture
async def session_for(hostile: HostileServer) -> AsyncIterator[Callable[..., FastRouterSession]]:
    made: list[FastRouterSession] = []

    def factory(**options: Any) -> FastRouterSession:
        defaults: dict[str, Any] = {
            "base_url": hostile.base_url,
            "poll_policy": FAST_POLL,
            "retry_policy": FAST_RETRY,
            "timeouts": FAST_TIMEOUTS,
        }
        session = FastRouterSession(API_KEY, **(defaults | options))
        made.append(session)
        return session

    yield factory
    for session in made:
        await session.aclose()


# --- submit: answers that cannot be read ---------------------------------------------------------------


async def test_huge_integer_in_a_create_answer_is_an_unknown_cost(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """A 400-digit credits_used in a valid create answer keeps the job: the cost is simply unknown."""
    answer = {"data": {"taskId": TASK, "status": "processing"}, "estimate_usage": {"credits_used": HUGE}}
    hostile.submit = lambda _: raw_json(json.dumps(answer))
    job = await session_for().submit(**VEO)
    assert job.task_id == TASK


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(f'{{"data": {{"taskId": "{TASK}"}}, "extra": {DEEP}}}', "application/json", id="nested-1000"),
        pytest.param(f'{{"data": {{"taskId": "{TASK}", "status": "proc', "application/json", id="truncated"),
        pytest.param(f"<html>created {TASK}</html>", "text/html", id="html"),
        pytest.param(f'{{"data": {{"taskId": "{TASK}"}}}}\xff', None, id="not-utf8"),
    ],
)
async def test_unreadable_create_answer_is_uncertain_with_the_task_id_it_shows(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], body: str, content_type: str | None
) -> None:
    """A create answer that cannot be read is SubmitUncertainError keeping the task id its bytes show."""
    raw = body.encode("utf-8").replace(b"\xc3\xbf", b"\xff")
    headers = () if content_type is None else (("Content-Type", content_type),)
    hostile.submit = lambda _: Answer(headers=headers, body=raw)
    with pytest.raises(SubmitUncertainError) as caught:
        await session_for().submit(**VEO)
    assert caught.value.task_id == TASK
    assert TASK in str(caught.value)
    assert len(hostile.of("submit")) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(json_answer({"data": {"taskId": "fr_\n\x1b[2J"}}), id="control-chars"),
        pytest.param(json_answer({"data": {"taskId": "x" * 10_000}}), id="too-long"),
        pytest.param(json_answer({"data": {"taskId": ["fr_1"]}}), id="wrong-type"),
        pytest.param(json_answer([1, 2, 3]), id="not-an-object"),
        pytest.param(Answer(body=b"", headers=(("Content-Type", "application/json"),)), id="empty"),
        pytest.param(Answer(status=204, reason="No Content"), id="204"),
    ],
)
async def test_create_answer_without_a_usable_task_id_is_uncertain(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], answer: Answer
) -> None:
    """A 2xx create answer without a usable task id is SubmitUncertainError, never another exception."""
    hostile.submit = lambda _: answer
    with pytest.raises(SubmitUncertainError) as caught:
        await session_for().submit(**VEO)
    assert caught.value.task_id is None


async def test_server_error_showing_a_task_id_is_uncertain_with_it(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """A 5xx create answer whose body shows a task id keeps it on the SubmitUncertainError."""
    hostile.submit = lambda _: json_answer({"error": "upstream timeout", "task_id": TASK}, 502)
    with pytest.raises(SubmitUncertainError) as caught:
        await session_for().submit(**VEO)
    assert (caught.value.task_id, caught.value.status_code) == (TASK, 502)


async def test_unparsable_location_on_a_submit_is_refused(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """A 3xx create answer with ``Location: http://[bad`` is a refusal (APIStatusError), sent once."""
    hostile.submit = lambda _: Answer(status=302, reason="Found", headers=(("Location", "http://[bad"),))
    with pytest.raises(APIStatusError, match="never re-sent") as caught:
        await session_for().submit(**VEO)
    assert caught.value.status_code == 302
    assert len(hostile.received) == 1


# --- polls: answers that cannot be read, and "done" only on evidence -------------------------------


@pytest.mark.parametrize("route", list(PollRoute))
async def test_huge_numbers_in_a_status_answer_are_unknown_amounts(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], route: PollRoute
) -> None:
    """400-digit, NaN and infinite amounts in a status answer become "unknown", not OverflowError."""
    text = json.dumps({"data": {"status": "processing", "costUsd": HUGE}, "usage": {"credits_used": 1}})
    text = text.replace('"credits_used": 1', '"credits_used": NaN').replace(str(HUGE), str(HUGE) + "e99999")
    hostile.poll = lambda _: raw_json(text)
    status = await session_for(poll_route=route).job(TASK, model="google/veo3").status()
    assert (status.state, status.cost_usd, status.credits_used) == (JobState.RUNNING, None, None)


@pytest.mark.parametrize("route", list(PollRoute))
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(raw_json(f'{{"data": {{"status": "succeed", "x": {DEEP}}}}}'), id="nested-1000"),
        pytest.param(Answer(body=b'{"data": {"status": "succeed"}}\xff\xfe'), id="not-utf8"),
        pytest.param(raw_json('{"data": {"status": "succ'), id="truncated-json"),
        pytest.param(raw_json("<html>Bad gateway</html>", content_type="text/html"), id="html"),
        pytest.param(
            Answer(headers=(("Content-Type", "video/mp4"),), body=b"<html>link expired</html>"), id="video-type-html"
        ),
        pytest.param(
            Answer(status=302, reason="Found", headers=(("Location", "http://[bad"),)), id="unparsable-location"
        ),
        pytest.param(
            raw_json('{"data": {"status": "succeed", "generations": [{"url": "http://[bad"}]}}'), id="unparsable-url"
        ),
        pytest.param(Answer(body=b"", headers=(("Content-Type", "application/json"),)), id="empty-200"),
    ],
)
async def test_unreadable_status_answer_is_unexpected(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], route: PollRoute, answer: Answer
) -> None:
    """A status answer that cannot be read is UnexpectedResponseError, never a raw error nor a success."""
    hostile.poll = lambda _: answer
    with pytest.raises(UnexpectedResponseError):
        await session_for(poll_route=route).job(TASK, model="google/veo3").status()


@pytest.mark.parametrize("route", list(PollRoute))
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Answer(status=204, reason="No Content"), id="204"),
        pytest.param(Answer(status=202, reason="Accepted"), id="202-empty"),
        pytest.param(raw_json('{"data": {"status": "processing"}}', content_type=None), id="json-without-type"),
        pytest.param(
            raw_json('{"data": {"status": "processing"}}', content_type="application/octet-stream"),
            id="json-as-octet-stream",
        ),
    ],
)
async def test_answers_without_evidence_of_a_video_are_still_running(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], route: PollRoute, answer: Answer
) -> None:
    """A 204, an empty 202 or JSON without a media type is "still running", never the video itself."""
    hostile.poll = lambda _: answer
    status = await session_for(poll_route=route).job(TASK, model="google/veo3").status()
    assert status.state is JobState.RUNNING


async def test_a_real_video_body_is_a_finished_job(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """A media content type with MP4 bytes is the finished video (the POLL_BODY form)."""
    hostile.poll = lambda _: Answer(headers=(("Content-Type", "video/mp4"),), body=MP4)
    status = await session_for().job(TASK, model="google/veo3").status()
    assert (status.state, status.source) == (JobState.SUCCEEDED, ResultSource.POLL_BODY)


async def test_no_content_polls_keep_the_slot_until_the_job_ends(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """Polls answered 204 keep the job's slot: the server never runs more jobs than max_concurrent_jobs."""
    answered: dict[str, int] = {}
    running: set[str] = set()
    peak = 0
    numbers = iter(range(1, 100))

    def submit(_: Received) -> Answer:
        nonlocal peak
        task_id = f"fr_SLOT{next(numbers):04d}"
        running.add(task_id)
        peak = max(peak, len(running))
        return json_answer({"data": {"taskId": task_id, "status": "processing"}})

    def poll(request: Received) -> Answer:
        task_id = request.task_id or "?"
        answered[task_id] = answered.get(task_id, 0) + 1
        if answered[task_id] < 4:
            return Answer(status=204, reason="No Content")
        running.discard(task_id)
        return json_answer({"data": {"status": "succeed", "generations": [{"url": f"https://cdn.example/{task_id}"}]}})

    hostile.submit, hostile.poll = submit, poll
    session = session_for(max_concurrent_jobs=4)
    requests = [VEO | {"prompt": f"cat {i}"} for i in range(6)]
    async with session.generate_many(requests) as batch:
        outcomes = [outcome async for outcome in batch]
    assert [o.status for o in outcomes] == [OutcomeStatus.SUCCEEDED] * 6
    assert peak == 4


# --- one job's bad answer is that job's outcome ---------------------------------------------------------


async def test_a_poison_status_answer_fails_one_job_not_the_batch(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession]
) -> None:
    """A job whose status answers cannot be read fails alone; the other jobs of the batch succeed."""
    first = {"done": False}

    def submit(request: Received) -> Answer:
        prompt = json.loads(request.body)["prompt"]
        task_id = "fr_POISON00000001" if prompt == "poison" else f"fr_FINE{len(hostile.received):09d}"
        first["done"] = True
        return json_answer({"data": {"taskId": task_id, "status": "processing"}})

    def poll(request: Received) -> Answer:
        if request.task_id == "fr_POISON00000001":
            return raw_json(f'{{"data": {DEEP}, "usage": {{"credits_used": {HUGE}}}}}')
        url = f"https://cdn.example/{request.task_id}"
        return json_answer({"data": {"status": "succeed", "generations": [{"url": url}]}})

    hostile.submit, hostile.poll = submit, poll
    requests = [VEO | {"prompt": p} for p in ("one", "poison", "two", "three")]
    async with session_for().generate_many(requests) as batch:
        outcomes = {o.request.prompt: o async for o in batch}
    assert outcomes["poison"].status is OutcomeStatus.FAILED
    assert outcomes["poison"].task_id == "fr_POISON00000001"
    assert isinstance(outcomes["poison"].error, UnexpectedResponseError)
    assert [outcomes[p].status for p in ("one", "two", "three")] == [OutcomeStatus.SUCCEEDED] * 3


async def test_a_salvaged_task_id_is_journaled_and_followed(
    hostile: HostileServer, session_for: Callable[..., FastRouterSession], tmp_path: Path
) -> None:
    """A batch submit whose answer is unreadable but shows a task id records it and follows that job."""
    hostile.submit = lambda _: raw_json(f'{{"data": {{"taskId": "{TASK}", "status": "processing", "x": {DEEP}}}}}')
    journal = tmp_path / "journal.sqlite"
    async with session_for().generate_many([VEO], journal=journal) as batch:
        outcomes = [outcome async for outcome in batch]
    assert [(o.status, o.task_id) for o in outcomes] == [(OutcomeStatus.SUCCEEDED, TASK)]
    assert [r.task_id for r in hostile.of("poll")] == [TASK]
    async with session_for().generate_many([VEO], journal=journal) as batch:
        again = [outcome async for outcome in batch]
    assert [(o.status, o.from_journal) for o in again] == [(OutcomeStatus.SUCCEEDED, True)]
    assert len(hostile.of("submit")) == 1
