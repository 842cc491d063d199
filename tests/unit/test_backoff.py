"""The reconciler's retry schedule."""

from __future__ import annotations

import pytest

from goavail.dns.backoff import backoff_delay


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.0, 0.25),
        (1, 0.5, 0.375),
        (2, 0.0, 0.5),
        (3, 0.0, 1.0),
        (4, 0.999, 3.998),
        (7, 0.0, 15.0),
        (8, 0.0, 15.0),  # capped at 30 s before jitter
        (100, 0.0, 15.0),
        (10_000, 0.5, 22.5),
    ],
)
def test_schedule(attempt: int, jitter: float, expected: float) -> None:
    assert backoff_delay(attempt, jitter) == pytest.approx(expected)


def test_grows_then_caps() -> None:
    delays = [backoff_delay(a, 0.0) for a in range(1, 12)]
    assert delays == sorted(delays)
    assert max(backoff_delay(a, 0.999999) for a in range(1, 50)) <= 30.0


def test_custom_base_and_cap() -> None:
    assert backoff_delay(1, 0.0, base=2.0, cap=5.0) == 1.0
    assert backoff_delay(5, 0.0, base=2.0, cap=5.0) == 2.5


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.0), (1, 1.0), (1, -0.1)])
def test_rejects_bad_input(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        backoff_delay(attempt, jitter)
