"""Everything every DNS provider shares: dry-run, audit records, idempotency, error kinds.

A concrete provider (Cloudflare, zone file, ...) implements four small hooks —
``_list``, ``_create``, ``_delete`` and ``_update_ttl`` — and raises the exceptions
below. A
provider whose API can list a whole zone also overrides ``_list_names`` so that
the reconciler's read of every managed name (:meth:`Provider.records_for`) costs
a few paged listings per zone instead of one call per name. Dry-run
is implemented here and nowhere else: every provider call runs except the
writes, which are recorded in an in-memory overlay so that the next read shows
the would-be state (the planner then sees its own dry-run changes as done and
does not repeat them), and each would-be change is written as an audit record.

Style follows octodns ``provider/base.py`` (dry-run in the base class) and
dns-lexicon (one contract for all providers).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ClassVar, TypeVar

from goavail.dns.audit import AuditLog
from goavail.dns.backoff import backoff_delay
from goavail.dns.guard import NameGuard
from goavail.dns.model import Change, Record, RecordType
from goavail.errors import GoavailError

log = logging.getLogger(__name__)

T = TypeVar("T")


class ProviderError(GoavailError):
    """A provider call failed.

    Attributes:
        transient: True when retrying the same call may succeed (HTTP 429 and
            5xx, timeouts, connection errors). Permanent errors (authentication,
            missing zone, invalid request) are retried too by the reconciler, but
            at its longest backoff, since only an operator can fix them.
        retry_after: seconds the provider asked us to wait, counted from when the
            error was raised (HTTP ``Retry-After`` in either form, read with
            :func:`goavail.dns.backoff.parse_retry_after`), or None. The base class
            turns it into the provider's "not before" instant (see
            :meth:`Provider.retry_wait`).
        unexpected: True when this wraps an exception that is not a provider error
            (a bug, or an answer nobody foresaw): what the provider did is unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        unexpected: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.unexpected = unexpected


@dataclass(frozen=True, slots=True)
class CallRetry:
    """How one provider call is retried on a transient error, within a reconcile pass.

    Attributes:
        attempts: tries per call (1 = no retry).
        base, cap: backoff of :func:`goavail.dns.backoff.backoff_delay`, seconds.
        max_retry_after: the longest ``Retry-After`` honoured within a pass
            (seconds); a longer one ends the pass and the reconciler's own
            backoff takes over.
    """

    attempts: int = 3
    base: float = 0.2
    cap: float = 2.0
    max_retry_after: float = 10.0


RETRY_AFTER_CAP = 300.0
"""The longest ``Retry-After`` (seconds) a provider is held back for; a longer one is
cut to this and logged. Cloudflare's API rate limit is counted over five minutes
(1,200 requests per 5 minutes per user,
https://developers.cloudflare.com/fundamentals/api/reference/limits/), so no
genuine answer asks for more; a bogus header cannot stop failover for hours."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """The time a provider reads and waits on: the one seam tests replace.

    Attributes:
        monotonic: seconds on a monotonic clock (default :func:`time.monotonic`);
            "not before" instants are kept on it.
        wall: the current UTC time, for HTTP-date ``Retry-After`` values.
        sleep: waits the given seconds (default :func:`asyncio.sleep`).
    """

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=_utc_now)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class RecordExists(Exception):
    """Raised by ``_create`` when an identical record already exists, and by
    ``_update_ttl`` when the record already has the TTL asked for (treated as success)."""


class RecordMissing(Exception):
    """Raised by ``_delete`` when the record is already gone, and by ``_update_ttl``
    when there is no record to update (both treated as success: the next pass reads
    the name again and plans what is left)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of applying one change: ``ok``, the error that stopped it, or ``deferred``.

    A deferred change was not sent: the :class:`~goavail.dns.guard.NameGuard`
    refused it because it would have left its name with no managed record
    (``ok`` is False, ``error`` None). The next pass plans it again.
    """

    change: Change
    ok: bool
    error: ProviderError | None = None
    deferred: bool = False


class UnexpectedErrors:
    """Logs an unexpected exception's traceback once per kind, later ones as one line.

    A provider answer nobody foresaw (a library's ``ValueError``, a ``KeyError`` on
    a malformed body) repeats at every retry; its traceback is what a developer
    needs, once. The kind is the exception's type and message. (The reconciler
    counts them: ``Reconciler.unexpected_errors``.)
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def log(self, logger: logging.Logger, exc: BaseException, what: str) -> None:
        """Log ``exc``, raised while doing ``what``, at ERROR."""
        kind = (type(exc).__qualname__, str(exc))
        if kind in self._seen:
            logger.error("%s: unexpected %s: %s (traceback logged before)", what, *kind)
            return
        if len(self._seen) < 1000:  # bounded: a message carrying a counter is not a new kind
            self._seen.add(kind)
        logger.error("%s: unexpected %s: %s", what, *kind, exc_info=exc)


