"""Audit records: one JSON object per DNS change made, attempted or (in dry-run) planned.

This is an I/O edge: it reads the wall clock and appends to ``audit_file``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from goavail.dns.model import Change

log = logging.getLogger("goavail.audit")


class AuditLog:
    """Writes audit records to the ``goavail.audit`` logger and, if set, to a file.

    Each record is a JSON object with the keys ``time`` (RFC 3339, UTC),
    ``provider``, ``name``, ``type``, ``address``, ``action`` ("create"/"delete"/
    "update"; an update also has ``ttl``, the TTL it gives the record),
    ``reason``, ``dry_run`` (bool) and ``outcome`` ("planned" in dry-run,
    "applied", "already-done" when the provider already matched, or "error").
    ``error`` is present only when ``outcome == "error"``.

    Override records (see :meth:`override`) share the log: ``time``,
    ``action`` = ``"override"``, ``target``, ``mode``, ``previous``, ``reason``, ``source``.

    The last ``keep`` records stay in memory (``recent``) for the status page, and
    ``counts`` counts DNS records by ``(provider, action, outcome, dry_run)`` for
    the metrics; :meth:`inherit` carries both over when a reload replaces the log.
    ``on_record``, if set, is called with every DNS record (not override records)
    after it is written (the notifier and the hooks); it must return at once, and an
    exception from it is logged, never raised to the provider that made the change.

    Raises:
        OSError: from the constructor when ``path`` cannot be opened for appending.
    """

    def __init__(
        self,
        path: Path | None = None,
        keep: int = 50,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = path
        self.on_record = on_record
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.counts: Counter[tuple[str, str, str, bool]] = Counter()

    def inherit(self, old: AuditLog) -> None:
        """Continue the in-memory history (``recent``, ``counts``) of the log this one replaces."""
        mine = list(self.recent)
        self.recent.clear()
        self.recent.extend([*old.recent, *mine])
        self.counts.update(old.counts)

    def record(
        self,
        provider: str,
        change: Change,
        *,
        dry_run: bool,
        outcome: str,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Write one audit record and return it as a dict."""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "provider": provider,
            "name": change.record.name,
            "type": change.record.type,
            "address": change.record.content,
            "action": change.action,
            "reason": change.reason,
            "dry_run": dry_run,
            "outcome": outcome,
        }
        if change.action == "update":
            entry["ttl"] = change.record.ttl
        if error is not None:
            entry["error"] = error
        line = json.dumps(entry, separators=(",", ":"))
        log.info(
            "DNS %s %s %s %s (%s) dry_run=%s outcome=%s%s",
            change.action,
            change.record.name,
            change.record.type,
            change.record.content,
            change.reason,
            str(dry_run).lower(),
            outcome,
            f" error={error}" if error else "",
            extra={"audit": entry},
        )
        self.counts[(provider, change.action, outcome, dry_run)] += 1
        self._write(line, entry)
        if self.on_record is not None:
            try:
                self.on_record(entry)
            except Exception:  # a listener's bug must never fail a DNS change
                log.exception("audit listener failed on %s", line)
        return entry

    def override(
        self, target: str, *, mode: str, previous: str, reason: str, source: str
    ) -> dict[str, Any]:
        """Write one override record (``mode``/``previous``: "up", "down" or "auto";
        ``source``: "file", "api" or "peer") and return it as a dict."""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "action": "override",
            "target": target,
            "mode": mode,
            "previous": previous,
            "reason": reason,
            "source": source,
        }
        log.warning(
            "OVERRIDE %s: %s -> %s (source %s)%s",
            target,
            previous,
            mode,
            source,
            f": {reason}" if reason else "",
            extra={"audit": entry, "target": target},
        )
        self._write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False), entry)
        return entry

    def failback(self, target: str, *, reason: str, source: str) -> dict[str, Any]:
        """Write one failback release record (an operator let a recovered ``target``
        back into DNS; ``source``: "api", "page" or "cli" as the request said) and
        return it as a dict."""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "action": "failback",
            "target": target,
            "reason": reason,
            "source": source,
        }
        log.warning(
            "FAILBACK %s released (source %s)%s",
            target,
            source,
            f": {reason}" if reason else "",
            extra={"audit": entry, "target": target},
        )
        self._write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False), entry)
        return entry

    def extra(self, entry: dict[str, Any], message: str) -> dict[str, Any]:
        """Write a record of another actuator (a floating IP re-target, see
        :mod:`goavail.fip.reconcile`): ``entry`` gets ``time`` and is logged at INFO as
        ``message``; ``on_record`` is not called (it expects DNS records). Returns it."""
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry}
        log.info("%s", message, extra={"audit": entry})
        self._write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False), entry)
        return entry

    def _write(self, line: str, entry: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        self.recent.append(entry)

    def close(self) -> None:
        """Flush and close the audit file (idempotent)."""
        if self._file is not None:
            self._file.flush()
            self._file.close()
            self._file = None
