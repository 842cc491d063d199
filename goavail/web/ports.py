"""What the HTTP side needs of the running agent: values and small ports, never the agent.

:mod:`goavail.web` reads the agent only through these (the agent, or whatever a test
hands in, satisfies them structurally), so ``goavail.agent -> goavail.web`` is the
only direction of import between the two:

* :class:`StateSource`: a :class:`~goavail.web.snapshot.Snapshot` for the page, the
  status API and the metrics, and a :class:`HealthView` for ``/_health``;
* :class:`OverridePort`: ``POST /api/overrides``;
* :class:`FailbackPort`: ``POST /api/failback`` (release a target held by its failback
  gate, :mod:`goavail.gates`).
* :class:`ProxySource`: what ``goavail proxy``'s server shows (:mod:`goavail.web.proxy`).

Every method is called on the agent's event loop and must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from goavail.decision import Override
from goavail.health import State
from goavail.overrides import OverrideEntry
from goavail.web.snapshot import ProxySnapshot, ReloadOutcome, Snapshot

if TYPE_CHECKING:
    from goavail.brake import BrakeResult
    from goavail.cluster.service import Cluster
    from goavail.dns.propagation import PropagationView
    from goavail.dns.providers.base import Provider
    from goavail.dns.reconcile import Reconciler


@dataclass(frozen=True, slots=True)
class DnsLane:
    """One provider of the run, as ``/_health``'s ``dns`` probe reads it.

    Attributes:
        name: its registry name (``cloudflare``, ``route53``, ...).
        provider: the provider (the probe may read it once).
        reconciler: its reconciler (live object: read only).
        first_name: the first name it publishes (what the probe reads).
    """

    name: str
    provider: Provider
    reconciler: Reconciler
    first_name: str


@dataclass(frozen=True, slots=True)
class HealthView:
    """What ``/_health`` (:mod:`goavail.web.selfcheck`) reads, taken at one instant.

    Cheaper than a :class:`Snapshot` (a few references, no copy of per-target state), so
    the probing-round watch may take one several times a second.

    Attributes:
        config_path: the configuration file, as the agent was started with it.
        last_reload: the last SIGHUP reload, None before the first.
        interval: probing interval, seconds.
        targets: number of configured targets.
        results: probe results of the slowest check so far (a running count; see
            :attr:`goavail.checks.multi.CheckSet.results`).
        cluster: the cluster service in cluster mode, else None (live object: read only).
        min_peers_agree: peers whose vote a decision needs.
        dns: every provider of the run with its reconciler, in the run's order.
        brake: what the mass-withdrawal brake holds, or None when there is no brake.
        propagation: returns the served-answer verification of each provider that
            verifies (called only by ``/_health`` itself); None: none does, and
            ``/_health`` has no ``propagation`` probe.
    """

    config_path: str
    last_reload: ReloadOutcome | None
    interval: float
    targets: int
    results: int
    cluster: Cluster | None
    min_peers_agree: int
    dns: tuple[DnsLane, ...]
    brake: BrakeResult | None = None
    propagation: Callable[[], tuple[PropagationView, ...]] | None = None


class StateSource(Protocol):
    """Read side: what the page, ``/api/status``, ``/metrics`` and ``/_health`` show."""

    def snapshot(self, *, admin_api: bool = False) -> Snapshot:
        """A copy of the agent's state (no I/O; see :mod:`goavail.web.snapshot`)."""
        ...

    def health_view(self) -> HealthView:
        """The references ``/_health`` reads (no I/O)."""
        ...


@dataclass(frozen=True, slots=True)
class OverrideOutcome:
    """The answer to an override set through the API.

    Attributes:
        entry: this agent's override now (None: cleared, ``auto``).
        in_force: the combined override of the target (this agent's and its peers').
        effective: the state DNS should now reflect.
        persisted: whether the override was written to ``overrides_file``.
    """

    entry: OverrideEntry | None
    in_force: Override
    effective: State
    persisted: bool


class OverridePort(Protocol):
    """Write side: ``POST /api/overrides``."""

    def has_target(self, address: str) -> bool:
        """Whether ``address`` (canonical form) is a configured target."""
        ...

    def set_override(self, target: str, mode: Override, reason: str) -> OverrideOutcome:
        """Set (``auto``: clear) this agent's override of ``target``, source "api".

        Raises:
            OSError: the overrides file cannot be written (nothing changed then).
        """
        ...


@dataclass(frozen=True, slots=True)
class FailbackOutcome:
    """The answer to a failback release.

    Attributes:
        released: whether the target's gate was closed and is released now (False:
            nothing to release; it was never down, or is published already).
        published: the verdict this agent announces for it now.
        suppressed: whether flap damping still holds it (a release does not lift it).
        gate: its failback gate now ("open", "waiting", "operator").
    """

    released: bool
    published: State
    suppressed: bool
    gate: str


class FailbackPort(Protocol):
    """Write side: ``POST /api/failback``."""

    def has_target(self, address: str) -> bool:
        """Whether ``address`` (canonical form) is a configured target."""
        ...

    def release_failback(self, target: str, reason: str, source: str) -> FailbackOutcome:
        """Release ``target``'s failback gate (audited; ``source``: "api", "page", "cli")."""
        ...


class AgentPorts(StateSource, OverridePort, FailbackPort, Protocol):
    """Everything :class:`goavail.web.server.WebServer` is given."""


class ProxySource(Protocol):
    """Read side of ``goavail proxy``'s HTTP server (:mod:`goavail.web.proxy`)."""

    def proxy_snapshot(self) -> ProxySnapshot:
        """A copy of every proxy's state (no I/O)."""
        ...
