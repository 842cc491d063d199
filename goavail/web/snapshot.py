"""A consistent, cheap copy of what the agent knows, taken on the event loop.

This module holds only values: the running agent builds a :class:`Snapshot`
(``Agent.snapshot``); nothing under :mod:`goavail.web` reads the agent itself.

The status page, ``/api/status`` and ``/metrics`` all start from a :class:`Snapshot`.
Taking one only copies references and dicts (no formatting, no per-target objects
beyond one small tuple), so it costs a few milliseconds even at 50,000 targets;
the expensive part (JSON, HTML, Prometheus text) then runs in a worker thread on
the snapshot, never on the live agent state, and the probing event loop is not
held up by a scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from goavail.brake import BrakeResult
from goavail.checks.base import ProbeResult
from goavail.config import CheckSection, Config
from goavail.decision import Override
from goavail.dns.model import Change, Explanation, FailClosed, FailOpen, Record
from goavail.dns.propagation import PropagationView
from goavail.gates import AUTO, Failback, GateView
from goavail.health import Health, State
from goavail.judges import Assignment
from goavail.overrides import OverrideEntry
from goavail.pools import Publication


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """The last SIGHUP reload: wall time (Unix seconds), result ("applied", "rejected" or
    "failed") and the problems or error text."""

    time: float
    result: str
    problems: tuple[str, ...] = ()


class TargetRow(NamedTuple):
    """One target: its address, health, latest probe result and ``since`` (Unix seconds)."""

    address: str
    health: Health
    last: ProbeResult | None
    since: float


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Cluster mode: gossip state (see :class:`goavail.cluster.service.Cluster`)."""

    event: str
    connected: bool
    live: frozenset[str]
    member_status: dict[str, str]
    counters: dict[str, int]
    plaintext: bool
    name_conflict: str | None = None
    """Address of another member using this node's name, while that conflict is in force."""
    name_conflicts: int = 0


@dataclass(frozen=True, slots=True)
class FloatingIpRow:
    """One floating IP of a group: its name, address, home location, the server it
    targets now and the one the plan wants (server names; None: unassigned / no plan)."""

    name: str
    address: str
    location: str
    current: str | None
    planned: str | None


@dataclass(frozen=True, slots=True)
class FloatingIpView:
    """One ``[[floating_ips]]`` group (see :class:`goavail.fip.reconcile.GroupReconciler`).

    Attributes:
        id: the group's id.
        servers: ``(name, address, location, decided state)`` per server.
        ips: the group's floating IPs.
        pending: servers whose health is not known yet (nothing is planned).
        all_down: every server is down (all considered healthy).
        dry_run: moves are only recorded (dry-run or ``read_only``).
        read_at: ``time.monotonic()`` of the last read, or None.
        last_error: the last failure, or None.
        moves, failed_moves, passes, failed_passes, held: counters.
    """

    id: str
    servers: tuple[tuple[str, str, str, State], ...]
    ips: tuple[FloatingIpRow, ...]
    pending: tuple[str, ...]
    all_down: bool
    dry_run: bool
    read_at: float | None
    last_error: str | None
    moves: int
    failed_moves: int
    passes: int
    failed_passes: int
    held: int

    @property
    def converged(self) -> bool:
        """Every floating IP targets its planned server."""
        return all(row.current == row.planned for row in self.ips if row.planned is not None)


@dataclass(frozen=True, slots=True)
class ProviderView:
    """One DNS provider of the run and its reconciler (see
    :class:`goavail.dns.reconcile.Reconciler` for the fields' meanings).

    Attributes:
        name: the provider's registry name (``cloudflare``, ``route53``, ...).
        names: how many names it publishes.
        read_at: ``time.monotonic()`` of its last complete read, or None.
        read_failed: its last pass could not read the records.
    """

    name: str
    names: int
    converged: bool
    pending: tuple[Change, ...]
    fail_open: tuple[FailOpen, ...]
    current: dict[str, list[Record]]
    read_at: float | None
    read_failed: bool
    retries: int
    passes: int
    failed_passes: int
    unexpected_errors: int
    last_error: str | None
    fail_closed: tuple[FailClosed, ...] = ()
    """Names emptied on purpose by their ``all_down = "fail-closed"`` policy."""
    explanations: tuple[Explanation, ...] = ()
    """The last plan's explanation of each name (:class:`goavail.dns.model.Explanation`)."""


