"""Flap damping (RFC 2439 arithmetic) and gated failback (goavail/gates.py), table-driven."""

from __future__ import annotations

import math

import pytest

from goavail.gates import (
    AUTO,
    Damped,
    DampingSettings,
    Failback,
    FailbackMode,
    Gate,
    Gates,
    decay,
    flap,
    reuse_at,
    settle,
    strictest,
    time_to_decay,
)
from goavail.health import State

# RFC 2439's example scale as routers count it: 1000 per flap, half-life 15 min,
# cut-off (suppress) 2000, reuse 750, maximum hold-down 60 min.
RFC = DampingSettings(penalty=1000, half_life=900, suppress=2000, reuse=750, max_suppress=3600)
UP, DOWN, UNKNOWN = State.UP, State.DOWN, State.UNKNOWN
MANUAL = Failback(FailbackMode.MANUAL)
# flaps at 10, 30 and 50 s: penalty 1000 * (2**(-40/900) + 2**(-20/900) + 1) at 50 s,
# down to the reuse limit after 900 * log2(p / 750) more seconds
REUSE_AFTER_3 = 50 + 900 * math.log2(1000 * (2 ** (-40 / 900) + 2 ** (-20 / 900) + 1) / 750)


def after(seconds: float) -> Failback:
    return Failback(FailbackMode.AFTER, seconds)


@pytest.mark.parametrize(
    ("penalty", "elapsed", "expected"),
    [
        (1000, 0, 1000),
        (1000, 900, 500),  # one half-life
        (3000, 1800, 750),  # two: the reuse limit
        (12000, 3600, 750),  # the ceiling decays to reuse in max_suppress
        (1000, 450, 1000 / math.sqrt(2)),
        (1000, -5, 1000),  # a clock out of order decays nothing
        (0, 900, 0),
    ],
)
def test_decay(penalty: float, elapsed: float, expected: float) -> None:
    assert decay(penalty, elapsed, 900) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("settings", "ceiling"),
    [
        (RFC, 12000),  # 750 * 2 ** (60 / 15)
        (DampingSettings(), 750 * 2**6),  # goavail's defaults: 5 min half-life, 30 min max
        (DampingSettings(1000, 60, 3000, 750, 120), 3000),
    ],
)
def test_ceiling(settings: DampingSettings, ceiling: float) -> None:
    assert settings.ceiling == pytest.approx(ceiling)
    assert time_to_decay(settings.ceiling, settings.reuse, settings.half_life) == pytest.approx(
        settings.max_suppress
    )


@pytest.mark.parametrize(
    ("flaps", "penalty", "suppressed"),
    [
        ([0], 1000, False),
        ([0, 0], 2000, False),  # at the cut-off, not above it
        ([0, 0, 0], 3000, True),
        ([0, 900], 1500, False),  # the first flap decayed to 500
        ([0, 900, 900], 2500, True),
        ([0, 1800, 3600], 1000 / 16 + 1000 / 4 + 1000, False),
        ([0] * 20, 12000, True),  # capped at the ceiling
    ],
)
def test_flaps_rfc_scale(flaps: list[float], penalty: float, suppressed: bool) -> None:
    damped = Damped()
    for at in flaps:
        damped = flap(damped, at, RFC)
    assert damped.penalty == pytest.approx(penalty)
    assert damped.suppressed is suppressed


@pytest.mark.parametrize(
    ("damped", "now", "penalty", "suppressed"),
    [
        (Damped(3000, 0, True), 900, 1500, True),
        (Damped(3000, 0, True), 1800, 750, False),  # at the reuse limit: reused
        (Damped(3000, 0, True), 1799, 3000 * 2 ** (-1799 / 900), True),
        (Damped(800, 0, False), 0, 800, False),
        (Damped(800, 0, False), 900, 400, False),  # 400 >= 750 / 2: kept
        (Damped(800, 0, False), 1800, 0, False),  # 200 < 750 / 2: forgotten
        (Damped(12000, 0, True), 3600, 750, False),
    ],
)
def test_settle(damped: Damped, now: float, penalty: float, suppressed: bool) -> None:
    settled = settle(damped, now, RFC)
    assert settled.penalty == pytest.approx(penalty)
    assert settled.suppressed is suppressed


def test_reuse_time_of_three_flaps() -> None:
    damped = Damped()
    for _ in range(3):
        damped = flap(damped, 100, RFC)
    assert reuse_at(damped, RFC) == pytest.approx(100 + 1800)
    assert reuse_at(Damped(1000, 0), RFC) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"penalty": 0},
        {"half_life": 0},
        {"reuse": 0},
        {"suppress": 750},  # not above reuse
        {"max_suppress": 0},
    ],
)
def test_settings_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DampingSettings(**kwargs)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ([], AUTO),
        ([AUTO, AUTO], AUTO),
        ([AUTO, after(60)], after(60)),
        ([after(300), after(60)], after(300)),
        ([after(300), MANUAL, AUTO], MANUAL),
    ],
)
def test_strictest(settings: list[Failback], expected: Failback) -> None:
    assert strictest(settings) == expected


@pytest.mark.parametrize(
    ("setting", "text"),
    [(AUTO, "auto"), (MANUAL, "manual"), (after(300), "after 5m"), (after(90), "after 90s")],
)
def test_failback_text(setting: Failback, text: str) -> None:
    assert str(setting) == text


# (time, what, expected published) with what: a checks' verdict, "tick" or "release"
Step = tuple[float, State | str, State]

T = "192.0.2.1"


