"""Retry delays for the reconciler (pure).

Exponential backoff with "equal jitter" from the AWS Architecture Blog,
"Exponential Backoff And Jitter" (Marc Brooker, 2015): half of the exponential
delay is fixed, the other half random, so delays always grow but retries of
many agents do not synchronise.
"""

from __future__ import annotations


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
