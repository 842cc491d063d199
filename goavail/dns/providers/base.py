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

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record, RecordType

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """A provider call failed.

    Attributes:
        transient: True when retrying the same call may succeed (HTTP 429 and
            5xx, timeouts, connection errors). Permanent errors (authentication,
            missing zone, invalid request) are retried too by the reconciler, but
            at its longest backoff, since only an operator can fix them.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class RecordExists(Exception):
    """Raised by ``_create`` when an identical record already exists (treated as success)."""


class RecordMissing(Exception):
    """Raised by ``_delete`` when the record is already gone (treated as success)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of applying one change: ``ok`` or the error that stopped it."""

    change: Change
    ok: bool
    error: ProviderError | None = None


class Provider(ABC):
    """Base class of DNS providers.

    Args:
        dry_run: when True no write reaches the provider (see module docstring).
        audit: where audit records go.

    Subclasses set ``name`` and implement ``_list``, ``_create``, ``_delete``
    and, if they hold connections, ``close``.
    """

    name: ClassVar[str]

    def __init__(self, *, dry_run: bool, audit: AuditLog) -> None:
        self.dry_run = dry_run
        self.audit = audit
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

    # -- public API -------------------------------------------------------------

    async def records(self, name: str) -> list[Record]:
        """Current A/AAAA records of ``name`` (in dry-run: as if planned changes were made).

        Raises:
            ProviderError: the provider could not be read.
        """
        current = await self._list(name)
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

    async def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in order, writing an audit record for each.

        Stops at the first transient error (so a rate-limited API is not
        hammered); changes after it are not attempted and not returned. Other
        errors are recorded and the next change is tried. Never raises
        :class:`ProviderError`; errors are in the returned outcomes.

        Returns:
            One :class:`Outcome` per change attempted, in order.
        """
        outcomes: list[Outcome] = []
        for change in changes:
            if self.dry_run:
                self._overlay[change.record.key] = (
                    change.record if change.action == "create" else None
                )
                self.audit.record(self.name, change, dry_run=True, outcome="planned")
                outcomes.append(Outcome(change, ok=True))
                continue
            try:
                if change.action == "create":
                    await self._create(change.record)
                else:
                    await self._delete(change.record)
            except (RecordExists, RecordMissing):
                self.audit.record(self.name, change, dry_run=False, outcome="already-done")
                outcomes.append(Outcome(change, ok=True))
            except ProviderError as exc:
                self.audit.record(self.name, change, dry_run=False, outcome="error", error=str(exc))
                outcomes.append(Outcome(change, ok=False, error=exc))
                if exc.transient:
                    break
            else:
                self.audit.record(self.name, change, dry_run=False, outcome="applied")
                outcomes.append(Outcome(change, ok=True))
        return outcomes
