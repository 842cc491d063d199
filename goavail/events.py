"""Typed audit events on one bus: what the agent tells the notifier and the hooks.

The agent publishes each event once (:meth:`Bus.publish`); every subscriber gets it
in subscription order, on the event loop, and must return at once (the notifier and
the hook runner only queue). :func:`goavail.compose.compose` subscribes
:meth:`goavail.notify.Notifier.on_event` and :meth:`goavail.hooks.HookRunner.on_event`;
a new consumer is one more subscriber, not one more call in the agent.

After serf's ``event_handler.go``: one-method handlers, and events as plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goavail.brake import BrakeResult
from goavail.dns.model import FailClosed, FailOpen
from goavail.dns.propagation import Lag


@dataclass(frozen=True, slots=True)
class AuditRecorded:
    """A DNS change was made or planned (dry-run): its audit record
    (:class:`goavail.dns.audit.AuditLog`'s dict)."""

    entry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FailOpenChanged:
    """Fail-open was engaged (``engaged``) or released for ``case.name``/``case.type``."""

    case: FailOpen
    engaged: bool


@dataclass(frozen=True, slots=True)
class FailClosedChanged:
    """Fail-closed was engaged (``engaged``: every address of ``case.name`` is down and
    its ``all_down`` policy withdraws them all) or released for ``case.name``/``case.type``."""

    case: FailClosed
    engaged: bool


@dataclass(frozen=True, slots=True)
class NameConflictChanged:
    """Another Serf member at ``other`` uses this agent's node name (``serf_quit``: this
    agent's Serf lost and shut down); ``other`` None: the conflict is resolved."""

    other: str | None
    serf_quit: bool


@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """Cluster membership changed: ``unmet`` when fewer than ``needed`` peers are ``live``."""

    unmet: bool
    live: int
    needed: int


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The agent started (``started``) or is stopping."""

    started: bool
    dry_run: bool
    provider: str
    targets: int
    names: Sequence[str]


@dataclass(frozen=True, slots=True)
class BrakeChanged:
    """The mass-withdrawal brake engaged (``engaged``: ``result`` says where) or released."""

    result: BrakeResult
    engaged: bool


@dataclass(frozen=True, slots=True)
class DampingChanged:
    """Flap damping suppressed ``target`` (``suppressed``: its ``penalty`` is above the
    suppress limit; ``reuse_in``: seconds until it has decayed to the reuse limit) or
    reused it (see :mod:`goavail.gates`)."""

    target: str
    suppressed: bool
    penalty: float
    reuse_in: float | None = None


@dataclass(frozen=True, slots=True)
class FailbackChanged:
    """``target`` is up again but its failback gate holds it (``waiting``: for
    ``wait_seconds`` more, or None: until an operator releases it), or the gate let it
    back (``released_by``: who released it, "" when its time ran out)."""

    target: str
    waiting: bool
    wait_seconds: float | None = None
    released_by: str = ""


@dataclass(frozen=True, slots=True)
class PropagationLagChanged:
    """An authoritative server of ``provider``'s zone has served an old answer past the
    verify limit (``lagging``), or serves the planned answers again (see
    :mod:`goavail.dns.propagation`)."""

    provider: str
    lag: Lag
    lagging: bool
    limit: float


AgentEvent = (
    AuditRecorded
    | FailOpenChanged
    | FailClosedChanged
    | NameConflictChanged
    | QuorumChanged
    | Lifecycle
    | BrakeChanged
    | DampingChanged
    | FailbackChanged
    | PropagationLagChanged
)
"""Every event the bus carries (not :class:`goavail.notify.events.Event`, the message a
notification sends)."""

Handler = Callable[[AgentEvent], None]
"""A subscriber: called with each event; returns at once, never blocks."""


class Bus:
    """Delivers each published event to every subscriber, in subscription order."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        """Add ``handler``; it gets every event published from now on."""
        self._handlers.append(handler)

    def publish(self, event: AgentEvent) -> None:
        """Hand ``event`` to every subscriber (a subscriber's exception propagates to the
        publisher, as a direct call's would)."""
        for handler in self._handlers:
            handler(event)


__all__ = [
    "AgentEvent",
    "AuditRecorded",
    "BrakeChanged",
    "Bus",
    "FailClosedChanged",
    "FailOpenChanged",
    "Handler",
    "Lifecycle",
    "NameConflictChanged",
    "PropagationLagChanged",
    "QuorumChanged",
]
