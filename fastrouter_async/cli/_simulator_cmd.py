"""``simulator``: serve the simulated FastRouter of ``--simulate`` for other programs, until stopped."""

from __future__ import annotations

import argparse
import math

import anyio

from ._runtime import EXIT_OK, StopSignals, say
from ._simulated import FAILURE_WORD, simulated_world

__all__ = ["run_simulator"]


async def run_simulator(options: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; both stop it cleanly (exit code 0)."""
    stop = StopSignals()
    with stop.installed():
        async with simulated_world(options.simulate_time_scale).serve(host=options.host, port=options.port) as server:
            say(f"FastRouter simulator serving; base URL: {server.base_url}")
            say(f"  any API key is accepted; prompts containing {FAILURE_WORD!r} fail")
            say(f"  e.g. FASTROUTER_API_KEY=sk-v1-test fastrouter-video batch FILE --base-url {server.base_url} ...")
            say("Press Ctrl-C to stop.")
            with anyio.CancelScope() as scope, stop.cancels(scope):
                await anyio.sleep(math.inf)
    say("stopped")
    return EXIT_OK
