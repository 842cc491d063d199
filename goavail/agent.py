"""The agent runtime: runs the parts :mod:`goavail.compose` built, and swaps them on reload.

Data flows probes -> health -> decision -> reconciler -> provider. The agent holds
the per-target state, folds probe results into health (the hot path), hands verdicts
to the decision stage and, in cluster mode, to the cluster; it decides when this
agent writes a change itself (:meth:`Agent.hold`), fans events out to the notifier
and the hooks, and serves the HTTP side its ports (:mod:`goavail.web.ports`). It
builds nothing: :func:`goavail.compose.compose` makes it, and on SIGHUP its
:class:`Assembler` port builds the complete new set of parts before anything is
switched (a transactional reload).

Lifecycle (after uvicorn's ``server.py``): start (open sockets) -> run (one asyncio
event loop, a TaskGroup holding the probe scheduler and the reconciler) -> on SIGHUP
reload -> on SIGTERM/SIGINT stop within a bounded grace period, restore the signal
handlers, flush the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from goavail import __version__
from goavail.brake import BrakeResult, brake
from goavail.checks.base import ProbeResult, ProbeSetupError
from goavail.checks.multi import CheckSet, Prepared, describe_check
from goavail.config import Config, ConfigError, DnsSection, PoolSection
from goavail.decision import DecisionStage, Override
from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, FailClosed, FailOpen
from goavail.dns.plan import NameSpec
from goavail.dns.providers.base import Provider
from goavail.dns.reconcile import Reconciler
from goavail.dns.registry import record_attributes
from goavail.errors import SetupError
from goavail.events import (
    AuditRecorded,
    BrakeChanged,
    Bus,
    DampingChanged,
    FailbackChanged,
    FailClosedChanged,
    FailOpenChanged,
    Lifecycle,
    NameConflictChanged,
    QuorumChanged,
)
from goavail.firstlines import WarmUp
from goavail.gates import GateEvent, Gates, GateView
from goavail.health import Health, State
from goavail.heartbeat import Heartbeat
from goavail.hooks import HookRunner
from goavail.judges import pool_checks
from goavail.notify import Notifier
from goavail.options import PROBE_KINDS, Options
from goavail.overrides import OverrideEntry, Overrides
from goavail.pools import Publication
from goavail.stats import ProbeStats
from goavail.web.ports import DnsLane, FailbackOutcome, HealthView, OverrideOutcome
from goavail.web.snapshot import ClusterView, ProviderView, ReloadOutcome, Snapshot, combine

if TYPE_CHECKING:
    from goavail.cluster.serf_agent import NameConflict
    from goavail.cluster.service import Cluster
    from goavail.dns.verifiers import VerifierSet
    from goavail.fip.runtime import FipRuntime
    from goavail.web.server import WebServer

log = logging.getLogger("goavail.agent")

STOP_GRACE = 4.0
"""Seconds the shutdown may take after SIGTERM before remaining work is abandoned."""
NOTIFY_FLUSH = 2.0
"""Seconds queued notifications (the "stopping" one included) may take to go out at stop."""


@dataclass(slots=True)
class TargetStatus:
    """What the agent knows of one target (read by logs, metrics and the status page).

    ``since``: wall-clock time (Unix seconds) of the last state change, or when the
    target was added.
    """

    health: Health = field(default_factory=Health)
    last: ProbeResult | None = None
    since: float = field(default_factory=time.time)


ReconcilerFactory = Callable[[str, Provider, tuple[NameSpec, ...], DnsSection], Reconciler]
"""``(provider name, provider, the specs it publishes, its section) -> its reconciler``
(:func:`goavail.compose.reconciler_factory`): one reconciler per provider."""


class Loaded(NamedTuple):
    """A configuration read again on SIGHUP: the file and its overrides file's entries."""

    config: Config
    overrides: Mapping[str, OverrideEntry]


@dataclass(slots=True)
class Parts:
    """The parts a reload may replace, all built from one configuration.

    Attributes:
        config: the validated configuration.
        sections: provider name -> its DNS section, for every provider of the run (in
            its order).
        publication: the names, their pools and the targets (see :mod:`goavail.pools`).
        audit: the audit log (a new one when ``audit_file`` changed).
        providers: provider name -> the DNS provider (a new one when its settings or
            the audit log changed), as ``sections``.
        overrides: the overrides file's entries.
        checks: a reload's prepared checks (``[[checks]]``, or the one ``--type``
            stands for), their new engines started (None at start-up).
    """

    config: Config
    sections: dict[str, DnsSection]
    publication: Publication
    audit: AuditLog
    providers: dict[str, Provider]
    overrides: Mapping[str, OverrideEntry] = field(default_factory=dict)
    checks: Prepared | None = None

    @property
    def section(self) -> DnsSection:
        """The first provider's section."""
        return next(iter(self.sections.values()))

    @property
    def provider(self) -> Provider:
        """The first provider."""
        return next(iter(self.providers.values()))


class Assembler(Protocol):
    """The reload port (implemented by :class:`goavail.compose.Assembler`)."""

    def load(self) -> Loaded:
        """Read and check the configuration again.

        Raises:
            ConfigError: every problem found (the reload is rejected).
        """
        ...

    async def build(self, loaded: Loaded, running: Parts, checks: CheckSet) -> Parts:
        """The complete new set of parts; the running ones are reused when unchanged.

        Raises:
            Exception: a part cannot be built (the reload failed); whatever was built
                is closed again and ``running`` is untouched.
        """
        ...


