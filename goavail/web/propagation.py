"""Served-answer verification on the HTTP side (pure: reads :class:`PropagationView` values).

* ``/_health``: the ``propagation`` probe (:func:`propagation_check`), present when a
  provider verifies; unhealthy while a server lags past the limit (naming it) or the
  NS set cannot be resolved;
* ``/api/status``: ``propagation`` (:func:`propagation_document`): per provider its
  servers, the lagging ones and the histogram's count and sum; and per name row
  ``propagation`` (:func:`name_propagation`): per family ``propagated``, ``pending``
  or ``lagging`` with the servers still behind;
* ``/metrics``: :func:`goavail.web.metrics.propagation_families`;
* the status page: one warning per lagging server and a short line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from goavail.dns.propagation import (
    KeyState,
    PropagationView,
    describe_served,
)
from goavail.web.selfcheck import ProbeCheck


def _keys(keys: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{name} {rtype}" for name, rtype in keys]


def propagation_check(views: Sequence[PropagationView], now: float) -> ProbeCheck | None:
    """The ``propagation`` probe at ``now`` (``monotonic`` seconds), or None when no
    provider verifies."""
    if not views:
        return None
    errors: list[str] = []
    comments: list[str] = []
    for view in views:
        if view.problem is not None:
            errors.append(f"{view.provider}: {view.problem}")
        for lag in view.lagging.values():
            errors.append(
                f"{view.provider}: server {lag.source} has not served the planned answer of "
                f"{', '.join(_keys(lag.keys)[:5])} for {now - lag.since:.0f}s "
                f"(limit {view.limit:g}s): {lag.detail}"
            )
        behind = sum(1 for k in view.keys if k.behind)
        comments.append(
            f"{view.provider}: {len(view.sources)} source(s), "
            + (f"{behind} answer(s) not served everywhere yet" if behind else "all agree")
        )
    if errors:
        return ProbeCheck("propagation", False, "error", "; ".join(errors))
    return ProbeCheck("propagation", True, "; ".join(comments))


def propagation_document(views: Sequence[PropagationView], now: float) -> list[dict[str, Any]]:
    """``/api/status`` ``propagation``: one entry per provider that verifies."""
    return [
        {
            "provider": view.provider,
            "servers": list(view.sources),
            "limit": view.limit,
            "problem": view.problem,
            "answers": len(view.keys),
            "answers_behind": sum(1 for k in view.keys if k.behind),
            "lagging": [
                {
                    "server": lag.source,
                    "names": _keys(lag.keys),
                    "behind_seconds": max(0.0, now - lag.since),
                    "detail": lag.detail,
                }
                for lag in view.lagging.values()
            ],
            "propagations": view.count,
            "propagation_seconds_sum": view.seconds_sum,
        }
        for view in views
    ]


def key_document(view: PropagationView, key: KeyState, now: float) -> dict[str, Any]:
    """One family of one name: planned vs. served per source (also what ``explain`` shows)."""
    lagging = [s for s in key.behind if s in view.lagging]
    state = "propagated" if not key.behind else ("lagging" if lagging else "pending")
    return {
        "provider": view.provider,
        "type": key.key[1],
        "state": state,
        "planned": sorted(key.planned),
        "since_seconds": max(0.0, now - key.since),
        "seconds": None
        if key.propagated_at is None or key.decided_at is None
        else max(0.0, key.propagated_at - key.decided_at),
        "behind": list(key.behind),
        "servers": {
            source: {
                "agrees": state_.agrees,
                "served": describe_served(state_.served),
            }
            for source, state_ in key.sources.items()
        },
    }


def name_propagation(
    views: Sequence[PropagationView], name: str, now: float
) -> list[dict[str, Any]]:
    """A name row's ``propagation``: one :func:`key_document` per provider and family."""
    return [
        key_document(view, key, now) for view in views for key in view.keys if key.key[0] == name
    ]


def propagation_warnings(views: Sequence[PropagationView], now: float) -> list[dict[str, str]]:
    """The status page's warnings: one per lagging server, one per unresolvable NS set."""
    warnings: list[dict[str, str]] = []
    for view in views:
        if view.problem is not None:
            warnings.append({"kind": "dns", "message": f"{view.provider}: {view.problem}."})
        for lag in view.lagging.values():
            warnings.append(
                {
                    "kind": "dns",
                    "message": f"PROPAGATION LAGGING at {view.provider}: server {lag.source} "
                    f"has not served the planned answer of "
                    f"{', '.join(_keys(lag.keys)[:5])} for {now - lag.since:.0f}s "
                    f"({lag.detail}).",
                }
            )
    return warnings


__all__ = [
    "key_document",
    "name_propagation",
    "propagation_check",
    "propagation_document",
    "propagation_warnings",
]
