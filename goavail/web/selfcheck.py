"""goavail's own health (``GET /_health``), in the Philae format of Scalingo's go-philae.

The answer is go-philae's ``prober.Result`` (``prober/prober.go``)::

    {"healthy": bool,
     "probes": [{"name": str, "healthy": bool, "comment": str, "error": str | null,
                 "duration": int}],      # nanoseconds, as Go's time.Duration encodes
     "error": str | null}                # "prober error: probe NAME: ERROR, ..." or null

with two deliberate differences from go-philae: ``error`` is a plain string or null
(go-philae marshals a Go ``error`` value, which comes out as ``{}``), and the probes
come in a stable order (go-philae's come in goroutine completion order). The HTTP
status is 200 when healthy and 503 when not (go-philae always answers 200).

goavail's probes of itself:

* ``config``: the running configuration loaded, and the last SIGHUP reload (if any)
  was applied; a rejected or failed reload is unhealthy (the file on disk is not
  what runs) until a reload succeeds.
* ``probes``: a full probing round (one result per target) completed within the
  last three intervals (:class:`RoundWatch`).
* ``serf`` (cluster mode only): no other Serf member uses this agent's node name
  (reported by goavail's own Serf child), connected to Serf's RPC, and at least
  ``min_peers_agree`` peers alive.
* ``dns``: the provider answered a read within the last 30 seconds: the
  reconciler's own reads count (and its last read failing is unhealthy at once);
  otherwise one read of the first managed name is made, with a 3-second timeout,
  and its result is cached for 30 seconds (:class:`DnsCheck`), so health checks
  never hammer the DNS API. Also unhealthy after :data:`DNS_FAILED_PASSES` failed
  reconcile passes in a row (writes failing while reads work). With several providers
  (top-level ``providers``) each is checked so, side by side; ``dns`` is healthy when
  every one is, and its comment and error name each provider.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from goavail.dns.providers.base import Provider, ProviderError
from goavail.logs import REDACTOR

if TYPE_CHECKING:
    from goavail.web.ports import DnsLane, HealthView

ROUNDS = 3
"""A probing round older than this many intervals makes ``probes`` unhealthy."""
DNS_TTL = 30.0
"""Seconds a provider read (the reconciler's or the health check's) stays valid."""
DNS_TIMEOUT = 3.0
"""Seconds the health check's own provider read may take (go-philae's convention)."""
DNS_FAILED_PASSES = 3
"""Consecutive failed reconcile passes after which ``dns`` is unhealthy."""


@dataclass(frozen=True, slots=True)
class ProbeCheck:
    """One probe of the answer: ``duration`` in nanoseconds; ``error`` None when healthy."""

    name: str
    healthy: bool
    comment: str
    error: str | None = None
    duration: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The Philae JSON object of this probe."""
        return {
            "name": self.name,
            "healthy": self.healthy,
            "comment": REDACTOR.redact(self.comment),
            "error": None if self.error is None else REDACTOR.redact(self.error),
            "duration": self.duration,
        }


def philae(checks: list[ProbeCheck]) -> dict[str, Any]:
    """The whole Philae answer of ``checks`` (pure)."""
    failed = [c for c in checks if not c.healthy]
    error = None
    if failed:
        error = "prober error: " + ", ".join(f"probe {c.name}: {c.error}" for c in failed)
    return {
        "healthy": not failed,
        "probes": [c.as_dict() for c in checks],
        "error": None if error is None else REDACTOR.redact(error),
    }


class RoundWatch:
    """Notices when probing rounds complete, from the agent's running count of results.

    Pure (times and counts are passed in). A round is complete once as many results
    as there are targets arrived since the previous round completed; call
    :meth:`observe` every fraction of an interval.

    Args:
        start: the time (any monotonic clock, seconds) the agent started; counts as
            the end of round zero, so a fresh agent has ``ROUNDS`` intervals of grace.
    """

    def __init__(self, start: float) -> None:
        self.last_round_at = start
        self._mark = 0
        self.rounds = 0

    def observe(self, now: float, results: int, targets: int) -> None:
        """Record the total number of probe results so far, at ``now``, with ``targets``
        targets configured."""
        if results < self._mark:  # counters never go back; be safe anyway
            self._mark = results
        if targets == 0 or results - self._mark >= targets:
            self._mark = results
            self.last_round_at = now
            self.rounds += 1

    def check(self, now: float, interval: float, targets: int) -> ProbeCheck:
        """The ``probes`` probe at ``now`` (``interval`` in seconds)."""
        age = max(0.0, now - self.last_round_at)
        limit = ROUNDS * interval
        if targets == 0:
            return ProbeCheck("probes", True, "no targets configured")
        if age <= limit:
            return ProbeCheck(
                "probes", True, f"last full round of {targets} target(s) {age:.1f}s ago"
            )
        return ProbeCheck(
            "probes",
            False,
            "error",
            f"no full probing round for {age:.1f}s (limit {limit:g}s = {ROUNDS} intervals)",
        )


