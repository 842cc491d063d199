"""``[Damping]`` and the ``failback`` keys: flap damping and gated failback (see
:mod:`goavail.gates` for what they do)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, PlainValidator, model_validator

from goavail.config.errors import _Problems
from goavail.config.values import _MODEL_CONFIG, Duration, Within, format_duration, parse_duration
from goavail.gates import AUTO, DampingSettings, Failback, FailbackMode, strictest

_FAILBACK_HINT = (
    "expected 'auto', 'manual', or a time up before the target is published again "
    "('5m', 'after 5m')"
)
_AFTER = re.compile(r"after\s*=?\s*(.+)", re.IGNORECASE)
_DELAY = Within(
    1.0,
    86400.0,
    below="shorter is no wait at all: use 'auto'",
    above="longer keeps a recovered target out for more than a day: use 'manual'",
)


def parse_failback(value: object) -> Failback:
    """A ``failback`` value: ``"auto"``, ``"manual"``, a duration (``"5m"``, ``300``)
    or ``"after 5m"`` (also ``"after = 5m"``): published again once up for that long.

    Raises:
        ValueError: anything else, or a wait outside 1s..24h.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("auto", "manual"):
            return Failback(FailbackMode(text.lower()))
        match = _AFTER.fullmatch(text)
        value = match.group(1).strip() if match else text
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(_FAILBACK_HINT)
    try:
        delay = parse_duration(value)
    except ValueError:
        raise ValueError(f"{_FAILBACK_HINT}, not {value!r}") from None
    return Failback(FailbackMode.AFTER, _DELAY.check(delay))


FailbackValue = Annotated[Failback, PlainValidator(parse_failback)]
"""A ``failback`` key's value (see :func:`parse_failback`)."""


_PENALTY = Within(
    1,
    1_000_000,
    below="a flap must add something",
    above="use the routers' scale: 1000 a flap",
    duration=False,
)
_HALF_LIFE = Within(
    1.0,
    86400.0,
    below="shorter forgets a flap before the next probe round",
    above="longer remembers one flap for days",
)
_MAX_SUPPRESS = Within(
    1.0,
    7 * 86400.0,
    below="shorter suppresses nothing",
    above="longer keeps a flapping target out for over a week",
)


class DampingSection(BaseModel):
    """``[Damping]``: flap damping after RFC 2439 (present: on; see :mod:`goavail.gates`).

    Every DOWN transition of a target adds ``penalty``; the penalty halves every
    ``half_life``; a flap that lifts it above ``suppress`` keeps the target withdrawn
    (announced down while its checks say up) until it has decayed to ``reuse``, at most
    ``max_suppress`` after the last flap.

    The defaults suit probes every few seconds: a target needs some 10 s to go down and
    up again (``failure_threshold`` and ``rise_threshold`` rounds), so four flaps within
    about a minute pass ``suppress`` (3 flaps: 2,920 at most) and keep it out for about
    12 minutes; one flap now and then (every half-life or less often) never suppresses.
    RFC 2439's own example scale (cut-off 3, reuse 0.75 flaps; routers' 2000/750 with a
    15-minute half-life) is for BGP routes; health checks flap faster and matter sooner.

    Attributes:
        enabled: false turns damping off while keeping the section (default true).
        penalty: added at each DOWN transition (default 1000).
        half_life: seconds in which a penalty halves (default 5 minutes).
        suppress: a flap lifting the penalty above this suppresses the target
            (default 3000; above ``reuse``, below the ceiling).
        reuse: a suppressed target is published again once its penalty is at or
            below this (default 750).
        max_suppress: the longest suppression after the last flap, seconds (default
            30 minutes); the penalty is capped at ``reuse * 2 ** (max_suppress /
            half_life)``.
    """

    model_config = _MODEL_CONFIG

    enabled: bool = True
    penalty: Annotated[float, _PENALTY] = 1000.0
    half_life: Annotated[Duration, _HALF_LIFE] = 300.0
    suppress: Annotated[float, _PENALTY] = 3000.0
    reuse: Annotated[float, _PENALTY] = 750.0
    max_suppress: Annotated[Duration, _MAX_SUPPRESS] = 1800.0

    @model_validator(mode="after")
    def _thresholds(self) -> DampingSection:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.suppress <= self.reuse:
            problems.append(
                (("suppress",), f"must be above reuse ({self.reuse:g}): else nothing is damped")
            )
        elif self.ceiling <= self.suppress:
            problems.append(
                (
                    ("max_suppress",),
                    f"too short: the penalty is capped at reuse * 2 ** (max_suppress / "
                    f"half_life) = {self.ceiling:g}, not above suppress ({self.suppress:g}), "
                    f"so nothing is ever suppressed; make it longer than "
                    f"{format_duration(self.half_life)} * log2(suppress / reuse)",
                )
            )
        if problems:
            raise _Problems(problems)
        return self

    @property
    def ceiling(self) -> float:
        """The largest penalty (see :attr:`goavail.gates.DampingSettings.ceiling`)."""
        return float(self.reuse * 2.0 ** min(self.max_suppress / self.half_life, 1000.0))

    def settings(self) -> DampingSettings | None:
        """The pure layer's settings, or None when ``enabled = false``."""
        if not self.enabled:
            return None
        return DampingSettings(
            penalty=self.penalty,
            half_life=self.half_life,
            suppress=self.suppress,
            reuse=self.reuse,
            max_suppress=self.max_suppress,
        )


def target_failback(
    pools: Sequence[tuple[Sequence[str], Failback | None]],
    names: Sequence[tuple[Sequence[int], Failback | None]],
) -> dict[str, Failback]:
    """Target -> its failback, for the targets whose pools or names set one (pure).

    Args:
        pools: per ``[[pools]]`` entry, its addresses and its ``failback`` (or None).
        names: per ``[[names]]`` entry, the indexes of its pools in ``pools`` and its
            ``failback`` (or None).

    A target in several pools, or serving several names, gets the strictest of their
    settings (:func:`goavail.gates.strictest`); the others follow the top-level
    ``failback``.
    """
    found: dict[str, list[Failback]] = {}
    for addresses, setting in pools:
        if setting is not None:
            for address in addresses:
                found.setdefault(address, []).append(setting)
    for indexes, setting in names:
        if setting is not None:
            for i in indexes:
                for address in pools[i][0]:
                    found.setdefault(address, []).append(setting)
    return {target: strictest(settings) for target, settings in found.items()}


__all__ = ["AUTO", "DampingSection", "FailbackValue", "parse_failback", "target_failback"]