class Agent:
    """One goavail agent: the runtime (see the module's docstring).

    Made by :func:`goavail.compose.compose` in two steps: the constructor takes the
    parts that call nothing back, :meth:`attach` the parts that call the agent's
    handlers (``on_result``, ``on_decision``, ``hold``, ...). Call ``await run()``; it
    returns when a stop signal arrived.

    Args:
        config: a validated configuration (see :func:`goavail.compose.load_checked`).
        options: command-line options.
        sections: provider name -> its DNS section, for every provider of the run
            (:func:`goavail.compose.sections_of`).
        node: this agent's node name.
        decision: the decision stage.
        notifier, heartbeat, hooks: started, reconfigured on reload and stopped here.
        bus: where the agent's events go (:mod:`goavail.events`; the notifier and the
            hooks subscribe to it).
        assembler: the reload port (:class:`Assembler`).

    Attributes (read by logs, status and metrics):
        targets: target -> :class:`TargetStatus` (with ``[[checks]]``, ``health.state``
            is the worst of the target's checks; per-check detail in ``checks``).
        checks: the ``[[checks]]`` (:class:`goavail.checks.multi.CheckSet`; empty
            without them): ``checks.status(target)``, ``checks.cert_days_left()``.
        hooks: the ``hooks_dir`` runner; ``hooks.stats`` holds its counters.

    Raises (from ``run``):
        goavail.checks.ProbeSetupError: probe sockets cannot be opened.
        goavail.web.ServerError: ``[Server] listen`` cannot be bound.
    """

    audit: AuditLog
    providers: dict[str, Provider]
    """Provider name -> the provider, in the run's order."""
    cluster: Cluster | None
    reconcilers: dict[str, Reconciler]
    """Provider name -> its reconciler (each runs as its own task)."""
    checks: CheckSet
    """The checks: ``[[checks]]``, or the one synthesized from ``--type``."""
    overrides: Overrides

    def __init__(
        self,
        *,
        config: Config,
        options: Options,
        sections: dict[str, DnsSection],
        publication: Publication,
        node: str,
        decision: DecisionStage,
        notifier: Notifier,
        heartbeat: Heartbeat,
        hooks: HookRunner,
        bus: Bus,
        assembler: Assembler,
    ) -> None:
        self.config = config
        self.options = options
        self.sections = dict(sections)
        self.publication = publication
        """The managed names, their pools and the targets (see :mod:`goavail.pools`)."""
        self.targets: dict[str, TargetStatus] = {a: TargetStatus() for a in publication.targets}
        self.brake_state = BrakeResult()
        """What the mass-withdrawal brake holds now (see :meth:`held`)."""
        self._down_since: dict[str, float] = {}
        """Target -> ``time.monotonic()`` of its DOWN decision (the brake's order)."""
        self._stale_hold = False
        """A delete was held because a peer's latest votes were not pulled yet."""
        self.node = node
        self.notifier = notifier
        self.heartbeat = heartbeat
        self.decision = decision
        self.hooks = hooks
        self.bus = bus
        self.assembler = assembler
        self._decided_at: dict[str, float] = {}
        self.warm_up = WarmUp(log, publication.targets, decision.decisions)
        """First verdicts and decisions: one line each for a few targets, summaries for
        thousands; ``every target decided`` once all are (see :mod:`goavail.firstlines`)."""
        self.started_at = time.time()
        self.probe_stats = ProbeStats()
        self.reloads: Counter[str] = Counter()
        self.last_reload: ReloadOutcome | None = None
        self._debug = log.isEnabledFor(logging.DEBUG)  # per-probe lines (read once)
        self.web: WebServer | None = None
        self.fips: FipRuntime | None = None
        """The ``[[floating_ips]]`` groups (:mod:`goavail.fip`), or None."""
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[bool]] = set()
        self._running = False
        """True once start-up is over (the reload a SIGHUP asks for waits until then)."""
        self._reload_pending = False
        self._fail_open_at: dict[tuple[str, str], set[str]] = {}
        """(name, record type) -> the providers whose last plan fails it open."""
        self._fail_closed_at: dict[tuple[str, str], set[str]] = {}
        """(name, record type) -> the providers whose last plan fails it closed."""
        self._group: asyncio.TaskGroup | None = None
        """The running task group (None before ``run``): a reload adds reconcilers to it."""
        self._reconciling: dict[str, asyncio.Task[None]] = {}
        """Provider name -> the task running its reconciler."""
        self.gates = Gates(
            config.damping_settings(), config.failback_settings(), default=config.failback
        )
        """Flap damping and gated failback between the checks and the verdict this
        agent announces (:mod:`goavail.gates`); kept across reloads, not restarts."""
        self._gate_timers: dict[str, asyncio.TimerHandle] = {}
        """Target -> the wake-up at its gates' next deadline (reuse, failback wait)."""
        self.verifiers: VerifierSet | None = None
        """The served-answer verifiers (see :meth:`attach`)."""

    def attach(
        self,
        *,
        audit: AuditLog,
        providers: dict[str, Provider],
        cluster: Cluster | None,
        reconcilers: dict[str, Reconciler],
        make_reconciler: ReconcilerFactory,
        checks: CheckSet,
        overrides: Overrides,
        file_overrides: Mapping[str, OverrideEntry],
        verifiers: VerifierSet | None = None,
    ) -> None:
        """Take the parts that call this agent's handlers (``make_reconciler`` builds the
        reconciler of a provider a reload adds; ``verifiers`` are the served-answer
        verifiers, fed by the reconcilers); then apply the overrides file's entries
        (which may announce and re-plan at once)."""
        self.verifiers = verifiers
        self.audit, self.providers = audit, dict(providers)
        self.cluster = cluster
        self.reconcilers = dict(reconcilers)
        self.make_reconciler = make_reconciler
        self.checks = checks
        self.overrides = overrides
        overrides.replace(file_overrides, source="file")

    @property
    def provider(self) -> Provider:
        """The first provider of the run (the only one without a ``providers`` list)."""
        return next(iter(self.providers.values()))

    @property
    def reconciler(self) -> Reconciler:
        """The first provider's reconciler."""
        return next(iter(self.reconcilers.values()))

    @property
    def section(self) -> DnsSection:
        """The first provider's section."""
        return next(iter(self.sections.values()))

    @property
    def provider_names(self) -> str:
        """The providers of the run, for logs and the page: ``"cloudflare, route53"``."""
        return ", ".join(self.providers)

    def _trigger_all(self) -> None:
        """Ask every reconciler for a pass now (never blocks)."""
        for reconciler in self.reconcilers.values():
            reconciler.trigger()

    @property
    def parts(self) -> Parts:
        """The running parts a reload may replace."""
        return Parts(
            config=self.config,
            sections=dict(self.sections),
            publication=self.publication,
            audit=self.audit,
            providers=dict(self.providers),
        )

    # -- verdicts -----------------------------------------------------------------

    def on_checks_verdict(self, target: str, old: State, new: State, why: str) -> None:
        """The state of ``target`` changed (the worst of its checks; with ``--type``, its
        one synthesized check, see :class:`goavail.checks.multi.CheckSet`): log it and
        hand the verdict on."""
        status = self.targets.get(target)
        if status is None:
            return
        status.health = Health(new)
        status.since = time.time()
        if self.checks.single:
            self.probe_stats.transitions[(target, new.value)] += 1
        level = self.warm_up.verdict(target, old, new)  # a first verdict may be summarised
        if log.isEnabledFor(level):
            names = ", ".join(self.publication.names_of(target))
            extra = {"target": target, "state": str(new)}
            form = (
                "target %s %s -> %s %s (names: %s)"
                if self.checks.single
                else ("target %s %s -> %s: %s (names: %s)")
            )
            log.log(level, form, target, old, new, why, names, extra=extra)
        now = time.monotonic()
        self._gated(target, self.gates.observe(target, new, now), now, level)

    # -- gates: flap damping and gated failback (goavail/gates.py) -------------------

    def _gated(
        self, target: str, events: list[GateEvent], now: float, level: int = logging.INFO
    ) -> None:
        """After the gates of ``target`` moved: report their events, announce the
        gated verdict when it changed (``level``: that of the verdict's line, see
        :meth:`_verdict`), and wake up at their next deadline."""
        for event in events:
            self._gate_event(event, now)
        published = self.gates.published(target, now)
        if self.decision.local.get(target) is not published:
            self._verdict(target, published, level)
        self._schedule_gate(target, now)

    def _schedule_gate(self, target: str, now: float) -> None:
        timer = self._gate_timers.pop(target, None)
        if timer is not None:
            timer.cancel()
        deadline = self.gates.deadline(target)
        if deadline is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not running (tests drive the gates by hand)
            return
        # a millisecond late, so the penalty has surely decayed to the reuse limit
        delay = max(0.0, deadline - now) + 0.001
        self._gate_timers[target] = loop.call_later(delay, self._gate_due, target)

    def _gate_due(self, target: str) -> None:
        """A gate's deadline of ``target`` came (its suppression or failback wait ends)."""
        self._gate_timers.pop(target, None)
        if target not in self.targets:
            return
        now = time.monotonic()
        self._gated(target, self.gates.tick(target, now), now)

    def _gate_event(self, event: GateEvent, now: float) -> None:
        target = event.target
        extra = {"target": target, "gate": event.kind}
        if event.kind == "suppressed":
            reuse_in = None if event.at is None else max(0.0, event.at - now)
            log.warning(
                "DAMPING: target %s suppressed: penalty %.0f is above %g after its latest "
                "DOWN; kept withdrawn even while up, for about %.0fs (until the penalty "
                "decays to %g)",
                target,
                event.penalty,
                self.gates.damping.suppress if self.gates.damping else 0,
                reuse_in or 0,
                self.gates.damping.reuse if self.gates.damping else 0,
                extra=extra,
            )
            self.bus.publish(DampingChanged(target, True, event.penalty, reuse_in))
        elif event.kind == "reused":
            log.info(
                "damping: target %s reused: penalty %.0f at or below the reuse limit",
                target,
                event.penalty,
                extra=extra,
            )
            self.bus.publish(DampingChanged(target, False, event.penalty))
        elif event.kind == "waiting":
            setting = self.gates.failback_of(target)
            if event.at is None:
                log.warning(
                    "FAILBACK: target %s is up again but stays withdrawn until an operator "
                    "releases it (failback = %s): `goavail failback %s`, POST /api/failback "
                    "or the status page",
                    target,
                    setting,
                    target,
                    extra=extra,
                )
                self.bus.publish(FailbackChanged(target, True))
            else:
                wait = max(0.0, event.at - now)
                log.info(
                    "failback: target %s is up again; published once it has stayed up "
                    "%.0fs more (failback = %s)",
                    target,
                    wait,
                    setting,
                    extra=extra,
                )
                self.bus.publish(FailbackChanged(target, True, wait))
        elif event.kind == "released":
            log.info("failback: target %s released by %s", target, event.by, extra=extra)
            self.bus.publish(FailbackChanged(target, False, released_by=event.by))
        elif event.kind == "opened":
            log.info(
                "failback: target %s has stayed up long enough (failback = %s): published again",
                target,
                self.gates.failback_of(target),
                extra=extra,
            )
            self.bus.publish(FailbackChanged(target, False))

    def gate_view(self, target: str) -> GateView:
        """The gates of ``target`` now: penalty, suppressed, failback gate (the query a
        later ``goavail explain`` reads; see :meth:`goavail.gates.Gates.view`)."""
        return self.gates.view(target, time.monotonic())

    def release_failback(self, target: str, reason: str, source: str) -> FailbackOutcome:
        """An operator releases ``target``'s failback gate (see :class:`FailbackPort`):
        audited, logged, and the verdict announced when that lets it back."""
        now = time.monotonic()
        events = self.gates.release(target, source, now)
        if events is not None:
            self.audit.failback(target, reason=reason, source=source)
            self._gated(target, events, now)
        view = self.gates.view(target, now)
        return FailbackOutcome(
            released=events is not None,
            published=view.published,
            suppressed=view.suppressed,
            gate=view.gate.value,
        )

    def _verdict(self, target: str, state: State, level: int = logging.INFO) -> None:
        """This agent's verdict on ``target`` changed: on to the decision stage
        (``level``: that of the verdict's line, which the "no decision yet" line shares)."""
        decided = self.decision.update(target, state)
        if self.cluster is not None:
            self.cluster.publish(target, state)
        if decided is not None:
            self.on_decision(target, decided)
        elif self.cluster is not None and state is not State.UNKNOWN:
            if level != logging.INFO:
                self.warm_up.waiting()
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "no decision yet for %s: needs %d agreeing peer(s) (votes: %s)",
                    target,
                    self.decision.min_peers_agree,
                    self.cluster.describe_votes(target),
                    extra={"target": target},
                )

    def on_name_conflict(self, conflict: NameConflict | None) -> None:
        """Another Serf member uses this agent's node name (None: resolved): notify."""
        if conflict is None:
            self.bus.publish(NameConflictChanged(None, serf_quit=False))
        else:
            self.bus.publish(NameConflictChanged(conflict.other or "?", conflict.serf_quit))

    def on_quorum(self, unmet: bool, live: int, needed: int) -> None:
        """Cluster membership changed (``unmet``: fewer than ``needed`` live peers)."""
        self.bus.publish(QuorumChanged(unmet, live, needed))

    def on_audit_record(self, entry: dict[str, Any]) -> None:
        """Every audit record: to the notifier and the hooks (both return at once)."""
        self.bus.publish(AuditRecorded(entry))

    def on_fail_open(self, case: FailOpen, engaged: bool, provider: str = "") -> None:
        """Fail-open engaged or released for a name and family at ``provider``: to the
        notifier and the hooks once, when the first provider engages it and when the
        last one releases it (fail-open follows the decisions, the same at every
        provider)."""
        if _flipped(self._fail_open_at, (case.name, case.type), provider, engaged):
            self.bus.publish(FailOpenChanged(case, engaged))

    def on_fail_closed(self, case: FailClosed, engaged: bool, provider: str = "") -> None:
        """Fail-closed engaged or released for a name and family at ``provider``: to the
        notifier and the hooks once, as :meth:`on_fail_open`."""
        if _flipped(self._fail_closed_at, (case.name, case.type), provider, engaged):
            self.bus.publish(FailClosedChanged(case, engaged))

    def on_decision(self, target: str, state: State) -> None:
        """A decision changed (local verdict or, in cluster mode, a peer's vote)."""
        self._decided_at[target] = time.monotonic()
        if state is State.DOWN:
            self._down_since[target] = self._decided_at[target]
        else:
            self._down_since.pop(target, None)
        level = self.warm_up.decision(target, state)  # a first decision may be summarised
        if log.isEnabledFor(level):
            votes = f" (votes: {self.cluster.describe_votes(target)})" if self.cluster else ""
            log.log(level, "decision for %s: %s%s", target, state, votes, extra={"target": target})
        self.warm_up.check()
        self._trigger_all()
        if self.fips is not None:
            self.fips.trigger()

    def fip_verdict(self, target: str, state: State) -> None:
        """A floating-IP server's checked state changed (:mod:`goavail.fip.runtime`):
        the same decision path as a DNS target's verdict (quorum, gossip)."""
        self._verdict(target, state)

    def on_override(self, target: str) -> None:
        """This agent's own override of ``target`` changed: announce it and re-plan."""
        if self.cluster is not None:
            self.cluster.publish(target, self.decision.local.get(target, State.UNKNOWN))
        self._override_in_force(target)

    def on_peer_override(
        self, node: str, target: str, previous: Override, override: Override
    ) -> None:
        """A live peer announced (or lost) an override of ``target``."""
        self.audit.override(
            target,
            mode=override.value,
            previous=previous.value,
            reason=f"held by peer {node}",
            source=f"peer {node}",
        )
        self._override_in_force(target)

    def _override_in_force(self, target: str) -> None:
        self._decided_at[target] = time.monotonic()  # writers' grace starts again
        log.info(
            "override in force for %s: %s; DNS should reflect %s",
            target,
            self.decision.override_of(target),
            self.decision.effective.get(target, State.UNKNOWN),
            extra={"target": target},
        )
        self._trigger_all()

    def hold(self, change: Change, provider: str | None = None) -> float:
        """Cluster mode: seconds to wait before making ``change`` at ``provider``
        (default: the first) ourselves; each provider's reconciler asks for its own
        changes, so one provider's slow writes never hold another's.

        Of the agents that agree, the live one with the lowest node name writes at
        once; the others take over if the change still has not appeared, in name
        order: the agent of rank ``k`` (:meth:`DecisionStage.writer_rank`) waits
        ``k`` times ``writer_grace``, so a dead writer is replaced by one agent, not
        by every agreeing one at once (writes are idempotent, so a race costs an
        API call, never a wrong record). The grace runs from the later of the
        decision and the first pass that planned the change
        (:meth:`Reconciler.planned_since`): an agent that has held "up" for an
        hour and finds the record just deleted by agents that now see the target
        down waits for their votes (one gossip round) instead of re-creating it
        at once.

        A decision that is not backed right now (this agent's verdict and
        ``min_peers_agree`` live peers', see :meth:`DecisionStage.agreed`) is never
        written: held until it is, and the grace period starts again then.

        Freshness: a delete waits while a live peer has announced votes this agent
        has not pulled yet (:meth:`Cluster.behind`); the pull's landing triggers a
        pass (:meth:`on_caught_up`). Creates never wait.
        """
        target = change.record.content
        decision = self.decision.effective.get(target)
        members = self.config.members
        if decision is None or members is None:
            return 0.0
        if not self.decision.agreed(target):
            self._decided_at.pop(target, None)
            return math.inf
        if change.action == "delete" and self.cluster is not None:
            behind = self.cluster.behind()
            if behind:
                # a peer announced votes not pulled yet: they may replace the "down"
                # votes this delete rests on; wait for the pull (it triggers a pass)
                if not self._stale_hold:
                    log.info(
                        "holding deletes until the latest votes of %s are pulled",
                        ", ".join(behind),
                    )
                    self.cluster.counters["stale_holds"] += 1
                self._stale_hold = True
                return members.announce_interval
        rank = self.decision.writer_rank(self.node, target)
        if rank == 0:
            return 0.0
        now = time.monotonic()
        since = self._decided_at.setdefault(target, now)
        reconciler = self.reconcilers.get(provider or "", self.reconciler)
        planned = reconciler.planned_since(change)
        since = max(since, now if planned is None else planned)
        return rank * members.writer_grace - (now - since)

    def on_caught_up(self) -> None:
        """The view of every live peer's votes is current again: deletes held for it
        may go now (a pass is triggered only if one was held)."""
        if self._stale_hold:
            self._stale_hold = False
            self._trigger_all()

    def held(self) -> frozenset[str]:
        """The mass-withdrawal brake, read by the reconciler at each pass: the down
        targets whose withdrawal is held now (see :mod:`goavail.brake`).

        Off in cluster mode with ``min_peers_agree`` >= 1 (every decision there has a
        quorum of vantage points) and when the configuration has no brake
        (:meth:`Config.brake_settings`). Logs and publishes :class:`BrakeChanged` when
        it engages or releases.
        """
        settings = self.config.brake_settings()
        if settings is None or self.decision.min_peers_agree > 0:
            result = BrakeResult()
        else:
            result = brake(
                self.publication.groups(),
                self.decision.effective,
                self._down_since,
                max_down_share=settings.max_down_share,
                min_targets=settings.min_targets,
                exempt=[t for t, o in self.decision.overrides.items() if o is Override.DOWN],
                shares=self.publication.shares,
            )
        if result != self.brake_state:
            self._brake_changed(result)
        return result.held

    def _brake_changed(self, result: BrakeResult) -> None:
        before = self.brake_state
        self.brake_state = result
        for engaged in result.engaged:
            log.warning(
                "BRAKE: %d of %d targets of %s are down at once (more than %d): is this "
                "agent's own network degraded? Withdrawing %d, holding %s in DNS until "
                "fewer are down%s",
                engaged.down,
                engaged.size,
                engaged.group,
                engaged.allowed,
                engaged.allowed,
                ", ".join(engaged.held),
                " or peers agree" if self.cluster is not None else "",
                extra={"brake": engaged.group},
            )
        if before and not result:
            log.warning("BRAKE released: no group has more down targets than its share")
        if bool(before) != bool(result):
            self.bus.publish(BrakeChanged(result, bool(result)))

    # -- the HTTP side's ports (goavail.web.ports) ---------------------------------

    def snapshot(self, *, admin_api: bool = False) -> Snapshot:
        """Copy the agent's state (call on the agent's event loop; no I/O).

        Args:
            admin_api: whether write endpoints are enabled (a token is set).
        """
        stage = self.decision
        now = time.monotonic()
        views = tuple(
            ProviderView(
                name=name,
                names=len(r.specs),
                converged=r.converged,
                pending=r.pending,
                fail_open=r.fail_open,
                current=dict(r.current),
                read_at=r.read_at,
                read_failed=r.read_failed,
                retries=r.retries,
                passes=r.passes,
                failed_passes=r.failed_passes,
                unexpected_errors=r.unexpected_errors,
                last_error=r.last_error,
                fail_closed=r.fail_closed,
                explanations=r.explanations,
            )
            for name, r in self.reconcilers.items()
        )
        dns = combine(views)
        stats = self.probe_stats
        cluster = self.cluster
        view = None
        if cluster is not None:
            view = ClusterView(
                event=cluster.event,
                connected=cluster.connected,
                live=frozenset(cluster.live),
                member_status=dict(cluster.member_status),
                counters=dict(cluster.counters),
                plaintext=cluster.codec_is_plaintext,
                name_conflict=None
                if cluster.name_conflict is None
                else (cluster.name_conflict.other or "?"),
                name_conflicts=cluster.name_conflicts,
            )
        return Snapshot(
            wall=time.time(),
            monotonic=now,
            node=self.node,
            version=__version__,
            started_at=self.started_at,
            config=self.config,
            config_path=str(self.options.config_path),
            provider=self.provider_names,
            probe_kind=self.probe_kind,
            dry_run=self.options.dry_run,
            names=tuple(self.publication.names),
            raw_targets=self._rows(),
            local=dict(stage.local),
            decisions=dict(stage.decisions),
            effective=dict(stage.effective),
            peers={node: dict(votes) for node, votes in stage.peers.items()},
            min_peers_agree=stage.min_peers_agree,
            overrides=dict(self.overrides.entries),
            peer_overrides={node: dict(held) for node, held in stage.peer_overrides.items()},
            pending=dns.pending,
            fail_open=dns.fail_open,
            brake=self.brake_state,
            current=dns.current,
            read_at=dns.read_at,
            converged=dns.converged,
            retries=dns.retries,
            passes=dns.passes,
            failed_passes=dns.failed_passes,
            unexpected_errors=dns.unexpected_errors,
            last_error=dns.last_error,
            audit=tuple(self.audit.recent),
            dns_counts=dict(self.audit.counts),
            rtt_counts=tuple(stats.rtt_counts),
            rtt_sum=stats.rtt_sum,
            failed=stats.failed,
            transitions=dict(stats.transitions),
            reloads=dict(self.reloads),
            last_reload=self.last_reload,
            cluster=view,
            admin_api=admin_api,
            cert_days=self.checks.cert_days_left(),
            checks=() if self.checks.single else self.checks.copy_state(),
            hook_stats=asdict(self.hooks.stats),
            notify_stats={name: asdict(stats) for name, stats in self.notifier.stats.items()},
            heartbeat=(
                (self.heartbeat.ok, self.heartbeat.failed)
                if self.config.heartbeat is not None
                else None
            ),
            publication=self.publication,
            dns_providers=views,
            gates={t: self.gates.view(t, now) for t in self.gates.busy()},
            gate_counts=self.gates.counts(now),
            failback=self.gates.failback,
            failback_default=self.gates.default,
            propagation=self.verifiers.views() if self.verifiers is not None else (),
            fail_closed=tuple({(c.name, c.type): c for v in views for c in v.fail_closed}.values()),
            check_sections=tuple(c.section for c in self.checks.checks.values()),
            assignment=self.checks.assignment,
            floating_ips=() if self.fips is None else self.fips.views(),
        )

    def _rows(self) -> list[tuple[str, Health, ProbeResult | None, float]]:
        """``(address, health, last result, since)`` per target, in configuration order:
        with ``--type``, its check's health and result stand for the target's."""
        single = self.checks.single_check
        if single is None:
            return [(a, s.health, s.last, s.since) for a, s in self.targets.items()]
        health, last = single.health, single.last
        return [(a, health.get(a, Health()), last.get(a), s.since) for a, s in self.targets.items()]

    @property
    def probe_kind(self) -> str:
        """The engine ``--type`` chose (``icmp`` or ``tcp``), as metrics label it."""
        return PROBE_KINDS[self.options.probe_type]

    def health_view(self) -> HealthView:
        """The references ``/_health`` reads (no I/O, no copy)."""
        return HealthView(
            config_path=str(self.options.config_path),
            last_reload=self.last_reload,
            interval=self.config.interval,
            targets=len(self.targets),
            results=self.checks.results,
            cluster=self.cluster,
            min_peers_agree=self.decision.min_peers_agree,
            dns=tuple(
                DnsLane(
                    name,
                    self.providers[name],
                    reconciler,
                    reconciler.names[0] if reconciler.names else self.publication.names[0],
                )
                for name, reconciler in self.reconcilers.items()
            ),
            brake=self.brake_state if self.config.brake_settings() is not None else None,
            propagation=self.verifiers.views if self.verifiers else None,
        )

    def has_target(self, address: str) -> bool:
        """Whether ``address`` is a configured target."""
        return address in self.targets

    def set_override(self, target: str, mode: Override, reason: str) -> OverrideOutcome:
        """Set this agent's override of ``target`` from the API (see :class:`OverridePort`).

        Raises:
            OSError: the overrides file cannot be written (nothing changed then).
        """
        entry = self.overrides.set(target, mode, reason, source="api")
        return OverrideOutcome(
            entry=entry,
            in_force=self.decision.override_of(target),
            effective=self.decision.effective.get(target, State.UNKNOWN),
            persisted=self.overrides.path is not None,
        )

    # -- lifecycle ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask ``run`` to return (signal handlers call this)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the config file in the background (SIGHUP calls this). During start-up
        (Serf, notifications, hooks starting) the reload waits until start-up is over."""
        if not self._running:
            self._reload_pending = True
            log.info("SIGHUP during start-up: the reload runs once goavail has started")
            return
        task = asyncio.get_running_loop().create_task(self.reload())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        """Run until a stop is requested; then shut down within ``STOP_GRACE`` seconds.

        Raises:
            goavail.web.ServerError: ``[Server] listen`` cannot be bound
                (nothing else has started then).
        """
        if self.web is not None:
            await self.web.start()
        try:
            await self.checks.start()
            if self.fips is not None:
                await self.fips.start()
        except BaseException:
            if self.web is not None:
                await self.web.stop()
            raise
        # Signals are handled from the start-up line on, which names the PID to send
        # SIGHUP to: a signal during the rest of start-up is not fatal.
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGHUP: self.request_reload,
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        self._log_start()
        try:
            if self.cluster is not None:
                await self.cluster.start()
            await self.notifier.start()
            self.hooks.start()
        except BaseException:
            for sig in handlers:
                loop.remove_signal_handler(sig)
            if self.web is not None:
                await self.web.stop()
            raise
        self._notify_lifecycle(started=True)
        self._running = True
        if self._reload_pending:
            self._reload_pending = False
            self.request_reload()
        try:
            async with asyncio.TaskGroup() as tg:
                self._group = tg
                tasks = [
                    tg.create_task(self.checks.run(), name="checks"),
                    tg.create_task(self.heartbeat.run(), name="heartbeat"),
                ]
                for name, reconciler in self.reconcilers.items():
                    self._start_reconciler(name, reconciler)
                if self.cluster is not None:
                    tasks.append(tg.create_task(self.cluster.run(), name="cluster"))
                if self.web is not None:
                    tasks.append(tg.create_task(self.web.run(), name="web"))
                if self.verifiers is not None:
                    tasks.append(tg.create_task(self.verifiers.run(), name="verify"))
                if self.fips is not None:
                    tasks.append(tg.create_task(self.fips.run(), name="floating-ips"))
                await self._stop.wait()
                log.info("stopping")
                for task in [*tasks, *self._reconciling.values()]:
                    task.cancel()
        finally:
            self._group = None
            for sig in handlers:
                loop.remove_signal_handler(sig)
            for pending in list(self._background):
                pending.cancel()
            for timer in self._gate_timers.values():
                timer.cancel()
            self._gate_timers.clear()
            self._notify_lifecycle(started=False)
            flush = asyncio.create_task(self.notifier.close(NOTIFY_FLUSH), name="notify-flush")
            hooks = asyncio.create_task(self.hooks.close(NOTIFY_FLUSH), name="hooks-flush")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE):
                    if self.web is not None:
                        await self.web.stop()
                    if self.cluster is not None:
                        await self.cluster.stop()
                    await self.checks.close()
                    if self.fips is not None:
                        await self.fips.close()
                    for provider in self.providers.values():
                        await provider.close()
                    await flush
                    await hooks
            flush.cancel()  # only if STOP_GRACE ran out first
            hooks.cancel()
            self.audit.close()
            self.warm_up.flush()
            log.info("stopped")

    def _reconfigure(
        self,
        reconciler: Reconciler,
        provider: Provider,
        specs: tuple[NameSpec, ...],
        section: DnsSection,
    ) -> Awaitable[None]:
        """Give a running reconciler its reloaded provider and names, between two of its
        passes (the reconcilers are reconfigured side by side: one busy provider delays
        only its own)."""
        return _reconfigure_locked(
            reconciler, provider, specs, section, self.config.resync_interval
        )

    def _start_reconciler(self, name: str, reconciler: Reconciler) -> None:
        """Run ``reconciler`` as its own task of the running group: a provider that
        fails, waits out a ``Retry-After`` or hangs never holds another's passes."""
        if self._group is None:  # not running yet: run() starts it
            return
        self._reconciling[name] = self._group.create_task(
            reconciler.run(), name=f"reconciler-{name}"
        )

    def _notify_lifecycle(self, *, started: bool) -> None:
        self.bus.publish(
            Lifecycle(
                started=started,
                dry_run=self.options.dry_run,
                provider=self.provider_names,
                targets=len(self.targets),
                names=self.publication.names,
            )
        )

    def _log_start(self) -> None:
        c = self.config
        if c.checks:
            self._log_start_checks()
        else:
            log.info(
                "goavail %s (pid %d, SIGHUP to reload) starting: %d targets, names %s, "
                "provider %s%s, probe %s every %gs (timeout %gs), down after %d failures, "
                "up after %d successes",
                __version__,
                os.getpid(),
                len(self.targets),
                _names_summary(self.publication),
                self.provider_names,
                " (DRY-RUN: no DNS change will be made)" if self.options.dry_run else "",
                self.probe_kind,
                c.interval,
                c.timeout,
                c.failure_threshold,
                c.rise_threshold,
                extra={"pid": os.getpid()},
            )
        self._log_start_pools()
        if c.members is not None and self.cluster is not None:
            log.info(
                "cluster mode: node %s, notices %s, sync port %d, min_peers_agree %d, serf %s",
                self.node,
                self.cluster.event,
                c.members.sync_port_number,
                c.members.min_peers_agree,
                c.members.serf_rpc_addr or "started by goavail",
            )
        elif c.members is not None:
            log.info(
                "single node: [Members] lists no peers and no serf_rpc_addr, so no Serf is "
                "started and this agent's own verdicts decide (min_peers_agree = 0)"
            )

    def _log_start_checks(self) -> None:
        c = self.config
        log.info(
            "goavail %s (pid %d, SIGHUP to reload) starting: %d targets, names %s, "
            "provider %s%s, %d checks %s "
            "(a target is up when all are up, down when any is down)%s",
            __version__,
            os.getpid(),
            len(self.targets),
            _names_summary(self.publication),
            self.provider_names,
            " (DRY-RUN: no DNS change will be made)" if self.options.dry_run else "",
            len(c.checks),
            "per pool" if any(p.checks is not None for p in c.pools) else "per target",
            f"; --type {self.options.probe_type} is not used with [[checks]]"
            if self.options.probe_type != "ip"
            else "",
            extra={"pid": os.getpid()},
        )
        for check in c.checks:
            log.info(
                "check %s: %s every %gs (timeout %gs), down after %d failures, "
                "up after %d successes, judging %d of %d targets",
                check.id,
                describe_check(check),
                check.interval,
                check.timeout,
                check.fall,
                check.rise,
                len(self.checks.assignment.targets.get(check.id, ())),
                len(self.targets),
                extra={"check": check.id},
            )

    def _log_start_pools(self) -> None:
        """One line per ``[[pools]]`` entry that chooses its checks or thresholds."""
        sections = [self.checks.checks[i].section for i in self.checks.checks]
        for pool in self.config.pools:
            if _pool_judging(pool) == (None, None, None):
                continue
            log.info(
                "pool %s: %d targets judged by %s",
                pool.name,
                len(pool.addresses),
                ", ".join(
                    f"{check_id} (down after {fall} failures, up after {rise} successes)"
                    for check_id, (fall, rise) in pool_checks(sections, pool)
                ),
            )

    # -- reload -------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file; apply it if valid and buildable, else keep the running one.

        Transactional: the :class:`Assembler` loads the file, then builds the complete new
        set of parts (reusing the unchanged ones); only when both succeeded is the set
        swapped in (:meth:`_swap`, which cannot fail). A rejected file or a part that
        cannot be built leaves everything running as it was; the outcome is logged and
        kept for ``/_health`` and the metrics (:attr:`last_reload`, :attr:`reloads`).

        Returns True when the new configuration was applied.
        """
        async with self._reload_lock:
            log.info("SIGHUP: reloading %s", self.options.config_path)
            try:
                loaded = self.assembler.load()
            except ConfigError as exc:
                log.error(
                    "reload rejected, still running the previous configuration: %d problem(s)",
                    len(exc.problems),
                )
                for problem in exc.problems:
                    log.error("  %s", problem)
                where = f"{exc.path}: " if exc.path else ""
                self._reloaded("rejected", [where + problem for problem in exc.problems])
                return False
            try:
                parts = await self.assembler.build(loaded, self.parts, self.checks)
                await self._swap(parts)
            except (SetupError, ProbeSetupError, OSError) as exc:
                log.error("reload failed, still running the previous configuration: %s", exc)
                self._reloaded("failed", [str(exc)])
                return False
            except Exception as exc:  # a reload must never crash the agent
                log.exception("reload failed, still running the previous configuration: %s", exc)
                self._reloaded("failed", [str(exc)])
                return False
            self._reloaded("applied", [])
            return True

    def _reloaded(self, result: str, problems: list[str]) -> None:
        self.reloads[result] += 1
        self.last_reload = ReloadOutcome(time.time(), result, tuple(problems))

    async def _swap(self, parts: Parts) -> None:
        """Switch to ``parts`` (built by the assembler) at once, then close the parts they
        replace. Nothing here can fail before the switch is complete."""
        old, new = self.config, parts.config
        published = parts.publication
        old_targets = set(self.targets)
        new_targets = list(published.targets)
        added = [t for t in new_targets if t not in old_targets]
        removed = [t for t in old_targets if t not in set(new_targets)]
        prepared = parts.checks
        if prepared is None:  # nothing switched yet: the reload fails cleanly
            raise ValueError("the new parts hold no prepared checks")
        for t in removed:
            del self.targets[t]
            self.gates.forget(t)
            timer = self._gate_timers.pop(t, None)
            if timer is not None:
                timer.cancel()
            self.decision.forget(t)
            self._decided_at.pop(t, None)
            self._down_since.pop(t, None)
            if self.cluster is not None:
                self.cluster.forget_target(t)
        for t in added:
            self.targets[t] = TargetStatus()
        if added and self.cluster is not None:
            self.cluster.targets_added()
        self.warm_up.targets_changed(added, removed)
        self.config, self.sections, self.publication = new, dict(parts.sections), published
        now = time.monotonic()
        gate_events = self.gates.configure(
            new.damping_settings(), new.failback_settings(), now, default=new.failback
        )
        for target in {e.target for e in gate_events} | set(self.gates.busy()):
            self._gated(target, [e for e in gate_events if e.target == target], now)
        self.notifier.reconfigure(new)
        self.heartbeat.reconfigure(new.heartbeat)
        self.hooks.reconfigure(new.hooks_dir, new.hook_timeout)
        if new.members is not None and self.cluster is not None:
            self.decision.min_peers_agree = new.members.min_peers_agree
        if _members_settings(new) != _members_settings(old):
            log.warning(
                "[Members] changed: only min_peers_agree is applied on reload; "
                "restart goavail for the other cluster settings"
            )
        if new.server != old.server:
            log.warning("[Server] changed: restart goavail to apply it")
        if new.floating_ips != old.floating_ips:
            log.warning("[[floating_ips]] changed: restart goavail to apply it")
        engines_rebuilt = prepared.single and bool(prepared.fresh)
        retired = self.checks.commit(prepared, new_targets)
        old_providers, old_audit = dict(self.providers), self.audit
        if parts.audit is not old_audit:
            parts.audit.inherit(old_audit)
        self.providers, self.audit = dict(parts.providers), parts.audit
        kept = {n: r for n, r in self.reconcilers.items() if n in parts.providers}
        dropped = {n: r for n, r in self.reconcilers.items() if n not in parts.providers}
        fresh = {
            name: self.make_reconciler(
                name, provider, published.specs_for(name), parts.sections[name]
            )
            for name, provider in parts.providers.items()
            if name not in kept
        }
        self.reconcilers = {n: kept.get(n) or fresh[n] for n in parts.providers}
        if self.verifiers is not None:
            self.verifiers.reconfigure(parts.sections, parts.providers, new.resync_interval)
        for name, reconciler in fresh.items():
            self._start_reconciler(name, reconciler)
        stopped = [self._reconciling.pop(n) for n in dropped if n in self._reconciling]
        for task in stopped:
            task.cancel()
        await asyncio.gather(
            *(
                self._reconfigure(r, parts.providers[n], published.specs_for(n), parts.sections[n])
                for n, r in kept.items()
            )
        )
        self.overrides.path = new.overrides_file
        self.overrides.replace(parts.overrides, source="file")
        await self.checks.close_checks(retired)
        if stopped:
            await asyncio.wait(stopped)
        for name, reconciler in dropped.items():
            for case in reconciler.fail_open:
                self.on_fail_open(case, False, name)
            for closed in reconciler.fail_closed:
                self.on_fail_closed(closed, False, name)
        current = {id(provider) for provider in parts.providers.values()}
        rebuilt = [n for n, p in old_providers.items() if id(p) not in current]
        for name in rebuilt:
            await old_providers[name].close()
        if old_audit is not parts.audit:
            old_audit.close()
        changed = [
            *(f"provider {n} rebuilt" for n in rebuilt if n in parts.providers),
            *(f"provider {n} added" for n in fresh),
            *(f"provider {n} removed" for n in dropped),
        ]
        log.info(
            "configuration reloaded: %d targets (+%d -%d)%s%s%s",
            len(self.targets),
            len(added),
            len(removed),
            "".join(f"; {c}" for c in changed),
            "; probe engine rebuilt" if engines_rebuilt else "",
            _checks_change(old, new, prepared),
        )
        for t in added:
            log.info("target %s added (unknown until probed)", t, extra={"target": t})
        for t in removed:
            log.info("target %s removed; its records are left alone", t, extra={"target": t})


async def _reconfigure_locked(
    reconciler: Reconciler,
    provider: Provider,
    specs: tuple[NameSpec, ...],
    section: DnsSection,
    resync_interval: float,
) -> None:
    ttl, proxied = record_attributes(section)
    async with reconciler.lock:  # between two passes
        reconciler.reconfigure(
            provider=provider,
            names=[spec.name for spec in specs],
            addresses=[],
            ttl=ttl,
            proxied=proxied,
            resync_interval=resync_interval,
            specs=specs,
        )


def _names_summary(published: Publication, shown: int = 5) -> str:
    """The managed names for the start-up line: all of a few, else the first and a count."""
    names = published.names
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _pool_judging(pool: PoolSection) -> tuple[object, ...]:
    """What a pool says about its checks: ``(checks, failure_threshold, rise_threshold)``."""
    return (pool.checks, pool.failure_threshold, pool.rise_threshold)


def _checks_change(old: Config, new: Config, prepared: Prepared) -> str:
    """What a reload did to ``[[checks]]`` and the pools' checks, for the reload log line
    ("" when nothing)."""
    pools = ""
    if {p.name: _pool_judging(p) for p in old.pools} != {
        p.name: _pool_judging(p) for p in new.pools
    }:
        pools = "; the pools' checks or thresholds changed"
    return _check_list_change(old, new, prepared) + pools


def _check_list_change(old: Config, new: Config, prepared: Prepared) -> str:
    if not old.checks and not new.checks:
        return ""
    if not new.checks:
        return "; [[checks]] removed: back to the --type probe"
    if old.checks == new.checks:
        return ""
    rebuilt = ", ".join(prepared.fresh) or "none"
    return f"; checks now {', '.join(c.id for c in new.checks)} (new engines: {rebuilt})"


def _members_settings(config: Config) -> dict[str, object] | None:
    """``[Members]`` without ``min_peers_agree`` (the one key a reload applies)."""
    if config.members is None:
        return None
    return config.members.model_dump(exclude={"min_peers_agree"})


def _flipped(
    engaged_at: dict[tuple[str, str], set[str]],
    key: tuple[str, str],
    provider: str,
    engaged: bool,
) -> bool:
    """Record that ``provider`` engaged (or released) the case ``key`` in ``engaged_at``
    (case -> the providers where it is engaged); True when that changed whether any
    provider has it engaged: the first to engage and the last to release."""
    at = engaged_at.setdefault(key, set())
    before = bool(at)
    if engaged:
        at.add(provider)
    else:
        at.discard(provider)
    if not at:
        del engaged_at[key]
    return bool(at) != before