class Provider(ABC):
    """Base class of DNS providers.

    Args:
        dry_run: when True no write reaches the provider (see module docstring).
        audit: where audit records go.
        retry: how a call that fails transiently is retried before its error
            is reported (a few quick tries; the reconciler retries whole passes
            on top of that, with longer backoff).

    Subclasses set ``name`` and implement ``_list``, ``_create``, ``_delete``,
    ``_update_ttl`` and, if they hold connections, ``close``; those that can read many names at
    once (a zone listing) override ``_list_names``.
    """

    name: ClassVar[str]

    clock: Clock = Clock()
    """Time source and sleep (a test seam: assign another :class:`Clock` to the instance)."""

    _not_before: float = -math.inf
    """``clock.monotonic()`` instant before which no call goes out (see :meth:`retry_wait`)."""

    def __init__(self, *, dry_run: bool, audit: AuditLog, retry: CallRetry | None = None) -> None:
        self.dry_run = dry_run
        self.audit = audit
        self.retry = retry or CallRetry()
        self.unexpected = UnexpectedErrors()
        """Exceptions of the provider's hooks that are not :class:`ProviderError`."""
        # Dry-run overlay: record key -> Record (would be created) or None (would be deleted).
        self._overlay: dict[tuple[str, RecordType, str], Record | None] = {}
        # Dry-run TTL overlay: record key -> the TTL an update would have given it.
        self._ttl_overlay: dict[tuple[str, RecordType, str], int | None] = {}

    # -- hooks for subclasses -------------------------------------------------

    @abstractmethod
    async def _list(self, name: str) -> list[Record]:
        """All A and AAAA records at exactly ``name`` (fully qualified, no trailing dot).

        Raises:
            ProviderError: the provider could not be read.
        """

    async def _list_names(
        self, names: Sequence[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]]:
        """The records of ``types`` at each of ``names``, retried (hook of :meth:`records_for`).

        The default reads name by name: one :meth:`_list` per name, each retried
        as :meth:`records` retries it, so every provider supports
        :meth:`records_for`. A provider whose API lists a whole zone overrides
        this to read each zone at once, and then runs each of its requests (or
        each listing) through :meth:`_retrying` itself, so that retries,
        ``Retry-After`` and error kinds stay what they are for one name.

        Args:
            names: distinct names as given to :meth:`records_for` (at least one).
            types: the record types wanted (not empty); records of other types may
                be returned too (the caller drops them).

        Returns:
            A list for EVERY name in ``names`` ([] when it has none); records at
            names not asked for are left out.

        Raises:
            ProviderError: any name or zone could not be read (after retries).
        """
        out: dict[str, list[Record]] = {}
        for name in names:
            out[name] = await self._retrying(
                functools.partial(self._list, name), f"{self.name}: list {name}"
            )
        return out

    @abstractmethod
    async def _create(self, record: Record) -> None:
        """Create ``record``. Its ``ttl``/``proxied`` are the name's configured ones (the
        planner sets them; ``ttl`` is the lowered one while the name is degraded); a
        provider uses its own configured values only where ``record`` has None. A
        provider keeping record sets adds the address to an existing set, which keeps
        the set's TTL (RFC 2181 §5.2: one TTL per set); a later ``update`` fixes it.

        Raises:
            RecordExists: an identical record is already there.
            ProviderError: anything else.
        """

    @abstractmethod
    async def _delete(self, record: Record) -> None:
        """Delete ``record``; ``record.id`` is set when it came from ``_list``.

        Raises:
            RecordMissing: the record is already gone.
            ProviderError: anything else.
        """

    @abstractmethod
    async def _update_ttl(self, record: Record) -> None:
        """Give the existing ``record`` (name, type, content; ``id`` as read) the TTL
        ``record.ttl``, in ONE write that never removes it: a record update
        (Cloudflare), an UPSERT of its set (Route 53), one atomic UPDATE message that
        replaces the set (RFC 2136), one rewrite of the file (zone file). Providers
        keeping sets change the whole set's TTL; the other records of the set then
        answer "already done".

        Raises:
            RecordExists: the record already has that TTL (nothing is written).
            RecordMissing: the record is not there (nothing is written).
            ProviderError: anything else.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The default does nothing."""

    # -- retries -----------------------------------------------------------------

    async def _apply_one(self, change: Change) -> None:
        if change.action == "create":
            await self._create(change.record)
        elif change.action == "update":
            await self._update_ttl(change.record)
        else:
            await self._delete(change.record)

    def retry_wait(self) -> float:
        """Seconds until this provider may be called again; 0.0 when it may be called now.

        Set when an answer carried a ``Retry-After`` (:class:`ProviderError`
        ``retry_after``): from then on no call of this provider, read or write,
        in this pass or a later one, goes out before that instant (at most
        :data:`RETRY_AFTER_CAP` seconds ahead). The reconciler waits at least
        this long before its next pass. Reads ``clock.monotonic``.
        """
        return max(0.0, self._not_before - self.clock.monotonic())

    def _hold_off(self, exc: ProviderError, what: str) -> None:
        """Record the wait ``exc`` asks for (if any) as the provider's "not before" instant.

        Never moves the instant earlier; a wait over :data:`RETRY_AFTER_CAP` is cut to it.
        """
        if exc.retry_after is None:
            return
        wait = exc.retry_after
        if not wait <= RETRY_AFTER_CAP:  # also catches inf and nan
            log.warning(
                "%s: the provider asked to wait %s s; waiting %g s, the cap",
                what,
                f"{wait:.0f}" if math.isfinite(wait) else wait,
                RETRY_AFTER_CAP,
            )
            wait = RETRY_AFTER_CAP
        self._not_before = max(self._not_before, self.clock.monotonic() + max(0.0, wait))

    def _not_yet(self, what: str, remaining: float) -> ProviderError:
        return ProviderError(
            f"{what}: not sent: {self.name} asked to wait (Retry-After), {remaining:.1f} s to go",
            transient=True,
            retry_after=remaining,
        )

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``call``; retry it on transient :class:`ProviderError` per ``self.retry``.

        No try goes out before the provider's "not before" instant
        (:meth:`retry_wait`): a wait up to ``max_retry_after`` is slept, a longer
        one fails at once without a call. Between tries it waits
        ``max(backoff, Retry-After)``. Idempotency makes a retried write safe: a
        create that did land the first time answers "exists", a delete
        "missing", and both count as success.

        Raises:
            ProviderError: the last error, when it is permanent, when the tries
                are used up, or when the provider asks for a longer wait than
                ``max_retry_after`` (then without making the call, if the wait
                was asked before it; ``retry_after`` gives the seconds left).
        """
        attempt = 1
        while True:
            remaining = self.retry_wait()
            if remaining > self.retry.max_retry_after:
                raise self._not_yet(what, remaining)
            if remaining > 0:
                log.info("%s: waiting %.2fs as the provider asked (Retry-After)", what, remaining)
                await self.clock.sleep(remaining)
            try:
                return await call()
            except ProviderError as exc:
                self._hold_off(exc, what)
                wait = backoff_delay(
                    attempt, random.random(), base=self.retry.base, cap=self.retry.cap
                )
                wait = max(wait, self.retry_wait())
                if (
                    not exc.transient
                    or attempt >= self.retry.attempts
                    or wait > self.retry.max_retry_after
                ):
                    raise
                log.info("%s: %s; retry %d in %.2fs", what, exc, attempt, wait)
                attempt += 1
                await self.clock.sleep(wait)

    # -- public API -------------------------------------------------------------

    async def check(self, name: str) -> None:
        """One read of ``name`` without retries: is the provider reachable and readable?

        For health checks (``/_health``); never writes, whatever the dry-run setting.
        While the provider asked to wait (:meth:`retry_wait`) no call goes out and
        this fails at once.

        Raises:
            ProviderError: the provider could not be read, or asked to wait.
        """
        remaining = self.retry_wait()
        if remaining > 0:
            raise self._not_yet(f"{self.name}: check {name}", remaining)
        try:
            await self._list(name)
        except ProviderError as exc:
            self._hold_off(exc, f"{self.name}: check {name}")
            raise

    async def records(self, name: str) -> list[Record]:
        """Current A/AAAA records of ``name`` (in dry-run: as if planned changes were made).

        One read of that name alone (see :meth:`records_for` for many names).

        Raises:
            ProviderError: the provider could not be read.
        """
        current = await self._retrying(lambda: self._list(name), f"{self.name}: list {name}")
        return self._as_planned({name: current}, ("A", "AAAA"))[name]

    async def records_for(
        self, names: Iterable[str], types: Collection[RecordType] = ("A", "AAAA")
    ) -> dict[str, list[Record]]:
        """Current records of many names at once (in dry-run: as if planned changes were made).

        What the reconciler reads at every pass. Providers whose API can list a
        zone read each zone once (paged), whatever the number of names in it
        (Cloudflare, Route 53; see their ``_list_names``); the others read name
        by name, as :meth:`records` does. Records at names not in ``names`` are
        ignored.

        Args:
            names: fully qualified names (duplicates are read once).
            types: the record types wanted, among "A" and "AAAA" (fewer types can
                mean fewer requests); records of other types are left out. With no
                type at all nothing is read.

        Returns:
            name -> its records of ``types``, for every name in ``names`` (in the
            order first given; [] when a name has none).

        Raises:
            ProviderError: a name or a zone could not be read: the whole read
                fails (never a partial answer, never "no records" for it).
        """
        wanted = list(dict.fromkeys(names))
        kinds = frozenset(types)
        if not wanted or not kinds:
            return {name: [] for name in wanted}
        read = await self._list_names(wanted, kinds)
        current = {name: [r for r in read[name] if r.type in kinds] for name in wanted}
        return self._as_planned(current, kinds)

    def _as_planned(
        self, current: dict[str, list[Record]], types: Collection[RecordType]
    ) -> dict[str, list[Record]]:
        """``current`` with the dry-run overlay applied (unchanged when not in dry-run).

        Linear in records + overlay entries: the would-be creates are grouped by
        name once.
        """
        if not self.dry_run or not (self._overlay or self._ttl_overlay):
            return current
        created: dict[str, list[Record]] = {}
        for key, r in self._overlay.items():
            if r is not None and key[0] in current and r.type in types:
                created.setdefault(key[0], []).append(r)
        result: dict[str, list[Record]] = {}
        ttls = self._ttl_overlay
        for name, records in current.items():
            seen = {r.key for r in records}
            kept = [r for r in records if self._overlay.get(r.key, r) is not None]
            kept.extend(r for r in created.get(name, ()) if r.key not in seen)
            result[name] = [replace(r, ttl=ttls[r.key]) if r.key in ttls else r for r in kept]
        return result

    async def apply(
        self,
        changes: Sequence[Change],
        *,
        guard: NameGuard | None = None,
        still: Callable[[Change], bool] | None = None,
    ) -> list[Outcome]:
        """Apply ``changes`` in order, writing an audit record for each.

        Each write is retried a few times on transient errors (``retry``). If it
        still fails transiently, ``apply`` stops there (so a rate-limited API is
        not hammered); changes after it are not attempted and not returned. Other
        errors are recorded and the next change is tried. An exception that is
        not a :class:`ProviderError` (a provider's answer nobody foresaw) becomes
        a permanent error outcome and stops ``apply``: what the provider did is
        unknown, and the next pass re-reads it. Never raises on a provider's
        failure; errors are in the returned outcomes.

        Args:
            changes: creates, TTL updates and deletes, in the order to make them
                (the planner puts creates first: make before break).
            guard: when given, every delete is first checked with
                :meth:`NameGuard.allows` and deferred (not sent) when it would
                leave its name and family with no managed record; every outcome
                is settled into it. A failed create therefore holds back the
                deletes of its name that counted on it.
            still: when given, called right before each change is sent; False
                means the decision that planned it no longer holds (the target
                flipped back, another agent became the writer): the change is
                deferred, not sent, and the next pass plans again.

        Returns:
            One :class:`Outcome` per change attempted or deferred, in order.
        """
        outcomes: list[Outcome] = []
        for change in changes:
            if still is not None and not still(change):
                log.info(
                    "%s: %s of %s %s %s dropped: the decision that planned it no longer holds",
                    self.name,
                    change.action,
                    change.record.name,
                    change.record.type,
                    change.record.content,
                )
                outcomes.append(Outcome(change, ok=False, deferred=True))
                continue
            if guard is not None and not guard.allows(change):
                log.warning(
                    "%s: delete of %s %s %s deferred: it would leave the name with no %s "
                    "record (its replacement is not in DNS yet)",
                    self.name,
                    change.record.name,
                    change.record.type,
                    change.record.content,
                    change.record.type,
                )
                outcomes.append(Outcome(change, ok=False, deferred=True))
                continue
            outcome = await self._apply_change(change)
            outcomes.append(outcome)
            if guard is not None:
                guard.settle(change, outcome.ok)
            if outcome.error is not None and outcome.error.transient:
                break
            if outcome.error is not None and outcome.error.unexpected:
                break
        return outcomes

    async def _apply_change(self, change: Change) -> Outcome:
        """Make (or, in dry-run, record) one change and audit it."""
        if self.dry_run:
            key = change.record.key
            if change.action == "update":
                self._ttl_overlay[key] = change.record.ttl
            else:
                self._overlay[key] = change.record if change.action == "create" else None
                self._ttl_overlay.pop(key, None)
            self.audit.record(self.name, change, dry_run=True, outcome="planned")
            return Outcome(change, ok=True)
        what = f"{self.name}: {change.action} {change.record.name} {change.record.content}"
        try:
            await self._retrying(functools.partial(self._apply_one, change), what)
        except (RecordExists, RecordMissing):
            self.audit.record(self.name, change, dry_run=False, outcome="already-done")
            return Outcome(change, ok=True)
        except ProviderError as exc:
            self.audit.record(self.name, change, dry_run=False, outcome="error", error=str(exc))
            return Outcome(change, ok=False, error=exc)
        except Exception as exc:
            self.unexpected.log(log, exc, what)
            error = ProviderError(
                f"unexpected {type(exc).__qualname__}: {exc}", transient=False, unexpected=True
            )
            self.audit.record(self.name, change, dry_run=False, outcome="error", error=str(error))
            return Outcome(change, ok=False, error=error)
        self.audit.record(self.name, change, dry_run=False, outcome="applied")
        return Outcome(change, ok=True)
