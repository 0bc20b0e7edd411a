"""SimulatorServer: a simulator served over real HTTP on a local port (aiohttp AppRunner + TCPSite)."""

from __future__ import annotations

import enum
from types import TracebackType
from typing import TYPE_CHECKING, Final

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    from ._simulator import FastRouterSimulator

__all__ = ["SimulatorServer"]

# Requests still running when the server closes get this long to finish. Slow
# faults are woken at shutdown, so nothing normally needs more than a moment.
SHUTDOWN_TIMEOUT: Final = 2.0


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class SimulatorServer:
    """A :class:`FastRouterSimulator` listening on ``host:port``.

    Usually obtained from ``async with simulator.serve() as server:``. For a
    fixture without ``async with``: ``server = await SimulatorServer(sim).start()``
    and later ``await server.aclose()``. A server runs once: after ``aclose()``
    create a new one (the simulator, with its jobs and records, can be reused).
    """

    def __init__(self, simulator: FastRouterSimulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._state = _State.NEW

    def __repr__(self) -> str:
        where = self.origin if self._state is _State.RUNNING else self._state.value
        return f"<SimulatorServer {where}>"

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the OS when asked for port 0)."""
        if self._port is None or self._state is not _State.RUNNING:
            raise RuntimeError(f"the simulator server is {self._state.value}, not running")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where downloads (``/videos-content``, ``/cdn``) are served."""
        return str(URL.build(scheme="http", host=self.host, port=self.port))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1``: the base URL to give a FastRouter client."""
        return f"{self.origin}/api/v1"

    async def start(self) -> SimulatorServer:
        """Bind and start serving; returns ``self``."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"the simulator server is {self._state.value}; create a new one to serve again")
        runner = web.AppRunner(self.simulator.app(), shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._state = _State.CLOSED
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._state = _State.RUNNING
        return self

    async def aclose(self) -> None:
        """Stop listening, close every connection and wait for handlers to end. Idempotent."""
        runner, self._runner = self._runner, None
        self._state = _State.CLOSED
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
