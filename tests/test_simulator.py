"""The public simulator (fastrouter_async.testing), exercised over real HTTP with aiohttp's client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import fastrouter_async.testing as testing
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer, sample_video
from fastrouter_async.testing.__main__ import main as simulator_main

from ._sim import FakeClock

KEY = "sk-v1-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "kling-ai/kling-v1-6"
TASK_ID = re.compile(r"^fr_[0-9A-HJKMNP-TV-Z]{26}$")
CHAT_ID = re.compile(r"^fr_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BAD_KEY_MESSAGE = (
    "Invalid Credentials - Your API key is invalid, disabled, or your OAuth session has expired. "
    "Check your credentials."
)
NOT_FOUND_BODY = {
    "error": {
        "message": "Not Found - Invalid taskId or expired result",
        "type": "not_found",
        "code": "task_not_found",
        "status": 404,
    }
}
REPO_ROOT = Path(testing.__file__).resolve().parents[2]
POLL_ROUTES = ["getAsyncResponse", "getVideoResponse", "GET videos"]


@pytest.fixture
def sim() -> FastRouterSimulator:
    return FastRouterSimulator(api_key=KEY)


async def submit(
    http: aiohttp.ClientSession, server: SimulatorServer, prompt: str = "a cat", **extra: Any
) -> dict[str, Any]:
    async with http.post(
        f"{server.base_url}/videos", json={"model": MODEL, "prompt": prompt, **extra}, headers=AUTH
    ) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def submit_id(http: aiohttp.ClientSession, server: SimulatorServer, prompt: str = "a cat") -> str:
    task_id: str = (await submit(http, server, prompt))["data"]["taskId"]
    return task_id


async def poll(
    http: aiohttp.ClientSession,
    server: SimulatorServer,
    task_id: str,
    route: str = "getAsyncResponse",
    model: str | None = None,
) -> tuple[int, Any]:
    """One poll; the decoded JSON, or the raw bytes when the answer is not JSON."""
    if route == "GET videos":
        params = {"model": model} if model else None
        request = http.get(f"{server.base_url}/videos/{task_id}", params=params, headers=AUTH)
    else:
        body = {"taskId": task_id} | ({"model": model} if model else {})
        request = http.post(f"{server.base_url}/{route}", json=body, headers=AUTH)
    async with request as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.read()


async def poll_json(http: aiohttp.ClientSession, server: SimulatorServer, task_id: str) -> dict[str, Any]:
    status, body = await poll(http, server, task_id)
    assert status == 200
    assert isinstance(body, dict)
    return body


async def download(
    http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> tuple[int, Mapping[str, str], bytes]:
    async with http.get(url, headers=headers) as r:
        return r.status, r.headers, await r.read()


# -- create ---------------------------------------------------------------------------------------


async def test_create_answers_the_documented_shape(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """POST /videos answers 200 with exactly the documented create body."""
    body = await submit(http, server)
    assert set(body) == {"chat_id", "model", "code", "message", "data", "estimate_usage"}
    assert CHAT_ID.match(body["chat_id"])
    assert body["model"] == MODEL
    assert (body["code"], body["message"]) == ("success", "Video generation started")
    assert set(body["data"]) == {"taskId", "status"}
    assert TASK_ID.match(body["data"]["taskId"])
    assert body["data"]["status"] == "processing"
    assert body["estimate_usage"] == {
        "chat_id": body["chat_id"],
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "user_key_credits_used": 0.21,
        "credits_used": 0.21,
        "provider": "pollo",
    }


async def test_create_records_the_job(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """An accepted create becomes a job holding its model, prompt, body and plan."""
    body = await submit(http, server, prompt="a dog", seed=7)
    job = sim.jobs[body["data"]["taskId"]]
    assert (job.model, job.prompt, job.body["seed"], job.plan) == (MODEL, "a dog", 7, JobPlan())
    assert (job.poll_count, job.done) == (0, False)
    assert sim.records.submits[0].task_id == job.task_id


async def test_task_ids_and_chat_ids_are_unique(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """Every create gets a new task id and a new chat id."""
    bodies = [await submit(http, server) for _ in range(5)]
    assert len({b["data"]["taskId"] for b in bodies}) == 5
    assert len({b["chat_id"] for b in bodies}) == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "a cat"}, "model"),
        ({"model": "", "prompt": "a cat"}, "model"),
        ({"model": 3, "prompt": "a cat"}, "model"),
        ({"model": MODEL}, "prompt"),
        ({"model": MODEL, "prompt": "  "}, "prompt"),
    ],
)
async def test_create_rejects_missing_or_empty_fields(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, body: dict[str, Any], field: str
) -> None:
    """A create without a non-empty string model or prompt is a 400 error object naming the field, and no job."""
    async with http.post(f"{server.base_url}/videos", json=body, headers=AUTH) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["status"] == 400
    assert f"'{field}'" in error["message"]
    assert sim.records.jobs_created == 0
    assert sim.records.submit_count == 1


async def test_create_rejects_a_body_that_is_not_a_json_object(
    http: aiohttp.ClientSession, server: SimulatorServer
) -> None:
    """A create whose body is not a JSON object is a 400."""
    for data in (b"not json", b"[1, 2]"):
        async with http.post(f"{server.base_url}/videos", data=data, headers=AUTH) as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer "}],
    ids=["missing", "wrong-key", "not-bearer", "empty"],
)
@pytest.mark.parametrize("route", ["videos", "getAsyncResponse", "getVideoResponse", "GET videos"])
async def test_bad_credentials_are_401(
    http: aiohttp.ClientSession, server: SimulatorServer, headers: dict[str, str], route: str
) -> None:
    """Submit and every poll route answer 401 with the documented error object without the right Bearer key."""
    if route == "GET videos":
        request = http.get(f"{server.base_url}/videos/fr_X", headers=headers)
    else:
        request = http.post(
            f"{server.base_url}/{route}", json={"model": MODEL, "prompt": "p", "taskId": "x"}, headers=headers
        )
    async with request as r:
        assert r.status == 401
        assert await r.json() == {
            "error": {
                "message": BAD_KEY_MESSAGE,
                "type": "authentication_error",
                "code": "invalid_api_key",
                "status": 401,
            }
        }


async def test_any_bearer_token_is_accepted_without_an_api_key(http: aiohttp.ClientSession) -> None:
    """With api_key=None any non-empty Bearer token is accepted, and an empty one is not."""
    sim = FastRouterSimulator()
    async with sim.serve() as server:
        for token, expected in (("anything", 200), ("", 401)):
            body = {"model": MODEL, "prompt": "p"}
            async with http.post(
                f"{server.base_url}/videos", json=body, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == expected


# -- polling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", POLL_ROUTES)
async def test_every_poll_route_reports_success(
    http: aiohttp.ClientSession, server: SimulatorServer, route: str
) -> None:
    """getAsyncResponse, getVideoResponse and GET /videos/{id} all answer the documented success shape."""
    task_id = await submit_id(http, server)
    status, body = await poll(http, server, task_id, route)
    assert status == 200
    assert body["code"] == "SUCCESS"
    assert body["data"]["taskId"] == task_id


async def test_success_answer_has_the_documented_shape(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """A finished job's poll carries generations, the provider URL, fastrouter_assets and usage as documented."""
    task_id = await submit_id(http, server)
    body = await poll_json(http, server, task_id)
    assert set(body) == {"chat_id", "code", "message", "data", "fastrouter_assets", "usage"}
    assert CHAT_ID.match(body["chat_id"])
    assert (body["code"], body["message"]) == ("SUCCESS", "success")
    data = body["data"]
    assert set(data) == {"costUsd", "credit", "generations", "status", "taskId"}
    assert (data["costUsd"], data["credit"], data["status"], data["taskId"]) == (0.21, 3.5, "succeed", task_id)
    [gen] = data["generations"]
    assert set(gen) == {"createdDate", "failMsg", "id", "mediaType", "status", "updatedDate", "url"}
    assert re.match(r"^c[0-9a-z]{24}$", gen["id"])
    assert (gen["mediaType"], gen["status"], gen["failMsg"]) == ("video", "succeed", "")
    assert ISO_DATE.match(gen["createdDate"])
    assert ISO_DATE.match(gen["updatedDate"])
    assert re.fullmatch(re.escape(f"{server.origin}/cdn/{task_id}.mp4") + r"\?sig=[0-9a-f]{16}", gen["url"])
    assets = body["fastrouter_assets"]
    assert assets["status"] == "ready"
    assert assets["urls"] == [f"{server.origin}/videos-content/{task_id}"]
    assert assets["expires_at"] - assets["cached_at"] == 30 * 24 * 3600
    assert abs(assets["cached_at"] - time.time()) < 60
    assert body["usage"] == {
        "api_key_credits_used": 0,
        "user_key_credits_used": 0.21,
        "credits_used": 0.21,
        "provider": "pollo",
    }


