"""Helpers for the simulator's own tests (the fixtures ``sim``, ``server`` and ``http`` are in conftest)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
