"""FastRouter's model list fetched into a local cache (fastrouter_async._catalog_cache, models --refresh).

Against the simulator's ``GET /api/v1/models`` over loopback: good lists, odd shapes, malformed and
huge bodies, error answers and an unreachable server. Every test keeps its cache under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fastrouter_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidRequestError,
    UnexpectedResponseError,
    cached_catalog,
    price_for,
    refresh_catalog,
)
from fastrouter_async._catalog_cache import MAX_LIST_BYTES, default_cache_path
from fastrouter_async.testing import FastRouterSimulator, SimulatorServer

from .conftest import API_KEY

CHILD_TIMEOUT = 60.0


def entry(model_id: object, **fields: Any) -> dict[str, Any]:
    return {"id": model_id, **fields}


async def closed_base_url() -> str:
    """The base URL of a simulator that has stopped: nothing listens there any more."""
    async with FastRouterSimulator().serve() as gone:
        url = gone.base_url
    return url  # noqa: RET504 - read while serving, returned once stopped


# -- the library ---------------------------------------------------------------------------------------


async def test_refresh_caches_the_simulated_list(server: SimulatorServer, tmp_path: Path) -> None:
    """refresh_catalog fetches /models, keeps ids, names and video prices, and writes a readable cache."""
    path = tmp_path / "cache" / "models.json"
    listed = await refresh_catalog(server.base_url, cache_path=path)
    assert set(listed.models) == {
        "kling-ai/kling-v1-6",
        "google/veo3",
        "wanx/wan-v3-0",
        "acme/video-next",
        "openai/gpt-4o-mini",
    }
    assert listed.source == f"{server.base_url}/models"
    prices = listed.prices()
    assert prices["kling-ai/kling-v1-6"].per == "video"
    assert prices["kling-ai/kling-v1-6"].usd == pytest.approx(0.21)
    assert prices["google/veo3"].per == "second"
    assert "openai/gpt-4o-mini" not in prices  # token prices are not video prices
    assert "pricing.video_per_second" in prices["google/veo3"].source
    assert cached_catalog(path) == listed
    assert [p.name for p in path.parent.iterdir()] == ["models.json"]  # no temporary file left behind


async def test_refresh_sends_no_key(server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """The public model list is fetched without an Authorization header (no key is needed or sent)."""
    await refresh_catalog(server.base_url, cache_path=tmp_path / "m.json")
    (record,) = [r for r in sim.records.requests if r.path == "/api/v1/models"]
    assert record.method == "GET"
    assert "authorization" not in {name.lower() for name in record.headers}
    assert API_KEY not in (tmp_path / "m.json").read_text(encoding="utf-8")


async def test_listed_prices_feed_estimates(server: SimulatorServer, tmp_path: Path) -> None:
    """Prices from the refreshed list are used by price_for; models without a listed price keep the shipped one."""
    listed = await refresh_catalog(server.base_url, cache_path=tmp_path / "m.json")
    veo = price_for("google/veo3", 8, listed=listed.prices())
    assert veo is not None
    assert veo.cost(8) == pytest.approx(3.2)
    assert price_for("acme/video-next", 5, listed=listed.prices()) is not None
    assert price_for("google/veo2", 5, listed=listed.prices()) is None


async def test_default_cache_path_follows_xdg(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path the cache goes to $XDG_CACHE_HOME/fastrouter-async/models.json, and is read from there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "fastrouter-async" / "models.json"
    assert cached_catalog() is None
    await refresh_catalog(server.base_url)
    cached = cached_catalog()
    assert cached is not None
    assert "acme/video-next" in cached.models


@pytest.mark.parametrize(
    "document",
    [
        [entry("acme/one", pricing={"request": "0.5"})],
        {"models": [entry("acme/one", pricing={"request": 0.5})]},
        {"data": {"items": [entry("acme/one", pricing={"per_video": "0.5"})]}},
        {
            "object": "list",
            "data": [
                entry("acme/one", name="One", pricing={"request": "0.5"}, surprise={"nested": [1, 2]}),
                "not an object",
                None,
                entry(None),
                entry(42),
                entry("no-slash"),
                entry("has space/x"),
                entry("x" * 150 + "/" + "y" * 150),
                {"name": "no id"},
            ],
        },
    ],
)
async def test_any_shape_is_read(
    server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, document: object
) -> None:
    """Lists under data/models/items or bare are read; entries without a usable id and unknown fields are ignored."""
    sim.model_list = document
    listed = await refresh_catalog(server.base_url, cache_path=tmp_path / "m.json")
    assert set(listed.models) == {"acme/one"}
    price = listed.prices()["acme/one"]
    assert (price.usd, price.per) == (0.5, "video")


@pytest.mark.parametrize(
    "pricing",
    [
        {"request": "free"},
        {"request": "0"},
        {"request": "-1"},
        {"request": math.inf},
        {"request": True},
        {"request": "1e9"},
        {"request": ["0.5"]},
        {"prompt": "0.000001", "completion": "0.000002"},
        "0.5",
        None,
    ],
)
async def test_unusable_prices_are_unknown(
    server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, pricing: object
) -> None:
    """A price that is not a positive, plausible USD amount is treated as unknown, never as a number."""
    sim.model_list = {"data": [entry("acme/one", pricing=pricing)]}
    listed = await refresh_catalog(server.base_url, cache_path=tmp_path / "m.json")
    assert listed.models["acme/one"].price is None
    assert price_for("acme/one", 5, listed=listed.prices()) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": [', "not JSON"),
        (b"<html>maintenance</html>", "not JSON"),
        (b'{"data": []}', "no model"),
        (b'"just a string"', "no model"),
        (b"[" * 100_000, "not JSON"),
    ],
)
async def test_malformed_list_keeps_the_cache(
    server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path, body: bytes, message: str
) -> None:
    """A list that cannot be understood raises UnexpectedResponseError and leaves the earlier cache as it was."""
    path = tmp_path / "m.json"
    await refresh_catalog(server.base_url, cache_path=path)
    before = path.read_bytes()
    sim.model_list = body
    with pytest.raises(UnexpectedResponseError, match=message):
        await refresh_catalog(server.base_url, cache_path=path)
    assert path.read_bytes() == before


async def test_huge_list_is_refused(server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path) -> None:
    """A body larger than MAX_LIST_BYTES is not read to the end nor cached."""
    sim.model_list = b'{"data": [], "padding": "' + b"x" * MAX_LIST_BYTES + b'"}'
    path = tmp_path / "m.json"
    with pytest.raises(UnexpectedResponseError, match="larger than"):
        await refresh_catalog(server.base_url, cache_path=path)
    assert not path.exists()


async def test_error_answer_raises_status_error(server: SimulatorServer, tmp_path: Path) -> None:
    """An HTTP error answer (a base URL whose /models does not exist) raises APIStatusError; nothing is cached."""
    with pytest.raises(APIStatusError) as info:
        await refresh_catalog(f"{server.origin}/elsewhere/v1", cache_path=tmp_path / "m.json")
    assert info.value.status_code == 404
    assert not (tmp_path / "m.json").exists()


async def test_stalled_answer_times_out(tmp_path: Path) -> None:
    """A server that sends headers and then nothing is given up on after ``timeout`` (APITimeoutError)."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"data": [')
        await release.wait()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/models", stall)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(APITimeoutError, match=r"longer than 0\.05 s"):
            await refresh_catalog(f"http://127.0.0.1:{port}/api/v1", cache_path=tmp_path / "m.json", timeout=0.05)
    finally:
        release.set()
        await runner.cleanup()
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("timeout", [0, -1, "5", None])
async def test_bad_timeout_is_refused(timeout: object) -> None:
    """A timeout that is not a positive number is an InvalidRequestError, before anything is sent."""
    with pytest.raises(InvalidRequestError) as info:
        await refresh_catalog("http://127.0.0.1:9/api/v1", timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"


async def test_unreachable_raises_connection_error(tmp_path: Path) -> None:
    """When nothing answers, refresh_catalog raises APIConnectionError and writes nothing."""
    with pytest.raises(APIConnectionError):
        await refresh_catalog(await closed_base_url(), cache_path=tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b'{"format": 99, "models": []}', b'{"format": 1}', b'{"format": 1, "models": [1]}', b"[]"],
)
def test_unreadable_cache_is_ignored(tmp_path: Path, content: bytes) -> None:
    """A missing, corrupt or foreign cache file reads as no cache (the shipped table then applies)."""
    path = tmp_path / "m.json"
    assert cached_catalog(path) is None
    path.write_bytes(content)
    assert cached_catalog(path) is None


