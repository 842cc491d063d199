"""Probe scheduling: every target once per interval, spread evenly, without drift.

Time is cut into *slots*. With ``n`` targets, slot ``j`` belongs to target ``j % n``
and is due at ``t0 + j * interval / n`` (round ``j // n``, offset ``(j % n) *
interval / n``). Send times are always computed from the absolute start ``t0``,
never by adding up sleeps, so the schedule cannot drift. One task sleeps until the
next due slot (at least :data:`BATCH_WINDOW`) and submits every slot due by then in
one batch: to a :class:`goavail.checks.base.BatchProbe` (the ICMP engine) as one
``submit_batch`` call per round touched, to other engines one ``submit`` per slot.

:func:`slot_time` and :func:`due_slots` are the pure part; :class:`ProbeScheduler`
adds the targets, the probe engine and the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence

from goavail.checks.base import Probe, ResultCallback

BATCH_WINDOW = 0.005
"""Seconds: the shortest sleep of the scheduler; probes due within it are sent together.

A probe goes out at most this late (its timeout counts from the real send). 5 ms: at
10,000 targets per second that is batches of 50 and 200 wake-ups per second.
"""


MAX_BATCH = 1000
"""Most probes :meth:`ProbeScheduler.run` sends before it lets the event loop run again
(a catch-up after a stall goes out in such chunks; normal batches are far smaller)."""


def slot_time(slot: int, n: int, interval: float, t0: float) -> float:
    """Due time (same clock as ``t0``, seconds) of ``slot`` with ``n`` targets."""
    return t0 + slot * interval / n


def due_slots(next_slot: int, n: int, interval: float, t0: float, now: float) -> tuple[int, int]:
    """Slots to submit at ``now``, as ``(start, end)`` meaning ``range(start, end)``.

    ``next_slot`` is the first slot not yet submitted. Every slot ``j >= start``
    with ``slot_time(j) <= now`` is due. When more than one full round is overdue
    (the loop was stalled), only the latest ``n`` due slots are returned, so no
    target is probed twice in one burst; ``start > next_slot`` then.

    Raises:
        ValueError: ``n < 1`` or ``interval <= 0``.
    """
    if n < 1 or interval <= 0:
        raise ValueError("need n >= 1 targets and a positive interval")
    end = max(next_slot, math.floor((now - t0) * n / interval) + 1)
    # Agree exactly with slot_time despite float rounding at slot boundaries.
    while slot_time(end, n, interval, t0) <= now:
        end += 1
    while end > next_slot and slot_time(end - 1, n, interval, t0) > now:
        end -= 1
    return max(next_slot, end - n), end


class ProbeScheduler:
    """Submits a probe for every target once per ``interval``, spread over the interval.

    Args:
        probe: the started probe engine; the scheduler only calls ``submit``.
        interval: seconds between two probes of the same target (> 0).
        on_result: ``on_result(target, ProbeResult)``, passed to ``probe.submit``.
        clock: monotonic clock in seconds; ``time.monotonic`` (the event loop's
            clock) unless a test drives :meth:`poll` by hand.

    Call :meth:`set_targets` (any time) and ``await run()`` in a task; :meth:`stop`
    makes ``run`` return. The scheduler never closes the probe engine.
    """

    def __init__(
        self,
        probe: Probe,
        interval: float,
        on_result: ResultCallback,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.probe = probe
        self.interval = interval
        self.on_result = on_result
        self._clock = clock
        self._targets: list[str] = []
        self._t0: float | None = None  # start of slot 0; None until the first poll
        self._slot = 0  # next slot to submit
        self._pending: list[str] | None = None  # replaces _targets at the next round
        self._keep: frozenset[str] | None = None  # targets of _pending, for the rest of a round
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False

    @property
    def targets(self) -> list[str]:
        """The target list in effect from the next round on (a copy)."""
        return list(self._pending if self._pending is not None else self._targets)

    def set_targets(self, targets: Sequence[str]) -> None:
        """Replace the targets (duplicates dropped, order kept).

        Targets no longer listed are not probed again. The new list takes effect
        at the next round boundary, where the slots are re-spread over the new
        count; before any round has started it takes effect at once.
        """
        new = list(dict.fromkeys(targets))
        if self._t0 is None or not self._targets:
            self._targets, self._t0, self._slot = new, None, 0
            self._pending = self._keep = None
        elif new == self._targets:  # unchanged (or changed back): keep the phase
            self._pending = self._keep = None
        else:
            self._pending, self._keep = new, frozenset(new)
        self._wake()

    def reconfigure(self, *, probe: Probe, interval: float, targets: Sequence[str]) -> None:
        """Apply a reloaded configuration.

        The new probe engine is used from the next submit on. A changed
        ``interval`` (seconds) restarts the rounds at the next wake-up (targets
        may then be probed once sooner than the old interval); otherwise the
        targets change as in :meth:`set_targets`.

        Raises:
            ValueError: ``interval <= 0``.
        """
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.probe = probe
        if interval != self.interval:
            self.interval = interval
            self._targets, self._t0 = [], None
        self.set_targets(targets)

    def poll(self, now: float, limit: int | None = None) -> float | None:
        """Submit every probe due at ``now`` (at most ``limit``); return when the next is due.

        ``now`` is a reading of ``clock``. Returns None when there are no targets.
        With a ``limit`` (None: no limit) the slots beyond it stay due and the time
        returned is then not after ``now``. :meth:`run` calls this in a loop; tests
        may call it directly.
        """
        budget = limit
        while True:
            n = len(self._targets)
            if n == 0:
                return None
            if self._t0 is None:
                self._t0 = now
            if self._pending is not None and self._slot % n == 0:
                self._adopt_pending()
                continue
            start, end = due_slots(self._slot, n, self.interval, self._t0, now)
            if budget is not None:
                end = min(end, start + budget)
            if self._pending is None:
                self._submit(start, end)
                self._slot = end
                return slot_time(end, n, self.interval, self._t0)
            boundary = -(-self._slot // n) * n  # end of the current round
            if start < boundary:
                self._submit(start, min(end, boundary))
                if budget is not None:
                    budget -= min(end, boundary) - start
            if end < boundary or budget == 0:
                self._slot = min(end, boundary)
                return slot_time(self._slot, n, self.interval, self._t0)
            self._slot = boundary  # round finished: the new list takes over here

    def _adopt_pending(self) -> None:
        assert self._pending is not None
        assert self._t0 is not None
        boundary_time = slot_time(self._slot, len(self._targets), self.interval, self._t0)
        self._targets = self._pending
        self._t0 = boundary_time if self._targets else None
        self._slot = 0
        self._pending = self._keep = None

    def _submit(self, start: int, end: int) -> None:
        """Submit slots ``start..end-1``: in slices of one round each to a
        :class:`BatchProbe`, else one ``submit`` per target."""
        targets, n, keep = self._targets, len(self._targets), self._keep
        on_result = self.on_result
        submit_batch = getattr(self.probe, "submit_batch", None)  # see BatchProbe
        if keep is None and submit_batch is not None:
            slot = start
            while slot < end:
                round_number, first = divmod(slot, n)
                last = min(n, first + end - slot)
                submit_batch(targets, first, last, round_number, on_result)
                slot += last - first
            return
        submit = self.probe.submit
        for slot in range(start, end):
            target = targets[slot % n]
            if keep is None or target in keep:
                submit(target, on_result)

    async def run(self) -> None:
        """Probe until :meth:`stop` is called; one task, sleeping between due slots."""
        self._stopped = False
        while not self._stopped:
            next_at = self.poll(self._clock(), MAX_BATCH)
            now = self._clock()
            if next_at is None:
                delay = None
            elif next_at <= now:
                # Behind schedule (the loop was held up): send the rest in chunks of
                # MAX_BATCH and let the event loop read the replies in between, rather
                # than one burst of a whole round that overflows the receive queue and
                # holds the loop up again.
                delay = 0.0
            else:
                # Never wake more often than every BATCH_WINDOW seconds: with 10,000
                # targets per second the next slot is 100 µs away, and a wake-up per slot
                # costs more than the probes. A probe is sent at most BATCH_WINDOW late;
                # its timeout is counted from the actual send, so nothing is judged unfairly.
                delay = max(BATCH_WINDOW, next_at - now)
            await self._sleep(delay)

    def stop(self) -> None:
        """Make :meth:`run` return soon (at its next wake-up, which this triggers)."""
        self._stopped = True
        self._wake()

    async def _sleep(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (None: indefinitely) or until :meth:`_wake`."""
        if self._stopped:  # stop() was called while polling
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = None if delay is None else loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


__all__ = ["BATCH_WINDOW", "MAX_BATCH", "ProbeScheduler", "due_slots", "slot_time"]
