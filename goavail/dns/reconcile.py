"""The reconciler: keeps the provider's records in line with the decisions, forever.

Every pass re-reads the current records of every managed name — at once, with
:meth:`~goavail.dns.providers.base.Provider.records_for`: a few paged listings
per zone at Cloudflare and Route 53, one parse of a zone file, a query per
name elsewhere — plans
(:func:`goavail.dns.plan.plan`) and applies the changes. A pass that fails
(read error, or a change not applied) is retried with exponential backoff and
jitter (:func:`goavail.dns.backoff.backoff_delay`) until DNS matches the plan;
a converged reconciler still runs a pass every ``resync_interval`` seconds to
repair drift (someone edited the zone by hand). A new decision wakes it at once.

It runs as its own task, so probing never waits on DNS. The Go original made
one API call per transition and never retried: one failed call left a dead
address in DNS.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from goavail.dns.backoff import backoff_delay
from goavail.dns.guard import NameGuard, admissible
from goavail.dns.model import (
    Change,
    Explanation,
    FailClosed,
    FailOpen,
    Record,
    RecordType,
    record_type_for,
)
from goavail.dns.plan import NameSpec, plan_names
from goavail.dns.providers.base import Provider, ProviderError
from goavail.health import State

log = logging.getLogger(__name__)

_LONGEST = 64
"""A retry number whose backoff is the cap."""


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """What a pass that read the records left at the provider (the served-answer
    verifier's input, :mod:`goavail.dns.verifier`).

    Attributes:
        records: name -> the records the provider holds now (the read, with the
            changes this pass made).
        specs: the managed names with their pools.
        made: the changes this pass made.
        decided_at: ``(name, type)`` -> ``monotonic`` seconds of the earliest
            decision behind a change made to it: the trigger (a decision wakes the
            reconciler at once) of the first pass that planned the change.
        at: ``monotonic`` seconds at the end of the pass.
    """

    records: Mapping[str, Sequence[Record]]
    specs: tuple[NameSpec, ...]
    made: tuple[Change, ...]
    decided_at: Mapping[tuple[str, RecordType], float]
    at: float


class Reconciler:
    """Drives one provider towards the plan.

    Args:
        provider: where the records live (dry-run is the provider's business).
        names: managed fully qualified names (each holds one pool of every address;
            ignored when ``specs`` is given).
        addresses: configured addresses (canonical text; ignored with ``specs``).
        decisions: target -> decided state; a live mapping, read at each pass.
        ttl, proxied: attributes of created records.
        resync_interval: seconds between passes once converged.
        jitter: source of random numbers in [0, 1) for the backoff.
        hold: see the ``hold`` attribute (None: every change is made at once).
        on_fail_open: called with ``(case, engaged)`` when fail-open is engaged
            (True) or released (False) for a name and family (the notifier); it
            must return at once.
        overridden: targets under a maintenance override; a live collection, read at
            each pass (only the reasons of their changes differ).
        monotonic: seconds (:func:`time.monotonic`), for :meth:`planned_since`.
        specs: the managed names with their pools (:func:`goavail.dns.plan.plan_names`);
            None: one pool of ``addresses`` under every name of ``names``.
        held: returns the addresses never to withdraw now (the mass-withdrawal brake,
            :mod:`goavail.brake`), read at each pass; None: none.
        on_pass: called with a :class:`PassOutcome` after every pass that could read
            the records (the served-answer verifier); it must return at once.
        on_fail_closed: called with ``(case, engaged)`` when fail-closed (a name whose
            ``all_down = "fail-closed"`` has every address down: all withdrawn) is
            engaged or released; it must return at once.

    Attributes (read by status reporting):
        converged: True after a pass that left nothing to do (held changes
            included: they are not done yet).
        pending: the changes of the last plan that are not applied yet.
        fail_open: fail-open cases of the last plan.
        fail_closed: fail-closed cases of the last plan (names emptied on purpose).
        explanations: the last plan's explanation of each name (which rule chose its
            records, why its TTL is what it is).
        retries: consecutive failed passes.
        last_error: text of the last error, or None.
        passes, failed_passes: passes run and passes that failed, since start.
        unexpected_errors: exceptions that are not provider errors (a provider's
            answer nobody foresaw, a bug), in reads and writes, since start; each
            failed its pass (counted in ``failed_passes`` too).
        current: name -> the records read by the last pass that could read them all
            (in dry-run: as if the planned changes had been made).
        read_at: ``time.monotonic()`` of that read, or None before the first one.
        read_failed: True when the last pass could not read the records.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        names: Sequence[str],
        addresses: Sequence[str],
        decisions: Mapping[str, State],
        ttl: int | None,
        proxied: bool | None,
        resync_interval: float,
        jitter: Callable[[], float] = random.random,
        hold: Callable[[Change], float] | None = None,
        on_fail_open: Callable[[FailOpen, bool], None] | None = None,
        overridden: Collection[str] = (),
        monotonic: Callable[[], float] = time.monotonic,
        specs: Sequence[NameSpec] | None = None,
        held: Callable[[], Collection[str]] | None = None,
        on_pass: Callable[[PassOutcome], None] | None = None,
        on_fail_closed: Callable[[FailClosed, bool], None] | None = None,
    ) -> None:
        self.provider = provider
        self._set_names(names, addresses, ttl, proxied, specs)
        self.held = held
        self.decisions = decisions
        self.overridden = overridden
        self.resync_interval = resync_interval
        self._jitter = jitter
        self.hold = hold
        """Cluster mode: ``hold(change)`` -> seconds this agent must wait before making
        ``change`` itself (0 or less: now), so that only the designated writer writes."""
        self._hold: float | None = None
        self.on_fail_open = on_fail_open
        self.on_fail_closed = on_fail_closed
        self._wake = asyncio.Event()
        self._wake.set()  # first pass at once
        self.converged = False
        self.pending: tuple[Change, ...] = ()
        self.fail_open: tuple[FailOpen, ...] = ()
        self.fail_closed: tuple[FailClosed, ...] = ()
        self.explanations: tuple[Explanation, ...] = ()
        self.retries = 0
        self.last_error: str | None = None
        self._transient = True
        self.passes = 0
        self.failed_passes = 0
        self.unexpected_errors = 0
        self.current: dict[str, list[Record]] = {}
        self.read_at: float | None = None
        self.read_failed = False
        self.lock = asyncio.Lock()
        """Held during a pass; take it to swap the provider between passes."""
        self._monotonic = monotonic
        self._planned_at: dict[tuple[str, tuple[str, str, str]], float] = {}
        self.on_pass = on_pass
        self._woken_at: float | None = None
        """``monotonic`` time of the first :meth:`trigger` since the last pass began."""
        self._decided_at: dict[tuple[str, tuple[str, str, str]], float] = {}

    def _set_names(
        self,
        names: Sequence[str],
        addresses: Sequence[str],
        ttl: int | None,
        proxied: bool | None,
        specs: Sequence[NameSpec] | None,
    ) -> None:
        if specs is None:
            pool = (tuple(addresses),)
            specs = [NameSpec(n, pool, ttl=ttl, proxied=proxied) for n in dict.fromkeys(names)]
        self.specs: tuple[NameSpec, ...] = tuple(specs)
        self.names = [spec.name for spec in self.specs]
        self.addresses = list(dict.fromkeys(a for spec in self.specs for a in spec.addresses))

    def trigger(self) -> None:
        """Ask for a pass now (a decision changed). Never blocks."""
        if self._woken_at is None:
            self._woken_at = self._monotonic()
        self._wake.set()

    def planned_since(self, change: Change) -> float | None:
        """When the passes began to plan ``change`` (``monotonic`` seconds): the plan of
        the first of the passes in a row whose plans all held it (the current pass's
        included, once it has planned); None when the last plan did not hold it.

        A change that leaves the plan (made by this agent or another, or no longer
        wanted) starts again when it comes back: ``hold`` measures a writer's grace
        from here, so that a change first found missing just now is not taken over
        at once because its decision is old.
        """
        return self._planned_at.get(_identity(change))

    def reconfigure(
        self,
        *,
        provider: Provider,
        names: Sequence[str],
        addresses: Sequence[str],
        ttl: int | None,
        proxied: bool | None,
        resync_interval: float,
        specs: Sequence[NameSpec] | None = None,
    ) -> None:
        """Apply a reloaded configuration and trigger a pass (``specs`` as in the
        constructor)."""
        self.provider = provider
        self._set_names(names, addresses, ttl, proxied, specs)
        self.resync_interval = resync_interval
        self.trigger()

    def next_delay(self) -> float:
        """Seconds until the next pass unless triggered: ``resync_interval`` when
        converged, else the backoff of the current retry. Permanent errors (bad
        token, missing zone) wait at the longest backoff: only an operator fixes them.

        Never less than what the provider asked for (HTTP ``Retry-After``, see
        :meth:`~goavail.dns.providers.base.Provider.retry_wait`): ``max(backoff,
        remaining Retry-After)``. A pass triggered earlier makes no call before
        that instant either (the provider refuses it).
        """
        if self.retries == 0:
            delay = self.resync_interval
            if self._hold is not None:
                delay = min(delay, self._hold)
        else:
            attempt = self.retries if self._transient else _LONGEST
            delay = backoff_delay(attempt, self._jitter())
        return max(delay, self.provider.retry_wait())

    async def run(self) -> None:
        """Reconcile until cancelled."""
        while True:
            delay = self.next_delay()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.reconcile_once()

    async def reconcile_once(self) -> bool:
        """One pass: read, plan, apply. Returns True when DNS now matches the plan.

        Never raises on a provider's failure: a :class:`ProviderError` is logged
        and counted, and so is any other exception (a provider's answer nobody
        foresaw, a bug): its traceback is logged once per kind, the pass counts
        as failed (``unexpected_errors`` too) and is retried with backoff, so the
        agent keeps probing and serving. Only cancellation propagates.
        """
        async with self.lock:
            self.passes += 1
            try:
                return await self._pass()
            except Exception as exc:
                self.unexpected_errors += 1
                self.provider.unexpected.log(log, exc, f"{self.provider.name}: reconcile pass")
                return self._failed(f"unexpected {type(exc).__qualname__}: {exc}", True)

    async def _pass(self) -> bool:
        started = self._woken_at if self._woken_at is not None else self._monotonic()
        self._woken_at = None
        try:
            current = await self.provider.records_for(self.names, self._families())
        except ProviderError as exc:
            self.read_failed = True
            return self._failed(f"cannot read records: {exc}", exc.transient)
        except Exception:
            self.read_failed = True
            raise
        self.current, self.read_at, self.read_failed = current, time.monotonic(), False
        # The decisions as they are now, after the (possibly slow) read: planning,
        # gating and the start of the writes follow without yielding, so no change is
        # planned from a decision that has flipped back meanwhile (a delete of a
        # target that is up again would be a wrong removal).
        decisions = dict(self.decisions)
        result = plan_names(
            self.specs,
            decisions,
            current,
            overridden=set(self.overridden),
            held=self.held() if self.held is not None else (),
        )
        self._report_fail_open(result.fail_open)
        self._report_fail_closed(result.fail_closed)
        self.explanations = result.explanations
        may_empty = {(c.name, c.type) for c in result.fail_closed}
        now = self._monotonic()
        self._planned_at = {
            key: self._planned_at.get(key, now) for key in map(_identity, result.changes)
        }
        self._decided_at = {
            key: self._decided_at.get(key, started) for key in map(_identity, result.changes)
        }
        ready, held = self._gate(result.changes, current, may_empty)
        self.pending = result.changes
        if not ready:
            self._report_pass(current, ())
            return self._succeeded()
        outcomes = await self.provider.apply(
            ready,
            guard=NameGuard(current, self.addresses, may_empty),
            still=lambda change: self._still(change, decisions),
        )
        done = {id(o.change) for o in outcomes if o.ok}
        made = tuple(c for c in ready if id(c) in done)
        self.current = after(current, list(made))
        self._report_pass(self.current, made)
        self.pending = tuple(c for c in result.changes if id(c) not in done)
        errors = [o.error for o in outcomes if o.error is not None]
        self.unexpected_errors += sum(1 for e in errors if e.unexpected)
        if not errors and len(self.pending) == len(held):
            return self._succeeded()
        if not errors:
            # Deferred, with no error behind it: the decision that planned a change
            # moved during the pass (that move triggers the next pass), or the name
            # guard refused a delete the planner allowed. Not converged; plan again.
            return self._failed(
                f"{len(self.pending) - len(held)} change(s) not made: their decision moved "
                "during the pass, or they would have left a name with no record",
                True,
            )
        transient = any(e.transient for e in errors)
        return self._failed(
            f"{len(self.pending)} of {len(result.changes)} changes not applied: "
            + "; ".join(str(e) for e in errors),
            transient,
        )

    def _report_pass(
        self, records: Mapping[str, Sequence[Record]], made: tuple[Change, ...]
    ) -> None:
        """Hand the pass's outcome to ``on_pass`` (never in dry-run: nothing is served)."""
        if self.on_pass is None or self.provider.dry_run:
            return
        decided: dict[tuple[str, RecordType], float] = {}
        for change in made:
            key = (change.record.name, change.record.type)
            when = self._decided_at.get(_identity(change))
            if when is not None:
                decided[key] = min(when, decided.get(key, when))
        self.on_pass(PassOutcome(records, self.specs, made, decided, self._monotonic()))

    def _families(self) -> tuple[RecordType, ...]:
        """The record types of the configured addresses: the only ones the planner
        touches (a pass reads no AAAA records when every address is IPv4)."""
        found = {record_type_for(a) for a in self.addresses}
        return tuple(t for t in ("A", "AAAA") if t in found)

    def _still(self, change: Change, planned: Mapping[str, State]) -> bool:
        """True while ``change`` may still go out: its target's decision is the one it
        was planned from (a TTL update rests on the whole name's decisions, and a late
        one is harmless: it is only checked for the writer), and (cluster mode) this
        agent is still the one to write it."""
        target = change.record.content
        if change.action != "update" and self.decisions.get(target) is not planned.get(target):
            return False
        return self.hold is None or self.hold(change) <= 0

    def _gate(
        self,
        changes: tuple[Change, ...],
        current: Mapping[str, Sequence[Record]],
        may_empty: Collection[tuple[str, RecordType]] = (),
    ) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
        """Split changes into those to apply now and those held back, per name.

        Cluster mode: a change another agent should make, or that this agent's
        verdict does not back, is held (``hold``). Then, per name and address
        family, every delete that would leave the name with no managed record
        once the held changes are left out is held too
        (:func:`~goavail.dns.guard.admissible`): when the create that replaces a
        withdrawn address is held, so is the withdrawal — except in the names and
        families of ``may_empty`` (fail-closed, emptied on purpose). Held changes are
        re-planned at the next pass (at the latest when the shortest hold ends);
        they are not failures.
        """
        self._hold = None
        ready: list[Change] = []
        held: list[Change] = []
        for change in changes:
            wait = 0.0 if self.hold is None else self.hold(change)
            if wait <= 0:
                ready.append(change)
            else:
                held.append(change)
                self._hold = wait if self._hold is None else min(self._hold, wait)
        admitted, waiting = admissible(current, ready, self.addresses, may_empty)
        if waiting:
            log.info(
                "%s: holding %d delete(s) until their name keeps another record: %s",
                self.provider.name,
                len(waiting),
                ", ".join(f"{c.record.name} {c.record.content}" for c in waiting),
            )
            if self._hold is None:
                # Nothing held for another agent: the planner and the guard disagree
                # (a bug); look again at the next resync rather than never.
                self._hold = self.resync_interval
        if held:
            log.debug(
                "%s: holding %d change(s) for the designated writer", self.provider.name, len(held)
            )
        all_held = set(map(id, held)) | set(map(id, waiting))
        return admitted, tuple(c for c in changes if id(c) in all_held)

    def _succeeded(self) -> bool:
        if self.retries:
            log.info(
                "%s: DNS converged after %d failed passes",
                self.provider.name,
                self.retries,
                extra={"provider": self.provider.name},
            )
        self.converged = self._hold is None
        self.retries = 0
        self.last_error = None
        return True

    def _failed(self, message: str, transient: bool) -> bool:
        self.converged = False
        self.retries += 1
        self.failed_passes += 1
        self.last_error = message
        self._transient = transient
        log.log(
            logging.WARNING if transient else logging.ERROR,
            "%s: DNS not converged (%s error, retry %d with backoff): %s",
            self.provider.name,
            "transient" if transient else "permanent",
            self.retries,
            message,
            extra={"provider": self.provider.name},
        )
        return False

    def _report_fail_open(self, cases: tuple[FailOpen, ...]) -> None:
        old = {(c.name, c.type): c for c in self.fail_open}
        new = {(c.name, c.type) for c in cases}
        for case in cases:
            if (case.name, case.type) not in old:
                log.warning(
                    "%s: FAIL-OPEN engaged for %s %s: every configured address is down; "
                    "keeping all of them in DNS (%s) rather than emptying the name",
                    self.provider.name,
                    case.name,
                    case.type,
                    ", ".join(case.kept),
                    extra={"provider": self.provider.name},
                )
                if self.on_fail_open is not None:
                    self.on_fail_open(case, True)
        for key in sorted(old.keys() - new):
            log.warning("%s: fail-open released for %s %s", self.provider.name, *key)
            if self.on_fail_open is not None:
                self.on_fail_open(old[key], False)
        self.fail_open = cases

    def _report_fail_closed(self, cases: tuple[FailClosed, ...]) -> None:
        old = {(c.name, c.type): c for c in self.fail_closed}
        new = {(c.name, c.type) for c in cases}
        for case in cases:
            if (case.name, case.type) not in old:
                log.error(
                    "%s: FAIL-CLOSED engaged for %s %s: every configured address is down "
                    "(%s) and its all_down policy is fail-closed: withdrawing all of them; "
                    "the name answers NODATA for %s",
                    self.provider.name,
                    case.name,
                    case.type,
                    ", ".join(case.down),
                    case.type,
                    extra={"provider": self.provider.name},
                )
                if self.on_fail_closed is not None:
                    self.on_fail_closed(case, True)
        for key in sorted(old.keys() - new):
            log.warning(
                "%s: fail-closed released for %s %s: an address is up again",
                self.provider.name,
                *key,
            )
            if self.on_fail_closed is not None:
                self.on_fail_closed(old[key], False)
        self.fail_closed = cases


def _identity(change: Change) -> tuple[str, tuple[str, str, str]]:
    """A change's identity across passes: its action and its record's (name, type, content)."""
    return change.action, change.record.key


def after(
    current: Mapping[str, Sequence[Record]], changes: Sequence[Change]
) -> dict[str, list[Record]]:
    """The records of ``current`` once ``changes`` are made (pure; for status reporting).

    Linear in records + changes (a dict per name keyed by record key, insertion-ordered).
    """
    by_key = {name: {r.key: r for r in records} for name, records in current.items()}
    for change in changes:
        records = by_key.setdefault(change.record.name, {})
        if change.action == "update":
            if change.record.key in records:
                records[change.record.key] = change.record
            continue
        records.pop(change.record.key, None)
        if change.action == "create":
            records[change.record.key] = change.record
    return {name: list(records.values()) for name, records in by_key.items()}
