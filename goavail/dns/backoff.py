"""Retry delays for the reconciler, the providers and the notifiers (pure).

Exponential backoff with "equal jitter" from the AWS Architecture Blog,
"Exponential Backoff And Jitter" (Marc Brooker, 2015): half of the exponential
delay is fixed, the other half random, so delays always grow but retries of
many agents do not synchronise. And the wait a server asks for with an HTTP
``Retry-After`` header (RFC 9110 §10.2.3), in either of its forms.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def backoff_delay(attempt: int, jitter: float, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt``.

    Args:
        attempt: 1 for the first retry, 2 for the second, ...
        jitter: a random number in [0, 1) chosen by the caller (keeps this pure).
        base: the delay before the first retry, before jitter (seconds).
        cap: the largest delay (seconds).

    Returns:
        ``d/2 + jitter * d/2`` where ``d = min(cap, base * 2**(attempt-1))``.

    Raises:
        ValueError: ``attempt < 1`` or ``jitter`` outside [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    exp = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return exp / 2 + jitter * exp / 2


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header value; None if it says nothing usable.

    RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``, where
    delay-seconds is ``1*DIGIT`` (a non-negative integer). An HTTP-date is read
    with :func:`email.utils.parsedate_to_datetime`, which takes the preferred
    IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) and both obsolete forms of
    RFC 9110 §5.6.7: rfc850-date (``Sunday, 06-Nov-94 08:49:37 GMT``) and
    asctime-date (``Sun Nov  6 08:49:37 1994``). A date without a zone is UTC,
    as every HTTP-date is. Two-digit years follow RFC 5322 §4.3 (00-49 -> 20xx,
    50-99 -> 19xx as email.utils reads them), which differs from RFC 9110's
    "more than 50 years ahead" rule only for dates decades away, where the
    caller's cap or the zero floor decides anyway.

    Pure: ``now`` is passed in, no clock is read.

    Args:
        value: the header value (surrounding whitespace ignored), or None when absent.
        now: the current time, timezone-aware (a naive one is taken as UTC);
            used only for the HTTP-date form.

    Returns:
        Seconds (>= 0; a date in the past gives 0.0, a very long digit string
        may give ``inf``: the caller bounds the wait), or None for an absent,
        empty or unreadable value (``"soon"``, ``"-5"``, ``"1.5"``).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
