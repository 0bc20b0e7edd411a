"""What the real-server helpers of the tests share: free loopback ports, start-and-wait, stop-and-reap.

:mod:`tests._redis` and :mod:`tests._nginx` run a distribution binary as a child process; both pick
free ports, wait (bounded) until the server answers and stop it with ``SIGTERM`` and a reap.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "ServerProcess", "accepts", "free_ports", "stop_process", "wait_started"]

START_TIMEOUT: Final = 10.0  # seconds for a server to answer; it usually takes a few milliseconds
STOP_TIMEOUT: Final = 10.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (a server may still race us)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def accepts(port: int) -> bool:
    """Whether something on ``127.0.0.1:port`` accepts a TCP connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_started(
    process: subprocess.Popen[bytes],
    *,
    name: str,
    ready: Callable[[], bool],
    log_tail: Callable[[], str],
    waiting_for: str,
) -> bool:
    """Wait until ``ready()``: ``True``; ``False`` when the process exited because a port was taken.

    Any other exit, or no answer within :data:`START_TIMEOUT` (the process is then killed and
    reaped), raises :class:`RuntimeError` with the tail of the server's log.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "Address already in use" in log_tail():
                return False
            raise RuntimeError(f"{name} exited with status {process.returncode}: {log_tail()}")
        if ready():
            return True
        time.sleep(0.01)  # waiting for a server process to start, a bounded loop
    process.kill()
    process.wait()
    raise RuntimeError(f"{name} did not {waiting_for} within {START_TIMEOUT} s: {log_tail()}")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate ``process`` (``SIGTERM``) and reap it, killing it after :data:`STOP_TIMEOUT`."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ServerProcess:
    """A server run as a child process: ``with`` starts it and stops it; subclasses define :meth:`start`."""

    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to exit. Idempotent."""
        process, self._process = self._process, None
        stop_process(process)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