class DnsCheck:
    """The ``dns`` probe, with a 30-second cache and one read in flight at most, per
    provider. With several providers it is healthy when every provider is; its comment
    and error name each provider (the reads run side by side, so one provider that
    hangs costs the probe at most :data:`DNS_TIMEOUT`)."""

    def __init__(self) -> None:
        self._cached: dict[str, tuple[float, Provider, ProbeCheck]] = {}
        self._inflight: dict[str, asyncio.Task[ProbeCheck]] = {}

    async def check(self, view: HealthView) -> ProbeCheck:
        """The ``dns`` probe (may read each provider once; never raises)."""
        started = time.perf_counter_ns()
        lanes = view.dns
        results = await asyncio.gather(*(self._lane(lane) for lane in lanes))
        if len(results) == 1:
            result = results[0]
        else:
            healthy = all(r.healthy for r in results)
            result = ProbeCheck(
                "dns",
                healthy,
                "; ".join(r.comment for r in results) if healthy else "error",
                None if healthy else "; ".join(r.error or "" for r in results if not r.healthy),
            )
        if result.duration == 0 or len(results) != 1:
            result = ProbeCheck(
                result.name,
                result.healthy,
                result.comment,
                result.error,
                time.perf_counter_ns() - started,
            )
        return result

    async def _lane(self, lane: DnsLane) -> ProbeCheck:
        """One provider's part of the probe."""
        started = time.perf_counter_ns()
        reconciler, provider, kind = lane.reconciler, lane.provider, lane.name
        now = time.monotonic()
        cached = self._cached.get(kind)
        if reconciler.read_failed and reconciler.provider is provider:
            result = ProbeCheck(
                "dns", False, "error", f"{kind}: reconciler: {reconciler.last_error}"
            )
        elif (
            reconciler.read_at is not None
            and reconciler.provider is provider
            and now - reconciler.read_at <= DNS_TTL
        ):
            result = ProbeCheck(
                "dns",
                True,
                f"{kind} read by the reconciler {now - reconciler.read_at:.1f}s ago",
            )
        elif cached is not None and cached[1] is provider and now - cached[0] <= DNS_TTL:
            result = ProbeCheck(
                "dns",
                cached[2].healthy,
                f"{cached[2].comment} (cached {now - cached[0]:.1f}s ago)",
                cached[2].error,
                cached[2].duration,
            )
        else:
            inflight = self._inflight.get(kind)
            if inflight is None or inflight.done():
                inflight = asyncio.get_running_loop().create_task(
                    self._read(provider, lane.first_name, kind)
                )
                self._inflight[kind] = inflight
            result = await asyncio.shield(inflight)
            self._cached[kind] = (time.monotonic(), provider, result)
        if result.healthy and reconciler.retries >= DNS_FAILED_PASSES:
            return ProbeCheck(
                "dns",
                False,
                "error",
                f"{kind}: {reconciler.retries} reconcile passes failed in a row: "
                f"{reconciler.last_error}",
                time.perf_counter_ns() - started,
            )
        if result.duration == 0:
            result = ProbeCheck(
                result.name,
                result.healthy,
                result.comment,
                result.error,
                time.perf_counter_ns() - started,
            )
        return result

    @staticmethod
    async def _read(provider: Provider, name: str, kind: str) -> ProbeCheck:
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(DNS_TIMEOUT):
                await provider.check(name)
        except TimeoutError:
            error: str | None = f"{kind}: no answer within {DNS_TIMEOUT:g}s reading {name}"
        except ProviderError as exc:
            error = f"{kind}: cannot read {name}: {exc}"
        except Exception as exc:  # a health check reports every failure, it never raises
            error = f"{kind}: cannot read {name}: {type(exc).__name__}: {exc}"
        else:
            error = None
        duration = time.perf_counter_ns() - started
        if error is None:
            return ProbeCheck("dns", True, f"{kind} answered a read of {name}", None, duration)
        return ProbeCheck("dns", False, "error", error, duration)


def config_check(view: HealthView) -> ProbeCheck:
    """The ``config`` probe: healthy unless the last reload was rejected or failed."""
    last = view.last_reload
    path = view.config_path
    if last is None or last.result == "applied":
        when = "at start-up" if last is None else "by the last reload"
        return ProbeCheck("config", True, f"{path} loaded {when}")
    problems = "; ".join(last.problems) or "no detail"
    return ProbeCheck(
        "config",
        False,
        "error",
        f"the last reload of {path} was {last.result}, still running the previous "
        f"configuration: {problems}",
    )


def brake_check(view: HealthView) -> ProbeCheck | None:
    """The ``brake`` probe: unhealthy while the mass-withdrawal brake holds targets in DNS
    (this agent's vantage is suspect); None when the configuration has no brake."""
    if view.brake is None:
        return None
    engaged = view.brake.engaged
    if not engaged:
        return ProbeCheck("brake", True, "released: withdrawals proceed as decided")
    return ProbeCheck(
        "brake",
        False,
        "error",
        "; ".join(
            f"{e.down} of {e.size} targets of {e.group} down at once, {len(e.held)} held in DNS"
            for e in engaged
        )
        + ": is this agent's own network degraded?",
    )


def serf_check(view: HealthView) -> ProbeCheck | None:
    """The ``serf`` probe (cluster mode), or None in single-node mode."""
    cluster = view.cluster
    if cluster is None:
        return None
    live, needed = len(cluster.live), view.min_peers_agree
    conflict = cluster.name_conflict
    if conflict is not None:
        return ProbeCheck(
            "serf",
            False,
            "error",
            f"node name conflict: node name {cluster.node!r} is also used by the Serf member "
            f"at {conflict.other or 'an unknown address'}"
            + ("; Serf quit, this agent is out of the cluster" if conflict.serf_quit else "")
            + ": set a unique node_name in one agent's config and restart it",
        )
    if not cluster.connected:
        return ProbeCheck("serf", False, "error", "not connected to Serf's RPC")
    if live < needed:
        return ProbeCheck(
            "serf",
            False,
            "error",
            f"quorum unmet: {live} live peer(s), min_peers_agree = {needed}",
        )
    silent = cluster.sync.silent()
    if silent:
        return ProbeCheck(
            "serf",
            False,
            "error",
            "votes of live peer(s) "
            + ", ".join(f"{node} (sync port {port})" for node, port in silent)
            + " cannot be pulled: their votes do not count; is TCP to their sync port open?",
        )
    return ProbeCheck("serf", True, f"connected; {live} live peer(s), {needed} needed")
