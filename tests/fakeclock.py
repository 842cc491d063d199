"""A provider clock for tests: time moves only when slept on or advanced; nothing waits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from goavail.dns.providers.base import Clock

WALL_START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
"""What :meth:`FakeTime.wall` says before time moves."""


class FakeTime:
    """Monotonic seconds, the matching UTC wall time, and a sleep that only moves them.

    Attributes:
        now: the monotonic reading (seconds; starts at 1000).
        slept: every sleep asked for, in order (seconds).

    Assign :attr:`clock` to a provider's ``clock``.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """The current reading."""
        return self.now

    def wall(self) -> datetime:
        """UTC time: :data:`WALL_START` plus the time that has passed."""
        return WALL_START + timedelta(seconds=self.now - 1000.0)

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, move time by it, and let other tasks run once."""
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds

    @property
    def clock(self) -> Clock:
        """This time as a provider :class:`~goavail.dns.providers.base.Clock`."""
        return Clock(monotonic=self.monotonic, wall=self.wall, sleep=self.sleep)
