"""First-state log lines: one by one for a few targets, summarised for thousands.

A target's *first* state — its first verdict (``unknown -> up``), its first decision,
a peer's first vote on it — is start-up news. With ten targets a line each is what an
operator reads; with 10,000 targets and four peers it is 70,000 INFO lines in the first
seconds (measured: ~1 CPU-second per agent, and the log is unreadable). So, per kind of
line, at most :data:`LIMIT` first-state lines per :data:`WINDOW` seconds are logged one
by one at INFO, as before; the others go to DEBUG (``--debug`` shows them all) and are
counted, and one INFO line sums them up: at the end of the window (verdicts,
decisions), or at the end of the pull that brought them (peers' votes).

Only first states pass through here. A *change* of a known state (``up -> down``, a
peer's vote turning, a decision flipping) is always logged at INFO, one line per
target, at any scale.

:class:`LineBudget` and :func:`describe` are pure (the caller passes the time);
:class:`FirstLines` is the thin part that logs and schedules the window's summary on
the running event loop; :class:`WarmUp` holds the agent's two kinds (verdicts,
decisions) and says when every target is decided.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from goavail.health import State

LIMIT: Final = 10
"""First-state lines of one kind logged one by one at INFO per window."""
WINDOW: Final = 1.0
"""Seconds of one window: the budget of :data:`LIMIT` lines refills after it."""
EXAMPLES: Final = 10
"""Targets named in a summary for each state other than "up" (the ones worth a look)."""


@dataclass(slots=True)
class Tally:
    """First-state lines sent to DEBUG since the last summary.

    Attributes:
        states: state ("up", "down", ...) -> how many.
        examples: state other than "up" -> the first :data:`EXAMPLES` targets in it.
        extra: further counts a caller keeps with the lines (e.g. "wait for votes").
    """

    states: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    extra: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Lines counted."""
        return sum(self.states.values())


class LineBudget:
    """Which first-state lines of one kind are logged one by one (pure: no clock reads).

    A window opens with the first line after the previous window has ended and lasts
    ``window`` seconds; its first ``limit`` lines are taken (logged at INFO), the rest
    are counted into a :class:`Tally` until :meth:`summary` hands it over.

    Args:
        limit: lines taken per window (>= 0).
        window: seconds (> 0).

    Raises:
        ValueError: ``limit`` < 0 or ``window`` <= 0.
    """

    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        if limit < 0 or window <= 0:
            raise ValueError("limit must be >= 0 and window > 0")
        self.limit = limit
        self.window = window
        self._ends = -float("inf")
        self._used = 0
        self._tally = Tally()

    def take(self, now: float, state: str, target: str, *extra: str) -> bool:
        """A first-state line of ``target`` in ``state`` at ``now`` (seconds, any
        monotonic clock): True to log it at INFO; False when it goes to DEBUG (then it
        is counted, with each of ``extra``, for the next :meth:`summary`)."""
        if now >= self._ends:
            self._ends = now + self.window
            self._used = 0
        if self._used < self.limit:
            self._used += 1
            return True
        tally = self._tally
        tally.states[state] += 1
        if state != "up":
            named = tally.examples.setdefault(state, [])
            if len(named) < EXAMPLES:
                named.append(target)
        if extra:
            tally.extra.update(extra)
        return False

    def note(self, *extra: str) -> None:
        """Count ``extra`` for the next summary (facts about lines already counted)."""
        self._tally.extra.update(extra)

    @property
    def window_ends(self) -> float:
        """When the current window ends (``-inf`` before the first line)."""
        return self._ends

    def summary(self) -> Tally | None:
        """The lines counted since the last call (and start counting afresh), or None
        when there were none."""
        tally = self._tally
        if not tally.states:
            return None
        self._tally = Tally()
        return tally


def describe(tally: Tally) -> str:
    """``tally``'s states as text, "up" first, then the others by name, each with up to
    :data:`EXAMPLES` of its targets: ``"9990 up, 10 down (192.0.2.7, 192.0.2.9)"``;
    and ``" and 12 more"`` after the examples when a state holds more targets."""
    parts = []
    for state, count in sorted(tally.states.items(), key=_up_first):
        text = f"{count} {state}"
        named = tally.examples.get(state)
        if named:
            more = f" and {count - len(named)} more" if count > len(named) else ""
            text += f" ({', '.join(named)}{more})"
        parts.append(text)
    return ", ".join(parts)


