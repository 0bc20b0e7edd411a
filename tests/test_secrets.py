"""The API key appears in no repr, str, log record or exception, whatever goes wrong."""

from __future__ import annotations

import logging
import pickle
import traceback
from pathlib import Path
from typing import Any

import pytest

from fastrouter_async import FastRouterError, FastRouterSession, InvalidRequestError
from fastrouter_async._config import Secret
from fastrouter_async.testing import FastRouterSimulator, Fault, JobPlan

from .conftest import API_KEY, SessionFactory

VEO: dict[str, Any] = {"model": "google/veo3", "prompt": "a cat surfing"}


async def test_key_appears_nowhere(
    make_session: SessionFactory, sim: FastRouterSimulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A run with successes, failures, retries and a server echoing the key leaks it nowhere."""
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    session = make_session()
    seen: list[object] = [session]
    errors: list[BaseException] = []

    job = await session.submit(**VEO)
    seen += [job, await job.status()]
    video = await job
    seen += [video, job, await video.download(tmp_path / "v.mp4")]

    echo = {"error": {"message": f"Invalid API key {API_KEY}", "type": "auth", "code": API_KEY, "status": 401}}
    sim.inject(Fault.status(401, route="submit", body=echo))
    sim.inject(Fault.status(500, route="submit", body=f"crashed handling Bearer {API_KEY}"))
    sim.inject(Fault.rate_limit(route="poll", retry_after=0, times=2))
    sim.plan_next(JobPlan(outcome="failed", error=f"upstream said no to {API_KEY}"))
    for _ in range(2):
        try:
            await session.submit(**VEO)
        except FastRouterError as exc:
            errors.append(exc)
    failing = await session.submit(**VEO)
    try:
        await failing
    except FastRouterError as exc:
        errors.append(exc)
    try:
        await session.job("fr_UNKNOWN", model="google/veo3")
    except FastRouterError as exc:
        errors.append(exc)
    assert len(errors) == 4

    texts = [repr(x) for x in seen] + [str(x) for x in seen]
    for error in errors:
        texts += ["".join(traceback.format_exception(error)), repr(error), repr(vars(error))]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(vars(session))]
    leaks = [t for t in texts if API_KEY in t or API_KEY[6:] in t]
    assert leaks == []
    assert any("[redacted]" in t for t in texts)  # the echoed key really was there, masked


def test_secret_is_masked_and_not_picklable() -> None:
    """The key holder shows no key in repr/str and refuses to be pickled."""
    secret = Secret(API_KEY)
    assert API_KEY not in repr(secret) + str(secret)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)


@pytest.mark.parametrize("bad_key", [f" {API_KEY}", f"{API_KEY}\n", "sk-v1-with space"])
def test_malformed_key_error_does_not_echo_it(bad_key: str) -> None:
    """A key with stray whitespace is refused without printing the key."""
    with pytest.raises(InvalidRequestError) as caught:
        FastRouterSession(bad_key)
    assert bad_key.strip() not in str(caught.value)
