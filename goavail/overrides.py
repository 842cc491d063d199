"""Maintenance overrides: this agent's own table, the overrides file, and the API's changes.

An operator pins a target ``up`` (always keep its records), ``down`` (drain: withdraw them
now, still subject to the planner's fail-open) or back to ``auto``, either in the overrides
file (``overrides_file``, TOML, re-read on SIGHUP) or with ``POST /api/overrides``. The
file is the source of truth when it is configured: an API change is written to it first
(atomically), so it survives a restart and the next SIGHUP reads it back; without a file,
API changes live in memory until the agent stops.

The file maps target addresses to a mode, or to a table with a reason::

    "192.0.2.10" = "down"
    "192.0.2.11" = { mode = "up", reason = "DB migration, OPS-42", since = "2026-11-21T03:00:00Z" }

``"auto"`` entries are accepted and mean "no override". Keys are IP addresses (any
spelling; kept in canonical form). How the override changes decisions is in
:mod:`goavail.decision` (pure); this module is the I/O edge around it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from goavail.config.errors import ConfigError
from goavail.decision import DecisionStage, Override
from goavail.dns.audit import AuditLog

if sys.version_info >= (3, 11):  # noqa: UP036 - tomli fallback kept on purpose
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

log = logging.getLogger("goavail.overrides")

MAX_REASON = 200
"""Longest reason accepted, in characters."""

_HEADER = """\
# goavail maintenance overrides (see docs/operating.md). Written by goavail when an override
# is set through POST /api/overrides; edit it by hand and send SIGHUP to apply.
#   "<address>" = "up" | "down" | "auto"
#   "<address>" = { mode = "down", reason = "why", since = "RFC 3339 time" }
"""


@dataclass(frozen=True, slots=True)
class OverrideEntry:
    """One override held by this agent.

    Attributes:
        mode: ``Override.UP`` or ``Override.DOWN`` (``auto`` is never stored).
        reason: free text from the operator (at most :data:`MAX_REASON` printable
            characters), possibly empty.
        since: when it was set, RFC 3339 UTC text (``"2026-11-21T03:00:00Z"``), or
            empty when the file did not say.
    """

    mode: Override
    reason: str = ""
    since: str = ""

    def as_dict(self) -> dict[str, str]:
        """``{"mode", "reason", "since"}`` for JSON answers."""
        return {"mode": self.mode.value, "reason": self.reason, "since": self.since}


def now_text(now: datetime | None = None) -> str:
    """RFC 3339 UTC text of ``now`` (default: the wall clock), to the second."""
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_reason(value: object) -> str:
    """Validate a reason: a string of at most :data:`MAX_REASON` printable characters.

    Raises:
        ValueError: with a message fit for an operator.
    """
    if not isinstance(value, str):
        raise ValueError("reason must be a string")
    if len(value) > MAX_REASON:
        raise ValueError(f"reason must be at most {MAX_REASON} characters")
    if not value.isprintable():
        raise ValueError("reason must be printable text (no control characters or newlines)")
    return value.strip()


def check_target(value: str) -> str:
    """Canonical text of an IP address.

    Raises:
        ValueError: ``value`` is not an IP address.
    """
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def parse_mode(value: object) -> Override:
    """``"up"``/``"down"``/``"auto"`` (any case) as an :class:`Override`.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, str):
        try:
            return Override(value.strip().lower())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not one of up, down, auto")


def _since(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("since must have a time zone (e.g. 2026-11-21T03:00:00Z)")
        return now_text(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"since: {value!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise ValueError("since must have a time zone (e.g. 2026-11-21T03:00:00Z)")
        return now_text(moment)
    raise ValueError("since must be an RFC 3339 time")


def parse_overrides(data: Mapping[str, object]) -> dict[str, OverrideEntry]:
    """Validate the parsed TOML of an overrides file (pure).

    Returns:
        Canonical target address -> entry, ``auto`` entries left out.

    Raises:
        ConfigError: listing every problem, each as ``"<address>[.key]: message"``.
    """
    entries: dict[str, OverrideEntry] = {}
    problems: list[str] = []
    for key, value in data.items():
        try:
            target = check_target(key)
        except ValueError as exc:
            problems.append(f"{json.dumps(key)}: {exc}")
            continue
        if target in entries:
            problems.append(f"{json.dumps(key)}: {target} is listed twice")
            continue
        where = json.dumps(key)
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"mode", "reason", "since"})
            for name in unknown:
                problems.append(f"{where}.{name}: unknown key (expected mode, reason, since)")
            fields: dict[str, object] = value
        else:
            fields = {"mode": value}
        if "mode" not in fields:
            problems.append(f"{where}.mode: field required")
            continue
        try:
            mode = parse_mode(fields["mode"])
        except ValueError as exc:
            problems.append(f"{where}{'.mode' if isinstance(value, dict) else ''}: {exc}")
            continue
        reason = since = ""
        try:
            reason = check_reason(fields.get("reason", ""))
        except ValueError as exc:
            problems.append(f"{where}.reason: {exc}")
        if "since" in fields:
            try:
                since = _since(fields["since"])
            except ValueError as exc:
                problems.append(f"{where}.since: {exc}")
        if mode is not Override.AUTO:
            entries[target] = OverrideEntry(mode, reason, since)
    if problems:
        raise ConfigError(problems)
    return entries