class FirstLines:
    """First-state lines of one kind for one logger: :meth:`level` says INFO within the
    budget and DEBUG beyond it; the summary of what went to DEBUG is logged at INFO when
    the window ends (a timer on the running event loop), or at once by :meth:`flush`
    (the end of a pull).

    Args:
        logger: where the summaries go (the caller logs the lines themselves).
        summarise: turns a tally into the summary's text (see :func:`describe`).
        budget: the line budget (default: :data:`LIMIT` per :data:`WINDOW`).
        clock: monotonic seconds.
        timed: summarise at the end of each window (False: only at :meth:`flush`).
    """

    def __init__(
        self,
        logger: logging.Logger,
        summarise: Callable[[Tally], str],
        budget: LineBudget | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timed: bool = True,
    ) -> None:
        self.logger = logger
        self.summarise = summarise
        self.budget = budget or LineBudget()
        self._clock = clock
        self._timed = timed
        self._timer: asyncio.TimerHandle | None = None

    def level(self, state: str, target: str, *extra: str) -> int:
        """The level of the first-state line of ``target`` (in ``state``):
        ``logging.INFO`` within the budget, else ``logging.DEBUG`` (then it is counted,
        with each of ``extra``, for the summary). At DEBUG with DEBUG off, the caller
        need not build the line at all."""
        if self.budget.take(self._clock(), state, target, *extra):
            return logging.INFO
        if self._timed and self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return logging.DEBUG  # no loop (a tool, a test): summarised at flush()
            delay = max(0.0, self.budget.window_ends - self._clock())
            self._timer = loop.call_later(delay, self.flush)
        return logging.DEBUG

    def flush(self) -> None:
        """Log the summary of the lines sent to DEBUG so far, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tally = self.budget.summary()
        if tally is not None:
            self.logger.info("%s", self.summarise(tally))


def _verdicts_summary(tally: Tally) -> str:
    waiting = tally.extra["waiting"]
    return (
        f"first verdicts on {tally.total} more targets: {describe(tally)}"
        + (f"; {waiting} of them wait for peers' votes" if waiting else "")
        + " (one line each at DEBUG)"
    )


def _decisions_summary(tally: Tally) -> str:
    return (
        f"first decisions on {tally.total} more targets: {describe(tally)} (one line each at DEBUG)"
    )


class WarmUp:
    """This agent's first-state lines: its first verdict on each target and the first
    decision on each target (:class:`FirstLines` each), and one INFO line once every
    configured target is decided: ``every target decided: 9990 up, 10 down, 4.2 s after
    start`` (again after a reload that added targets, once those are decided too).

    Args:
        logger: the agent's logger.
        targets: the configured targets.
        decisions: target -> decided state, a live mapping (the decision stage's).
        clock: monotonic seconds; the agent's start is the moment of construction.
    """

    def __init__(
        self,
        logger: logging.Logger,
        targets: Iterable[str],
        decisions: Mapping[str, State],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._decisions = decisions
        self._clock = clock
        self._started = clock()
        self._targets = set(targets)
        self.undecided = set(self._targets)
        """Configured targets that have had no decision so far."""
        self._announced = False
        self.verdicts = FirstLines(logger, _verdicts_summary, clock=clock)
        self.decisions = FirstLines(logger, _decisions_summary, clock=clock)

    def verdict(self, target: str, old: State, new: State) -> int:
        """Level of the line of ``target``'s verdict turning from ``old`` to ``new``:
        the budget's for a first verdict (``old`` unknown), INFO for any change."""
        if old is not State.UNKNOWN:
            return logging.INFO
        return self.verdicts.level(str(new), target)

    def waiting(self) -> None:
        """A first verdict logged at DEBUG has no decision yet (counted for its summary)."""
        self.verdicts.budget.note("waiting")

    def decision(self, target: str, state: State) -> int:
        """Level of the line of ``target``'s decision turning to ``state``: the budget's
        for its first decision, INFO for any later one. Call :meth:`check` after
        logging the line."""
        if target not in self.undecided:
            return logging.INFO
        self.undecided.discard(target)
        return self.decisions.level(str(state), target)

    def check(self) -> None:
        """Log ``every target decided`` if the last undecided target was just decided
        (after the summaries of the lines before it)."""
        if self.undecided or self._announced or not self._targets:
            return
        self._announced = True
        self.verdicts.flush()
        self.decisions.flush()
        counts = Counter(str(self._decisions.get(t, State.UNKNOWN)) for t in self._targets)
        self.logger.info(
            "every target decided: %s, %.1f s after start",
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=_up_first)),
            self._clock() - self._started,
        )

    def targets_changed(self, added: Iterable[str], removed: Iterable[str]) -> None:
        """A reload added and removed targets: added ones are undecided."""
        added = list(added)
        self._targets.difference_update(removed)
        self.undecided.difference_update(removed)
        self._targets.update(added)
        self.undecided.update(added)
        if added:
            self._announced = False
        self.check()

    def flush(self) -> None:
        """Log the pending summaries (at shutdown)."""
        self.verdicts.flush()
        self.decisions.flush()


def _up_first(item: tuple[str, int]) -> tuple[bool, str]:
    return (item[0] != "up", item[0])


__all__ = [
    "EXAMPLES",
    "LIMIT",
    "WINDOW",
    "FirstLines",
    "LineBudget",
    "Tally",
    "WarmUp",
    "describe",
]
