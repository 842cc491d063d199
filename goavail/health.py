"""The per-target health state machine, and the worst of several checks (pure: no I/O,
no clock reads).

States: ``UNKNOWN`` (just started or just added), ``UP``, ``DOWN``.

* A target becomes ``DOWN`` after exactly ``fall`` consecutive failed probes
  (the config's ``failure_threshold``). The Go original acted on failure
  ``fall + 1``; goavail follows the documented meaning.
* It becomes ``UP`` after exactly ``rise`` consecutive successful probes
  (``rise_threshold``, default ``fall``). This is the rise/fall hysteresis of
  HAProxy and Route 53 health checks (Route 53's "failure threshold" counts
  both directions).
* From ``UNKNOWN`` the same counts apply, so a fresh target is not trusted
  either way until it has shown ``rise`` successes or ``fall`` failures.

A probe result of the opposite kind resets the other counter.

With several checks per target (``[[checks]]``), each check has its own state
machine and :func:`worst_of` combines them (flipper's rule): down when any check
is down, up when all are up.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple


class State(enum.Enum):
    """Health of one target (and, after the decision stage, the cluster's verdict)."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


class Health(NamedTuple):
    """Health of one target: its state and the current run of equal probe results.

    Immutable (a named tuple: one is created per probe result, so it must be cheap).

    Attributes:
        state: current state.
        successes: consecutive successful probes ending with the latest one.
        failures: consecutive failed probes ending with the latest one.
        At most one of ``successes``/``failures`` is non-zero.
    """

    state: State = State.UNKNOWN
    successes: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, emitted by :func:`observe`.

    ``count`` is the length of the run that caused it (== rise or fall).
    """

    old: State
    new: State
    count: int


def observe(health: Health, ok: bool, *, fall: int, rise: int) -> tuple[Health, Transition | None]:
    """Fold one probe result into ``health``.

    Args:
        health: the target's health before the probe.
        ok: whether the probe succeeded.
        fall: consecutive failures that make the target DOWN (>= 1).
        rise: consecutive successes that make the target UP (>= 1).

    Returns:
        ``(new_health, transition)``; ``transition`` is None when the state did
        not change.

    Raises:
        ValueError: ``fall`` or ``rise`` is below 1.
    """
    if fall < 1 or rise < 1:
        raise ValueError(f"fall and rise must be >= 1, got fall={fall} rise={rise}")
    state = health.state
    if ok and state is State.UP:  # the steady state, once per probe: keep it cheap
        return Health(state, health.successes + 1, 0), None
    if ok:
        successes, failures = health.successes + 1, 0
        flips = health.state is not State.UP and successes >= rise
        new_state = State.UP if flips else health.state
        count = successes
    else:
        successes, failures = 0, health.failures + 1
        flips = health.state is not State.DOWN and failures >= fall
        new_state = State.DOWN if flips else health.state
        count = failures
    new = Health(new_state, successes, failures)
    return new, (Transition(health.state, new_state, count) if flips else None)


def worst_of(states: Iterable[State]) -> State:
    """The health of a target from the states of all its checks (flipper's "worst of").

    DOWN when any check is DOWN; UP when every check is UP (and there is at least
    one); UNKNOWN otherwise (some check has not decided yet and none is DOWN).

    >>> worst_of([State.UP, State.DOWN, State.UNKNOWN])
    <State.DOWN: 'down'>
    """
    seen_unknown = False
    seen_any = False
    for state in states:
        if state is State.DOWN:
            return State.DOWN
        seen_any = True
        if state is State.UNKNOWN:
            seen_unknown = True
    return State.UP if seen_any and not seen_unknown else State.UNKNOWN
