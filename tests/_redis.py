"""A real redis-server for the shared primitives' tests, and the worker processes those tests run.

:class:`RedisServer` runs the distribution's ``redis-server`` on a free loopback port with its
working folder in a temporary directory and no persistence (``--save "" --appendonly no``), waits
until it answers ``PING`` and stops it. :func:`skip_reason` says why the tests cannot run here.

``python -m tests._redis ROLE URL NAMESPACE ...`` is one worker process of a multi-process test
(see :func:`main`); what it does is written to Redis or printed on stdout, one line per event.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Final, Self

import anyio

from fastrouter_async._redis import RedisJobSlots, RedisJobStore, RedisRequestBucket, RedisWatchLeases, open_redis
from fastrouter_async._shared import spend

from ._servers import ServerProcess, free_ports, wait_started

__all__ = ["REDIS_PACKAGE_MISSING", "REDIS_SERVER_MISSING", "RedisServer", "find_redis_server", "skip_reason"]

REDIS_SERVER_MISSING: Final = "redis-server is not installed: apt-get install redis-server; .ci/run installs it"
REDIS_PACKAGE_MISSING: Final = (
    "the redis package is not installed: pip install -e '.[redis]' (the dev extra includes it; make test installs it)"
)


def find_redis_server() -> str | None:
    """The redis-server binary: on PATH, or where Debian installs it."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def skip_reason() -> str | None:
    """Why the Redis tests cannot run here, or ``None`` when they can."""
    if find_redis_server() is None:
        return REDIS_SERVER_MISSING
    if importlib.util.find_spec("redis") is None:
        return REDIS_PACKAGE_MISSING
    return None


def _pings(port: int) -> bool:
    """Whether a server on ``port`` answers ``PING`` with ``+PONG`` (plain RESP over a socket)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ServerProcess):
    """redis-server on ``127.0.0.1:port`` with its files in ``workdir``, without persistence."""

    def __init__(self, binary: str, workdir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.workdir = Path(workdir)
        self.extra_args = extra_args
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url if self._process else 'stopped'}>"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, attempts: int = 5) -> Self:
        """Start redis-server on a free port and wait until it answers PING."""
        if self._process is not None:
            raise RuntimeError("this redis-server is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            (self.port,) = free_ports(1)
            if self._launch():
                return self
            # Another process took the port between our probe and the server's bind: pick another.
        raise RuntimeError(f"redis-server did not start after {attempts} attempts: {self._log_tail()}")

    def _launch(self) -> bool:
        args = [
            self.binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--save", "", "--appendonly", "no", "--logfile", str(self.log), "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = wait_started(
            process,
            name="redis-server",
            ready=lambda: _pings(self.port),
            log_tail=self._log_tail,
            waiting_for="answer PING",
        )
        if started:
            self._process = process
        return started

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace").strip()[-2000:] if self.log.exists() else "(nothing logged)"


# -- worker processes ------------------------------------------------------------------------------


def worker_command(role: str, url: str, namespace: str, *args: object) -> list[str]:
    """The command line of one worker process (run it from the repository's root)."""
    return [sys.executable, "-m", "tests._redis", role, url, namespace, *map(str, args)]


async def _slots_worker(url: str, namespace: str, tasks: int, capacity: int, lease: float) -> None:
    """``tasks`` concurrent holders; each counts itself in ``inflight`` while it holds a slot."""
    client = open_redis(url)
    try:
        slots = RedisJobSlots(client, namespace, capacity=capacity, lease=lease, poll=0.002)
        # INCR, then raise the recorded maximum: one atomic step on the server.
        enter = client.register_script(
            "local n = redis.call('INCR', KEYS[1]) "
            "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end return n"
        )

        async def hold(i: int) -> None:
            holder = f"{os.getpid()}-{i}"
            await slots.acquire(holder)
            await enter(keys=["test:inflight", "test:max"])
            await anyio.sleep(0.003)  # hold the slot a few milliseconds so that holders overlap
            await client.decr("test:inflight")
            await client.rpush("test:done", holder)
            await slots.release(holder)

        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(hold, i)
    finally:
        await client.aclose()


async def _hold_worker(url: str, namespace: str, lease: float) -> None:
    """Take the only slot and a watch lease on task ``t-dead``, say so, and renew both until killed."""
    client = open_redis(url)
    try:
        slots = RedisJobSlots(client, namespace, capacity=1, lease=lease)
        leases = RedisWatchLeases(client, RedisJobStore(client, namespace))
        await slots.acquire("dying")
        assert await leases.claim("t-dead", "dying", lease)
        print("held", flush=True)
        while True:
            await anyio.sleep(lease / 10)  # renew often: a loaded machine may delay a wake-up
            await slots.renew("dying")
            await leases.renew("t-dead", "dying", lease)
    finally:
        await client.aclose()


async def _bucket_worker(url: str, namespace: str, rate: float, burst: float, grants: int) -> None:
    """Take ``grants`` tokens one after the other; log each grant's server time (µs) to ``test:grants``."""
    client = open_redis(url)
    try:
        bucket = RedisRequestBucket(client, namespace, rate=rate, burst=burst)
        for _ in range(grants):
            await spend(bucket)
            seconds, micros = await client.time()
            await client.rpush("test:grants", seconds * 1_000_000 + micros)
    finally:
        await client.aclose()


async def _pause_worker(url: str, namespace: str, seconds: float) -> None:
    """Pause the account's bucket for ``seconds``, as a process that got a 429 would."""
    client = open_redis(url)
    try:
        await RedisRequestBucket(client, namespace, rate=10).pause(seconds)
    finally:
        await client.aclose()


async def _claim_worker(url: str, namespace: str, tasks: int) -> None:
    """Try to claim the watch leases of tasks ``t0`` .. ``tN``; push each won task id to ``test:won``."""
    client = open_redis(url)
    try:
        leases = RedisWatchLeases(client, RedisJobStore(client, namespace))
        for i in range(tasks):
            if await leases.claim(f"t{i}", f"owner-{os.getpid()}", 30.0):
                await client.rpush("test:won", f"t{i}")
    finally:
        await client.aclose()


def main(argv: list[str]) -> None:
    """``ROLE URL NAMESPACE ARGS...``: run one worker (roles: slots, hold, bucket, pause, claim)."""
    role, url, namespace, *rest = argv
    if role == "slots":
        asyncio.run(_slots_worker(url, namespace, int(rest[0]), int(rest[1]), float(rest[2])))
    elif role == "hold":
        asyncio.run(_hold_worker(url, namespace, float(rest[0])))
    elif role == "bucket":
        asyncio.run(_bucket_worker(url, namespace, float(rest[0]), float(rest[1]), int(rest[2])))
    elif role == "pause":
        asyncio.run(_pause_worker(url, namespace, float(rest[0])))
    elif role == "claim":
        asyncio.run(_claim_worker(url, namespace, int(rest[0])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
