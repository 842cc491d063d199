"""Served-answer verification, the I/O edge: asks the authoritative servers what they serve.

One :class:`Verifier` per provider whose section turns ``verify`` on
(:mod:`goavail.config.verify`). It runs as its own task, fed by its reconciler's
passes (:class:`~goavail.dns.reconcile.PassOutcome`, handed over by :meth:`Verifier.offer`,
which only stores the latest one and returns): a slow or dead name server never delays
a write. After each pass it asks every source of every managed name and family —
the configured servers, or the zone's NS set (resolved at start and again once per
resync interval), over UDP with TCP fallback (``dns.asyncquery.udp_with_fallback``,
RD clear, the answer must be authoritative); names whose records are Cloudflare
proxied are verified by listing them through the provider's API instead — then
repeats for the sources that do not agree yet, with growing delays
(:func:`~goavail.dns.propagation.round_delay`), until all do. Queries are bounded:
``timeout`` each, ``retries`` more tries with backoff when one gets no answer, at most
:data:`MAX_QUERIES` in flight.

The judgement is the pure :class:`~goavail.dns.propagation.Tracker`'s; this module
logs what it reports (a propagation, a server lagging past the limit, its recovery),
keeps the propagation histogram and hands lag changes to ``on_lag`` (the agent's
event bus: the notifier).

:class:`goavail.dns.verifiers.VerifierSet` holds the verifiers of a run and their tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from goavail.config.verify import VerifySection, format_server, split_server
from goavail.dns.model import RecordType, normalize_address
from goavail.dns.propagation import (
    API,
    PROPAGATION_BUCKETS,
    Expectation,
    Key,
    KeyState,
    Lag,
    PropagationView,
    Served,
    Tracker,
    bucket_index,
    expectations,
    lag_changes,
    round_delay,
)
from goavail.dns.reconcile import PassOutcome

if TYPE_CHECKING:
    from goavail.dns.providers.base import Provider

log = logging.getLogger("goavail.dns.verify")

MAX_QUERIES = 32
"""Queries (and API reads) one verifier has in flight at most."""
RETRY_BASE = 0.1
"""Seconds before the first retry of a query that got no answer; doubles each retry."""

LagHandler = Callable[[str, Lag, bool], None]
"""``(provider, lag, lagging)``: a source became lagging (True) or caught up (False);
must return at once."""


class NsSetError(Exception):
    """The zone's NS set resolves to no address."""


async def ask_server(server: str, key: Key, *, query_timeout: float, retries: int) -> Served:
    """What ``server`` (``"IP:port"``) serves for ``key``: one authoritative query (RD
    clear) over UDP, retried over TCP when truncated, ``retries`` more times with
    backoff when there is no answer. Never raises (but for cancellation): a failure is
    a :class:`Served` with its ``error``.

    NXDOMAIN and NODATA are an empty answer; any other rcode, and an answer without
    the AA flag (the server does not hold the zone), are errors.
    """
    name, rtype = key
    host, port = split_server(server)
    qname = dns.name.from_text(name)
    wanted = dns.rdatatype.from_text(rtype)
    error = "no answer"
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(min(query_timeout, RETRY_BASE * 2 ** (attempt - 1)))
        query = dns.message.make_query(qname, wanted)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, host, timeout=query_timeout, port=port
            )
        except dns.exception.Timeout:
            error = f"timeout after {query_timeout:g}s"
            continue
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            continue
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return Served(error=dns.rcode.to_text(rcode))
        if not response.flags & dns.flags.AA:
            return Served(error="not authoritative for the zone")
        found = frozenset(
            normalize_address(rd.to_text())
            for rrset in response.answer
            if rrset.rdtype == wanted and rrset.name == qname
            for rd in rrset
        )
        return Served(found)
    return Served(error=error)


