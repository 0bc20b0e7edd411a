"""The simulator's model of FastRouter's response cache, over real HTTP: hits, misses, keys, lifetimes, billing."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from fastrouter_async._cachekey import is_cache_hit
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan, SimulatorServer

from ._sim import FakeClock

KEY = "sk-v1-test"
MODEL = "kling-ai/kling-v1-6"
CACHE_KEY = "my-app:job-1"
BASE = {
    "model": MODEL,
    "prompt": "a cat surfing",
    "length": 5,
    "resolution": "720p",
    "aspectRatio": "16:9",
    "seed": 42,
    "generateAudio": False,
    "mode": "std",
    "image": "https://example.com/cat.png",
    "negative_prompt": "blurry",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> FastRouterSimulator:
    return FastRouterSimulator(api_key=KEY, clock=clock)


async def post(
    http: aiohttp.ClientSession,
    server: SimulatorServer,
    body: Mapping[str, Any] = BASE,
    *,
    cache_key: str | None = CACHE_KEY,
    token: str = KEY,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One create request; its status and decoded JSON."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if cache_key is not None:
        sent["cache_key"] = cache_key
    async with http.post(f"{server.base_url}/videos", json=dict(body), headers=sent) as r:
        answer: dict[str, Any] = await r.json()
        return r.status, answer


async def task_of(
    http: aiohttp.ClientSession, server: SimulatorServer, body: Mapping[str, Any] = BASE, **kw: Any
) -> str:
    status, answer = await post(http, server, body, **kw)
    assert status == 200, answer
    task_id: str = answer["data"]["taskId"]
    return task_id


async def poll(http: aiohttp.ClientSession, server: SimulatorServer, task_id: str) -> dict[str, Any]:
    body = {"taskId": task_id, "model": MODEL}
    async with http.post(
        f"{server.base_url}/getAsyncResponse", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        assert r.status == 200
        answer: dict[str, Any] = await r.json()
        return answer


# -- hits and misses ------------------------------------------------------------------------------


async def test_repeat_with_the_same_key_is_a_free_hit(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """The second identical request answers the same task, cached and without credits, and bills nothing."""
    status, miss = await post(http, server)
    assert status == 200
    assert "cached" not in miss
    assert miss["estimate_usage"]["credits_used"] == 0.21
    status, hit = await post(http, server)
    assert status == 200
    task_id = miss["data"]["taskId"]
    assert hit["data"] == {"taskId": task_id, "status": "processing"}
    assert (hit["code"], hit["message"], hit["cached"], hit["model"]) == (
        "success",
        "Video generation started",
        True,
        MODEL,
    )
    assert hit["chat_id"] != miss["chat_id"]
    assert hit["estimate_usage"] == {
        "chat_id": hit["chat_id"],
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "provider": "pollo",
    }
    assert sim.records.billed_jobs == [task_id]
    assert sim.records.cache_hits == [(CACHE_KEY, task_id)]
    assert (sim.records.cache_hits[0].cache_key, sim.records.cache_hits[0].task_id) == (CACHE_KEY, task_id)
    assert [r.cache_hit for r in sim.records.submits] == [False, True]
    assert [r.task_id for r in sim.records.submits] == [task_id, task_id]
    assert (sim.records.submit_count, sim.records.jobs_created, sim.records.in_flight) == (2, 1, 1)
    job = sim.jobs[task_id]
    assert (job.billed, job.cache_key, job.cache_hit_count) == (True, CACHE_KEY, 1)
    assert sim.billed_count(prompt="a cat surfing") == 1
    assert sim.billed_count(cache_key=CACHE_KEY, model=MODEL) == 1
    assert sim.billed_count(prompt="a dog") == 0


async def test_legacy_hit_style_has_zero_credits_and_an_empty_provider(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """cache_hit_style="legacy" answers a hit as the older docs do: no cached, credits 0, provider ""."""
    sim.cache_hit_style = "legacy"
    first = await task_of(http, server)
    status, hit = await post(http, server)
    assert status == 200
    assert "cached" not in hit
    assert hit["data"]["taskId"] == first
    usage = hit["estimate_usage"]
    assert (usage["credits_used"], usage["user_key_credits_used"], usage["provider"]) == (0, 0, "")
    assert sim.records.billed_count == 1


async def test_hit_on_a_finished_task_resolves_on_the_first_poll(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A hit is the original task: once that has finished, the first poll of the hit answers the video."""
    sim.default_plan = JobPlan(polls=2)
    first = await task_of(http, server)
    assert (await poll(http, server, first))["data"]["status"] == "processing"
    assert (await poll(http, server, first))["data"]["status"] == "succeed"
    again = await task_of(http, server)
    assert again == first
    assert (await poll(http, server, again))["data"]["status"] == "succeed"
    assert sim.records.billed_count == 1


