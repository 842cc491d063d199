"""Everything every DNS provider shares: dry-run, audit records, idempotency, error kinds.

A concrete provider (Cloudflare, zone file, ...) implements three small hooks —
``_list``, ``_create`` and ``_delete`` — and raises the exceptions below. Dry-run
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
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from goavail.dns.audit import AuditLog
from goavail.dns.backoff import backoff_delay
from goavail.dns.guard import NameGuard
from goavail.dns.model import Change, Record, RecordType

log = logging.getLogger(__name__)

T = TypeVar("T")


class ProviderError(Exception):
    """A provider call failed.

    Attributes:
        transient: True when retrying the same call may succeed (HTTP 429 and
            5xx, timeouts, connection errors). Permanent errors (authentication,
            missing zone, invalid request) are retried too by the reconciler, but
            at its longest backoff, since only an operator can fix them.
        retry_after: seconds the provider asked us to wait (HTTP ``Retry-After``), or None.
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


class RecordExists(Exception):
    """Raised by ``_create`` when an identical record already exists (treated as success)."""


class RecordMissing(Exception):
    """Raised by ``_delete`` when the record is already gone (treated as success)."""


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
    needs, once. The kind is the exception's type and message.

    Attributes:
        count: unexpected exceptions seen since start.
    """

    __slots__ = ("_seen", "count")

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self.count = 0

    def log(self, logger: logging.Logger, exc: BaseException, what: str) -> None:
        """Log ``exc``, raised while doing ``what``, at ERROR."""
        self.count += 1
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

    Subclasses set ``name`` and implement ``_list``, ``_create``, ``_delete``
    and, if they hold connections, ``close``.
    """

    name: ClassVar[str]

    def __init__(self, *, dry_run: bool, audit: AuditLog, retry: CallRetry | None = None) -> None:
        self.dry_run = dry_run
        self.audit = audit
        self.retry = retry or CallRetry()
        self.unexpected = UnexpectedErrors()
        """Exceptions of the provider's hooks that are not :class:`ProviderError`."""
        # Dry-run overlay: record key -> Record (would be created) or None (would be deleted).
        self._overlay: dict[tuple[str, RecordType, str], Record | None] = {}

    # -- hooks for subclasses -------------------------------------------------

    @abstractmethod
    async def _list(self, name: str) -> list[Record]:
        """All A and AAAA records at exactly ``name`` (fully qualified, no trailing dot).

        Raises:
            ProviderError: the provider could not be read.
        """

    @abstractmethod
    async def _create(self, record: Record) -> None:
        """Create ``record``. Its ``ttl``/``proxied`` are the configured ones (the reconciler
        passes them to the planner); a provider may apply its own configured values instead.

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

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The default does nothing."""

    # -- retries -----------------------------------------------------------------

    async def _apply_one(self, change: Change) -> None:
        if change.action == "create":
            await self._create(change.record)
        else:
            await self._delete(change.record)

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``call``; retry it on transient :class:`ProviderError` per ``self.retry``.

        Waits ``max(Retry-After, backoff)`` between tries. Idempotency makes a
        retried write safe: a create that did land the first time answers
        "exists", a delete "missing", and both count as success.

        Raises:
            ProviderError: the last error, when it is permanent, when the tries
                are used up, or when the provider asks for a longer wait than
                ``max_retry_after``.
        """
        attempt = 1
        while True:
            try:
                return await call()
            except ProviderError as exc:
                wait = backoff_delay(
                    attempt, random.random(), base=self.retry.base, cap=self.retry.cap
                )
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                if (
                    not exc.transient
                    or attempt >= self.retry.attempts
                    or wait > self.retry.max_retry_after
                ):
                    raise
                log.info("%s: %s; retry %d in %.2fs", what, exc, attempt, wait)
                attempt += 1
                await asyncio.sleep(wait)

    # -- public API -------------------------------------------------------------

    async def check(self, name: str) -> None:
        """One read of ``name`` without retries: is the provider reachable and readable?

        For health checks (``/_health``); never writes, whatever the dry-run setting.

        Raises:
            ProviderError: the provider could not be read.
        """
        await self._list(name)

    async def records(self, name: str) -> list[Record]:
        """Current A/AAAA records of ``name`` (in dry-run: as if planned changes were made).

        Raises:
            ProviderError: the provider could not be read.
        """
        current = await self._retrying(lambda: self._list(name), f"{self.name}: list {name}")
        if not self.dry_run or not self._overlay:
            return current
        seen = {r.key for r in current}
        result = [r for r in current if self._overlay.get(r.key, r) is not None]
        result.extend(
            r
            for key, r in self._overlay.items()
            if r is not None and key[0] == name and key not in seen
        )
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
            changes: creates and deletes, in the order to make them (the planner
                puts creates first: make before break).
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
            self._overlay[change.record.key] = change.record if change.action == "create" else None
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