async def resolve_ns_set(zone: str, resolver: list[str], query_timeout: float) -> tuple[str, ...]:
    """The zone's authoritative servers (``"IP:53"``, sorted): its NS names and their
    A/AAAA addresses, resolved through ``resolver`` (``IP:port`` texts; empty: the
    system's resolver).

    Raises:
        dns.exception.DNSException: the NS set cannot be resolved.
        NsSetError: it resolves to no address.
    """
    res = dns.asyncresolver.Resolver(configure=not resolver)
    if resolver:
        res.nameservers = [dns.nameserver.Do53Nameserver(*split_server(s)) for s in resolver]
    res.lifetime = query_timeout * 3
    ns = await res.resolve(zone + ".", "NS")
    servers: set[str] = set()
    for rdata in ns:
        for rtype in ("A", "AAAA"):
            with contextlib.suppress(dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                answer = await res.resolve(rdata.to_text(), rtype)
                servers.update(format_server(normalize_address(a.to_text()), 53) for a in answer)
    if not servers:
        raise NsSetError(f"the NS names of {zone} have no address")
    return tuple(sorted(servers))


class Verifier:
    """Verifies one provider's served answers (see the module's docstring).

    Args:
        provider_name: the provider's registry name (logs, metrics).
        settings: the section's ``verify`` settings.
        zone: the zone whose NS set is asked when ``settings.servers`` is empty.
        provider: the provider, read through for proxied names (:data:`API`).
        resync_interval: seconds; the NS set is resolved again after this long.
        on_lag: see :data:`LagHandler`; None: only logged.
        monotonic: the clock (seconds).
        ask: the query function (:func:`ask_server`'s signature).
    """

    def __init__(
        self,
        provider_name: str,
        settings: VerifySection,
        *,
        zone: str,
        provider: Provider,
        resync_interval: float,
        on_lag: LagHandler | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        ask: Callable[..., object] | None = None,
    ) -> None:
        self.name = provider_name
        self.settings = settings
        self.zone = zone
        self.provider = provider
        self.resync_interval = resync_interval
        self.on_lag = on_lag
        self._monotonic = monotonic
        self._ask = ask or ask_server
        self.tracker = Tracker(settings.limit)
        self._latest: PassOutcome | None = None
        self._wake = asyncio.Event()
        self._servers: tuple[str, ...] = tuple(settings.servers)
        self._resolved_at: float | None = None
        self.problem: str | None = None
        """Why verification cannot run (the NS set cannot be resolved), or None."""
        self._lagging: dict[str, Lag] = {}
        self.bucket_counts = [0] * (len(PROPAGATION_BUCKETS) + 1)
        self.seconds_sum = 0.0
        self._limit = asyncio.Semaphore(MAX_QUERIES)

    def offer(self, outcome: PassOutcome) -> None:
        """A reconcile pass's outcome (its ``on_pass``): kept (only the latest) for the
        verifier's task. Returns at once."""
        self._latest = outcome
        self._wake.set()

    async def run(self) -> None:
        """Verify after every offered pass, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            outcome = self._latest
            if outcome is None:  # pragma: no cover - set together with the event
                continue
            try:
                await self._verify(outcome)
            except Exception:  # a bug must not end verification for good
                log.exception("%s: verify: unexpected error", self.name)
                await asyncio.sleep(self.settings.interval)

    async def _verify(self, outcome: PassOutcome) -> None:
        """Query rounds for one pass's outcome, until every source agrees or a newer
        pass arrives."""
        await self._expect(outcome)
        rounds = 0
        while True:
            await self._round()
            self._report()
            if self.tracker.settled():
                return
            rounds += 1
            delay = round_delay(rounds, self.settings.interval, self.settings.limit)
            deadline = self.tracker.next_deadline()
            if deadline is not None and not self._lagging:
                delay = min(delay, max(0.01, deadline - self._monotonic() + 0.01))
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
                return  # a newer pass: expect it
            except TimeoutError:
                continue

    async def _expect(self, outcome: PassOutcome) -> None:
        servers = await self._sources()
        managed: dict[str, tuple[str, ...]] = {}
        sources: dict[str, tuple[str, ...]] = {}
        held: dict[str, list[str]] = {}
        for spec in outcome.specs:
            mine = set(spec.addresses)
            records = [r for r in outcome.records.get(spec.name, ()) if r.content in mine]
            managed[spec.name] = spec.addresses
            held[spec.name] = [r.content for r in records]
            proxied = spec.proxied is True or any(r.proxied for r in records)
            sources[spec.name] = (API,) if proxied else servers
        self.tracker.expect(
            expectations(held, managed, sources), outcome.at, dict(outcome.decided_at)
        )

    async def _sources(self) -> tuple[str, ...]:
        """The servers to ask: the configured ones, or the NS set (resolved again once
        per resync interval; the last good set is kept when that fails)."""
        if self.settings.servers:
            return self._servers
        now = self._monotonic()
        if self._resolved_at is not None and now - self._resolved_at < self.resync_interval:
            return self._servers
        self._resolved_at = now
        try:
            servers = await resolve_ns_set(
                self.zone, list(self.settings.resolver), self.settings.timeout
            )
        except (dns.exception.DNSException, NsSetError) as exc:
            self.problem = f"cannot resolve the NS set of {self.zone}: {exc}"
            log.warning("%s: verify: %s", self.name, self.problem, extra={"provider": self.name})
            return self._servers
        if servers != self._servers:
            log.info(
                "%s: verify: the NS set of %s is %s",
                self.name,
                self.zone,
                ", ".join(servers),
                extra={"provider": self.name},
            )
        self.problem = None
        self._servers = servers
        return servers

    async def _round(self) -> None:
        """Ask every due pair once, :data:`MAX_QUERIES` at a time."""
        due = self.tracker.due()
        api_keys = [key for key, source in due if source == API]
        dns_pairs = [(key, source) for key, source in due if source != API]
        tasks = [self._query(key, source) for key, source in dns_pairs]
        if api_keys:
            tasks.append(self._read_api(api_keys))
        await asyncio.gather(*tasks)

    async def _query(self, key: Key, source: str) -> None:
        async with self._limit:
            served = await self._ask(  # type: ignore[misc]
                source, key, query_timeout=self.settings.timeout, retries=self.settings.retries
            )
        self.tracker.observe(key, source, served, self._monotonic())

    async def _read_api(self, keys: list[Key]) -> None:
        """Proxied names: one read of their records through the provider's API."""
        from goavail.dns.providers.base import ProviderError

        names = sorted({name for name, _ in keys})
        families: tuple[RecordType, ...] = tuple(sorted({rtype for _, rtype in keys}))
        async with self._limit:
            try:
                async with asyncio.timeout(self.settings.timeout * (self.settings.retries + 1)):
                    records = await self.provider.records_for(names, families)
            except (ProviderError, TimeoutError) as exc:
                error = str(exc) or "timeout"
                for key in keys:
                    self.tracker.observe(key, API, Served(error=error), self._monotonic())
                return
        now = self._monotonic()
        for name, rtype in keys:
            found = frozenset(r.content for r in records.get(name, ()) if r.type == rtype)
            self.tracker.observe((name, rtype), API, Served(found), now)

    def _report(self) -> None:
        for done in self.tracker.take_propagated():
            name, rtype = done.key
            if done.seconds is None:
                log.debug("%s: verify: %s %s served by every server", self.name, name, rtype)
                continue
            self.bucket_counts[bucket_index(done.seconds)] += 1
            self.seconds_sum += done.seconds
            log.info(
                "%s: %s %s propagated: every authoritative server serves the planned "
                "answer, %.3fs after the decision (last: %s)",
                self.name,
                name,
                rtype,
                done.seconds,
                done.last,
                extra={"provider": self.name},
            )
        now = self._monotonic()
        lagging = self.tracker.lagging(now)
        started, recovered = lag_changes(self._lagging, lagging)
        self._lagging = lagging
        for lag in started:
            log.warning(
                "%s: PROPAGATION LAGGING: server %s has not served the planned answer of %s "
                "for %.0fs (limit %gs): %s",
                self.name,
                lag.source,
                _keys_text(lag.keys),
                now - lag.since,
                self.settings.limit,
                lag.detail,
                extra={"provider": self.name, "server": lag.source},
            )
            if self.on_lag is not None:
                self.on_lag(self.name, lag, True)
        for lag in recovered:
            log.warning(
                "%s: propagation recovered: server %s serves the planned answers again",
                self.name,
                lag.source,
                extra={"provider": self.name, "server": lag.source},
            )
            if self.on_lag is not None:
                self.on_lag(self.name, lag, False)

    def answer(self, name: str) -> list[KeyState]:
        """The planned vs. served answer of ``name`` per family and source (a copy; for
        ``goavail explain`` and the status API)."""
        return self.tracker.state(name)

    def view(self) -> PropagationView:
        """A copy of the verification state for the HTTP side (no I/O)."""
        keys = tuple(self.tracker.state())
        sources = tuple(dict.fromkeys(s for k in keys for s in k.sources)) or self._servers
        return PropagationView(
            provider=self.name,
            sources=sources,
            problem=self.problem,
            keys=keys,
            lagging=dict(self._lagging),
            limit=self.settings.limit,
            bucket_counts=tuple(self.bucket_counts),
            seconds_sum=self.seconds_sum,
        )


def _keys_text(keys: tuple[Key, ...], shown: int = 5) -> str:
    text = ", ".join(f"{name} {rtype}" for name, rtype in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


__all__ = [
    "MAX_QUERIES",
    "Expectation",
    "LagHandler",
    "Verifier",
    "ask_server",
    "resolve_ns_set",
]
