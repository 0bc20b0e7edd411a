"""Costs on jobs, estimates before paying and spend caps, against the simulator over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from fastrouter_async import (
    BadRequestError,
    Cost,
    FastRouterSession,
    InvalidRequestError,
    JobFailedError,
    SpendCapError,
    VideoRequest,
    refresh_catalog,
)
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan

from .conftest import SessionFactory

KLING: dict[str, Any] = {"model": "kling-ai/kling-v1-6", "length": 5}  # 0.21 in the shipped, dated price table
UNPRICED = "google/veo3"  # no shipped price


@pytest.fixture(autouse=True)
def _no_user_model_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Never a real user's refreshed model list: estimates see the shipped table unless a test refreshes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _priced(prices: Mapping[str, float | None]) -> Any:
    def plan(body: Mapping[str, Any]) -> JobPlan | None:
        model = str(body.get("model"))
        return JobPlan(polls=1, cost_usd=prices[model]) if model in prices else None

    return plan


async def test_job_shows_estimate_then_final_cost(session: FastRouterSession) -> None:
    """The submit answer's estimate is on the job at once; the result and the job then show the final cost."""
    job = await session.submit(prompt="a cat", **KLING)
    assert job.estimated_cost == Cost(kind="estimated", usd=0.21, credits=0.21)
    assert job.cost.kind == "estimated"
    result = await job
    assert result.final_cost == Cost(kind="final", usd=0.21, credits=0.21)
    assert job.cost == result.final_cost