@dataclass(frozen=True, slots=True)
class BackendView:
    """One backend of a failover proxy (``goavail proxy``).

    Attributes:
        address: ``"host:port"`` as configured.
        primary: connections go to it now.
        verdict: the checks' combined state (``"up"``, ``"down"``, ``"unknown"``), or
            ``""`` when no checks judge the backends.
        active: connections relayed to it now.
    """

    address: str
    primary: bool
    verdict: str
    active: int


@dataclass(frozen=True, slots=True)
class ProxyView:
    """A failover proxy (``goavail proxy``, see :mod:`goavail.proxy`), at one instant.

    Attributes:
        listen: the address it accepts on.
        relay: ``"splice"`` or ``"stream"``.
        phase: ``"serving"`` (a primary takes connections) or ``"selecting"``.
        primary: the serving primary, None while selecting.
        selections: primaries selected so far (the first included).
        failovers: selections that moved from one backend to another.
        selecting_for: seconds the current selection has lasted, None while serving.
        last_failover: Unix time of the last failover, or None.
        last_selection_seconds: seconds from the loss of the primary (or the start) to
            the gate's opening after the last selection (check and triggers included).
        active: connections being relayed; waiting: accepted, waiting for a primary.
        total: connections accepted; refused: closed without reaching any backend.
        bytes_up, bytes_down: bytes relayed to the backends, to the clients.
        max_connections: the connection limit.
        backends: every backend in configuration order.
    """

    listen: str
    relay: str
    phase: str
    primary: str | None
    selections: int
    failovers: int
    selecting_for: float | None
    last_failover: float | None
    last_selection_seconds: float | None
    active: int
    waiting: int
    total: int
    refused: int
    bytes_up: int
    bytes_down: int
    max_connections: int
    backends: tuple[BackendView, ...]


@dataclass(frozen=True, slots=True)
class ProxySnapshot:
    """What the proxy's HTTP side shows: ``wall`` (Unix seconds), the version, the
    process's start (Unix seconds) and each proxy."""

    wall: float
    version: str
    started_at: float
    proxies: tuple[ProxyView, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the HTTP side shows, copied at one instant (``wall``: Unix seconds,
    ``monotonic``: ``time.monotonic()``). Field meanings follow the agent's attributes.

    With several providers, ``provider`` names them all (``"cloudflare, route53"``) and
    the DNS fields (``pending`` ... ``last_error``) sum up every provider's (see
    :func:`combine`); each provider's own are in :attr:`dns_providers`."""

    wall: float
    monotonic: float
    node: str
    version: str
    started_at: float
    config: Config
    config_path: str
    provider: str
    probe_kind: str
    dry_run: bool
    names: tuple[str, ...]
    raw_targets: list[tuple[str, Health, ProbeResult | None, float]]
    """Plain tuples (the cheapest copy on the event loop); read :attr:`targets`."""
    local: dict[str, State]
    decisions: dict[str, State]
    effective: dict[str, State]
    peers: dict[str, dict[str, State]]
    min_peers_agree: int
    overrides: dict[str, OverrideEntry]
    peer_overrides: dict[str, dict[str, Override]]
    pending: tuple[Change, ...]
    fail_open: tuple[FailOpen, ...]
    brake: BrakeResult
    """What the mass-withdrawal brake holds (see :mod:`goavail.brake`)."""
    current: dict[str, list[Record]]
    read_at: float | None
    converged: bool
    retries: int
    passes: int
    failed_passes: int
    unexpected_errors: int
    last_error: str | None
    audit: tuple[dict[str, Any], ...]
    dns_counts: dict[tuple[str, str, str, bool], int]
    rtt_counts: tuple[int, ...]
    rtt_sum: float
    failed: int
    transitions: dict[tuple[str, str], int]
    reloads: dict[str, int]
    last_reload: ReloadOutcome | None
    cluster: ClusterView | None
    admin_api: bool
    cert_days: dict[tuple[str, str], float]
    """``(check id, target) -> days`` left on the certificate an https check last saw."""
    checks: tuple[tuple[str, dict[str, Health], dict[str, ProbeResult]], ...]
    """``[[checks]]``: ``(check id, target -> its health, target -> its last result)`` per
    check in configuration order; empty without checks (then :attr:`raw_targets` holds
    the single probe's health and result)."""
    hook_stats: dict[str, int]
    """The hooks' counters (:class:`goavail.hooks.HookStats` as a dict)."""
    notify_stats: dict[str, dict[str, int]]
    """Sink name (``slack_addr``, ``notifications[0]``) -> its counters
    (:class:`goavail.notify.SinkStats` as a dict)."""
    heartbeat: tuple[int, int] | None
    """``(ok, failed)`` GETs of the heartbeat, None when ``[Heartbeat]`` is not set."""
    dns_providers: tuple[ProviderView, ...] = ()
    floating_ips: tuple[FloatingIpView, ...] = ()
    """The ``[[floating_ips]]`` groups (empty without them)."""
    """Each provider of the run and its reconciler, in the run's order."""
    publication: Publication | None = None
    """The names, their pools (priority order) and the pools' targets of the running
    configuration (an immutable value the agent replaces on reload; None: one pool of
    every target under every name in :attr:`names`)."""
    gates: Mapping[str, GateView] = field(default_factory=dict)
    """Target -> its gates (:mod:`goavail.gates`), for the targets with a damping
    history or a closed failback gate; the others have none (penalty 0, gate open)."""
    gate_counts: tuple[int, int] = (0, 0)
    """``(suppressed, awaiting failback)`` targets."""
    failback: Mapping[str, Failback] = field(default_factory=dict)
    """Target -> its failback setting, where a pool or name sets one (the agent's
    table, replaced whole on reload: never mutated)."""
    failback_default: Failback = AUTO
    """The other targets' failback (the top-level ``failback``)."""
    propagation: tuple[PropagationView, ...] = ()
    """Served-answer verification, per provider that verifies (see
    :mod:`goavail.dns.propagation`)."""
    fail_closed: tuple[FailClosed, ...] = ()
    """Fail-closed cases of every provider, once per name and type."""
    check_sections: tuple[CheckSection, ...] = ()
    """The run's checks in configuration order (``[[checks]]``, or the one synthesized
    from ``--type``; references, not copies): what ``goavail explain`` shows of each."""
    assignment: Assignment | None = None
    """Which checks judge which targets with which ``(fall, rise)`` (the
    :class:`~goavail.checks.multi.CheckSet`'s, an immutable value; None: every check
    judges every target with its own thresholds)."""

    @property
    def targets(self) -> Iterator[TargetRow]:
        """The targets, in configuration order."""
        return map(TargetRow._make, self.raw_targets)

    @property
    def addresses(self) -> list[str]:
        """The configured targets, in configuration order."""
        return [row[0] for row in self.raw_targets]


