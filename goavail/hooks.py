"""Hooks: operators' programs run when goavail acts (flopsy's trigger scripts, without
flopsy's blocking).

Every executable file in ``hooks_dir`` runs, one after the other in sorted name
order, after goavail applied a DNS change (or, in dry-run, would have), and when
fail-open is engaged or released. Each hook gets the event as arguments and as
environment variables (:func:`hook_argv`, :func:`hook_env`), has ``hook_timeout``
seconds before its process group is killed, and is counted and logged when it
fails — and nothing ever waits for it: the reconciler only appends the event to
a bounded queue (:data:`QUEUE_SIZE`; when full the oldest events are dropped and
counted) that one background task works through. A hanging hook delays the
hooks after it, never a DNS change. (flopsy's triggers block its proxy until they
finish and have no timeout.)

:func:`dns_event`, :func:`fail_open_event`, :func:`hook_argv` and :func:`hook_env`
are pure; :class:`HookRunner` is the I/O edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from goavail.dns.model import FailClosed, FailOpen
from goavail.events import AgentEvent, AuditRecorded, FailClosedChanged, FailOpenChanged
from goavail.proc import program_env, run_program

log = logging.getLogger("goavail.hooks")

QUEUE_SIZE = 1000
"""Events waiting for their hooks at most; beyond, the oldest are dropped (and counted)."""

HOOKED_OUTCOMES = frozenset({"applied", "planned"})
"""Audit outcomes that run the hooks: a change made, or one dry-run would make."""

HookAction = Literal[
    "create",
    "delete",
    "update",
    "fail_open_engaged",
    "fail_open_released",
    "fail_closed_engaged",
    "fail_closed_released",
]


@dataclass(frozen=True, slots=True)
class HookEvent:
    """What the hooks are told.

    Attributes:
        action: ``"create"``/``"delete"`` (a record added/removed), ``"update"``
            (a record's TTL changed), ``"fail_open_engaged"``/``"fail_open_released"``
            or ``"fail_closed_engaged"``/``"fail_closed_released"``.
        target: the record's address; for fail-open, every address kept, for
            fail-closed every address down, comma-separated.
        name: the fully qualified record name.
        record_type: ``"A"`` or ``"AAAA"``.
        dry_run: True when goavail runs in dry-run (the change was not made).
        reason: why (DNS changes: the audit record's reason, e.g. "target
            192.0.2.1 down"; fail-open: a sentence).
        outcome: DNS changes: ``"applied"`` or ``"planned"`` (dry-run); "" for fail-open.
        provider: DNS changes: the provider's name; "" for fail-open.
    """

    action: HookAction
    target: str
    name: str
    record_type: str
    dry_run: bool
    reason: str = ""
    outcome: str = ""
    provider: str = ""


def dns_event(entry: Mapping[str, Any]) -> HookEvent | None:
    """The event of an audit record (see :class:`goavail.dns.audit.AuditLog`), or None
    when its outcome does not run hooks (see :data:`HOOKED_OUTCOMES`)."""
    if entry.get("outcome") not in HOOKED_OUTCOMES or entry.get("action") not in (
        "create",
        "delete",
        "update",
    ):
        return None
    return HookEvent(
        action=entry["action"],
        target=str(entry.get("address", "")),
        name=str(entry.get("name", "")),
        record_type=str(entry.get("type", "")),
        dry_run=bool(entry.get("dry_run")),
        reason=str(entry.get("reason", "")),
        outcome=str(entry["outcome"]),
        provider=str(entry.get("provider", "")),
    )


def fail_open_event(case: FailOpen, *, engaged: bool, dry_run: bool) -> HookEvent:
    """The event of fail-open engaged (``engaged``) or released for ``case``."""
    if engaged:
        reason = "every configured address is down; keeping all of them in DNS"
    else:
        reason = "at least one configured address is up again"
    return HookEvent(
        action="fail_open_engaged" if engaged else "fail_open_released",
        target=",".join(case.kept),
        name=case.name,
        record_type=case.type,
        dry_run=dry_run,
        reason=reason,
    )


def fail_closed_event(case: FailClosed, *, engaged: bool, dry_run: bool) -> HookEvent:
    """The event of fail-closed engaged (``engaged``) or released for ``case``."""
    if engaged:
        reason = "every configured address is down; all_down = fail-closed: withdrawing all"
    else:
        reason = "at least one configured address is up again"
    return HookEvent(
        action="fail_closed_engaged" if engaged else "fail_closed_released",
        target=",".join(case.down),
        name=case.name,
        record_type=case.type,
        dry_run=dry_run,
        reason=reason,
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def hook_argv(program: Path, event: HookEvent) -> list[str]:
    """``program <action> <target> <name> <dry_run>`` (dry_run ``true``/``false``)."""
    return [str(program), event.action, event.target, event.name, _flag(event.dry_run)]


def hook_env(event: HookEvent, node: str) -> dict[str, str]:
    """The ``GOAVAIL_*`` variables of a hook (documented in docs/notifications.md, "Hooks")."""
    return {
        "GOAVAIL_ACTION": event.action,
        "GOAVAIL_TARGET": event.target,
        "GOAVAIL_NAME": event.name,
        "GOAVAIL_RECORD_TYPE": event.record_type,
        "GOAVAIL_DRY_RUN": _flag(event.dry_run),
        "GOAVAIL_REASON": event.reason,
        "GOAVAIL_OUTCOME": event.outcome,
        "GOAVAIL_PROVIDER": event.provider,
        "GOAVAIL_NODE": node,
    }


def list_hooks(directory: Path) -> tuple[list[Path], list[Path]]:
    """The hooks in ``directory``, sorted by name, and the files skipped as not executable.

    A hook is a regular file (or a link to one) with execute permission whose
    name does not start with ``.`` or end with ``~`` (editor backups).

    Raises:
        OSError: the directory cannot be read.
    """
    hooks: list[Path] = []
    skipped: list[Path] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith("~"):
                continue
            if not entry.is_file():
                continue
            (hooks if os.access(entry.path, os.X_OK) else skipped).append(Path(entry.path))
    return sorted(hooks, key=lambda p: p.name), sorted(skipped, key=lambda p: p.name)


def hooks_dir_problem(directory: Path | None) -> str | None:
    """Why ``hooks_dir`` cannot be used, or None (for start-up checks)."""
    if directory is None:
        return None
    if not directory.exists():
        return f"hooks_dir: {str(directory)!r} does not exist"
    if not directory.is_dir():
        return f"hooks_dir: {str(directory)!r} is not a directory"
    if not os.access(directory, os.R_OK | os.X_OK):
        return f"hooks_dir: {str(directory)!r} cannot be read"
    return None


@dataclass(slots=True)
class HookStats:
    """Counters of the hooks (cumulative, for metrics).

    Attributes:
        events: events queued.
        dropped: events dropped because the queue was full.
        runs: hook runs started.
        ok: runs that exited with status 0 in time.
        failed: runs that exited with another status (or were killed by a signal).
        timed_out: runs killed at ``hook_timeout``.
        errors: hooks that could not be started, and unreadable ``hooks_dir`` listings.
    """

    events: int = 0
    dropped: int = 0
    runs: int = 0
    ok: int = 0
    failed: int = 0
    timed_out: int = 0
    errors: int = 0


class HookRunner:
    """Runs the hooks of ``directory`` for every event, in the background.

    Args:
        directory: ``hooks_dir``, or None (events are ignored).
        timeout: seconds one hook may run (``hook_timeout``).
        node: this agent's node name (``GOAVAIL_NODE``).
        dry_run: whether goavail runs in dry-run (fail-open events say so).
        queue_size: events kept waiting at most.

    The directory is read at each event, so hooks added or removed take effect
    without a reload. :meth:`audit_record` and :meth:`fail_open` are the
    listeners the agent wires to the audit log and the reconciler; they return
    at once and never raise. Call :meth:`start` in the event loop, and
    ``await close(deadline)`` at stop.

    Attributes:
        stats: :class:`HookStats`.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        timeout: float,
        node: str,
        dry_run: bool,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.directory = directory
        self.timeout = timeout
        self.node = node
        self.dry_run = dry_run
        self.stats = HookStats()
        self._queue: deque[HookEvent] = deque()
        self._queue_size = queue_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self._dropping = False
        self._closing = False

    # -- listeners ----------------------------------------------------------------------

    def on_event(self, event: AgentEvent) -> None:
        """A subscriber of the agent's :class:`goavail.events.Bus`: DNS changes and
        fail-open become hook events; the other events are not the hooks' business."""
        match event:
            case AuditRecorded(entry):
                self.audit_record(entry)
            case FailOpenChanged(case, engaged):
                self.fail_open(case, engaged)
            case FailClosedChanged(closed, engaged):
                if self.directory is not None:
                    self.offer(fail_closed_event(closed, engaged=engaged, dry_run=self.dry_run))

    def audit_record(self, entry: Mapping[str, Any]) -> None:
        """An audit record was written: queue a DNS change made or planned (dry-run)."""
        if self.directory is None:
            return
        event = dns_event(entry)
        if event is not None:
            self.offer(event)

    def fail_open(self, case: FailOpen, engaged: bool) -> None:
        """Fail-open was engaged (``engaged``) or released for ``case.name``/``case.type``."""
        if self.directory is None:
            return
        self.offer(fail_open_event(case, engaged=engaged, dry_run=self.dry_run))

    def offer(self, event: HookEvent) -> None:
        """Queue ``event`` for the hooks. Never blocks, never raises."""
        if self.directory is None:
            return
        self.stats.events += 1
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
            if not self._dropping:
                log.warning(
                    "hooks: %d events are waiting; dropping the oldest (hooks too slow?)",
                    self._queue_size,
                )
                self._dropping = True
        self._queue.append(event)
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    def reconfigure(self, directory: Path | None, timeout: float) -> None:
        """Apply a reloaded ``hooks_dir`` and ``hook_timeout`` (from the next hook on)."""
        if directory != self.directory:
            log.info("hooks: directory %s", directory if directory is not None else "(none)")
        self.directory = directory
        self.timeout = timeout

    def start(self) -> None:
        """Start the background task (in the event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work(), name="hooks")
            if self.directory is not None:
                log.info("hooks: running the executables of %s", self.directory)

    async def close(self, deadline: float) -> None:
        """Let queued hooks run for at most ``deadline`` seconds, then kill what still runs.

        Never raises; events not handled by then are logged and dropped.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait({task}, timeout=deadline)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._queue:
            log.warning("hooks: %d event(s) not handled at stop", len(self._queue))
            self.stats.dropped += len(self._queue)
            self._queue.clear()

    async def _work(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._dropping = False
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.run_hooks(self._queue.popleft())

    async def run_hooks(self, event: HookEvent) -> None:
        """Run every hook for ``event``, one after the other, each within ``timeout``."""
        directory = self.directory
        if directory is None:
            return
        try:
            hooks, skipped = list_hooks(directory)
        except OSError as exc:
            self.stats.errors += 1
            log.error("hooks: cannot read %s: %s", directory, exc.strerror or exc)
            return
        for path in skipped:
            if path.name not in self._warned:
                self._warned.add(path.name)
                log.warning("hooks: %s is not executable: skipped", path)
        env = program_env(hook_env(event, self.node))
        for path in hooks:
            await self._run_one(path, event, env)

    async def _run_one(self, path: Path, event: HookEvent, env: dict[str, str]) -> None:
        self.stats.runs += 1
        what = f"{path.name} {event.action} {event.target} {event.name}"
        try:
            result = await run_program(hook_argv(path, event), env=env, time_limit=self.timeout)
        except OSError as exc:
            self.stats.errors += 1
            log.error("hook %s: cannot run: %s", what, exc.strerror or exc)
            return
        if result.ok:
            self.stats.ok += 1
            log.info("hook %s: ok (%.2fs)", what, result.duration)
            return
        if result.timed_out:
            self.stats.timed_out += 1
        else:
            self.stats.failed += 1
        line = result.last_line()
        log.warning(
            "hook %s: %s%s%s",
            what,
            result.describe(),
            f" after {self.timeout:g}s, process group killed" if result.timed_out else "",
            f"; last output: {line}" if line else "",
        )


__all__ = [
    "HOOKED_OUTCOMES",
    "QUEUE_SIZE",
    "HookEvent",
    "HookRunner",
    "HookStats",
    "dns_event",
    "fail_closed_event",
    "fail_open_event",
    "hook_argv",
    "hook_env",
    "hooks_dir_problem",
    "list_hooks",
]