async def test_cache_hit_is_free(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A second submit with the same cache_key is FastRouter's cache hit: its job shows as free."""
    first = await session.submit(prompt="a cat", cache_key="same-job-1", **KLING)
    await first
    again = await session.submit(prompt="a cat", cache_key="same-job-1", **KLING)
    assert again.found_again is True
    assert again.estimated_cost == Cost.free()
    assert again.cost == Cost.free()
    assert len(sim.jobs) == 1


async def test_late_final_cost_is_unknown(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """A price that arrives late (null in the answers) is unknown, never shown as free."""
    sim.plan_next(JobPlan(polls=1, cost_usd=None))
    job = await session.submit(prompt="a cat", **KLING)
    assert job.estimated_cost == Cost.unknown()
    result = await job
    assert result.final_cost == Cost.unknown()


async def test_estimate_from_price_table_and_unknown(session: FastRouterSession, sim: FastRouterSimulator) -> None:
    """estimate() names each request's source: the shipped table, or unknown; it sends nothing."""
    estimate = session.estimate(
        [VideoRequest(prompt="a", **KLING), VideoRequest(prompt="b", **KLING), {"model": UNPRICED, "prompt": "c"}]
    )
    assert [(e.usd, e.source) for e in estimate.requests] == [
        (0.21, "price_table"),
        (0.21, "price_table"),
        (None, "unknown"),
    ]
    assert estimate.total_usd == pytest.approx(0.42)
    assert estimate.unknown == 1
    count, usd, source = estimate.by_model()[KLING["model"]]
    assert (count, source) == (2, "price_table")
    assert usd == pytest.approx(0.42)
    assert session.estimate(VideoRequest(prompt="one", **KLING)).total_usd == pytest.approx(0.21)
    assert sim.stats()["submits"] == 0


async def test_estimate_uses_the_refreshed_model_list(make_session: SessionFactory, server: Any) -> None:
    """After refresh_catalog() the listed prices (the simulator's model list) are used, dated."""
    await refresh_catalog(base_url=server.base_url)
    estimate = make_session().estimate(
        [{"model": UNPRICED, "prompt": "a", "length": 8}, {"model": "acme/video-next", "prompt": "b"}]
    )
    assert [(e.usd, e.source) for e in estimate.requests] == [(pytest.approx(3.2), "listed"), (0.5, "listed")]
    assert estimate.requests[0].as_of is not None


async def test_estimate_learns_what_was_paid(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """After a job of a model and parameters is billed, estimates use that figure; it survives export/import."""
    sim.plan_with(_priced({UNPRICED: 0.8}))
    session = make_session()
    request = VideoRequest(model=UNPRICED, prompt="a", length=8)
    assert session.estimate(request).requests[0].source == "unknown"
    await session.generate(request)
    learned = session.estimate(request).requests[0]
    assert (learned.usd, learned.source) == (0.8, "paid")
    assert session.estimate(VideoRequest(model=UNPRICED, prompt="a", length=4)).requests[0].source == "unknown"
    later = make_session()
    assert later.import_costs(session.export_costs()) == 1
    assert later.estimate(request).requests[0].usd == 0.8
    with pytest.raises(InvalidRequestError, match="paid_usd"):
        later.import_costs({"version": 1, "paid_usd": {"x": -1}})


async def test_cap_refuses_the_submit_that_would_exceed_it(
    make_session: SessionFactory, sim: FastRouterSimulator
) -> None:
    """Under max_spend_usd a submit whose estimate does not fit is not sent, with the figures in the error."""
    session = make_session(max_spend_usd=0.5)
    jobs = [await session.submit(prompt=f"p{i}", **KLING) for i in range(2)]
    assert session.reserved_usd == pytest.approx(0.42)
    with pytest.raises(SpendCapError) as caught:
        await session.submit(prompt="third", **KLING)
    error = caught.value
    assert (error.cap_usd, error.cost_usd) == (0.5, 0.21)
    assert error.reserved_usd == pytest.approx(0.42)
    assert "$0.50" in str(error)
    assert len(sim.jobs) == 2
    for job in jobs:
        await job
    assert session.spent_usd == pytest.approx(0.42)
    assert session.reserved_usd == 0


async def test_failed_job_releases_its_reservation(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A failed job costs nothing: its reservation goes, and the next submit fits under the cap."""
    session = make_session(max_spend_usd=0.21)
    sim.plan_next(JobPlan(polls=1, outcome="failed"))
    job = await session.submit(prompt="fails", **KLING)
    with pytest.raises(JobFailedError):
        await job
    assert (session.spent_usd, session.reserved_usd) == (0, 0)
    assert job.cost == Cost.free()
    await session.generate(prompt="fits", **KLING)
    assert session.spent_usd == pytest.approx(0.21)


async def test_cache_hit_costs_nothing_under_a_cap(make_session: SessionFactory) -> None:
    """A cache hit's reservation (made before anyone knows it is a hit) settles to 0: it never counts."""
    session = make_session(max_spend_usd=0.42)
    await session.generate(prompt="a cat", cache_key="hit-key-1", **KLING)
    again = await session.submit(prompt="a cat", cache_key="hit-key-1", **KLING)
    assert again.found_again is True
    await again
    assert session.spent_usd == pytest.approx(0.21)
    assert session.reserved_usd == 0
    await session.generate(prompt="another", **KLING)  # the hit left room for a second paid job
    assert session.spent_usd == pytest.approx(0.42)


async def test_unknown_price_is_refused_unless_assumed(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """Under a cap a model of unknown price is refused; unknown_price_usd assumes one, kept as spent if the
    final cost stays unknown."""
    with pytest.raises(SpendCapError, match="unknown") as caught:
        await make_session(max_spend_usd=5).submit(model=UNPRICED, prompt="a")
    assert caught.value.cost_usd is None
    assert sim.stats()["submits"] == 0
    sim.plan_next(JobPlan(polls=1, cost_usd=None))
    session = make_session(max_spend_usd=5, unknown_price_usd=2.0)
    await session.generate(model=UNPRICED, prompt="a")
    assert session.spent_usd == 2.0


async def test_hundred_jobs_race_for_the_last_dollars(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """100 concurrent submits under a cap of ten jobs' worth: exactly ten are sent, the cap is never exceeded."""
    session = make_session(max_spend_usd=2.1, max_concurrent_jobs=None)

    async def one(i: int) -> bool:
        try:
            await session.generate(prompt=f"race {i}", **KLING)
        except SpendCapError:
            return False
        return True

    sent = await asyncio.gather(*(one(i) for i in range(100)))
    assert sum(sent) == 10
    assert len(sim.jobs) == 10
    assert session.spent_usd == pytest.approx(2.1)
    assert session.spent_usd <= 2.1 + 1e-9


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
async def test_bad_cap_is_refused(bad: object) -> None:
    """max_spend_usd must be a finite amount >= 0: anything else is refused before anything is sent."""
    with pytest.raises(InvalidRequestError, match="max_spend_usd"):
        FastRouterSession("k", base_url="http://127.0.0.1:9", max_spend_usd=bad)  # type: ignore[arg-type]


async def test_refused_submit_releases_its_reservation(make_session: SessionFactory, sim: FastRouterSimulator) -> None:
    """A submit FastRouter refuses (400: no job created) gives its reservation back at once."""
    session = make_session(max_spend_usd=0.21)
    sim.inject(Fault(route="submit", kind="status", http_status=400))
    with pytest.raises(BadRequestError):
        await session.submit(prompt="refused", **KLING)
    assert (session.spent_usd, session.reserved_usd) == (0, 0)
    await session.generate(prompt="fits", **KLING)
    assert session.spent_usd == pytest.approx(0.21)