@pytest.mark.parametrize(
    ("damping", "failback", "steps"),
    [
        # no gates: the checks' verdict as it is
        (None, AUTO, [(0, UP, UP), (10, DOWN, DOWN), (20, UP, UP)]),
        # after 60s: up only once up for a minute; a new DOWN restarts the wait
        (
            None,
            after(60),
            [
                (0, UP, UP),  # never down: at once
                (10, DOWN, DOWN),
                (20, UP, DOWN),
                (50, DOWN, DOWN),
                (60, UP, DOWN),
                (119, "tick", DOWN),
                (120, "tick", UP),
                (130, DOWN, DOWN),
            ],
        ),
        # manual: down until released; a release while still down lets it back when up
        (
            None,
            MANUAL,
            [
                (0, UP, UP),
                (10, DOWN, DOWN),
                (20, UP, DOWN),
                (9999, "tick", DOWN),
                (10000, "release", UP),
                (10010, DOWN, DOWN),
                (10020, "release", DOWN),
                (10030, UP, UP),
                (10040, DOWN, DOWN),  # a new outage: the release is used up
                (10050, UP, DOWN),
            ],
        ),
        # damping: the third quick flap suppresses; up again only at the reuse time
        (
            RFC,
            AUTO,
            [
                (0, UP, UP),
                (10, DOWN, DOWN),
                (20, UP, UP),
                (30, DOWN, DOWN),
                (40, UP, UP),
                (50, DOWN, DOWN),  # 3000 * 2**(-40/900)-ish: above 2000
                (60, UP, DOWN),
                (1000, "tick", DOWN),
                (REUSE_AFTER_3 - 1, "tick", DOWN),
                (REUSE_AFTER_3, "tick", UP),
            ],
        ),
        # damping and manual failback: released, but still suppressed until reuse
        (
            RFC,
            MANUAL,
            [
                (0, DOWN, DOWN),
                (1, UP, DOWN),
                (2, "release", UP),
                (3, DOWN, DOWN),
                (4, UP, DOWN),
                (5, "release", UP),
                (6, DOWN, DOWN),  # third flap: suppressed
                (7, UP, DOWN),
                (8, "release", DOWN),
                (5000, "tick", UP),
            ],
        ),
    ],
)
def test_gates_sequence(
    damping: DampingSettings | None, failback: Failback, steps: list[Step]
) -> None:
    gates = Gates(damping, {T: failback})
    for at, what, expected in steps:
        if what == "tick":
            gates.tick(T, at)
        elif what == "release":
            gates.release(T, "api", at)
        else:
            assert isinstance(what, State)
            gates.observe(T, what, at)
        assert gates.published(T, at) is expected, (at, what)


def test_events_and_views() -> None:
    gates = Gates(RFC, {T: MANUAL})
    assert gates.observe(T, DOWN, 0) == []
    gates.observe(T, UP, 1)
    gates.observe(T, DOWN, 2)
    gates.observe(T, UP, 3)
    events = gates.observe(T, DOWN, 4)
    assert [e.kind for e in events] == ["suppressed"]
    assert events[0].at == pytest.approx(reuse_at(gates.state[T].damped, RFC))
    assert [e.kind for e in gates.observe(T, UP, 5)] == ["waiting"]
    view = gates.view(T, 5)
    assert view.suppressed and view.gate is Gate.OPERATOR and view.published is DOWN
    assert view.failback == "manual"
    assert gates.counts(5) == (1, 0)
    assert gates.deadline(T) == pytest.approx(view.reuse_at)
    assert view.reuse_at is not None
    assert [e.kind for e in gates.tick(T, view.reuse_at)] == ["reused"]
    assert gates.counts(view.reuse_at) == (0, 1)
    assert gates.published(T, view.reuse_at) is DOWN  # still waiting for the operator
    released = gates.release(T, "api", view.reuse_at + 1)
    assert released is not None and [e.kind for e in released] == ["released"]
    assert gates.published(T, view.reuse_at + 1) is UP
    assert gates.release(T, "api", view.reuse_at + 2) is None  # nothing to release
    assert gates.view(T, view.reuse_at + 2).gate is Gate.OPEN


def test_after_gate_view_and_deadline() -> None:
    gates = Gates(None, {T: after(300)})
    gates.observe(T, DOWN, 0)
    assert gates.view(T, 0).gate is Gate.WAITING and gates.view(T, 0).until is None
    assert [(e.kind, e.at) for e in gates.observe(T, UP, 10)] == [("waiting", 310)]
    assert gates.deadline(T) == 310
    assert gates.view(T, 100).until == 310
    assert gates.counts(100) == (0, 1)
    assert [e.kind for e in gates.tick(T, 310)] == ["opened"]
    assert gates.deadline(T) is None and gates.published(T, 310) is UP


def test_reload_turns_damping_off_and_changes_failback() -> None:
    gates = Gates(RFC, {})
    for at, state in enumerate([DOWN, UP, DOWN, UP, DOWN, UP]):
        gates.observe(T, state, at)
    assert gates.published(T, 6) is DOWN
    events = gates.configure(None, {}, 7)
    assert [e.kind for e in events] == ["reused"]
    assert gates.published(T, 7) is UP and gates.view(T, 7).penalty == 0
    gates.configure(None, {T: MANUAL}, 8)
    gates.observe(T, DOWN, 9)
    gates.observe(T, UP, 10)
    assert gates.published(T, 10) is DOWN
    gates.configure(None, {}, 11)  # manual -> auto: the gate opens
    assert gates.published(T, 11) is UP
    gates.forget(T)
    assert gates.published(T, 12) is UNKNOWN