async def test_pending_task_is_matched(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """An unfinished task is matched too: the repeat joins the running task, which finishes once."""
    sim.default_plan = JobPlan(duration=300)
    first = await task_of(http, server)
    clock.now += 100
    assert await task_of(http, server) == first
    assert (await poll(http, server, first))["data"]["status"] == "processing"
    clock.now += 200
    assert (await poll(http, server, first))["data"]["status"] == "succeed"
    assert sim.records.billed_count == 1


async def test_lost_answer_then_replay_bills_once(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A submit whose answer was lost after the job was created, replayed with its key, finds that job."""
    sim.inject(Fault.drop(route="submit", after_processing=True))
    with pytest.raises(aiohttp.ClientError):
        await post(http, server)
    (created,) = sim.records.billed_jobs
    assert await task_of(http, server) == created
    assert sim.billed_count(cache_key=CACHE_KEY) == 1
    assert sim.records.cache_hits == [(CACHE_KEY, created)]


async def test_concurrent_identical_requests_share_one_job(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Identical requests in flight together create one job; the others are hits on it."""
    task_ids = await asyncio.gather(*(task_of(http, server) for _ in range(8)))
    assert len(set(task_ids)) == 1
    assert (sim.records.billed_count, len(sim.records.cache_hits)) == (1, 7)


async def test_no_header_means_no_caching(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """Without the cache_key header every request is a new billed job and the cache object is ignored."""
    body = {**BASE, "cache": {"expiration_time": 1, "bogus": True}}  # would be refused with the header
    first = await task_of(http, server, body, cache_key=None)
    second = await task_of(http, server, body, cache_key=None)
    assert first != second
    assert sim.records.billed_jobs == [first, second]
    assert sim.records.cache_hits == []
    assert [r.cache_hit for r in sim.records.submits] == [None, None]
    assert sim.jobs[first].cache_key is None
    assert sim.cache_stats() == {"entries": 0, "hits": 0, "billed": 2, "keys": {}}


async def test_header_name_is_case_insensitive(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """HTTP header names ignore case, so Cache_Key is the same header."""
    first = await task_of(http, server, cache_key=None, headers={"Cache_Key": CACHE_KEY})
    assert await task_of(http, server) == first


# -- what the key is made of ----------------------------------------------------------------------


KEYED_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": "kling-ai/kling-v2-1"}),
    ("model case", {"model": "Kling-AI/kling-v1-6"}),
    ("prompt", {"prompt": "a cat surfing!"}),
    ("prompt whitespace", {"prompt": "a cat surfing "}),
    ("length", {"length": 10}),
    ("length as float", {"length": 5.0}),
    ("length as string", {"length": "5"}),
    ("resolution", {"resolution": "1080p"}),
    ("aspectRatio", {"aspectRatio": "9:16"}),
    ("seed", {"seed": 43}),
    ("seed null", {"seed": None}),
    ("generateAudio", {"generateAudio": True}),
    ("mode", {"mode": "pro"}),
    ("image", {"image": "https://example.com/dog.png"}),
    ("negative_prompt", {"negative_prompt": "sharp"}),
    ("negativePrompt added", {"negativePrompt": "blurry"}),
    ("cfg_scale", {"cfg_scale": 0.5}),
    ("fps", {"fps": 24}),
    ("camera_control", {"camera_control": {"type": "pan", "x": 1}}),
    ("seconds", {"seconds": 8}),
    ("size", {"size": "1280x720"}),
]


@pytest.mark.parametrize(("name", "change"), KEYED_CHANGES, ids=[name for name, _ in KEYED_CHANGES])
async def test_each_keyed_field_changes_the_key(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, name: str, change: dict[str, Any]
) -> None:
    """Requests that differ in any generation parameter never share a task."""
    first = await task_of(http, server)
    second = await task_of(http, server, {**BASE, **change})
    assert first != second
    assert sim.records.billed_count == 2
    assert sim.records.cache_hits == []


@pytest.mark.parametrize("field", ["seed", "image", "negative_prompt", "length"])
async def test_an_omitted_field_differs_from_an_explicit_one(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, field: str
) -> None:
    """Leaving a parameter out is a different request from sending it (an omitted seed is not seed 42)."""
    without = {k: v for k, v in BASE.items() if k != field}
    assert await task_of(http, server) != await task_of(http, server, without)


async def test_another_cache_key_is_another_entry(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """The same request under another cache_key is a miss: the key is part of the lookup."""
    first = await task_of(http, server, cache_key="a")
    second = await task_of(http, server, cache_key="b")
    assert first != second
    assert await task_of(http, server, cache_key="a") == first
    assert sim.cache_stats()["keys"] == {"a": {"billed": 1, "hits": 1}, "b": {"billed": 1, "hits": 0}}


IGNORED: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("callback_url", {"callback_url": "https://example.com/hook"}, {}),
    ("user", {"user": "customer-7"}, {}),
    ("cache settings", {"cache": {"expiration_time": 3600, "similarity_threshold": 0.9}}, {}),
    ("traceparent", {}, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
    ("span and trace ids", {}, {"x-span-id": "s1", "x-span-name": "render", "x-trace-id": "t1"}),
    ("other headers", {}, {"User-Agent": "another-client/2", "X-Request-Id": "r-9"}),
]


@pytest.mark.parametrize(("name", "change", "headers"), IGNORED, ids=[name for name, _, _ in IGNORED])
async def test_ignored_fields_and_headers_do_not_change_the_key(
    http: aiohttp.ClientSession,
    server: SimulatorServer,
    sim: FastRouterSimulator,
    name: str,
    change: dict[str, Any],
    headers: dict[str, str],
) -> None:
    """callback_url, user, the cache object and tracing or other headers are not part of the lookup."""
    first = await task_of(http, server)
    assert await task_of(http, server, {**BASE, **change}, headers=headers) == first
    assert sim.records.billed_count == 1


async def test_field_order_does_not_matter(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """The parameters are compared as JSON values, not as text: their order in the body does not count."""
    first = await task_of(http, server, {**BASE, "camera_control": {"a": 1, "b": 2}})
    reordered = dict(reversed(list({**BASE, "camera_control": {"b": 2, "a": 1}}.items())))
    assert await task_of(http, server, reordered) == first


async def test_accounts_are_separate(http: aiohttp.ClientSession) -> None:
    """The same request and key from another API key is that account's own miss."""
    sim = FastRouterSimulator()  # any token is accepted
    async with sim.serve() as server:
        first = await task_of(http, server, token="sk-v1-alice")
        second = await task_of(http, server, token="sk-v1-bob")
        assert await task_of(http, server, token="sk-v1-alice") == first
    assert first != second
    assert sim.records.billed_count == 2


async def test_filter_on_model_false_leaves_the_model_out(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """With filter_on_model false, a request for another model is answered with the first model's task."""
    body = {**BASE, "cache": {"filter_on_model": False}}
    first = await task_of(http, server, body)
    assert await task_of(http, server, {**body, "model": "google/veo3"}) == first
    assert sim.records.billed_count == 1


# -- lifetimes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cache", "ttl"), [(None, 57_600), ({"expiration_time": 60}, 60), ({}, 57_600)])
async def test_entries_expire_after_their_lifetime(
    http: aiohttp.ClientSession,
    server: SimulatorServer,
    sim: FastRouterSimulator,
    clock: FakeClock,
    cache: dict[str, Any] | None,
    ttl: int,
) -> None:
    """An entry answers until expiration_time (default 16 hours) after its request, then a request is billed."""
    body = BASE if cache is None else {**BASE, "cache": cache}
    first = await task_of(http, server, body)
    await poll(http, server, first)  # finished, so only the lifetime counts
    clock.now += ttl - 0.5
    assert await task_of(http, server, body) == first
    clock.now += 0.5
    second = await task_of(http, server, body)
    assert second != first
    assert await task_of(http, server, body) == second  # the new job is the new entry
    assert sim.records.billed_jobs == [first, second]


async def test_a_hit_does_not_extend_the_lifetime(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """The lifetime counts from the request that created the entry; hits and their cache objects change nothing."""
    first = await task_of(http, server, {**BASE, "cache": {"expiration_time": 60}})
    clock.now += 50
    assert await task_of(http, server, {**BASE, "cache": {"expiration_time": 3600}}) == first
    clock.now += 10
    assert await task_of(http, server) != first


async def test_pending_task_is_matched_until_the_safety_timeout(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """A task still running is matched for 30 minutes after its request; after that a request is billed again."""
    sim.default_plan = JobPlan(duration=math.inf)
    first = await task_of(http, server)
    clock.now += 1799.5
    assert await task_of(http, server) == first
    clock.now += 0.5
    second = await task_of(http, server)
    assert second != first
    assert sim.records.billed_jobs == [first, second]


async def test_pending_timeout_is_configurable(http: aiohttp.ClientSession, clock: FakeClock) -> None:
    """cache_pending_timeout sets how long an unfinished task is matched."""
    sim = FastRouterSimulator(api_key=KEY, clock=clock, cache_pending_timeout=10, default_plan=JobPlan(duration=60))
    async with sim.serve() as server:
        first = await task_of(http, server)
        clock.now += 9
        assert await task_of(http, server) == first
        clock.now += 1
        assert await task_of(http, server) != first


async def test_task_finished_in_time_stays_matched_past_the_pending_timeout(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """A task that finished within 30 minutes is a finished result: matched until the entry expires."""
    sim.default_plan = JobPlan(duration=600)
    first = await task_of(http, server)
    clock.now += 7200  # nobody polled it; it finished on the server at 600 s
    assert await task_of(http, server) == first
    assert sim.records.billed_count == 1


async def test_task_finished_after_the_pending_timeout_is_never_matched(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """A task that ran longer than the safety timeout was dropped from the cache before it finished."""
    sim.default_plan = JobPlan(duration=2000)
    first = await task_of(http, server)
    clock.now += 2100
    assert (await poll(http, server, first))["data"]["status"] == "succeed"
    assert await task_of(http, server) != first


@pytest.mark.parametrize("outcome", ["failed", "failed_generation"])
async def test_failed_task_is_a_miss(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, outcome: Any
) -> None:
    """A failed task is not a cached result: the same request runs again, as a new billed job."""
    sim.plan_next(JobPlan(outcome=outcome))
    first = await task_of(http, server)
    assert (await poll(http, server, first))["data"]["status"] == "failed"
    second = await task_of(http, server)
    assert second != first
    assert (await poll(http, server, second))["data"]["status"] == "succeed"
    assert await task_of(http, server) == second
    assert sim.records.billed_jobs == [first, second]


async def test_task_that_will_fail_is_matched_while_it_runs(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """Until a task has failed, nobody knows it will: a repeat while it runs is a hit."""
    sim.plan_next(JobPlan(outcome="failed", duration=100))
    first = await task_of(http, server)
    clock.now += 50
    assert await task_of(http, server) == first
    clock.now += 50  # it has now failed on the server, polled or not
    assert await task_of(http, server) != first


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cache_key", ["", "A" * 129, "has space", "slash/", "semi;colon", "star*", "comma,"])
async def test_invalid_cache_key_is_a_400(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, cache_key: str
) -> None:
    """A cache_key that is not 1 to 128 of [A-Za-z0-9_-:.] is refused with FastRouter's error object, naming it."""
    status, answer = await post(http, server, cache_key=cache_key)
    assert status == 400
    error = answer["error"]
    assert (error["status"], error["code"], error["type"]) == (400, "invalid_cache_key", "invalid_request_error")
    assert "cache_key" in error["message"]
    assert "128" in error["message"]
    assert (sim.records.submit_count, sim.records.jobs_created, sim.records.billed_count) == (1, 0, 0)


@pytest.mark.parametrize("cache_key", ["a", "A" * 128, "my-app:batch_7.v2", "-_:."])
async def test_valid_cache_keys_are_accepted(
    http: aiohttp.ClientSession, server: SimulatorServer, cache_key: str
) -> None:
    """Keys of 1 to 128 allowed characters are accepted."""
    status, _ = await post(http, server, cache_key=cache_key)
    assert status == 200


@pytest.mark.parametrize(
    ("cache", "named"),
    [
        ("16h", "'cache' must be an object"),
        ([60], "'cache' must be an object"),
        (None, "'cache' must be an object"),
        ({"expiration_time": 59}, "cache.expiration_time"),
        ({"expiration_time": 604_801}, "cache.expiration_time"),
        ({"expiration_time": 3600.0}, "cache.expiration_time"),
        ({"expiration_time": "3600"}, "cache.expiration_time"),
        ({"expiration_time": True}, "cache.expiration_time"),
        ({"filter_on_model": "yes"}, "cache.filter_on_model"),
        ({"filter_on_provider": 1}, "cache.filter_on_provider"),
        ({"similarity_threshold": 1.5}, "cache.similarity_threshold"),
        ({"similarity_threshold": -0.1}, "cache.similarity_threshold"),
        ({"similarity_threshold": "1"}, "cache.similarity_threshold"),
        ({"similarity_threshold": False}, "cache.similarity_threshold"),
        ({"ttl": 60}, "unknown 'cache' settings ['ttl']"),
    ],
)
async def test_invalid_cache_object_is_a_400(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, cache: Any, named: str
) -> None:
    """A cache object of the wrong shape or out of range is refused, naming the setting; nothing is created."""
    status, answer = await post(http, server, {**BASE, "cache": cache})
    assert status == 400
    assert answer["error"]["code"] == "invalid_cache_config"
    assert named in answer["error"]["message"]
    assert sim.records.jobs_created == 0


@pytest.mark.parametrize(
    "cache",
    [
        {"expiration_time": 60},
        {"expiration_time": 604_800},
        {"similarity_threshold": 0},
        {"similarity_threshold": 0.5},
        {"similarity_threshold": 1},
        {"expiration_time": 86_400, "filter_on_model": True, "filter_on_provider": True, "similarity_threshold": 1.0},
    ],
)
async def test_valid_cache_objects_are_accepted(
    http: aiohttp.ClientSession, server: SimulatorServer, cache: dict[str, Any]
) -> None:
    """The ends of every documented range are accepted."""
    status, _ = await post(http, server, {**BASE, "cache": cache})
    assert status == 200


async def test_below_one_similarity_still_matches_prompts_exactly(
    http: aiohttp.ClientSession, server: SimulatorServer
) -> None:
    """The simulator treats any similarity_threshold as exact: a reworded prompt is a miss."""
    body = {**BASE, "cache": {"similarity_threshold": 0.5}}
    first = await task_of(http, server, body)
    assert await task_of(http, server, {**body, "prompt": "a cat is surfing"}) != first


async def test_bad_key_is_refused_before_the_cache(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A request without a valid Bearer key is a 401 and never reaches the cache."""
    await task_of(http, server)
    status, _ = await post(http, server, token="sk-v1-wrong")
    assert status == 401
    assert sim.records.cache_hits == []


# -- records and introspection --------------------------------------------------------------------


async def test_cache_route_answers_the_cache_stats(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, clock: FakeClock
) -> None:
    """GET /_simulator/cache answers, without a key, the live entries, hits and billed jobs per cache_key."""
    await task_of(http, server, cache_key="k1")
    await task_of(http, server, cache_key="k1")
    await task_of(http, server, cache_key="k1")
    await task_of(http, server, {**BASE, "prompt": "a dog"}, cache_key="k1")
    await task_of(http, server, cache_key="k2")
    await task_of(http, server, cache_key=None)
    async with http.get(f"{server.origin}/_simulator/cache") as r:
        assert r.status == 200
        stats = await r.json()
    assert stats == {
        "entries": 3,
        "hits": 2,
        "billed": 4,
        "keys": {"k1": {"billed": 2, "hits": 2}, "k2": {"billed": 1, "hits": 0}},
    }
    assert stats == sim.cache_stats()
    assert sim.billed_count(cache_key="k1") == 2
    assert sim.billed_count(where=lambda body: body["prompt"] == "a dog") == 1
    clock.now += 57_600
    assert sim.cache_stats()["entries"] == 0
    assert [r.route for r in sim.records.requests] == ["submit"] * 6  # the route itself is not recorded


async def test_reset_records_forgets_billing_but_not_entries(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """reset_records() clears the billed jobs and hits; the cache entries and jobs stay."""
    first = await task_of(http, server)
    await task_of(http, server)
    sim.reset_records()
    assert (sim.records.billed_jobs, sim.records.cache_hits) == ([], [])
    assert await task_of(http, server) == first
    assert sim.records.cache_hits == [(CACHE_KEY, first)]
    assert sim.records.billed_count == 0


async def test_billing_is_recorded_without_request_records(http: aiohttp.ClientSession) -> None:
    """With record_requests=False the billed jobs and hits are still kept."""
    sim = FastRouterSimulator(api_key=KEY, record_requests=False)
    async with sim.serve() as server:
        first = await task_of(http, server)
        await task_of(http, server)
    assert sim.records.requests == []
    assert (sim.records.billed_jobs, sim.records.cache_hits) == ([first], [(CACHE_KEY, first)])


@pytest.mark.parametrize("style", ["cached", "legacy"])
async def test_client_reads_the_simulated_answers_as_hit_and_miss(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator, style: Any
) -> None:
    """The client's hit detection reads a simulated miss as a miss and a hit, in either style, as a hit."""
    sim.cache_hit_style = style
    _, miss = await post(http, server)
    _, hit = await post(http, server)
    assert (is_cache_hit(miss), is_cache_hit(hit)) == (False, True)