class Combined(NamedTuple):
    """The DNS fields of a :class:`Snapshot` over several providers (see :func:`combine`)."""

    pending: tuple[Change, ...]
    fail_open: tuple[FailOpen, ...]
    current: dict[str, list[Record]]
    read_at: float | None
    converged: bool
    retries: int
    passes: int
    failed_passes: int
    unexpected_errors: int
    last_error: str | None


def combine(views: tuple[ProviderView, ...]) -> Combined:
    """Every provider's DNS state as one (pure): pending changes of all, fail-open cases
    once per name and type, the records of a name at any provider (each once), the
    oldest read (None while one provider has not read yet), converged when all are,
    the most consecutive failed passes, passes and errors summed, and the last errors
    prefixed by their provider (the provider's own when there is only one)."""
    if len(views) == 1:
        v = views[0]
        return Combined(
            v.pending,
            v.fail_open,
            v.current,
            v.read_at,
            v.converged,
            v.retries,
            v.passes,
            v.failed_passes,
            v.unexpected_errors,
            v.last_error,
        )
    fail_open = {(c.name, c.type): c for v in views for c in v.fail_open}
    current: dict[str, dict[tuple[str, str, str], Record]] = {}
    for v in views:
        for name, records in v.current.items():
            mine = current.setdefault(name, {})
            for record in records:
                mine.setdefault(record.key, record)
    reads = [v.read_at for v in views]
    errors = [f"{v.name}: {v.last_error}" for v in views if v.last_error]
    return Combined(
        tuple(c for v in views for c in v.pending),
        tuple(fail_open.values()),
        {name: list(records.values()) for name, records in current.items()},
        None
        if any(r is None for r in reads)
        else min((r for r in reads if r is not None), default=None),
        all(v.converged for v in views),
        max((v.retries for v in views), default=0),
        sum(v.passes for v in views),
        sum(v.failed_passes for v in views),
        sum(v.unexpected_errors for v in views),
        "; ".join(errors) or None,
    )
