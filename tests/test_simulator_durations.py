"""Plans computed per submit (plan_with) and RealisticDurations, over real loopback HTTP."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from fastrouter_async.testing import FastRouterSimulator, JobPlan, RealisticDurations, SimulatorServer
from fastrouter_async.testing._durations import DURATION_TABLE, DurationModel, duration_model_for, video_seconds_of

KEY = "sk-v1-test"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def sim() -> FastRouterSimulator:
    return FastRouterSimulator(api_key=KEY)


async def submit_id(http: aiohttp.ClientSession, server: SimulatorServer, **body: Any) -> str:
    async with http.post(f"{server.base_url}/videos", json={"prompt": "a cat", **body}, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        task_id: str = (await r.json())["data"]["taskId"]
        return task_id


# -- plan_with ------------------------------------------------------------------------------------


async def test_plan_with_computes_a_plan_per_submit(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """A plan_with factory is called with each submit's JSON body and its plan is the job's."""
    seen: list[Mapping[str, Any]] = []

    def factory(body: Mapping[str, Any]) -> JobPlan:
        seen.append(body)
        return JobPlan(duration=float(body["length"]))

    sim.plan_with(factory)
    first = await submit_id(http, server, model="google/veo3", length=4)
    second = await submit_id(http, server, model="google/veo3", length=8)
    assert [sim.jobs[t].plan.duration for t in (first, second)] == [4.0, 8.0]
    assert [dict(body) for body in seen] == [
        {"prompt": "a cat", "model": "google/veo3", "length": 4},
        {"prompt": "a cat", "model": "google/veo3", "length": 8},
    ]


async def test_plan_with_and_plan_for_rules_share_one_order(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """plan_with and plan_for rules are tried in the order added; a factory's None falls through to later ones."""
    by_prompt, computed, default = (JobPlan(cost_usd=c) for c in (1.0, 2.0, 3.0))
    sim.default_plan = default
    sim.plan_for("dog", by_prompt)
    sim.plan_with(lambda body: computed if body["model"].startswith("openai/") else None)
    sim.plan_for("cat", JobPlan(cost_usd=4.0))
    sim.plan_next(JobPlan(cost_usd=5.0))
    queued = await submit_id(http, server, model="openai/sora-2", prompt="a dog")
    dog = await submit_id(http, server, model="openai/sora-2", prompt="a dog")
    sora_cat = await submit_id(http, server, model="openai/sora-2", prompt="a cat")
    veo_cat = await submit_id(http, server, model="google/veo3", prompt="a cat")
    veo_bird = await submit_id(http, server, model="google/veo3", prompt="a bird")
    costs = [sim.jobs[t].plan.cost_usd for t in (queued, dog, sora_cat, veo_cat, veo_bird)]
    assert costs == [5.0, 1.0, 2.0, 4.0, 3.0]
    sim.clear_plans()
    assert sim.jobs[await submit_id(http, server, model="openai/sora-2")].plan == default


# -- the duration table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("google/veo3-fast", DurationModel(20, 4, 0.20)),
        ("google/veo3.1-fast", DurationModel(20, 4, 0.20)),
        ("google/veo3.1-lite", DurationModel(20, 4, 0.20)),
        ("google/veo3", DurationModel(40, 8, 0.18)),
        ("google/veo2", DurationModel(40, 8, 0.18)),
        ("openai/sora-2-pro", DurationModel(150, 25, 0.25)),
        ("openai/sora-2", DurationModel(90, 15, 0.25)),
        ("kling-ai/kling-v2-1-master", DurationModel(180, 30, 0.22)),
        ("kling-ai/kling-v1-6", DurationModel(120, 20, 0.22)),
        ("bytedance/seedance-1-pro-fast", DurationModel(20, 3, 0.20)),
        ("bytedance/seedance", DurationModel(40, 6, 0.20)),
        ("minimax/minimax-hailuo-02", DurationModel(90, 10, 0.22)),
        ("runway/runway-gen-4-turbo", DurationModel(30, 5, 0.15)),
        ("Google/VEO3-Fast", DurationModel(20, 4, 0.20)),
        ("somebody/new-model", DurationModel(60, 10, 0.25)),
    ],
)
def test_duration_table_matches_model_families(model: str, expected: DurationModel) -> None:
    """Each model id gets its family's entry (first matching pattern, case-insensitive), others the catch-all."""
    assert duration_model_for(model) == expected


