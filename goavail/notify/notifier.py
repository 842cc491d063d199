"""The notifier: turns what the agent sees into events and fans them out to the sinks.

An I/O edge (reads the wall clock and the event loop's clock). The agent wires
it in with a few calls, each of which returns at once and never raises:

* :meth:`Notifier.audit_record` — every audit record (``AuditLog``'s
  ``on_record``): a DNS change applied, or planned in dry-run.
* :meth:`Notifier.fail_open` — the reconciler's fail-open transitions.
* :meth:`Notifier.quorum` — the cluster's quorum state; an alert goes out once
  the quorum has stayed unmet for ``quorum_alert_after`` seconds, and a
  "restored" message when it is met again (nothing if it recovered sooner).
* :meth:`Notifier.name_conflict` — another Serf member uses this agent's node
  name (and when that is resolved).
* :meth:`Notifier.agent_event` — start and stop.

Sinks come from the configuration: ``slack_addr`` (as in the Go original) and
every ``[[notifications]]`` entry. :meth:`reconfigure` applies a reloaded
configuration (SIGHUP): unchanged sinks keep running, changed ones are
replaced (the old one flushes in the background) and counters carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from goavail import __version__
from goavail.brake import BrakeResult
from goavail.config import Config
from goavail.dns.model import FailClosed, FailOpen
from goavail.events import (
    AgentEvent,
    AuditRecorded,
    BrakeChanged,
    DampingChanged,
    FailbackChanged,
    FailClosedChanged,
    FailOpenChanged,
    Lifecycle,
    NameConflictChanged,
    PropagationLagChanged,
    QuorumChanged,
)
from goavail.logs import REDACTOR
from goavail.notify import events
from goavail.notify.events import Event
from goavail.notify.sink import Sink, SinkSettings, SinkStats

if TYPE_CHECKING:
    import httpx  # imported by _http(): an agent without notifications never loads it

log = logging.getLogger("goavail.notify")

RETIRE_DEADLINE = 5.0
"""Seconds a sink replaced by a reload may take to send what it still holds."""


def sink_settings(config: Config) -> list[SinkSettings]:
    """Every sink the configuration asks for: ``slack_addr`` first, then ``[[notifications]]``."""
    result: list[SinkSettings] = []
    slack = config.slack_url()
    if slack is not None:
        result.append(SinkSettings("slack_addr", "slack", slack))
    for i, entry in enumerate(config.notifications):
        result.append(
            SinkSettings(
                f"notifications[{i}]",
                entry.type,
                entry.url.get_secret_value(),
                channel=entry.channel,
                username=entry.username,
                timeout=entry.timeout,
                retries=entry.retries,
                coalesce_window=entry.coalesce_window,
            )
        )
    return result


class Notifier:
    """Fans events out to the configured sinks.

    Args:
        config: the configuration (sinks and ``quorum_alert_after``).
        agent: this agent's node name, shown in every message.
        version: goavail's version.
        now: the wall clock (UTC), for event times.
        sink_factory: builds a :class:`Sink` (tests pass smaller queues or backoff).

    Attributes:
        sinks: running sinks by name (``"slack_addr"``, ``"notifications[0]"``, ...).
        stats: counters by sink name, cumulative across reloads (for metrics:
            ``events``, ``sent``, ``failed``, ``retried``, ``dropped``).
        quorum_alerts: quorum-unmet alerts emitted.

    Call ``await start()`` in the event loop before events can go out (events
    emitted earlier wait in the queues) and ``await close(deadline)`` at stop.
    """

    def __init__(
        self,
        config: Config,
        *,
        agent: str,
        version: str = __version__,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sink_factory: Callable[..., Sink] = Sink,
    ) -> None:
        self.agent = agent
        self.version = version
        self._now = now
        self._sink_factory = sink_factory
        self.quorum_alert_after = config.quorum_alert_after
        self.stats: dict[str, SinkStats] = {}
        self.sinks: dict[str, Sink] = {}
        self.quorum_alerts = 0
        self._client: httpx.AsyncClient | None = None  # created with the first sink
        self._started = False
        self._retiring: set[asyncio.Task[None]] = set()
        self._unmet_since: float | None = None
        self._unmet_alerted = False
        self._quorum_timer: asyncio.TimerHandle | None = None
        self._peers = (0, 0)
        for settings in sink_settings(config):
            self.sinks[settings.name] = self._build(settings)

    def _build(self, settings: SinkSettings) -> Sink:
        REDACTOR.add([settings.url])
        stats = self.stats.setdefault(settings.name, SinkStats())
        return self._sink_factory(settings, agent=self.agent, version=self.version, stats=stats)

    # -- lifecycle ----------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        """The HTTP client every sink posts through (one connection pool), created on
        first use: without sinks, httpx is never imported."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient()
        return self._client

    async def start(self) -> None:
        """Start every sink's worker (one shared HTTP connection pool)."""
        self._started = True
        for sink in self.sinks.values():
            sink.start(self._http())
        if self.sinks:
            log.info(
                "notifications to %s",
                ", ".join(
                    f"{n} ({s.settings.type}, {s.settings.host})" for n, s in self.sinks.items()
                ),
            )

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration (call in the event loop, after :meth:`start`).

        Sinks whose settings did not change keep running (and their queues);
        others are replaced: the old one sends what it holds within
        :data:`RETIRE_DEADLINE` seconds in the background. A new
        ``quorum_alert_after`` applies to an unmet quorum not yet alerted.
        """
        wanted = {s.name: s for s in sink_settings(config)}
        for name, sink in list(self.sinks.items()):
            if wanted.get(name) != sink.settings:
                del self.sinks[name]
                self._retire(sink)
        for name, settings in wanted.items():
            if name not in self.sinks:
                sink = self._build(settings)
                self.sinks[name] = sink
                if self._started:
                    sink.start(self._http())
                log.info("notifications to %s (%s, %s)", name, settings.type, settings.host)
        if config.quorum_alert_after != self.quorum_alert_after:
            self.quorum_alert_after = config.quorum_alert_after
            if self._quorum_timer is not None:
                self._quorum_timer.cancel()
                self._schedule_quorum_alert()

    def _retire(self, sink: Sink) -> None:
        task = asyncio.get_running_loop().create_task(sink.close(RETIRE_DEADLINE))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self, deadline: float) -> None:
        """Flush every sink (what is queued goes out at once) and stop, within ``deadline`` s.

        Never raises; whatever is not delivered by then is counted as dropped.
        """
        if self._quorum_timer is not None:
            self._quorum_timer.cancel()
            self._quorum_timer = None
        closing = [sink.close(deadline) for sink in self.sinks.values()]
        closing.extend(_bounded(task, deadline) for task in self._retiring)
        try:
            await asyncio.gather(*closing)
        finally:
            self._started = False
            if self._client is not None:
                import httpx

                client, self._client = self._client, None
                with contextlib.suppress(httpx.HTTPError, OSError):
                    await client.aclose()

    # -- events -------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue ``event`` on every sink. Never blocks, never raises."""
        for sink in self.sinks.values():
            sink.offer(event)

    def on_event(self, event: AgentEvent) -> None:
        """A subscriber of the agent's :class:`goavail.events.Bus`: every event becomes its
        notification (see the methods below)."""
        match event:
            case AuditRecorded(entry):
                self.audit_record(entry)
            case FailOpenChanged(case, engaged):
                self.fail_open(case, engaged)
            case FailClosedChanged(closed, engaged):
                self.fail_closed(closed, engaged)
            case NameConflictChanged(other, serf_quit):
                self.name_conflict(other, serf_quit)
            case QuorumChanged(unmet, live, needed):
                self.quorum(unmet, live, needed)
            case BrakeChanged(result, engaged):
                self.brake(result, engaged)
            case DampingChanged(target, suppressed, penalty, reuse_in):
                self.emit(
                    events.damping(
                        target=target,
                        suppressed=suppressed,
                        penalty=penalty,
                        reuse_in=reuse_in,
                        now=self._now(),
                    )
                )
            case FailbackChanged(target, waiting, wait_seconds, released_by):
                if waiting or released_by:  # an "after" gate's time running out is routine
                    self.emit(
                        events.failback(
                            target=target,
                            waiting=waiting,
                            wait_seconds=wait_seconds,
                            released_by=released_by,
                            now=self._now(),
                        )
                    )
            case PropagationLagChanged(provider, lag, lagging, limit):
                self.emit(
                    events.propagation(provider, lag, lagging=lagging, limit=limit, now=self._now())
                )
            case Lifecycle(started, dry_run, provider, targets, names):
                self.agent_event(
                    started=started,
                    dry_run=dry_run,
                    provider=provider,
                    targets=targets,
                    names=names,
                )

    def audit_record(self, entry: Mapping[str, Any]) -> None:
        """An audit record was written: notify a DNS change made or planned (dry-run)."""
        if not self.sinks:
            return
        event = events.dns_change(entry)
        if event is not None:
            self.emit(event)

    def fail_open(self, case: FailOpen, engaged: bool) -> None:
        """Fail-open was engaged (``engaged``) or released for ``case.name``/``case.type``."""
        self.emit(events.fail_open(case, engaged=engaged, now=self._now()))

    def fail_closed(self, case: FailClosed, engaged: bool) -> None:
        """Fail-closed was engaged (``engaged``) or released for ``case.name``/``case.type``."""
        self.emit(events.fail_closed(case, engaged=engaged, now=self._now()))

    def brake(self, result: BrakeResult, engaged: bool) -> None:
        """The mass-withdrawal brake engaged (``engaged``, ``result`` says where) or released."""
        self.emit(events.brake(result, engaged=engaged, now=self._now()))

    def agent_event(
        self,
        *,
        started: bool,
        dry_run: bool,
        provider: str,
        targets: int,
        names: Sequence[str],
    ) -> None:
        """The agent started (``started``) or is stopping."""
        self.emit(
            events.agent(
                started=started,
                version=self.version,
                dry_run=dry_run,
                provider=provider,
                targets=targets,
                names=names,
                now=self._now(),
            )
        )

    def name_conflict(self, other: str | None, serf_quit: bool) -> None:
        """Another Serf member at ``other`` uses this agent's node name (``serf_quit``: our
        Serf lost and shut down); ``other`` None: the conflict is resolved."""
        self.emit(
            events.name_conflict(node=self.agent, other=other, serf_quit=serf_quit, now=self._now())
        )

    # -- quorum -------------------------------------------------------------------

    def quorum(self, unmet: bool, live: int, needed: int) -> None:
        """The cluster's quorum state (call on every membership change, in the event loop).

        Args:
            unmet: fewer live peers than ``min_peers_agree``.
            live: live peers now.
            needed: ``min_peers_agree``.

        The first unmet call starts a timer of ``quorum_alert_after`` seconds; if
        the quorum is still unmet then, one ``quorum_unmet`` event goes out. When
        it is met again after an alert, one ``quorum_restored`` event goes out.
        """
        self._peers = (live, needed)
        loop = asyncio.get_running_loop()
        if unmet:
            if self._unmet_since is None:
                self._unmet_since = loop.time()
                self._schedule_quorum_alert()
            return
        if self._unmet_since is None:
            return
        if self._quorum_timer is not None:
            self._quorum_timer.cancel()
            self._quorum_timer = None
        if self._unmet_alerted:
            self.emit(
                events.quorum(
                    unmet=False,
                    live=live,
                    needed=needed,
                    unmet_for=loop.time() - self._unmet_since,
                    now=self._now(),
                )
            )
        self._unmet_since = None
        self._unmet_alerted = False

    def _schedule_quorum_alert(self) -> None:
        assert self._unmet_since is not None
        loop = asyncio.get_running_loop()
        delay = self._unmet_since + self.quorum_alert_after - loop.time()
        self._quorum_timer = loop.call_later(max(0.0, delay), self._quorum_alert)

    def _quorum_alert(self) -> None:
        self._quorum_timer = None
        if self._unmet_since is None:  # pragma: no cover - the timer is cancelled first
            return
        self._unmet_alerted = True
        self.quorum_alerts += 1
        live, needed = self._peers
        unmet_for = asyncio.get_running_loop().time() - self._unmet_since
        log.warning(
            "QUORUM UNMET for %.0fs (%d live peer(s), min_peers_agree = %d): notifying",
            unmet_for,
            live,
            needed,
        )
        self.emit(
            events.quorum(
                unmet=True, live=live, needed=needed, unmet_for=unmet_for, now=self._now()
            )
        )


async def _bounded(task: asyncio.Task[None], deadline: float) -> None:
    """Wait for ``task`` at most ``deadline`` seconds, then cancel it."""
    try:
        await asyncio.wait({task}, timeout=deadline)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
