"""Prometheus metrics of one agent: a custom collector over a :class:`Snapshot`.

Nothing is counted here: the agent's own state (targets, decisions, the reconciler,
the audit log's counts, the cluster's gossip counters, the O(1) probe counters of
:mod:`goavail.stats`) is read when Prometheus scrapes, so the probing hot path never
touches a metric object or a lock. Each agent has its own
:class:`prometheus_client.CollectorRegistry` (:func:`build_registry`), never the
global default one, so tests get a fresh registry with every agent.

Names follow the Prometheus conventions (``goavail_`` prefix, ``_total`` counters,
``_seconds`` units); docs/operating.md lists every one.
"""

from __future__ import annotations

import platform
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from goavail.dns.propagation import PROPAGATION_BUCKETS, PropagationView
from goavail.health import State
from goavail.stats import RTT_BUCKETS
from goavail.web.snapshot import ProviderView, Snapshot
from goavail.web.status import override_in_force, quorum_met

if TYPE_CHECKING:
    from goavail.web.ports import StateSource

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of the Prometheus text exposition format 0.0.4."""

DNS_OUTCOMES = ("planned", "applied", "already-done", "error")
RELOAD_RESULTS = ("applied", "rejected", "failed")
PEER_STATUSES = ("alive", "leaving", "left", "failed")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def families(snap: Snapshot) -> Iterator[Metric]:
    """Every goavail metric family of ``snap`` (pure: reads the snapshot only)."""
    yield from _agent(snap)
    yield from _targets(snap)
    yield from _probes(snap)
    yield from _dns(snap)
    yield from _config(snap)
    yield from _cluster(snap)
    yield from _side_effects(snap)
    if snap.propagation:
        yield from propagation_families(snap.propagation)
    yield from _floating_ips(snap)


def _floating_ips(snap: Snapshot) -> Iterator[Metric]:
    """``[[floating_ips]]``: each IP's target, the groups' convergence and counters."""
    if not snap.floating_ips:
        return
    target = GaugeMetricFamily(
        "goavail_floating_ip_target",
        "1 for the server a floating IP targets now (its current assignment).",
        labels=["group", "floating_ip", "address", "server"],
    )
    planned = GaugeMetricFamily(
        "goavail_floating_ip_planned",
        "1 for the server the plan wants a floating IP on.",
        labels=["group", "floating_ip", "address", "server"],
    )
    converged = GaugeMetricFamily(
        "goavail_floating_ips_converged",
        "1 when every floating IP of the group targets its planned server.",
        labels=["group"],
    )
    moves = CounterMetricFamily(
        "goavail_floating_ip_moves",
        "Floating IP re-targets by outcome: applied, error (dry-run moves are not counted).",
        labels=["group", "outcome"],
    )
    failed = CounterMetricFamily(
        "goavail_floating_ip_failed_passes",
        "Reconciler passes of the group that failed (a read or an assign).",
        labels=["group"],
    )
    for g in snap.floating_ips:
        for ip in g.ips:
            if ip.current is not None:
                target.add_metric([g.id, ip.name, ip.address, ip.current], 1.0)
            if ip.planned is not None:
                planned.add_metric([g.id, ip.name, ip.address, ip.planned], 1.0)
        converged.add_metric([g.id], 1.0 if g.converged else 0.0)
        moves.add_metric([g.id, "applied"], g.moves)
        moves.add_metric([g.id, "error"], g.failed_moves)
        failed.add_metric([g.id], g.failed_passes)
    yield from (target, planned, converged, moves, failed)


def _agent(snap: Snapshot) -> Iterator[Metric]:
    info = InfoMetricFamily("goavail_build", "goavail version and Python version (value 1).")
    info.add_metric([], {"version": snap.version, "python": platform.python_version()})
    yield info
    start = GaugeMetricFamily(
        "goavail_start_time_seconds", "Unix time at which the agent started, seconds."
    )
    start.add_metric([], snap.started_at)
    yield start
    dry = GaugeMetricFamily(
        "goavail_dry_run", "1 when the agent runs in dry-run mode (no DNS change is made)."
    )
    dry.add_metric([], 1.0 if snap.dry_run else 0.0)
    yield dry


def _targets(snap: Snapshot) -> Iterator[Metric]:
    # Per-target series are the bulk of a scrape (three per target): samples are added
    # directly, without the label-list handling of the *MetricFamily helpers.
    up = Metric(
        "goavail_target_up",
        "1 when this agent's health state of the target is up, 0 when down or unknown.",
        "gauge",
    )
    state = Metric(
        "goavail_target_state",
        "Health state of the target as seen by this agent: one series per target, "
        "labelled with its current state (unknown, up, down), value 1.",
        "gauge",
    )
    rtt = Metric(
        "goavail_target_rtt_seconds",
        "Round-trip time of the target's latest probe, when it succeeded, seconds.",
        "gauge",
    )
    counts: Counter[str] = Counter({s.value: 0 for s in State})
    up_add, state_add, rtt_add = up.add_sample, state.add_sample, rtt.add_sample
    for address, health, last, _ in snap.raw_targets:
        current = health.state.value
        counts[current] += 1
        up_add("goavail_target_up", {"target": address}, 1.0 if current == "up" else 0.0)
        state_add("goavail_target_state", {"target": address, "state": current}, 1.0)
        if last is not None and last.ok and last.rtt is not None:
            rtt_add("goavail_target_rtt_seconds", {"target": address}, last.rtt)
    yield up
    yield state
    yield rtt
    by_state = GaugeMetricFamily(
        "goavail_targets", "Targets by this agent's health state.", labels=["state"]
    )
    for name, count in sorted(counts.items()):
        by_state.add_metric([name], count)
    yield by_state
    override = GaugeMetricFamily(
        "goavail_target_override",
        "1 for each target under a maintenance override in force (own or a live peer's).",
        labels=["target", "mode"],
    )
    for address in snap.addresses:
        mode = override_in_force(snap, address)
        if mode.value != "auto":
            override.add_metric([address, mode.value], 1.0)
    yield override
    suppressed, waiting = snap.gate_counts
    damped = GaugeMetricFamily(
        "goavail_damping_suppressed_targets",
        "Targets flap damping keeps withdrawn (announced down while up) until their "
        "penalty decays.",
    )
    damped.add_metric([], suppressed)
    yield damped
    failback = GaugeMetricFamily(
        "goavail_failback_waiting_targets",
        "Recovered targets their failback gate keeps withdrawn (waiting for time or an operator).",
    )
    failback.add_metric([], waiting)
    yield failback
    transitions = CounterMetricFamily(
        "goavail_transitions",
        "Health state transitions of a target, by the state entered.",
        labels=["target", "to"],
    )
    for (target, to), count in sorted(snap.transitions.items()):
        transitions.add_metric([target, to], count)
    yield transitions


def _probes(snap: Snapshot) -> Iterator[Metric]:
    probes = CounterMetricFamily(
        "goavail_probes", "Probe results, by probe type and result.", labels=["type", "result"]
    )
    ok = sum(snap.rtt_counts)
    probes.add_metric([snap.probe_kind, "ok"], ok)
    probes.add_metric([snap.probe_kind, "failed"], snap.failed)
    yield probes
    histogram = HistogramMetricFamily(
        "goavail_probe_rtt_seconds",
        "Round-trip time of successful probes, seconds.",
        labels=["type"],
    )
    cumulative = list(accumulate(snap.rtt_counts))
    buckets = [(repr(b), float(c)) for b, c in zip(RTT_BUCKETS, cumulative, strict=False)]
    buckets.append(("+Inf", float(cumulative[-1])))
    histogram.add_metric([snap.probe_kind], buckets, snap.rtt_sum)
    yield histogram


def _dns(snap: Snapshot) -> Iterator[Metric]:
    changes = CounterMetricFamily(
        "goavail_dns_changes",
        "DNS changes made, failed or (dry-run) planned, by provider, action, result, dry_run.",
        labels=["provider", "action", "result", "dry_run"],
    )
    counts = dict(snap.dns_counts)
    views = snap.dns_providers
    for view in views:  # the usual series exist from the start
        for action in ("create", "delete", "update"):
            outcome = "planned" if snap.dry_run else "applied"
            counts.setdefault((view.name, action, outcome, snap.dry_run), 0)
    for (provider, action, outcome, dry_run), count in sorted(counts.items()):
        changes.add_metric([provider, action, outcome, _bool(dry_run)], count)
    yield changes
    per_provider: list[
        tuple[
            str,
            str,
            Callable[[ProviderView], float],
            type[GaugeMetricFamily] | type[CounterMetricFamily],
        ]
    ] = [
        (
            "goavail_dns_pending_changes",
            "Changes of the last plan not applied yet, by provider.",
            lambda v: len(v.pending),
            GaugeMetricFamily,
        ),
        (
            "goavail_dns_converged",
            "1 when the provider's last reconcile pass left DNS matching the plan.",
            lambda v: 1.0 if v.converged else 0.0,
            GaugeMetricFamily,
        ),
        (
            "goavail_reconcile_passes",
            "Reconcile passes run, by provider.",
            lambda v: v.passes,
            CounterMetricFamily,
        ),
        (
            "goavail_reconcile_failed_passes",
            "Reconcile passes that failed, by provider (each is retried with backoff).",
            lambda v: v.failed_passes,
            CounterMetricFamily,
        ),
        (
            "goavail_reconcile_unexpected_errors",
            "Exceptions in reconcile passes that are not provider errors (a provider's "
            "answer nobody foresaw, a bug), by provider; each failed its pass and was "
            "retried with backoff.",
            lambda v: v.unexpected_errors,
            CounterMetricFamily,
        ),
        (
            "goavail_reconcile_retries",
            "Consecutive failed reconcile passes right now, by provider (0 once DNS converged).",
            lambda v: v.retries,
            GaugeMetricFamily,
        ),
    ]
    for name, documentation, read, kind in per_provider:
        family = kind(name, documentation, labels=["provider"])
        for view in views:
            family.add_metric([view.name], read(view))
        yield family
    fail_open = GaugeMetricFamily(
        "goavail_fail_open",
        "1 for each name and record type where fail-open keeps every address.",
        labels=["name", "type"],
    )
    for case in snap.fail_open:
        fail_open.add_metric([case.name, case.type], 1.0)
    yield fail_open
    fail_closed = GaugeMetricFamily(
        "goavail_fail_closed",
        "1 for each name and record type that its all_down = fail-closed policy empties.",
        labels=["name", "type"],
    )
    for closed in snap.fail_closed:
        fail_closed.add_metric([closed.name, closed.type], 1.0)
    yield fail_closed
    held = GaugeMetricFamily(
        "goavail_brake_held_targets",
        "Down targets the mass-withdrawal brake keeps in DNS, by group (a pool, or "
        "'all targets'); no series while it holds nothing.",
        labels=["group"],
    )
    for engaged in snap.brake.engaged:
        held.add_metric([engaged.group], float(len(engaged.held)))
    yield held


def propagation_families(views: tuple[PropagationView, ...]) -> Iterator[Metric]:
    """``goavail_dns_propagation_seconds`` (histogram) and
    ``goavail_dns_lagging_servers`` (gauge), by provider; no series when no provider
    verifies (:func:`families` leaves them out then)."""
    histogram = HistogramMetricFamily(
        "goavail_dns_propagation_seconds",
        "Time from a decision to the last authoritative server serving the planned "
        "answer, seconds, by provider (served-answer verification).",
        labels=["provider"],
    )
    lagging = GaugeMetricFamily(
        "goavail_dns_lagging_servers",
        "Authoritative servers serving an old answer past the verify limit, by provider.",
        labels=["provider"],
    )
    for view in views:
        cumulative = list(accumulate(view.bucket_counts))
        buckets = [
            (repr(b), float(c)) for b, c in zip(PROPAGATION_BUCKETS, cumulative, strict=False)
        ]
        buckets.append(("+Inf", float(cumulative[-1])))
        histogram.add_metric([view.provider], buckets, view.seconds_sum)
        lagging.add_metric([view.provider], float(len(view.lagging)))
    yield histogram
    yield lagging


def _config(snap: Snapshot) -> Iterator[Metric]:
    reloads = CounterMetricFamily(
        "goavail_config_reloads",
        "Configuration reloads (SIGHUP), by result: applied, rejected (invalid), failed.",
        labels=["result"],
    )
    for result in RELOAD_RESULTS:
        reloads.add_metric([result], snap.reloads.get(result, 0))
    yield reloads
    if snap.last_reload is not None:
        last = GaugeMetricFamily(
            "goavail_config_last_reload_successful",
            "1 when the last reload was applied, 0 when it was rejected or failed.",
        )
        last.add_metric([], 1.0 if snap.last_reload.result == "applied" else 0.0)
        yield last


def _ok_failed(name: str, documentation: str, ok: int, failed: int) -> Metric:
    """A counter family with one series per ``result`` label, ``ok`` and ``failed``."""
    family = CounterMetricFamily(name, documentation, labels=["result"])
    family.add_metric(["ok"], ok)
    family.add_metric(["failed"], failed)
    return family


def _cluster(snap: Snapshot) -> Iterator[Metric]:
    cluster = snap.cluster
    if cluster is None:
        return
    # here, not at the top: the cluster layer (cryptography, msgpack: about 18 MB of
    # resident memory) is imported only by agents that run it (BENCHMARKS.md, issue 14)
    from goavail.cluster.service import CLUSTER_REJECT_REASONS
    from goavail.cluster.wire import REJECT_REASONS

    received = CounterMetricFamily(
        "goavail_gossip_messages",
        "Cluster messages received (notices, pulls and their replies), by result (accepted, "
        "rejected) and reject reason.",
        labels=["result", "reason"],
    )
    received.add_metric(["accepted", ""], cluster.counters.get("accepted", 0))
    for reason in (*REJECT_REASONS, *CLUSTER_REJECT_REASONS):
        received.add_metric(["rejected", reason], cluster.counters.get(f"rejected_{reason}", 0))
    yield received
    counters = cluster.counters
    yield _ok_failed(
        "goavail_gossip_published",
        "Verdict notices this agent sent as Serf user events, by result (ok, failed).",
        counters.get("published", 0),
        counters.get("publish_failed", 0),
    )
    yield _ok_failed(
        "goavail_gossip_pushes",
        "Notices this agent pushed straight to a live peer's sync port, by result (ok, failed).",
        counters.get("pushed", 0),
        counters.get("push_failed", 0),
    )
    yield _ok_failed(
        "goavail_gossip_pulls",
        "Pulls of peers' verdict vectors this agent sent, by result (ok, failed).",
        counters.get("pulls", 0) - counters.get("pull_failed", 0),
        counters.get("pull_failed", 0),
    )
    served = CounterMetricFamily(
        "goavail_gossip_pulls_served", "Pulls of this agent's verdict vector that peers sent."
    )
    served.add_metric([], cluster.counters.get("pulls_served", 0))
    yield served
    stale = CounterMetricFamily(
        "goavail_cluster_stale_holds",
        "Times this agent held its deletes because a live peer had announced votes "
        "not pulled yet (released when the pull lands).",
    )
    stale.add_metric([], cluster.counters.get("stale_holds", 0))
    yield stale
    peers = GaugeMetricFamily(
        "goavail_peers", "Peers by Serf member status (this agent excluded).", labels=["status"]
    )
    statuses: Counter[str] = Counter({s: 0 for s in PEER_STATUSES})
    statuses.update(cluster.member_status.values())
    for status, count in sorted(statuses.items()):
        peers.add_metric([status], count)
    yield peers
    conflicts = CounterMetricFamily(
        "goavail_cluster_name_conflicts",
        "Times Serf reported another member using this agent's node name.",
    )
    conflicts.add_metric([], cluster.name_conflicts)
    yield conflicts
    conflict = GaugeMetricFamily(
        "goavail_cluster_name_conflict",
        "1 while another Serf member uses this agent's node name (see the logs for its address).",
    )
    conflict.add_metric([], 1.0 if cluster.name_conflict is not None else 0.0)
    yield conflict
    connected = GaugeMetricFamily("goavail_serf_connected", "1 while connected to Serf's RPC.")
    connected.add_metric([], 1.0 if cluster.connected else 0.0)
    yield connected
    unmet = GaugeMetricFamily(
        "goavail_quorum_unmet",
        "1 when fewer peers are alive than min_peers_agree (no DNS change can be made).",
    )
    unmet.add_metric([], 1.0 if len(cluster.live) < snap.min_peers_agree else 0.0)
    yield unmet
    targets = GaugeMetricFamily(
        "goavail_targets_quorum_unmet",
        "Targets whose own verdict fewer than min_peers_agree live peers share (not acted on).",
    )
    targets.add_metric([], sum(1 for a in snap.addresses if quorum_met(snap, a) is False))
    yield targets


def _side_effects(snap: Snapshot) -> Iterator[Metric]:
    """Certificates of https checks, hooks, notifications and the heartbeat."""
    cert = GaugeMetricFamily(
        "goavail_check_cert_days_left",
        "Days until the certificate an https check last saw expires (negative: expired);"
        " goavail warns under 14 and logs an error under 7.",
        labels=["check", "target"],
    )
    for (check, target), days in sorted(snap.cert_days.items()):
        cert.add_metric([check, target], days)
    yield cert
    hooks = CounterMetricFamily(
        "goavail_hook_runs",
        "Hook runs by result (ok, failed: non-zero exit, timed_out, error: could not start).",
        labels=["result"],
    )
    stats = snap.hook_stats
    for result, key in (("ok", "ok"), ("failed", "failed"), ("timed_out", "timed_out")):
        hooks.add_metric([result], stats.get(key, 0))
    hooks.add_metric(["error"], stats.get("errors", 0))
    yield hooks
    hook_events = CounterMetricFamily(
        "goavail_hook_events",
        "Events handed to the hooks, by result (queued, dropped: the queue was full).",
        labels=["result"],
    )
    hook_events.add_metric(["queued"], stats.get("events", 0))
    hook_events.add_metric(["dropped"], stats.get("dropped", 0))
    yield hook_events
    notes = CounterMetricFamily(
        "goavail_notifications",
        "Notification messages per destination, by result (sent, failed, retried: re-sent"
        " POSTs, dropped: events never sent).",
        labels=["sink", "result"],
    )
    for sink, counters in sorted(snap.notify_stats.items()):
        for result in ("sent", "failed", "retried", "dropped"):
            notes.add_metric([sink, result], counters.get(result, 0))
    yield notes
    if snap.heartbeat is not None:
        beats = CounterMetricFamily(
            "goavail_heartbeats", "Heartbeat GETs by result (ok, failed).", labels=["result"]
        )
        beats.add_metric(["ok"], snap.heartbeat[0])
        beats.add_metric(["failed"], snap.heartbeat[1])
        yield beats


class AgentCollector(Collector):
    """Collects an agent's metrics: from a fresh snapshot, or from the one pinned by
    :meth:`render` (so the server can snapshot on the event loop and format elsewhere)."""

    def __init__(self, source: StateSource) -> None:
        self.source = source
        self.pinned: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        """The metric families (see :func:`families`)."""
        snap = self.pinned if self.pinned is not None else self.source.snapshot()
        yield from families(snap)


class AgentMetrics:
    """One agent's registry: goavail's collector plus the standard ``process_*`` metrics.

    Attributes:
        registry: a fresh :class:`CollectorRegistry` (never the global default).
        collector: the :class:`AgentCollector` registered in it.
    """

    def __init__(self, source: StateSource) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = AgentCollector(source)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        self._lock = threading.Lock()

    def render(self, snap: Snapshot) -> bytes:
        """The text exposition of the registry with ``snap`` pinned (thread-safe; may run
        in a worker thread, it reads only the snapshot and ``/proc``)."""
        with self._lock:
            self.collector.pinned = snap
            try:
                return generate_latest(self.registry)
            finally:
                self.collector.pinned = None
