"""Table tests of the health state machine."""

from __future__ import annotations

import pytest

from goavail.health import Health, State, Transition, observe, worst_of

U, D, K = State.UP, State.DOWN, State.UNKNOWN


def run(results: str, *, fall: int, rise: int, start: Health | None = None) -> list[State]:
    """Feed 'o' (ok) / 'x' (fail) results; return the state after each one."""
    health = start or Health()
    states = []
    for ch in results:
        health, _ = observe(health, ch == "o", fall=fall, rise=rise)
        states.append(health.state)
    return states


@pytest.mark.parametrize(
    ("results", "fall", "rise", "expected"),
    [
        # down after EXACTLY fall failures (the Go original needed fall + 1)
        ("xxx", 3, 3, [K, K, D]),
        ("x", 1, 1, [D]),
        ("xx", 2, 2, [K, D]),
        # up after exactly rise successes, from unknown too
        ("ooo", 3, 3, [K, K, U]),
        ("oo", 3, 2, [K, U]),
        # a success resets the failure run
        ("xxoxxx", 3, 3, [K, K, K, K, K, D]),
        # hysteresis: once down, up needs rise successes in a row
        ("xxxoooo", 3, 2, [K, K, D, D, U, U, U]),
        ("xxxoxoo", 3, 2, [K, K, D, D, D, D, U]),
        # once up, down needs fall failures in a row
        ("ooxxoxxx", 3, 2, [K, U, U, U, U, U, U, D]),
        # rise 1: one success is enough
        ("xxxo", 3, 1, [K, K, D, U]),
    ],
)
def test_state_sequence(results: str, fall: int, rise: int, expected: list[State]) -> None:
    assert run(results, fall=fall, rise=rise) == expected


@pytest.mark.parametrize(
    ("start", "ok", "fall", "rise", "expected_health", "expected_transition"),
    [
        (Health(), False, 1, 1, Health(D, 0, 1), Transition(K, D, 1)),
        (Health(), True, 1, 1, Health(U, 1, 0), Transition(K, U, 1)),
        (Health(U, 4, 0), False, 2, 2, Health(U, 0, 1), None),
        (Health(U, 0, 1), False, 2, 2, Health(D, 0, 2), Transition(U, D, 2)),
        (Health(D, 0, 9), True, 2, 3, Health(D, 1, 0), None),
        (Health(D, 2, 0), True, 2, 3, Health(U, 3, 0), Transition(D, U, 3)),
        # staying in a state emits nothing and keeps counting
        (Health(D, 0, 5), False, 2, 2, Health(D, 0, 6), None),
        (Health(U, 7, 0), True, 2, 2, Health(U, 8, 0), None),
    ],
)
def test_observe_step(
    start: Health,
    ok: bool,
    fall: int,
    rise: int,
    expected_health: Health,
    expected_transition: Transition | None,
) -> None:
    assert observe(start, ok, fall=fall, rise=rise) == (expected_health, expected_transition)


def test_transitions_emitted_once_per_change() -> None:
    health = Health()
    transitions = []
    for ok in [False] * 5 + [True] * 5 + [False] * 2:
        health, t = observe(health, ok, fall=2, rise=3)
        if t:
            transitions.append((t.old, t.new))
    assert transitions == [(K, D), (D, U), (U, D)]


@pytest.mark.parametrize(("fall", "rise"), [(0, 1), (1, 0), (-1, 3)])
def test_rejects_bad_thresholds(fall: int, rise: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        observe(Health(), True, fall=fall, rise=rise)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([U], U),
        ([D], D),
        ([K], K),
        ([U, U, U], U),
        ([U, D], D),  # any check down: the target is down
        ([D, U], D),
        ([K, D], D),  # ... even while another check is still unknown
        ([U, K], K),  # every check must be up for up
        ([K, U, U], K),
        ([D, D], D),
        ([], K),  # no checks: nothing is known
    ],
)
def test_worst_of(states: list[State], expected: State) -> None:
    assert worst_of(states) is expected
    assert worst_of(iter(states)) is expected  # any iterable, read once
