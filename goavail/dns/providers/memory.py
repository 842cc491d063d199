"""An in-memory provider: the reference implementation of the provider contract.

Used by unit tests of the reconciler (with fault injection) and as the model
the real providers are checked against (external-dns keeps one for the same
reason).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from goavail.dns.audit import AuditLog
from goavail.dns.model import Record
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing


class MemoryProvider(Provider):
    """Records kept in a dict; ``fail_next(n)`` makes the next ``n`` calls fail.

    Args:
        dry_run, audit: see :class:`Provider`.
        records: initial records.

    Attributes:
        on_call: when set, called with the call's text ("create KEY", ...) after
            every backend call, whatever its outcome, with ``store`` as the call
            left it: tests assert invariants there, after every single call.
    """

    name = "memory"

    def __init__(self, *, dry_run: bool, audit: AuditLog, records: Iterable[Record] = ()) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        self._ids = itertools.count(1)
        self.store: dict[tuple[str, str, str], Record] = {}
        for r in records:
            self._put(r)
        self._failures: list[tuple[str | None, Exception, bool]] = []
        self.calls: list[str] = []
        """Every backend call made, as "list NAME", "create KEY", "delete KEY",
        "update KEY"."""
        self.on_call: Callable[[str], None] | None = None

    def _put(self, r: Record) -> None:
        self.store[r.key] = Record(
            r.name, r.type, r.content, r.ttl, r.proxied, str(next(self._ids))
        )

    def fail_next(
        self,
        n: int,
        *,
        transient: bool = True,
        message: str = "HTTP 503",
        on: str | None = None,
        landed: bool = False,
        error: Exception | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``n`` backend calls (only "list", "create", "delete" or
        "update" calls when ``on`` is given) fail.

        Args:
            n: how many calls fail.
            transient, message: the :class:`ProviderError` raised.
            retry_after: its ``retry_after`` (seconds, as a rate-limited HTTP API asks).
            on: the kind of call that fails, or None for any.
            landed: the write takes effect before the error is raised (a timeout
                after the server acted: the caller cannot know it landed).
            error: raise this exception instead of a :class:`ProviderError`
                (an answer nobody foresaw).
        """
        for _ in range(n):
            exc = error or ProviderError(message, transient=transient, retry_after=retry_after)
            self._failures.append((on, exc, landed))

    def _fault(self, kind: str) -> tuple[Exception, bool] | None:
        for i, (on, error, landed) in enumerate(self._failures):
            if on is None or on == kind:
                del self._failures[i]
                return error, landed
        return None

    def _called(self, call: str) -> None:
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    async def _list(self, name: str) -> list[Record]:
        fault = self._fault("list")
        self._called(f"list {name}")
        if fault is not None:
            raise fault[0]
        return [r for r in self.store.values() if r.name == name]

    async def _create(self, record: Record) -> None:
        fault = self._fault("create")
        exists = record.key in self.store
        if (fault is None or fault[1]) and not exists:
            self._put(record)
        self._called(f"create {record.key}")
        if fault is not None:
            raise fault[0]
        if exists:
            raise RecordExists(str(record.key))

    async def _delete(self, record: Record) -> None:
        fault = self._fault("delete")
        missing = record.key not in self.store
        if fault is None or fault[1]:
            self.store.pop(record.key, None)
        self._called(f"delete {record.key}")
        if fault is not None:
            raise fault[0]
        if missing:
            raise RecordMissing(str(record.key))

    async def _update_ttl(self, record: Record) -> None:
        """Replace the stored record's TTL in place (one step: never absent)."""
        fault = self._fault("update")
        old = self.store.get(record.key)
        if old is not None and old.ttl != record.ttl and (fault is None or fault[1]):
            self.store[record.key] = Record(
                old.name, old.type, old.content, record.ttl, old.proxied, old.id
            )
        self._called(f"update {record.key}")
        if fault is not None:
            raise fault[0]
        if old is None:
            raise RecordMissing(str(record.key))
        if old.ttl == record.ttl:
            raise RecordExists(str(record.key))
