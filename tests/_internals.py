"""The two doors tests use into a session's internals; everything behind them is read through public names.

Tests pin behaviour through the public API where they can. Where a figure is not observable
otherwise (a pause length, how many waits a job has), they read a snapshot or a public property
of the engine's parts, never another object's private attributes, so that the engine can change
inside without the tests following it.
"""

from __future__ import annotations

from fastrouter_async import FastRouterSession, VideoJob
from fastrouter_async._engine import Engine
from fastrouter_async._job_life import JobLife


def engine_of(session: FastRouterSession) -> Engine:
    """The engine behind ``session``."""
    return session._engine


def life_of(job: VideoJob) -> JobLife:
    """The life behind ``job``."""
    return job._life
