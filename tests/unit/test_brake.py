"""The mass-withdrawal brake (pure, table-driven)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goavail.brake import ALL_TARGETS, BrakeResult, Engaged, brake
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN
POOL = [f"192.0.2.{i}" for i in range(1, 11)]  # 10 targets


def down(*indexes: int) -> dict[str, State]:
    decisions = dict.fromkeys(POOL, U)
    decisions.update({POOL[i]: D for i in indexes})
    return decisions


def order(*indexes: int) -> dict[str, float]:
    """Down since: in the order given (the first went down first)."""
    return {POOL[i]: float(n) for n, i in enumerate(indexes)}


@pytest.mark.parametrize(
    ("decisions", "since", "share", "held"),
    [
        # nothing down, or no more than the share: nothing held
        (down(), {}, 0.5, []),
        (down(0, 1, 2, 3, 4), order(0, 1, 2, 3, 4), 0.5, []),
        # one more than half: the last to go down is held
        (down(0, 1, 2, 3, 4, 5), order(0, 1, 2, 3, 4, 5), 0.5, [5]),
        (down(0, 1, 2, 3, 4, 5), order(5, 4, 3, 2, 1, 0), 0.5, [0]),
        # all down: half go (the first five), the rest is held
        (down(*range(10)), order(*range(10)), 0.5, [5, 6, 7, 8, 9]),
        # unknown times count as the latest; ties by address
        (down(0, 1, 2, 3, 4, 5, 6), order(6, 5, 4, 3, 2), 0.5, [0, 1]),
        # octodns's 30 %: three may go
        (down(0, 1, 2, 3), order(0, 1, 2, 3), 0.3, [3]),
        # share 1: off
        (down(*range(10)), order(*range(10)), 1.0, []),
        # unknown states never count
        ({POOL[0]: D, **{t: K for t in POOL[1:]}}, {}, 0.05, [0]),
    ],
)
def test_one_pool(
    decisions: dict[str, State], since: dict[str, float], share: float, held: list[int]
) -> None:
    result = brake({"web": POOL}, decisions, since, max_down_share=share, min_targets=4)
    assert sorted(result.held) == sorted(POOL[i] for i in held)
    assert bool(result) == bool(held)


def test_the_engaged_group_is_described() -> None:
    result = brake(
        {"web": POOL}, down(*range(8)), order(*range(8)), max_down_share=0.5, min_targets=4
    )
    assert result == BrakeResult(
        frozenset(POOL[5:8]), (Engaged("web", 8, 10, 5, tuple(POOL[5:8])),)
    )


def test_small_groups_are_never_braked() -> None:
    small = POOL[:3]
    decisions = dict.fromkeys(small, D)
    result = brake({"db": small}, decisions, {}, max_down_share=0.5, min_targets=4)
    assert result == BrakeResult()


def test_all_targets_brakes_across_pools() -> None:
    """Each pool under its share, the fleet over it: the fleet's group holds."""
    a, b = POOL[:5], POOL[5:]
    decisions = down(0, 1, 5, 6, 7)  # 2 of 5 and 3 of 5 down: 40 %, 60 %
    since = order(0, 5, 1, 6, 7)
    groups = {"a": a, "b": b, ALL_TARGETS: POOL}
    result = brake(groups, decisions, since, max_down_share=0.6, min_targets=4)
    assert result.held == frozenset()
    result = brake(groups, decisions, since, max_down_share=0.4, min_targets=4)
    # pool b: 3 down, 2 allowed -> the last of b (7) held; the fleet: 5 down, 4 allowed
    # -> the last overall (7) held too
    assert result.held == {POOL[7]}
    assert [e.group for e in result.engaged] == ["b", ALL_TARGETS]


def test_drained_targets_are_not_held_nor_counted() -> None:
    decisions = down(0, 1, 2, 3, 4, 5)
    result = brake(
        {"web": POOL},
        decisions,
        order(0, 1, 2, 3, 4, 5),
        max_down_share=0.5,
        min_targets=4,
        exempt=[POOL[5]],
    )
    assert result == BrakeResult()


@pytest.mark.parametrize(("share", "minimum"), [(0.0, 4), (1.5, 4), (0.5, 0)])
def test_bad_settings_raise(share: float, minimum: int) -> None:
    with pytest.raises(ValueError):
        brake({}, {}, {}, max_down_share=share, min_targets=minimum)


@given(
    states=st.lists(st.sampled_from([U, D, K]), min_size=1, max_size=40),
    share=st.floats(min_value=0.01, max_value=1.0),
    minimum=st.integers(min_value=1, max_value=10),
    data=st.data(),
)
def test_never_more_withdrawn_than_the_share(
    states: list[State], share: float, minimum: int, data: st.DataObject
) -> None:
    """Random pools, states and down times: what the brake lets go is at most the share
    of a large enough pool, it holds only down targets, and the earliest go first."""
    targets = [f"10.0.0.{i}" for i in range(len(states))]
    decisions = dict(zip(targets, states, strict=True))
    since = {t: data.draw(st.floats(0, 100), label=t) for t in targets}
    result = brake({"p": targets}, decisions, since, max_down_share=share, min_targets=minimum)
    down = [t for t in targets if decisions[t] is D]
    assert result.held <= set(down)
    withdrawn = [t for t in down if t not in result.held]
    if len(targets) >= minimum and share < 1:
        assert len(withdrawn) <= math.floor(share * len(targets) + 1e-9)
        assert len(withdrawn) == min(len(down), math.floor(share * len(targets) + 1e-9))
        if withdrawn and result.held:
            assert max((since[t], t) for t in withdrawn) < min((since[t], t) for t in result.held)
    else:
        assert not result.held


def test_a_pool_may_have_its_own_share() -> None:
    decisions = down(0, 1, 2, 3)
    since = order(0, 1, 2, 3)
    assert (
        brake({"web": POOL}, decisions, since, max_down_share=0.5, min_targets=4) == BrakeResult()
    )
    result = brake(
        {"web": POOL}, decisions, since, max_down_share=0.5, min_targets=4, shares={"web": 0.3}
    )
    assert result.held == {POOL[3]}