def test_duration_table_is_exposed_read_only() -> None:
    """The table is a read-only mapping, also reachable as RealisticDurations.table, ending with a catch-all."""
    assert RealisticDurations.table is DURATION_TABLE
    assert list(DURATION_TABLE)[-1] == "*"
    with pytest.raises(TypeError):
        DURATION_TABLE["x/*"] = DurationModel(1, 1, 0.1)  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "seconds"),
    [
        ({"model": "kling-ai/kling-v2", "length": 10}, 10.0),
        ({"model": "openai/sora-2", "seconds": 12}, 12.0),
        ({"model": "openai/sora-2", "seconds": "8"}, 8.0),
        ({"model": "openai/sora-2", "length": 4, "seconds": 12}, 4.0),
        ({"model": "google/veo3"}, 8.0),
        ({"model": "openai/sora-2"}, 5.0),
        ({"model": "openai/sora-2", "length": True}, 5.0),
        ({"model": "openai/sora-2", "length": "long"}, 5.0),
        ({"model": "openai/sora-2", "length": 0}, 5.0),
    ],
)
def test_video_seconds_come_from_the_body(body: dict[str, Any], seconds: float) -> None:
    """The video length is the body's length, else seconds, else 8 for Veo and 5 for others; nonsense is ignored."""
    assert video_seconds_of(body) == seconds


def test_median_is_base_plus_per_second_times_length_scaled() -> None:
    """The median duration is base + per_second * video_seconds, times time_scale."""
    assert RealisticDurations().median({"model": "kling-ai/kling-v2", "length": 10}) == 120 + 20 * 10
    assert RealisticDurations().median({"model": "google/veo3"}) == 40 + 8 * 8
    assert RealisticDurations(time_scale=0.01).median({"model": "openai/sora-2"}) == pytest.approx(1.65)


# -- drawing --------------------------------------------------------------------------------------


def test_seeded_draws_are_reproducible() -> None:
    """Two factories with the same seed draw the same durations for the same submits; another seed differs."""
    bodies = [{"model": m, "length": n} for m in ("openai/sora-2", "google/veo3-fast") for n in (4, 8, 12)]
    first, second, other = RealisticDurations(seed=3), RealisticDurations(seed=3), RealisticDurations(seed=4)
    draws = [first.draw(b) for b in bodies]
    assert draws == [second.draw(b) for b in bodies]
    assert draws != [other.draw(b) for b in bodies]
    assert first == second  # a value: equal by its settings, whatever it has drawn


def test_draws_follow_the_models_lognormal() -> None:
    """Draws spread around the median (the sample median within 5 %), with the table's sigma as log spread."""
    body = {"model": "minimax/minimax-hailuo-02", "length": 6}
    factory = RealisticDurations(time_scale=0.5, seed=11)
    draws = [factory.draw(body) for _ in range(4001)]
    assert statistics.median(draws) == pytest.approx(factory.median(body), rel=0.05)
    assert statistics.stdev(math.log(d) for d in draws) == pytest.approx(0.22, rel=0.1)
    assert min(draws) > 0


def test_time_scale_must_be_positive() -> None:
    """A zero or negative time_scale is refused; the repr shows the settings, not the generator."""
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="time_scale"):
            RealisticDurations(time_scale=bad)
    assert repr(RealisticDurations(seed=1)) == "RealisticDurations(time_scale=1.0, seed=1)"


async def test_realistic_durations_plan_each_submitted_job(
    http: aiohttp.ClientSession, server: SimulatorServer, sim: FastRouterSimulator
) -> None:
    """As a plan_with factory, RealisticDurations gives each job the duration it draws for the submitted body."""
    sim.plan_with(RealisticDurations(time_scale=0.01, seed=5))
    bodies = [{"model": "openai/sora-2-pro", "seconds": 12}, {"model": "runway/runway-gen-4-turbo", "length": 5}]
    task_ids = [await submit_id(http, server, **body) for body in bodies]
    replay = RealisticDurations(time_scale=0.01, seed=5)
    expected = [replay.draw({"prompt": "a cat", **body}) for body in bodies]
    assert [sim.jobs[t].plan.duration for t in task_ids] == expected
    timeline = sim.timeline()["jobs"]
    assert [job["finishes_at"] - job["created"] for job in timeline] == pytest.approx(expected)
