"""Choosing the primary (pure: no I/O, no clock reads).

flopsy's rules, with goavail's checks on top:

* the backends are tried in configuration order, from the first, every round (flopsy's
  ``handle_failover`` loop); a backend is a *candidate* unless the checks judge it
  DOWN (:func:`candidates`). The runtime then requires a candidate to accept a TCP
  connection and pass the check script before it becomes the primary;
* the primary is *lost* when a connect to it fails, or when the checks judge it DOWN;
  from then on no connection is relayed until a new primary is selected and every
  trigger has run (:class:`Selector`);
* a round that finds no primary is retried after :func:`backoff_delay`: 0.25 s,
  doubling, at most ``max_backoff`` (capped exponential backoff, as in AWS's
  "Exponential Backoff And Jitter", without the jitter: a single proxy has no herd to
  spread);
* with ``failback``, an earlier backend that the checks judge UP again replaces the
  primary (:func:`failback_target`); without it the primary stays until it fails.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from goavail.health import State

INITIAL_BACKOFF = 0.25
"""Seconds to wait after the first selection round that found no primary."""


def backoff_delay(attempt: int, *, cap: float, initial: float = INITIAL_BACKOFF) -> float:
    """Seconds to wait after the ``attempt``-th failed round in a row (0-based).

    ``initial * 2**attempt``, at most ``cap``.

    >>> [backoff_delay(n, cap=1.0) for n in range(4)]
    [0.25, 0.5, 1.0, 1.0]
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, not {attempt}")
    if attempt > 60:  # 2**60 * initial is beyond any cap; avoid huge floats
        return cap
    return min(cap, initial * 2.0**attempt)


def candidates(hosts: Sequence[str], verdicts: Mapping[str, State]) -> list[str]:
    """The backends a selection round tries, in order: every one the checks do not
    judge DOWN (a backend without a verdict, or UNKNOWN, is tried: the connect and
    the check script decide)."""
    return [host for host in hosts if verdicts.get(host, State.UNKNOWN) is not State.DOWN]


def failback_target(
    hosts: Sequence[str], primary: str | None, verdicts: Mapping[str, State]
) -> str | None:
    """The earlier backend to switch back to, or None.

    The first backend before ``primary`` in ``hosts`` that the checks judge UP (UNKNOWN
    does not count: a backend that just came back must have shown ``rise`` successes).
    """
    if primary is None or primary not in hosts:
        return None
    for host in hosts[: hosts.index(primary)]:
        if verdicts.get(host) is State.UP:
            return host
    return None


class Phase(enum.Enum):
    """``SELECTING``: no primary, nothing relayed; ``SERVING``: connections go to it."""

    SELECTING = "selecting"
    SERVING = "serving"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Selector:
    """The proxy's choice of primary, as a value (each event returns a new one).

    Attributes:
        phase: selecting or serving.
        primary: the backend connections go to (while serving), or the last one
            (while selecting; None before the first selection).
        attempt: selection rounds in a row that found no primary.
        selections: primaries selected so far (the first one included).
        failovers: selections that changed the primary from one backend to another.
        reason: why the current selection started (a log-ready text), or "".
    """

    phase: Phase = Phase.SELECTING
    primary: str | None = None
    attempt: int = 0
    selections: int = 0
    failovers: int = 0
    reason: str = "start"

    def lost(self, host: str, reason: str) -> Selector:
        """``host`` failed (a connect, or the checks' verdict): start selecting when it
        is the serving primary; otherwise nothing changes (a late report about a former
        primary, or one during a selection)."""
        if self.phase is not Phase.SERVING or host != self.primary:
            return self
        return replace(self, phase=Phase.SELECTING, attempt=0, reason=f"{host} {reason}")

    def switch(self, host: str) -> Selector:
        """Failback: leave the serving primary for ``host`` through a selection round
        (the candidate is checked and the triggers run, as for any selection)."""
        if self.phase is not Phase.SERVING or host == self.primary:
            return self
        return replace(self, phase=Phase.SELECTING, attempt=0, reason=f"failback to {host}")

    def round_failed(self, max_backoff: float) -> tuple[Selector, float]:
        """A round found no primary: the new value and the seconds to wait before the
        next round (:func:`backoff_delay`)."""
        delay = backoff_delay(self.attempt, cap=max_backoff)
        return replace(self, attempt=self.attempt + 1), delay

    def selected(self, host: str) -> Selector:
        """``host`` passed the connect and the check: it is the primary once the
        triggers have run (the runtime opens the gate only then)."""
        changed = self.primary is not None and host != self.primary
        return Selector(
            phase=Phase.SERVING,
            primary=host,
            attempt=0,
            selections=self.selections + 1,
            failovers=self.failovers + int(changed),
            reason="",
        )


__all__ = [
    "INITIAL_BACKOFF",
    "Phase",
    "Selector",
    "backoff_delay",
    "candidates",
    "failback_target",
]
