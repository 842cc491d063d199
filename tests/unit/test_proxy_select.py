"""The primary's selection as a value (goavail/proxy/select.py): backoff, candidates,
failback and the Selector's transitions, table-driven."""

from __future__ import annotations

import pytest

from goavail.health import State
from goavail.proxy.select import (
    INITIAL_BACKOFF,
    Phase,
    Selector,
    backoff_delay,
    candidates,
    failback_target,
)

A, B, C = "192.0.2.11:5432", "192.0.2.12:5432", "db.example:5432"
HOSTS = (A, B, C)
UP, DOWN, UNKNOWN = State.UP, State.DOWN, State.UNKNOWN


@pytest.mark.parametrize(
    ("attempt", "cap", "expected"),
    [
        (0, 30.0, INITIAL_BACKOFF),
        (1, 30.0, 2 * INITIAL_BACKOFF),
        (3, 30.0, 8 * INITIAL_BACKOFF),
        (7, 30.0, 30.0),  # 32 s capped
        (6, 30.0, 16.0),
        (0, 0.25, 0.25),
        (2, 0.5, 0.5),
        (10_000, 5.0, 5.0),  # no overflow
    ],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, cap: float, expected: float) -> None:
    assert backoff_delay(attempt, cap=cap) == expected


def test_backoff_rejects_a_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, cap=1.0)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ({}, [A, B, C]),  # no checks: every backend, in order
        ({A: DOWN}, [B, C]),
        ({A: UNKNOWN, B: DOWN}, [A, C]),  # unknown is tried: connect and check decide
        ({A: DOWN, B: DOWN, C: DOWN}, []),
        ({A: UP, B: UP}, [A, B, C]),
    ],
)
def test_candidates_are_the_hosts_not_judged_down(
    verdicts: dict[str, State], expected: list[str]
) -> None:
    assert candidates(HOSTS, verdicts) == expected


@pytest.mark.parametrize(
    ("primary", "verdicts", "expected"),
    [
        (B, {A: UP}, A),
        (B, {A: UNKNOWN}, None),  # back, but not yet `rise` successes
        (B, {A: DOWN}, None),
        (C, {A: DOWN, B: UP}, B),
        (C, {A: UP, B: UP}, A),  # the earliest
        (A, {B: UP, C: UP}, None),  # nothing earlier than the first
        (None, {A: UP}, None),
        ("192.0.2.99:1", {A: UP}, None),  # not a configured backend
    ],
)
def test_failback_target_is_the_first_earlier_backend_judged_up(
    primary: str | None, verdicts: dict[str, State], expected: str | None
) -> None:
    assert failback_target(HOSTS, primary, verdicts) == expected


def test_first_selection_is_not_a_failover() -> None:
    start = Selector()
    assert (start.phase, start.primary, start.reason) == (Phase.SELECTING, None, "start")
    serving = start.selected(A)
    assert (serving.phase, serving.primary, serving.selections, serving.failovers) == (
        Phase.SERVING,
        A,
        1,
        0,
    )


def test_loss_selects_again_and_a_new_primary_counts_as_a_failover() -> None:
    serving = Selector().selected(A)
    lost = serving.lost(A, "refused a connection")
    assert (lost.phase, lost.primary, lost.reason) == (
        Phase.SELECTING,
        A,
        f"{A} refused a connection",
    )
    waited, delay = lost.round_failed(max_backoff=10.0)
    again, delay2 = waited.round_failed(max_backoff=10.0)
    assert (waited.attempt, delay, again.attempt, delay2) == (1, 0.25, 2, 0.5)
    new = again.selected(B)
    assert (new.phase, new.primary, new.attempt, new.selections, new.failovers) == (
        Phase.SERVING,
        B,
        0,
        2,
        1,
    )
    # the same backend selected again (it was only briefly away): no failover
    assert serving.lost(A, "x").selected(A).failovers == 0


@pytest.mark.parametrize(
    ("state", "host"),
    [
        (Selector(), A),  # selecting already: nothing to lose
        (Selector().selected(A), B),  # a report about a backend that is not the primary
        (Selector().selected(A).lost(A, "x"), A),  # a second report during the selection
    ],
)
def test_reports_that_do_not_concern_the_serving_primary_change_nothing(
    state: Selector, host: str
) -> None:
    assert state.lost(host, "down") is state


def test_switch_is_a_selection_towards_the_failback_target() -> None:
    serving = Selector().selected(A).lost(A, "x").selected(B)
    switching = serving.switch(A)
    assert (switching.phase, switching.reason) == (Phase.SELECTING, f"failback to {A}")
    assert serving.switch(B) is serving  # already there
    assert Selector().switch(A) == Selector()  # not serving: nothing to switch
    assert switching.selected(A).failovers == 2