async def test_job_runs_until_the_planned_poll(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """With polls=3 the first two polls answer the running shape and the third the success."""
    sim.default_plan = JobPlan(polls=3)
    task_id = await submit_id(http, server)
    for _ in range(2):
        body = await poll_json(http, server, task_id)
        assert set(body) == {"chat_id", "code", "message", "data"}
        assert (body["code"], body["message"]) == ("processing", "processing")
        assert body["data"]["taskId"] == task_id
        assert body["data"]["status"] == "processing"
        [gen] = body["data"]["generations"]
        assert (gen["status"], gen["url"], gen["failMsg"], gen["mediaType"]) == ("processing", "", "", "video")
    assert (await poll_json(http, server, task_id))["data"]["status"] == "succeed"
    assert (await poll_json(http, server, task_id))["data"]["status"] == "succeed"
    job = sim.jobs[task_id]
    assert (job.poll_count, job.visible_polls, job.done) == (4, 4, True)


async def test_job_runs_for_the_planned_duration(http: aiohttp.ClientSession) -> None:
    """With duration=5 a job is done at the first poll made 5 s (simulator clock) after its submit."""
    clock = FakeClock()
    sim = FastRouterSimulator(default_plan=JobPlan(duration=5, polls=2), clock=clock)
    async with sim.serve() as server:
        task_id = await submit_id(http, server)
        clock.now += 4.9
        assert (await poll_json(http, server, task_id))["code"] == "processing"
        assert (await poll_json(http, server, task_id))["code"] == "processing"
        clock.now += 0.1
        assert (await poll_json(http, server, task_id))["code"] == "SUCCESS"
        assert sim.jobs[task_id].done_at == clock.now


async def test_status_words_can_be_varied(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """running_word and status_word replace the status words in data.status and generations."""
    sim.default_plan = JobPlan(polls=2, running_word="waiting", status_word="completed")
    task_id = await submit_id(http, server)
    running = await poll_json(http, server, task_id)
    assert running["data"]["status"] == running["data"]["generations"][0]["status"] == "waiting"
    done = await poll_json(http, server, task_id)
    assert done["data"]["status"] == done["data"]["generations"][0]["status"] == "completed"


async def test_overall_status_can_be_left_out(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """omit_overall_status leaves data.status out of running and final answers alike."""
    sim.default_plan = JobPlan(polls=2, omit_overall_status=True, status_word="SUCCESS")
    task_id = await submit_id(http, server)
    running = await poll_json(http, server, task_id)
    done = await poll_json(http, server, task_id)
    assert "status" not in running["data"]
    assert "status" not in done["data"]
    assert done["data"]["generations"][0]["status"] == "SUCCESS"


async def test_unknown_task_is_404(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """Polling a task id the simulator never issued answers the documented 404 on every route."""
    for route in POLL_ROUTES:
        assert await poll(http, server, "fr_01M1Y389KN0KN28AT3733Q505H", route) == (404, NOT_FOUND_BODY)


async def test_poll_without_task_id_is_400(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """A POST poll without a taskId is a 400."""
    async with http.post(f"{server.base_url}/getAsyncResponse", json={"model": MODEL}, headers=AUTH) as r:
        assert r.status == 400
        assert "'taskId'" in (await r.json())["error"]["message"]


async def test_hidden_polls_answer_404_first(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """With hidden_polls=2 the first two polls answer 404 and do not count towards polls."""
    sim.default_plan = JobPlan(hidden_polls=2, polls=2)
    task_id = await submit_id(http, server)
    assert await poll(http, server, task_id) == (404, NOT_FOUND_BODY)
    assert await poll(http, server, task_id) == (404, NOT_FOUND_BODY)
    assert (await poll_json(http, server, task_id))["code"] == "processing"
    assert (await poll_json(http, server, task_id))["code"] == "SUCCESS"
    assert (sim.jobs[task_id].poll_count, sim.jobs[task_id].visible_polls) == (4, 2)


async def test_job_is_invisible_until_visible_after(http: aiohttp.ClientSession) -> None:
    """With visible_after=2 polls answer 404 until 2 s (simulator clock) after the submit."""
    clock = FakeClock()
    sim = FastRouterSimulator(default_plan=JobPlan(visible_after=2), clock=clock)
    async with sim.serve() as server:
        task_id = await submit_id(http, server)
        clock.now += 1.9
        assert (await poll(http, server, task_id))[0] == 404
        clock.now += 0.1
        assert (await poll(http, server, task_id))[0] == 200


@pytest.mark.parametrize("route", POLL_ROUTES)
async def test_poll_model_is_recorded_and_checked(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, route: str
) -> None:
    """A poll's model is recorded; the right one or none is accepted, a different one is a 400."""
    sim.default_plan = JobPlan(polls=5)
    task_id = await submit_id(http, server)
    assert (await poll(http, server, task_id, route))[0] == 200
    assert (await poll(http, server, task_id, route, model=MODEL))[0] == 200
    status, body = await poll(http, server, task_id, route, model="google/veo2")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    seen = [(p.task_id, p.model_sent, p.model_matched) for p in sim.records.polls]
    assert seen == [(task_id, False, None), (task_id, True, True), (task_id, True, False)]
    assert sim.jobs[task_id].poll_count == 2


# -- outcomes -------------------------------------------------------------------------------------


async def test_failed_outcome_has_the_live_shape(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="failed" answers HTTP 200 with code "failed", no generations and a top-level string error."""
    sim.default_plan = JobPlan(outcome="failed", error="boom")
    task_id = await submit_id(http, server)
    assert await poll(http, server, task_id) == (
        200,
        {"code": "failed", "data": {"taskId": task_id, "status": "failed", "generations": []}, "error": "boom"},
    )


async def test_failed_generation_outcome_reports_through_the_data(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="failed_generation" fails via data.status and generations[].failMsg, with no top-level error."""
    sim.default_plan = JobPlan(outcome="failed_generation", error="content policy")
    task_id = await submit_id(http, server)
    body = await poll_json(http, server, task_id)
    assert "error" not in body
    assert body["data"]["status"] == "failed"
    [gen] = body["data"]["generations"]
    assert (gen["status"], gen["failMsg"], gen["url"]) == ("failed", "content policy", "")


async def test_video_body_outcome_answers_the_mp4_itself(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="video_body" answers the finished poll with the video bytes as video/mp4."""
    sim.default_plan = JobPlan(outcome="video_body", polls=2)
    task_id = await submit_id(http, server)
    assert (await poll_json(http, server, task_id))["code"] == "processing"
    async with http.post(f"{server.base_url}/getVideoResponse", json={"taskId": task_id}, headers=AUTH) as r:
        assert (r.status, r.content_type) == (200, "video/mp4")
        assert await r.read() == sample_video()


async def test_inline_base64_outcome_carries_the_video(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="inline_base64" puts the video in bytesBase64Encoded, with an empty url and no fastrouter_assets."""
    sim.default_plan = JobPlan(outcome="inline_base64", video=b"\x00\x00\x00\x18ftypmp42 tiny")
    task_id = await submit_id(http, server)
    body = await poll_json(http, server, task_id)
    assert "fastrouter_assets" not in body
    [gen] = body["data"]["generations"]
    assert gen["url"] == ""
    assert base64.b64decode(gen["bytesBase64Encoded"]) == b"\x00\x00\x00\x18ftypmp42 tiny"


async def test_no_url_outcome_succeeds_without_a_video(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="no_url" reports success with an empty url and no fastrouter_assets."""
    sim.default_plan = JobPlan(outcome="no_url")
    task_id = await submit_id(http, server)
    body = await poll_json(http, server, task_id)
    assert body["data"]["status"] == "succeed"
    assert body["data"]["generations"][0]["url"] == ""
    assert "bytesBase64Encoded" not in body["data"]["generations"][0]
    assert "fastrouter_assets" not in body


async def test_vanish_outcome_answers_404_once_done(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """outcome="vanish" answers 404 from the poll that finds the job done onwards, and ends it in flight."""
    sim.default_plan = JobPlan(outcome="vanish", polls=2)
    task_id = await submit_id(http, server)
    assert (await poll(http, server, task_id))[0] == 200
    assert await poll(http, server, task_id) == (404, NOT_FOUND_BODY)
    assert await poll(http, server, task_id) == (404, NOT_FOUND_BODY)
    assert sim.records.in_flight == 0


# -- plans ----------------------------------------------------------------------------------------


async def test_plans_are_chosen_next_then_rules_then_default(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Queued plan_next plans win over plan_for rules (first match), which win over default_plan."""
    queued, by_prompt, by_body, default = (JobPlan(cost_usd=c) for c in (1.0, 2.0, 3.0, 4.0))
    sim.default_plan = default
    sim.plan_for("cat", by_prompt)
    sim.plan_for(lambda body: body.get("seed") == 1, by_body)
    sim.plan_next(queued)
    first = await submit_id(http, server, "a cat")
    second = await submit_id(http, server, "a cat")
    third = (await submit(http, server, "a dog", seed=1))["data"]["taskId"]
    fourth = (await submit(http, server, "a cat", seed=1))["data"]["taskId"]
    fifth = await submit_id(http, server, "a dog")
    plans = [sim.jobs[t].plan for t in (first, second, third, fourth, fifth)]
    assert plans == [queued, by_prompt, by_body, by_prompt, default]
    sim.clear_plans()
    assert sim.jobs[await submit_id(http, server, "a cat")].plan == default


def test_job_plan_validates_its_fields() -> None:
    """JobPlan refuses unknown outcomes and negative counts; it is frozen."""
    with pytest.raises(ValueError):
        JobPlan(outcome="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        JobPlan(polls=0)
    with pytest.raises(ValueError):
        JobPlan(duration=-1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        JobPlan().polls = 2  # type: ignore[misc]


# -- faults ---------------------------------------------------------------------------------------


async def test_status_fault_with_the_standard_error_body(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.status with no body answers the standard error object once, and the submit creates no job."""
    fault = sim.inject(Fault.status(402, route="submit"))
    async with http.post(f"{server.base_url}/videos", json={"model": MODEL, "prompt": "p"}, headers=AUTH) as r:
        assert r.status == 402
        error = (await r.json())["error"]
        assert (error["status"], error["type"]) == (402, "insufficient_credits")
    assert sim.records.jobs_created == 0
    assert sim.records.submits[0].fault is fault
    assert sim.records.submits[0].status == 402
    await submit(http, server)
    assert sim.records.jobs_created == 1


async def test_status_fault_with_a_custom_body_and_headers(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.status sends a dict body as JSON and a string body as text, with the given headers."""
    sim.inject(Fault.status(403, route="poll", body={"error": "flagged"}, headers={"X-Why": "moderation"}))
    sim.inject(Fault.status(503, route="poll", body="upstream down"))
    async with http.get(f"{server.base_url}/videos/x", headers=AUTH) as r:
        assert (r.status, r.headers["X-Why"], await r.json()) == (403, "moderation", {"error": "flagged"})
    async with http.get(f"{server.base_url}/videos/x", headers=AUTH) as r:
        assert (r.status, r.content_type, await r.text()) == (503, "text/plain", "upstream down")


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(None, None), (2, "2"), (0.25, "0.25"), ("Wed, 21 Oct 2026 07:28:00 GMT", "Wed, 21 Oct 2026 07:28:00 GMT")],
)
async def test_rate_limit_fault(
    http: aiohttp.ClientSession,
    server: SimulatorServer,
    sim: FastRouterSimulator,
    retry_after: float | str | None,
    header: str | None,
) -> None:
    """Fault.rate_limit answers 429 with the error object, and Retry-After only when given."""
    sim.inject(Fault.rate_limit(route="poll", retry_after=retry_after))
    async with http.post(f"{server.base_url}/getAsyncResponse", json={"taskId": "x"}, headers=AUTH) as r:
        assert r.status == 429
        assert r.headers.get("Retry-After") == header
        assert (await r.json())["error"]["type"] == "rate_limit_error"


async def test_server_error_fault(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.server_error answers the given 5xx (500 by default) and refuses other codes."""
    sim.inject(Fault.server_error(route="submit"))
    sim.inject(Fault.server_error(502, route="submit"))
    for expected in (500, 502):
        async with http.post(f"{server.base_url}/videos", json={"model": MODEL, "prompt": "p"}, headers=AUTH) as r:
            assert r.status == expected
            assert (await r.json())["error"]["status"] == expected
    assert sim.records.jobs_created == 0
    with pytest.raises(ValueError):
        Fault.server_error(404, route="poll")


async def test_slow_fault_delays_then_answers(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.slow waits its delay and then answers normally."""
    sim.inject(Fault.slow(0.02, route="submit"))
    started = time.monotonic()
    await submit(http, server)
    assert time.monotonic() - started >= 0.02
    assert sim.records.jobs_created == 1


async def test_slow_fault_after_processing_creates_the_job_before_waiting(http: aiohttp.ClientSession) -> None:
    """Fault.slow(after_processing=True) creates the job before the delay, and shutdown drops the held answer."""
    sim = FastRouterSimulator()
    server = await sim.serve().start()
    sim.inject(Fault.slow(60, route="submit", after_processing=True))
    task = asyncio.create_task(submit(http, server))
    while sim.records.jobs_created == 0:
        await asyncio.sleep(0.001)
    started = time.monotonic()
    await server.aclose()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await task
    assert time.monotonic() - started < 1
    assert sim.records.submits[0].dropped
    assert sim.records.in_flight == 1


async def test_malformed_json_fault(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.malformed_json answers 200 application/json that does not parse, and creates no job."""
    sim.inject(Fault.malformed_json(route="submit"))
    async with http.post(f"{server.base_url}/videos", json={"model": MODEL, "prompt": "p"}, headers=AUTH) as r:
        assert (r.status, r.content_type) == (200, "application/json")
        with pytest.raises(ValueError):
            await r.json()
    assert sim.records.jobs_created == 0


async def test_drop_fault_disconnects_before_creating_anything(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.drop closes the connection with no answer; a dropped submit creates no job."""
    sim.inject(Fault.drop(route="submit"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, server)
    [record] = sim.records.submits
    assert (record.status, record.dropped, record.task_id) == (None, True, None)
    assert sim.records.jobs_created == 0


async def test_drop_fault_after_processing_creates_the_job(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.drop(after_processing=True) creates, records and counts the job in flight, then disconnects."""
    sim.inject(Fault.drop(route="submit", after_processing=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await submit(http, server)
    [record] = sim.records.submits
    assert record.status is None
    assert record.task_id in sim.jobs
    assert (sim.records.jobs_created, sim.records.in_flight) == (1, 1)


async def test_one_dropped_get_is_retried_by_aiohttp(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """aiohttp's client silently retries an idempotent GET once after a drop, so times=2 is needed to see one."""
    task_id = await submit_id(http, server)
    sim.inject(Fault.drop(route="poll"))
    assert (await poll(http, server, task_id, "GET videos"))[0] == 200
    assert [p.dropped for p in sim.records.polls] == [True, False]
    sim.inject(Fault.drop(route="poll", times=2))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await poll(http, server, task_id, "GET videos")


async def test_truncate_fault_cuts_a_download_short(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.truncate sends the full Content-Length but only nbytes of the body, then disconnects."""
    sim.inject(Fault.truncate(100))
    received = bytearray()

    async def read_all(response: aiohttp.ClientResponse) -> None:
        async for chunk in response.content.iter_any():
            received.extend(chunk)

    async with http.get(f"{server.origin}/videos-content/fr_X") as r:
        assert r.status == 200
        assert r.content_length == len(sample_video())
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all(r)
    assert bytes(received) == sample_video()[:100]
    assert (sim.records.downloads[0].status, sim.records.downloads[0].dropped) == (200, True)
    status, _, body = await download(http, f"{server.origin}/videos-content/fr_X")
    assert (status, body) == (200, sample_video())


async def test_faults_skip_times_and_order(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A fault lets `skip` requests pass and then takes `times`; earlier faults win; exhausted ones disappear."""
    sim.default_plan = JobPlan(polls=100)
    task_id = await submit_id(http, server)
    first = sim.inject(Fault.server_error(503, route="poll", skip=1, times=2))
    second = sim.inject(Fault.rate_limit(route="any"))
    statuses = [(await poll(http, server, task_id))[0] for _ in range(5)]
    assert statuses == [429, 503, 503, 200, 200]
    assert [p.fault for p in sim.records.polls] == [second, first, first, None, None]
    assert sim.faults == ()


async def test_faults_by_route_and_forever(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A fault only takes its route (never /healthz), times=None takes every request, clear_faults ends it."""
    sim.inject(Fault.server_error(route="download", times=None))
    sim.inject(Fault.server_error(route="any", times=None))
    for _ in range(3):
        assert (await download(http, f"{server.origin}/cdn/fr_X.mp4"))[0] == 500
    async with http.get(f"{server.origin}/healthz") as r:
        assert (r.status, await r.text()) == (200, "ok")
    assert len(sim.faults) == 2
    sim.clear_faults()
    assert (await download(http, f"{server.origin}/cdn/fr_X.mp4"))[0] == 200


def test_fault_validates_its_fields() -> None:
    """Fault refuses unknown routes, times below 1 and negative delays."""
    with pytest.raises(ValueError):
        Fault.status(500, route="everything")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault.drop(route="poll", times=0)
    with pytest.raises(ValueError):
        Fault.slow(-1, route="poll")


# -- downloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/videos-content/{}", "/cdn/{}.mp4"])
async def test_download_serves_the_video(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, path: str
) -> None:
    """Both download routes serve video/mp4 with length, Accept-Ranges and a sha256 ETag, without auth."""
    task_id = await submit_id(http, server)
    status, headers, body = await download(http, server.origin + path.format(task_id))
    video = sample_video()
    assert (status, body) == (200, video)
    assert video[4:8] == b"ftyp"
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Length"] == str(len(video))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{hashlib.sha256(video).hexdigest()}"'
    assert sim.records.downloads[0].task_id == task_id
    assert "Authorization" not in sim.records.downloads[0].headers


async def test_download_serves_the_plans_video_and_any_unknown_id(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A job with JobPlan.video serves those bytes; an unknown task id gets the sample."""
    sim.default_plan = JobPlan(video=b"\x00\x00\x00\x18ftypmp42 custom")
    task_id = await submit_id(http, server)
    assert (await download(http, f"{server.origin}/videos-content/{task_id}"))[2] == b"\x00\x00\x00\x18ftypmp42 custom"
    assert (await download(http, f"{server.origin}/videos-content/fr_unknown"))[2] == sample_video()


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-10", -10, None), ("bytes=10-999999", 10, None)],
)
async def test_download_honours_a_range(
    http: aiohttp.ClientSession, server: SimulatorServer, range_header: str, first: int, last: int | None
) -> None:
    """A single satisfiable Range answers 206 with that slice and a Content-Range."""
    video = sample_video()
    expected = video[first : None if last is None else last + 1]
    status, headers, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": range_header})
    assert (status, body) == (206, expected)
    start = first % len(video)
    assert headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(video)}"
    assert headers["Content-Length"] == str(len(expected))


async def test_download_unsatisfiable_range_is_416(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """A Range starting past the end answers 416 with Content-Range bytes */size."""
    size = len(sample_video())
    status, headers, _ = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")


async def test_download_ignores_ranges_it_cannot_honour(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """Several ranges, bad syntax or a stale If-Range get the whole body (200)."""
    for headers in ({"Range": "bytes=0-1,5-9"}, {"Range": "bytes=9-2"}, {"Range": "bytes=0-9", "If-Range": '"stale"'}):
        status, _, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", headers)
        assert (status, body) == (200, sample_video())
    etag = f'"{hashlib.sha256(sample_video()).hexdigest()}"'
    status, _, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=0-9", "If-Range": etag})
    assert (status, body) == (206, sample_video()[:10])


async def test_download_head_gives_headers_only(http: aiohttp.ClientSession, server: SimulatorServer) -> None:
    """HEAD on a download answers its headers (length, ETag) without a body."""
    async with http.head(f"{server.origin}/videos-content/fr_X") as r:
        assert (r.status, r.headers["Content-Length"], await r.read()) == (200, str(len(sample_video())), b"")


async def test_assets_can_require_auth(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """With assets_require_auth downloads answer 401 without a valid Bearer key."""
    sim.assets_require_auth = True
    url = f"{server.origin}/videos-content/fr_X"
    assert (await download(http, url))[0] == 401
    assert (await download(http, url, {"Authorization": "Bearer sk-wrong"}))[0] == 401
    assert (await download(http, url, AUTH))[0] == 200


async def test_assets_can_redirect_to_another_host(http: aiohttp.ClientSession) -> None:
    """redirect_assets_to answers 302 to the same path on that origin, which then serves the video."""
    cdn = FastRouterSimulator()
    sim = FastRouterSimulator(api_key=KEY)
    async with cdn.serve() as cdn_server, sim.serve() as server:
        sim.redirect_assets_to = cdn_server.origin
        task_id = await submit_id(http, server)
        url = f"{server.origin}/videos-content/{task_id}?sig=1"
        async with http.get(url, headers=AUTH, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, f"{cdn_server.origin}/videos-content/{task_id}?sig=1")
        assert (await download(http, url, AUTH))[2] == sample_video()
    assert [d.path for d in cdn.records.downloads] == [f"/videos-content/{task_id}"]
    assert sim.records.headers_seen("download")[-1]["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in cdn.records.headers_seen("download")[0]


async def test_asset_origin_points_hosted_urls_elsewhere(http: aiohttp.ClientSession) -> None:
    """asset_origin is written into fastrouter_assets.urls, and that other instance serves the video."""
    assets = FastRouterSimulator()
    sim = FastRouterSimulator(api_key=KEY)
    async with assets.serve() as assets_server, sim.serve() as server:
        sim.asset_origin = assets_server.origin
        task_id = await submit_id(http, server)
        body = await poll_json(http, server, task_id)
        [url] = body["fastrouter_assets"]["urls"]
        assert url == f"{assets_server.origin}/videos-content/{task_id}"
        assert body["data"]["generations"][0]["url"].startswith(server.origin)
        assert (await download(http, url))[2] == sample_video()
    assert assets.records.downloads[0].task_id == task_id


# -- records --------------------------------------------------------------------------------------


async def test_records_count_concurrent_jobs_in_flight(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """max_in_flight is the most jobs submitted but not yet reported done, under concurrent requests."""
    sim.default_plan = JobPlan(polls=2)
    ids = await asyncio.gather(*(submit_id(http, server, f"clip {i}") for i in range(6)))
    assert (sim.records.jobs_created, sim.records.in_flight, sim.records.max_in_flight) == (6, 6, 6)
    await asyncio.gather(*(poll(http, server, t) for t in ids))
    assert sim.records.in_flight == 6
    await asyncio.gather(*(poll(http, server, t) for t in ids[:4]))
    assert (sim.records.in_flight, sim.records.max_in_flight) == (2, 6)
    await submit_id(http, server)
    assert (sim.records.in_flight, sim.records.max_in_flight) == (3, 6)


async def test_failures_leave_flight_at_their_first_report(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A failed job stops being in flight at the first poll that reports the failure."""
    sim.default_plan = JobPlan(outcome="failed")
    task_id = await submit_id(http, server)
    assert sim.records.in_flight == 1
    await poll(http, server, task_id)
    assert sim.records.in_flight == 0
    assert sim.jobs[task_id].done


async def test_records_keep_every_request(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Every request is recorded with route, method, path, headers, JSON body, time and status."""
    before = sim.now()
    task_id = await submit_id(http, server)
    await poll(http, server, task_id, model=MODEL)
    await download(http, f"{server.origin}/cdn/{task_id}.mp4")
    async with http.get(f"{server.origin}/nowhere") as r:
        assert r.status == 404
    routes = [(r.route, r.method, r.path, r.status) for r in sim.records.requests]
    assert routes == [
        ("submit", "POST", "/api/v1/videos", 200),
        ("poll", "POST", "/api/v1/getAsyncResponse", 200),
        ("download", "GET", f"/cdn/{task_id}.mp4", 200),
        ("other", "GET", "/nowhere", 404),
    ]
    submit_record, poll_record = sim.records.submits[0], sim.records.polls[0]
    assert submit_record.json == {"model": MODEL, "prompt": "a cat"}
    assert poll_record.json == {"taskId": task_id, "model": MODEL}
    assert submit_record.headers["Authorization"] == f"Bearer {KEY}"
    assert isinstance(submit_record.headers, dict)
    assert before <= submit_record.time <= poll_record.time <= sim.now()
    assert sim.records.headers_seen("submit") == [submit_record.headers]
    assert len(sim.records.headers_seen()) == 4
    assert (sim.records.submit_count, len(sim.records.downloads)) == (1, 1)


async def test_reset_records_keeps_jobs(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """reset_records forgets requests and counts but keeps jobs and the true in-flight count."""
    await submit_id(http, server)
    task_id = await submit_id(http, server)
    await poll(http, server, task_id)
    sim.reset_records()
    assert (sim.records.requests, sim.records.jobs_created) == ([], 0)
    assert (sim.records.in_flight, sim.records.max_in_flight) == (1, 1)
    assert len(sim.jobs) == 2


async def test_reset_records_also_resets_the_request_counters(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """The submit, poll and download counters follow the requests and start again at reset_records."""
    task_id = await submit_id(http, server)
    await poll(http, server, task_id)
    await poll(http, server, task_id)
    await download(http, f"{server.origin}/cdn/{task_id}.mp4")
    counts = (sim.records.submit_count, sim.records.poll_count, sim.records.download_count)
    assert counts == (1, 2, 1) == (len(sim.records.submits), len(sim.records.polls), len(sim.records.downloads))
    sim.reset_records()
    assert (sim.records.submit_count, sim.records.poll_count, sim.records.download_count) == (0, 0, 0)


async def test_requests_can_go_unrecorded_while_counters_count(http: aiohttp.ClientSession) -> None:
    """With record_requests=False no request is kept, but every counter and each job's poll_count still count."""
    sim = FastRouterSimulator(api_key=KEY, default_plan=JobPlan(polls=3), record_requests=False)
    async with sim.serve() as server:
        task_ids = [await submit_id(http, server, f"clip {i}") for i in range(3)]
        for _ in range(3):
            await poll(http, server, task_ids[0])
        await poll(http, server, task_ids[1])
        await download(http, f"{server.origin}/videos-content/{task_ids[0]}")
        async with http.post(f"{server.base_url}/videos", json={"model": MODEL}, headers=AUTH) as r:
            assert r.status == 400  # refused submits count too
    assert sim.records.requests == []
    assert (sim.records.submit_count, sim.records.jobs_created) == (4, 3)
    assert (sim.records.poll_count, sim.records.download_count) == (4, 1)
    assert (sim.records.in_flight, sim.records.max_in_flight) == (2, 3)
    assert [sim.jobs[t].poll_count for t in task_ids] == [3, 1, 0]
    assert sim.stats() == {
        "jobs_created": 3,
        "in_flight": 2,
        "max_in_flight": 3,
        "polls": 4,
        "submits": 4,
        "downloads": 1,
        "rate_limited": 0,
        "concurrency_limited": 0,
    }


async def test_jobs_route_answers_each_jobs_timeline(http: aiohttp.ClientSession) -> None:
    """GET /_simulator/jobs answers, without a key, the clock and each job's creation, planned end, polls and end."""
    clock = FakeClock()
    sim = FastRouterSimulator(api_key=KEY, default_plan=JobPlan(duration=30), clock=clock)
    sim.plan_for("forever", JobPlan(duration=math.inf))
    async with sim.serve() as server:
        first = await submit_id(http, server)
        clock.now += 10
        second = await submit_id(http, server, "runs forever")
        clock.now += 25
        await poll(http, server, first)
        await poll(http, server, second)
        async with http.get(f"{server.origin}/_simulator/jobs") as r:
            assert r.status == 200
            timeline = await r.json()
    assert timeline == {
        "now": 1035.0,
        "jobs": [
            {
                "task_id": first,
                "model": MODEL,
                "created": 1000.0,
                "finishes_at": 1030.0,
                "poll_count": 1,
                "done_at": 1035.0,
            },
            {
                "task_id": second,
                "model": MODEL,
                "created": 1010.0,
                "finishes_at": None,
                "poll_count": 1,
                "done_at": None,
            },
        ],
    }
    assert timeline == sim.timeline()
    assert sim.records.polls[-1].task_id == second  # the introspection request itself is not recorded
    assert [r.route for r in sim.records.requests] == ["submit", "submit", "poll", "poll"]


async def test_stats_route_answers_the_counters(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """GET /_simulator/stats answers the counters as JSON, and is never taken by a fault."""
    sim.inject(Fault.server_error(route="any", times=None))
    async with http.post(f"{server.base_url}/videos", json={"model": MODEL, "prompt": "p"}, headers=AUTH) as r:
        assert r.status == 500
    async with http.get(f"{server.origin}/_simulator/stats") as r:
        assert r.status == 200
        stats = await r.json()
    assert stats == {
        "jobs_created": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "polls": 0,
        "submits": 1,
        "downloads": 0,
        "rate_limited": 0,
        "concurrency_limited": 0,
    }


# -- serving --------------------------------------------------------------------------------------


async def test_server_urls_and_lifetime(http: aiohttp.ClientSession) -> None:
    """serve() binds 127.0.0.1 on a free port, exposes origin/base_url, and refuses use after close."""
    sim = FastRouterSimulator()
    async with sim.serve() as server:
        assert server.simulator is sim
        assert server.port > 0
        assert server.origin == f"http://127.0.0.1:{server.port}"
        assert server.base_url == f"http://127.0.0.1:{server.port}/api/v1"
        async with http.get(f"{server.origin}/healthz") as r:
            assert (r.status, await r.text()) == (200, "ok")
    await server.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with pytest.raises(RuntimeError):
        await server.start()


async def test_two_servers_share_one_simulator(http: aiohttp.ClientSession) -> None:
    """One simulator can be served twice at once: the jobs are shared."""
    sim = FastRouterSimulator()
    async with sim.serve() as one, sim.serve() as two:
        task_id = await submit_id(http, one)
        assert (await poll(http, two, task_id))[0] == 200


def test_public_names() -> None:
    """The testing namespace exports exactly its public surface."""
    assert testing.__all__ == [
        "FastRouterSimulator",
        "Fault",
        "JobPlan",
        "RealisticDurations",
        "RecordedRequest",
        "SimulatedJob",
        "SimulatorRecords",
        "SimulatorServer",
        "sample_video",
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_command_line_serves_until_interrupted(http: aiohttp.ClientSession, signum: signal.Signals) -> None:
    """python -m fastrouter_async.testing prints its base URL, serves, and stops cleanly on Ctrl-C or SIGTERM."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastrouter_async.testing",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert re.match(r"^http://127\.0\.0\.1:\d+/api/v1$", base_url)
        async with http.post(f"{base_url}/videos", json={"model": MODEL, "prompt": "p"}, headers=AUTH) as r:
            assert r.status == 200
        process.send_signal(signum)
        rest = await asyncio.wait_for(process.stdout.read(), 20)
        assert await process.wait() == 0
        assert rest.decode().strip().endswith("stopped")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def command_line_simulator(*args: str) -> AsyncIterator[str]:
    """Run ``python -m fastrouter_async.testing --port 0 --quiet *args``; yield its origin, stop it with SIGTERM."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastrouter_async.testing",
        "--port",
        "0",
        "--quiet",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        yield line.rsplit(" ", 1)[-1].strip().removesuffix("/api/v1")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def submit_and_poll_once(http: aiohttp.ClientSession, origin: str, **body: Any) -> dict[str, Any]:
    """Submit one job with ``body`` to a simulator at ``origin``, poll it once; return its timeline entry."""
    async with http.post(f"{origin}/api/v1/videos", json={"prompt": "p", **body}, headers=AUTH) as r:
        task_id = (await r.json())["data"]["taskId"]
    async with http.post(f"{origin}/api/v1/getVideoResponse", json={"taskId": task_id}, headers=AUTH) as r:
        assert (await r.json())["data"]["status"] == "processing"
    async with http.get(f"{origin}/_simulator/jobs") as r:
        (entry,) = (await r.json())["jobs"]
    assert isinstance(entry, dict)
    return entry


async def test_command_line_holds_jobs_without_records(http: aiohttp.ClientSession) -> None:
    """--hold keeps every job running with no planned end, and --no-records still counts polls in /_simulator/stats."""
    async with command_line_simulator("--hold", "--no-records") as origin:
        entry = await submit_and_poll_once(http, origin, model=MODEL)
        assert (entry["finishes_at"], entry["done_at"], entry["poll_count"]) == (None, None, 1)
        async with http.get(f"{origin}/_simulator/stats") as r:
            stats = await r.json()
    assert (stats["submits"], stats["polls"], stats["in_flight"]) == (1, 1, 1)


async def test_command_line_scales_the_duration(http: aiohttp.ClientSession) -> None:
    """--time-scale multiplies --duration."""
    async with command_line_simulator("--duration", "1000", "--time-scale", "0.5") as origin:
        entry = await submit_and_poll_once(http, origin, model=MODEL)
    assert entry["finishes_at"] - entry["created"] == pytest.approx(500)


async def test_command_line_draws_realistic_durations(http: aiohttp.ClientSession) -> None:
    """--realistic-durations --seed N --time-scale X draws what RealisticDurations(time_scale=X, seed=N) draws."""
    body = {"model": "kling-ai/kling-v2-1-master", "prompt": "p", "length": 10}
    async with command_line_simulator("--realistic-durations", "--seed", "7", "--time-scale", "10") as origin:
        entry = await submit_and_poll_once(http, origin, **body)
    expected = testing.RealisticDurations(time_scale=10, seed=7).draw(body)
    assert entry["finishes_at"] - entry["created"] == pytest.approx(expected)


def test_command_line_refuses_two_ways_of_timing_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    """--hold, --duration and --realistic-durations exclude each other; --time-scale must be positive."""
    for argv in (["--hold", "--duration", "5"], ["--hold", "--realistic-durations"], ["--time-scale", "0"]):
        with pytest.raises(SystemExit) as exited:
            simulator_main(argv)
        assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# -- download switches, video faults, expiring links ----------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_download_without_range_support(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """download_ranges=False ignores Range and advertises nothing: the whole body comes back with 200."""
    sim.download_ranges = False
    status, headers, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=10-"})
    assert (status, body) == (200, sample_video())
    assert "Accept-Ranges" not in headers
    assert "Content-Range" not in headers


@pytest.mark.parametrize(("mode", "expected"), [("weak", 'W/"{}"'), ("none", None)])
async def test_download_etag_modes(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, mode: Any, expected: str | None
) -> None:
    """download_etag sends a weak ETag or none; either way an If-Range never matches and the body comes whole."""
    sim.download_etag = mode
    video = sample_video()
    strong = f'"{hashlib.sha256(video).hexdigest()}"'
    status, headers, body = await download(
        http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=0-9", "If-Range": strong}
    )
    assert (status, body) == (200, video)
    assert headers.get("ETag") == (None if expected is None else expected.format(hashlib.sha256(video).hexdigest()))
    status, _, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=0-9"})
    assert (status, body) == (206, video[:10])


async def test_download_checksum_headers(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """download_checksums adds checksum headers: body ones cover the range sent, the others the whole file."""
    sim.download_checksums = ("content-md5", "content-digest", "repr-digest", "digest", "x-goog-hash")
    video = sample_video()
    whole_md5, whole_sha = hashlib.md5(video).digest(), hashlib.sha256(video).digest()
    _, headers, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=100-"})
    assert body == video[100:]
    assert headers["Content-MD5"] == b64(hashlib.md5(body).digest())
    assert headers["Content-Digest"] == f"sha-256=:{b64(hashlib.sha256(body).digest())}:"
    assert headers["Repr-Digest"] == f"sha-256=:{b64(whole_sha)}:, md5=:{b64(whole_md5)}:"
    assert headers["Digest"] == f"SHA-256={b64(whole_sha)},MD5={b64(whole_md5)}"
    assert headers["x-goog-hash"] == f"md5={b64(whole_md5)}"
    _, headers, _ = await download(http, f"{server.origin}/cdn/fr_X.mp4")
    assert headers["Content-MD5"] == b64(whole_md5)


def test_unknown_checksum_header_is_refused() -> None:
    """A checksum header the simulator cannot send is refused when it is configured."""
    with pytest.raises(ValueError, match="unknown checksum headers"):
        FastRouterSimulator(download_checksums=("crc32c",))


async def test_download_without_content_length_is_chunked(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """download_content_length=False streams the video chunked, without Content-Length."""
    sim.download_content_length = False
    status, headers, body = await download(http, f"{server.origin}/videos-content/fr_X")
    assert (status, body) == (200, sample_video())
    assert "Content-Length" not in headers
    assert headers["Transfer-Encoding"] == "chunked"


async def test_corrupt_fault_flips_one_byte_under_true_headers(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.corrupt sends one wrong byte while length, ETag and checksums describe the real video."""
    sim.download_checksums = ("repr-digest",)
    sim.inject(Fault.corrupt())
    video = sample_video()
    _, headers, body = await download(http, f"{server.origin}/cdn/fr_X.mp4")
    assert len(body) == len(video)
    assert sum(a != b for a, b in zip(body, video, strict=True)) == 1
    assert headers["ETag"] == f'"{hashlib.sha256(video).hexdigest()}"'
    assert b64(hashlib.sha256(video).digest()) in headers["Repr-Digest"]
    assert (await download(http, f"{server.origin}/cdn/fr_X.mp4"))[2] == video  # times=1


async def test_serve_fault_answers_other_bytes_consistently(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Fault.serve answers with other bytes, and ranges and ETag follow them (a file changed on the server)."""
    other = os.urandom(5000)
    sim.inject(Fault.serve(other, times=None))
    status, headers, body = await download(http, f"{server.origin}/cdn/fr_X.mp4", {"Range": "bytes=4000-"})
    assert (status, body, headers["Content-Range"]) == (206, other[4000:], "bytes 4000-4999/5000")
    assert headers["ETag"] == f'"{hashlib.sha256(other).hexdigest()}"'
    with pytest.raises(ValueError, match="needs the video"):
        Fault(route="download", kind="serve")


async def test_video_faults_leave_json_answers_alone(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """corrupt and serve faults on the poll route change only video answers; a JSON poll passes unchanged."""
    task_id = await submit_id(http, server)
    sim.inject(Fault.corrupt(route="poll"))
    body = await poll_json(http, server, task_id)
    assert body["data"]["taskId"] == task_id


async def test_expired_links_answer_their_status_until_a_new_poll(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """expire_links() kills the signed provider links issued so far; the next poll signs fresh ones."""
    task_id = await submit_id(http, server)
    old = (await poll_json(http, server, task_id))["data"]["generations"][0]["url"]
    hosted = f"{server.origin}/videos-content/{task_id}"
    assert sim.expire_links(403) == 1
    assert (await download(http, old))[0] == 403
    assert (await download(http, hosted))[0] == 200  # hosted copies only with hosted=True
    fresh = (await poll_json(http, server, task_id))["data"]["generations"][0]["url"]
    assert fresh != old
    assert (await download(http, fresh))[0] == 200
    sim.expire_links(410, hosted=True)
    assert [(await download(http, url))[0] for url in (old, fresh, hosted)] == [410, 410, 410]
    unsigned = f"{server.origin}/cdn/{task_id}.mp4"
    assert (await download(http, unsigned))[0] == 200  # a link without a sig is not ours to expire
    with pytest.raises(ValueError, match="403, 404 or 410"):
        sim.expire_links(500)


async def test_records_count_downloads_at_once(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """records.max_downloads_active is the most downloads being answered at the same time."""
    sim.default_plan = JobPlan(video=os.urandom(2 * 1024 * 1024))
    task_id = await submit_id(http, server)
    url = f"{server.origin}/videos-content/{task_id}"
    bodies = await asyncio.gather(*(download(http, url) for _ in range(3)))
    assert {len(b) for _, _, b in bodies} == {2 * 1024 * 1024}
    assert 1 <= sim.records.max_downloads_active <= 3
    assert sim.records.downloads_active == 0
    sim.reset_records()
    assert sim.records.max_downloads_active == 0


async def test_videos_from_another_simulator(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """videos_from makes a second simulator serve the first one's videos for task ids it does not know."""
    sim.default_plan = JobPlan(video=b"\x00\x00\x00\x18ftypmp42 the real one")
    task_id = await submit_id(http, server)
    cdn = FastRouterSimulator(videos_from=sim)
    async with cdn.serve() as cdn_server:
        assert (await download(http, f"{cdn_server.origin}/cdn/{task_id}.mp4"))[2] == sim.default_plan.video
        assert (await download(http, f"{cdn_server.origin}/cdn/fr_unknown.mp4"))[2] == sample_video()
