"""The reconciler's retry schedule, and reading what a server asks with ``Retry-After``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from goavail.dns.backoff import backoff_delay, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


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


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # delay-seconds (RFC 9110 §10.2.3: 1*DIGIT)
        ("60", 60.0),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("007", 7.0),
        ("-5", None),  # not 1*DIGIT
        ("+5", None),
        ("1.5", None),
        ("60s", None),
        ("\u0665", None),  # a non-ASCII digit (Arabic-Indic five)
        # absent or garbage
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("Mon 5", None),
        ("Sun, 06 Nov 99999 08:49:37 GMT", None),  # year out of range
        # IMF-fixdate, in the future, now and in the past
        ("Sun, 01 Mar 2026 12:01:00 GMT", 60.0),
        ("Sun, 01 Mar 2026 12:00:00 GMT", 0.0),
        ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        # obsolete forms (RFC 9110 §5.6.7): rfc850-date and asctime-date (UTC)
        ("Sunday, 01-Mar-26 12:02:00 GMT", 120.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),
        ("Sun Mar  1 12:00:30 2026", 30.0),
        # a numeric zone instead of GMT is still read correctly
        ("Sun, 01 Mar 2026 13:01:00 +0100", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_is_relative_to_the_given_now() -> None:
    later = NOW + timedelta(seconds=45)
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", later) == 15.0
    # a naive "now" is UTC, an aware one in another zone is converted
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", NOW.replace(tzinfo=None)) == 60.0
    plus2 = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", plus2) == 60.0


def test_parse_retry_after_huge_delay_is_left_to_the_caller() -> None:
    assert parse_retry_after("9" * 400, NOW) == math.inf
    assert parse_retry_after("86400", NOW) == 86400.0