def render_overrides(entries: Mapping[str, OverrideEntry]) -> str:
    """The TOML text of an overrides file holding ``entries`` (pure; sorted by address).

    Strings are written as JSON strings, which are valid TOML basic strings for the
    printable text :func:`check_reason` admits.
    """
    lines = [_HEADER]
    for target in sorted(entries, key=_address_key):
        entry = entries[target]
        fields = [f"mode = {json.dumps(entry.mode.value)}"]
        if entry.reason:
            fields.append(f"reason = {json.dumps(entry.reason, ensure_ascii=False)}")
        if entry.since:
            fields.append(f"since = {json.dumps(entry.since)}")
        lines.append(f"{json.dumps(target)} = {{ {', '.join(fields)} }}\n")
    return "".join(lines)


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def load_overrides(path: Path | None) -> dict[str, OverrideEntry]:
    """Read and validate the overrides file; a missing file (or no path) is no override.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or is invalid (every problem
            listed, the path attached).
    """
    if path is None:
        return {}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"], path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not valid UTF-8 (at byte {exc.start})"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], path) from None
    try:
        return parse_overrides(data)
    except ConfigError as exc:
        raise ConfigError(exc.problems, path) from None


def save_overrides(path: Path, entries: Mapping[str, OverrideEntry]) -> None:
    """Write the overrides file atomically (temporary file in the same directory + rename).

    Raises:
        OSError: the file cannot be written; the old file is then left as it was.
    """
    text = render_overrides(entries)
    if parse_overrides(tomllib.loads(text)) != dict(entries):  # pragma: no cover - a bug guard
        raise OSError(f"refusing to write {path}: the rendered file does not read back")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Overrides:
    """This agent's own overrides, kept in step with the decision stage and the audit log.

    Args:
        stage: the decision stage (its ``overrides`` are set from here).
        path: the overrides file, or None (API changes then live in memory only).
        audit: returns the current audit log (it may be replaced by a reload).
        on_change: called as ``on_change(target)`` after the override in force for
            ``target`` may have changed (the agent re-plans DNS and announces it).

    Attributes:
        entries: canonical target -> this agent's :class:`OverrideEntry`.
    """

    def __init__(
        self,
        stage: DecisionStage,
        path: Path | None,
        *,
        audit: Callable[[], AuditLog],
        on_change: Callable[[str], None],
    ) -> None:
        self.stage = stage
        self.path = path
        self.entries: dict[str, OverrideEntry] = {}
        self._audit = audit
        self._on_change = on_change

    def replace(self, entries: Mapping[str, OverrideEntry], *, source: str) -> list[str]:
        """Make ``entries`` the whole table (from the file at start-up or on SIGHUP).

        Returns:
            The targets whose entry changed.
        """
        changed = [
            t
            for t in sorted(set(self.entries) | set(entries), key=_address_key)
            if self.entries.get(t) != entries.get(t)
        ]
        for target in changed:
            self._switch(target, entries.get(target), source)
        return changed

    def set(
        self, target: str, mode: Override, reason: str = "", *, source: str = "api"
    ) -> OverrideEntry | None:
        """Set (``up``/``down``) or clear (``auto``) the override of one target.

        With an overrides file, the file is written first: if that fails nothing
        changes. Returns the new entry (None after ``auto``).

        Raises:
            OSError: the overrides file cannot be written.
        """
        entry = None if mode is Override.AUTO else OverrideEntry(mode, reason, now_text())
        new = dict(self.entries)
        if entry is None:
            new.pop(target, None)
        else:
            new[target] = entry
        if self.path is not None:
            save_overrides(self.path, new)
        if self.entries.get(target) != entry:
            self._switch(target, entry, source)
        return entry

    def _switch(self, target: str, entry: OverrideEntry | None, source: str) -> None:
        previous = self.entries.get(target)
        if entry is None:
            self.entries.pop(target, None)
        else:
            self.entries[target] = entry
        mode = entry.mode if entry else Override.AUTO
        self.stage.set_override(target, mode)
        self._audit().override(
            target,
            mode=mode.value,
            previous=(previous.mode if previous else Override.AUTO).value,
            reason=entry.reason if entry else "",
            source=source,
        )
        self._on_change(target)
