"""First-state lines (goavail.firstlines): the line budget, the summaries' text, and the
agent's warm-up lines (first verdicts, first decisions, "every target decided")."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from goavail.firstlines import EXAMPLES, LineBudget, Tally, WarmUp, describe
from goavail.health import State


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("limit", "window", "lines", "taken", "counted"),
    [
        # (time, state) of each line -> which were taken (INFO), what the summary counts
        (2, 1.0, [(0.0, "up"), (0.1, "up"), (0.2, "up")], [True, True, False], {"up": 1}),
        # the window refills the budget once it has ended (it starts at its first line)
        (
            2,
            1.0,
            [(0.0, "up"), (0.5, "up"), (0.9, "down"), (1.0, "up"), (1.1, "up"), (1.2, "up")],
            [True, True, False, True, True, False],
            {"down": 1, "up": 1},
        ),
        # a quiet gap: the next window starts with the next line, not on a grid
        (1, 1.0, [(0.0, "up"), (5.5, "up"), (6.4, "up")], [True, True, False], {"up": 1}),
        (0, 1.0, [(0.0, "up"), (0.0, "down")], [False, False], {"up": 1, "down": 1}),
        (10, 1.0, [(0.0, "up")] * 10, [True] * 10, None),
    ],
)
def test_budget_takes_the_first_lines_of_each_window(
    limit: int,
    window: float,
    lines: list[tuple[float, str]],
    taken: list[bool],
    counted: dict[str, int] | None,
) -> None:
    budget = LineBudget(limit, window)
    got = [budget.take(at, state, f"192.0.2.{i}") for i, (at, state) in enumerate(lines)]
    assert got == taken
    tally = budget.summary()
    if counted is None:
        assert tally is None
    else:
        assert tally is not None
        assert dict(tally.states) == counted
        assert tally.total == sum(counted.values())
        assert budget.summary() is None  # handed over once


def test_budget_names_a_few_targets_of_each_state_but_up() -> None:
    budget = LineBudget(0, 1.0)
    for i in range(EXAMPLES + 5):
        budget.take(0.0, "down", f"192.0.2.{i}")
        budget.take(0.0, "up", f"198.51.100.{i}")
    budget.note("waiting", "waiting")
    tally = budget.summary()
    assert tally is not None
    assert tally.examples == {"down": [f"192.0.2.{i}" for i in range(EXAMPLES)]}
    assert tally.extra == Counter({"waiting": 2})


@pytest.mark.parametrize(("limit", "window"), [(-1, 1.0), (1, 0.0), (1, -1.0)])
def test_budget_refuses_nonsense(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        LineBudget(limit, window)


@pytest.mark.parametrize(
    ("states", "examples", "text"),
    [
        ({"up": 9990}, {}, "9990 up"),
        (
            {"down": 2, "up": 3},
            {"down": ["192.0.2.1", "192.0.2.2"]},
            "3 up, 2 down (192.0.2.1, 192.0.2.2)",
        ),
        ({"down": 12}, {"down": ["192.0.2.1"]}, "12 down (192.0.2.1 and 11 more)"),
        ({"unknown": 1, "down": 1}, {}, "1 down, 1 unknown"),
    ],
)
def test_describe(states: dict[str, int], examples: dict[str, list[str]], text: str) -> None:
    assert describe(Tally(Counter(states), examples)) == text


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_warm_up_summarises_first_states_and_says_when_every_target_is_decided(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """25 targets: 10 first verdicts at INFO, 15 at DEBUG in one summary (no event loop
    here: the summary comes with the "every target decided" line); a later change is INFO."""
    clock = Clock()
    targets = [f"192.0.2.{i}" for i in range(1, 26)]
    decisions: dict[str, State] = {}
    warm = WarmUp(logging.getLogger("test.warm"), targets, decisions, clock=clock)
    levels = []
    with caplog.at_level(logging.DEBUG, logger="test.warm"):
        for i, t in enumerate(targets):
            state = State.DOWN if i == 20 else State.UP
            levels.append(warm.verdict(t, State.UNKNOWN, state))
            if levels[-1] == logging.DEBUG:
                warm.waiting()
        assert levels == [logging.INFO] * 10 + [logging.DEBUG] * 15
        assert warm.verdict(targets[0], State.UP, State.DOWN) == logging.INFO  # a change
        clock.now += 4.25
        for i, t in enumerate(targets):
            decisions[t] = State.DOWN if i == 20 else State.UP
            assert warm.decision(t, decisions[t]) == (logging.INFO if i < 10 else logging.DEBUG)
            warm.check()
        assert warm.decision(targets[3], State.DOWN) == logging.INFO  # not a first one
    assert _messages(caplog, logging.INFO) == [
        "first verdicts on 15 more targets: 14 up, 1 down (192.0.2.21); "
        "15 of them wait for peers' votes (one line each at DEBUG)",
        "first decisions on 15 more targets: 14 up, 1 down (192.0.2.21) (one line each at DEBUG)",
        "every target decided: 24 up, 1 down, 4.2 s after start",
    ]


def test_warm_up_again_after_a_reload_adds_targets(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    decisions: dict[str, State] = {}
    warm = WarmUp(
        logging.getLogger("test.warm"), ["192.0.2.1", "192.0.2.2"], decisions, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="test.warm"):
        for t in ("192.0.2.1", "192.0.2.2"):
            decisions[t] = State.UP
            warm.decision(t, State.UP)
            warm.check()
        warm.check()  # said once
        warm.targets_changed(["192.0.2.3"], ["192.0.2.2"])
        assert warm.undecided == {"192.0.2.3"}
        decisions["192.0.2.3"] = State.DOWN
        assert warm.decision("192.0.2.3", State.DOWN) == logging.INFO
        warm.check()
        # a reload that only removes the last undecided target completes the set too
        warm.targets_changed(["192.0.2.4"], [])
        warm.targets_changed([], ["192.0.2.4"])
    assert _messages(caplog, logging.INFO) == [
        "every target decided: 2 up, 0.0 s after start",
        "every target decided: 1 up, 1 down, 0.0 s after start",
        "every target decided: 1 up, 1 down, 0.0 s after start",
    ]


async def test_the_window_summary_is_logged_when_the_window_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On an event loop, the summary of a window's DEBUG lines comes at its end."""
    targets = [f"192.0.2.{i}" for i in range(1, 13)]
    warm = WarmUp(logging.getLogger("test.warm"), targets, {})
    warm.verdicts.budget = LineBudget(10, 0.05)
    with caplog.at_level(logging.INFO, logger="test.warm"):
        for t in targets:
            warm.verdict(t, State.UNKNOWN, State.UP)
        assert _messages(caplog, logging.INFO) == []
        await asyncio.sleep(0.2)
    assert _messages(caplog, logging.INFO) == [
        "first verdicts on 2 more targets: 2 up (one line each at DEBUG)"
    ]
