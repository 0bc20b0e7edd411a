"""``batch --dry-run`` (what a batch would cost, sending nothing) and the learned costs kept in the output folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

import anyio

from fastrouter_async import FastRouterError, FastRouterSession, SpendEstimate, VideoRequest

from ._manifest import write_atomically
from ._options import PROG
from ._runtime import EXIT_OK, say
from ._simulated import SIMULATED_API_KEY

__all__ = ["COSTS_NAME", "dry_run", "load_costs", "save_costs", "usd"]

COSTS_NAME: Final = "costs.json"
# What finished jobs cost, by model and parameters, kept beside durations.json so that the next batch
# (and its --dry-run) estimates from what was actually paid (not written under --simulate: made-up prices).

_SOURCES: Final = {
    "paid": "paid before",
    "listed": "FastRouter's model list",
    "price_table": "shipped price table",
    "unknown": "unknown price",
}


def usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.2f}"


async def load_costs(session: FastRouterSession, path: Path | None) -> None:
    """Estimate from what earlier batches into this folder paid (a bad file is only reported)."""
    if path is None or not await anyio.Path(path).exists():
        return
    try:
        session.import_costs(json.loads(await anyio.Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, FastRouterError) as exc:
        say(f"{PROG}: note: ignoring {path} ({exc}); estimates use the price tables only", file=sys.stderr)


async def save_costs(session: FastRouterSession, path: Path | None) -> None:
    if path is None:
        return
    text = json.dumps(session.export_costs(), indent=2, sort_keys=True) + "\n"
    try:
        await anyio.to_thread.run_sync(write_atomically, path, [text])
    except OSError as exc:
        say(f"{PROG}: note: could not save {path} ({exc.strerror or exc})", file=sys.stderr)


def print_estimate(estimate: SpendEstimate, *, cap: float | None) -> None:
    say(f"{len(estimate.requests)} jobs; nothing was sent (--dry-run).")
    for model, (count, total, source) in sorted(estimate.by_model().items()):
        say(f"  {model}: {count} x  {usd(total)}  ({_SOURCES[source]})")
    unknown = f" + {estimate.unknown} of unknown price" if estimate.unknown else ""
    say(f"estimated total: {usd(estimate.total_usd)}{unknown}")
    if cap is not None:
        if estimate.unknown:
            say(f"--max-spend {usd(cap)}: jobs of unknown price are not sent unless --unknown-price USD is given")
        if estimate.total_usd > cap:
            say(f"--max-spend {usd(cap)}: the cap stops the batch before its end; the rest would stay not sent")


async def dry_run(options: argparse.Namespace, requests: list[VideoRequest], costs: Path | None) -> int:
    """Validate every request and print the estimate per model and in total; no request is made (no key needed)."""
    async with FastRouterSession(
        SIMULATED_API_KEY, base_url=options.base_url, unknown_price_usd=options.unknown_price
    ) as session:
        await load_costs(session, costs)
        print_estimate(session.estimate(requests), cap=options.max_spend)
    return EXIT_OK
