"""An in-memory provider: the reference implementation of the provider contract.

Used by unit tests of the reconciler (with fault injection) and as the model
the real providers are checked against (external-dns keeps one for the same
reason).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from goavail.dns.audit import AuditLog
from goavail.dns.model import Record
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing


class MemoryProvider(Provider):
    """Records kept in a dict; ``fail_next(n)`` makes the next ``n`` calls fail.

    Args:
        dry_run, audit: see :class:`Provider`.
        records: initial records.
    """

    name = "memory"

    def __init__(self, *, dry_run: bool, audit: AuditLog, records: Iterable[Record] = ()) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        self._ids = itertools.count(1)
        self.store: dict[tuple[str, str, str], Record] = {}
        for r in records:
            self._put(r)
        self._failures: list[tuple[str | None, ProviderError]] = []
        self.calls: list[str] = []
        """Every backend call made, as "list NAME", "create KEY", "delete KEY"."""

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
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``n`` backend calls (only "list", "create" or "delete" calls
        when ``on`` is given) raise :class:`ProviderError` (with ``retry_after``
        seconds, as a rate-limited HTTP API answers)."""
        self._failures.extend(
            (on, ProviderError(message, transient=transient, retry_after=retry_after))
            for _ in range(n)
        )

    def _maybe_fail(self, kind: str) -> None:
        for i, (on, error) in enumerate(self._failures):
            if on is None or on == kind:
                del self._failures[i]
                raise error

    async def _list(self, name: str) -> list[Record]:
        self.calls.append(f"list {name}")
        self._maybe_fail("list")
        return [r for r in self.store.values() if r.name == name]

    async def _create(self, record: Record) -> None:
        self.calls.append(f"create {record.key}")
        self._maybe_fail("create")
        if record.key in self.store:
            raise RecordExists(str(record.key))
        self._put(record)

    async def _delete(self, record: Record) -> None:
        self.calls.append(f"delete {record.key}")
        self._maybe_fail("delete")
        if self.store.pop(record.key, None) is None:
            raise RecordMissing(str(record.key))
