"""Hetzner Cloud label selectors: parsing and matching (pure).

The syntax of https://docs.hetzner.cloud/#label-selector (the Kubernetes label selector
grammar): comma-separated requirements, all of which must hold::

    env=prod        env==prod      the label has this value
    env!=prod                      the label is absent or has another value
    env                            the label is present
    !env                           the label is absent
    env in (a,b)                   the label's value is one of these
    env notin (a,b)                the label is absent or its value is none of these

goavail sends the selector text to the API unchanged (the API filters); the parser
validates the configuration, and the test suite's API stand-in filters with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = r"(?:[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?)"
_VALUE = r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?"
_TERM = re.compile(
    rf"""\s*(?:
        (?P<absent>!\s*{_KEY})
      | (?P<setkey>{_KEY})\s+(?P<setop>in|notin)\s*\((?P<set>[^()]*)\)
      | (?P<key>{_KEY})\s*(?:(?P<op>==|=|!=)\s*(?P<value>{_VALUE}))?
    )\s*(?:,|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement: ``op`` is ``"="``, ``"!="``, ``"exists"``, ``"!exists"``,
    ``"in"`` or ``"notin"``; ``values`` its value(s)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        value = labels.get(self.key)
        match self.op:
            case "=":
                return value == self.values[0]
            case "!=":
                return value != self.values[0]
            case "exists":
                return value is not None
            case "!exists":
                return value is None
            case "in":
                return value in self.values
            case _:  # notin
                return value not in self.values


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a label selector.

    >>> parse_selector("env=prod, role in (lb,web), !draining")  # doctest: +NORMALIZE_WHITESPACE
    (Requirement(key='env', op='=', values=('prod',)),
     Requirement(key='role', op='in', values=('lb', 'web')),
     Requirement(key='draining', op='!exists', values=()))

    Raises:
        ValueError: the text is empty or not a selector (the message says where).
    """
    if not text.strip():
        raise ValueError("must not be empty (e.g. 'role=lb,env=prod')")
    out: list[Requirement] = []
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(
                f"{text!r} is not a label selector: cannot read {text[pos:].strip()!r} "
                "(expected k=v, k!=v, k, !k, k in (a,b) or k notin (a,b), comma-separated)"
            )
        if m["absent"]:
            out.append(Requirement(m["absent"].lstrip("!").strip(), "!exists"))
        elif m["setkey"]:
            values = tuple(v.strip() for v in m["set"].split(","))
            if not all(re.fullmatch(_VALUE, v) and v for v in values):
                raise ValueError(f"{text!r}: the set of {m['setkey']!r} must list label values")
            out.append(Requirement(m["setkey"], m["setop"], values))
        elif m["op"]:
            op = "=" if m["op"] in ("=", "==") else "!="
            out.append(Requirement(m["key"], op, (m["value"] or "",)))
        else:
            out.append(Requirement(m["key"], "exists"))
        pos = m.end()
        if text[m.start() : m.end()].rstrip().endswith(",") and not text[pos:].strip():
            raise ValueError(f"{text!r} ends with a ',': a requirement is missing")
    return tuple(out)


def matches(requirements: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every requirement."""
    return all(r.matches(labels) for r in requirements)
