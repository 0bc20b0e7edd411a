"""Serve the FastRouter simulator until Ctrl-C.

``python -m fastrouter_async.testing --port 8000 [--host 127.0.0.1] [--duration 5] [--api-key sk-test]
[--realistic-durations [--seed N]] [--time-scale X] [--hold] [--account-rate-limit R [--account-rate-burst B]]
[--account-max-jobs N] [--no-records] [--quiet]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Sequence

from ._durations import RealisticDurations
from ._plans import JobPlan
from ._simulator import FastRouterSimulator


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"a positive number is needed, not {text}")
    return value


def _at_least_one(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"a number of at least 1 is needed, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count of 0 or more is needed, not {text}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fastrouter_async.testing",
        description="Serve a FastRouter look-alike video API until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    how_long = parser.add_mutually_exclusive_group()
    how_long.add_argument(
        "--duration", type=float, default=0.0, help="seconds each job runs before it can succeed (default 0)"
    )
    how_long.add_argument(
        "--realistic-durations",
        action="store_true",
        help="draw each job's duration for its model and video length (RealisticDurations)",
    )
    how_long.add_argument("--hold", action="store_true", help="jobs never finish: they stay running forever")
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        help="multiply every duration (--duration or --realistic-durations) by this (default 1)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed the --realistic-durations draws")
    parser.add_argument("--api-key", default=None, help="the only Bearer token accepted (default: any)")
    parser.add_argument(
        "--account-rate-limit",
        type=_positive,
        default=None,
        metavar="R",
        help="answer 429 to API requests (submits and polls) beyond R per second (default: no limit)",
    )
    parser.add_argument(
        "--account-rate-burst",
        type=_at_least_one,
        default=None,
        metavar="B",
        help="requests allowed back to back after a quiet spell (default: one second's worth)",
    )
    parser.add_argument(
        "--account-max-jobs",
        type=_count,
        default=None,
        metavar="N",
        help='answer 429 "too many concurrent tasks" to submits while N jobs are in flight (default: no cap)',
    )
    parser.add_argument(
        "--no-records", action="store_true", help="keep counters but not the requests (for long benchmarks)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def _simulator(args: argparse.Namespace) -> FastRouterSimulator:
    duration = math.inf if args.hold else args.duration * args.time_scale
    simulator = FastRouterSimulator(
        api_key=args.api_key,
        default_plan=JobPlan(duration=duration),
        record_requests=not args.no_records,
        account_rate_limit=args.account_rate_limit,
        account_rate_burst=args.account_rate_burst,
        account_max_jobs=args.account_max_jobs,
    )
    if args.realistic_durations:
        simulator.plan_with(RealisticDurations(time_scale=args.time_scale, seed=args.seed))
    return simulator


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Installed explicitly: a process started in the background may inherit SIGINT as ignored,
        # and process managers stop services with SIGTERM. Both shut the server down cleanly.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    simulator = _simulator(args)
    async with simulator.serve(host=args.host, port=args.port) as server:
        print(f"FastRouter simulator serving; base URL: {server.base_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