# -- the command line --------------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m fastrouter_async ARGS`` and return its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastrouter_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(CHILD_TIMEOUT):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_env(cache_home: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FASTROUTER_")}
    env.update({"XDG_CACHE_HOME": str(cache_home), "FASTROUTER_API_KEY": API_KEY, **extra})
    return env


def rows(stdout: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in json.loads(stdout)}


async def test_cli_refresh_lists_new_models_and_prices(
    server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """models --refresh caches the list; listed-only models and listed prices show then and on later runs."""
    env = cli_env(tmp_path)
    code, out, err = await run_cli("models", "--refresh", "--json", "--base-url", server.base_url, env=env)
    assert code == 0, err
    assert err.strip() == f"fastrouter-video: fetched 5 models from {server.base_url}/models"
    models = rows(out)
    assert models["acme/video-next"]["source"] == "listed"
    assert models["acme/video-next"]["image"] == "unknown"
    assert models["google/veo3"]["price"]["per"] == "second"
    assert models["openai/sora-2"]["retired"] == "2026-09-24"
    assert (tmp_path / "fastrouter-async" / "models.json").exists()
    requests = [r for r in sim.records.requests if r.path == "/api/v1/models"]
    assert len(requests) == 1
    assert "authorization" not in {name.lower() for name in requests[0].headers}

    code, out, err = await run_cli("models", "--json", env=env)  # no --refresh: the cache, no request
    assert code == 0, err
    assert "acme/video-next" in rows(out)
    assert len([r for r in sim.records.requests if r.path == "/api/v1/models"]) == 1


async def test_cli_refresh_reads_base_url_from_environment(server: SimulatorServer, tmp_path: Path) -> None:
    """Without --base-url, models --refresh asks FASTROUTER_BASE_URL."""
    env = cli_env(tmp_path, FASTROUTER_BASE_URL=server.base_url)
    code, out, err = await run_cli("models", "--refresh", env=env)
    assert code == 0, err
    assert "fetched 5 models" in err
    assert "acme/video-next (listed only)" in out


async def test_cli_refresh_unreachable_falls_back(server: SimulatorServer, tmp_path: Path) -> None:
    """Unreachable: one line on stderr says so, and the shipped catalog (or the earlier cache) is listed."""
    gone = await closed_base_url()
    code, out, err = await run_cli("models", "--refresh", "--json", "--base-url", gone, env=cli_env(tmp_path))
    assert code == 0
    assert len(err.strip().splitlines()) == 1
    assert "could not refresh the model list (APIConnectionError" in err
    assert err.strip().endswith("using the shipped catalog")
    assert "acme/video-next" not in rows(out)
    assert rows(out)["kling-ai/kling-v1-6"]["price"]["usd"] == pytest.approx(0.21)

    await run_cli("models", "--refresh", "--base-url", server.base_url, env=cli_env(tmp_path))
    code, out, err = await run_cli("models", "--refresh", "--json", "--base-url", gone, env=cli_env(tmp_path))
    assert code == 0
    assert "using the list cached on" in err
    assert "acme/video-next" in rows(out)


async def test_cli_refresh_malformed_falls_back(
    server: SimulatorServer, sim: FastRouterSimulator, tmp_path: Path
) -> None:
    """A malformed list is reported in one line and the shipped catalog is listed."""
    sim.model_list = b"{oops"
    code, out, err = await run_cli(
        "models", "--refresh", "--json", "--base-url", server.base_url, env=cli_env(tmp_path)
    )
    assert code == 0
    assert "UnexpectedResponseError: the model list is not JSON" in err
    assert len(err.strip().splitlines()) == 1
    assert "acme/video-next" not in rows(out)


async def test_cli_refresh_bad_base_url_is_a_usage_error(tmp_path: Path) -> None:
    """A base URL that is not allowed is a usage error (exit 2), not a fallback."""
    code, out, err = await run_cli(
        "models", "--refresh", "--base-url", "http://example.com/api/v1", env=cli_env(tmp_path)
    )
    assert code == 2
    assert "invalid base_url=" in err
    assert out == ""
