"""One floating-IP group's reconciler: read the inventory, plan from the decisions,
assign (or, in dry-run and read-only, only record) the moves, retry, repair drift.

A pass (triggered by a decision change, by the poll timer every ``poll_interval``
seconds, or by the retry timer after a failure):

1. re-read the servers and floating IPs (:class:`~goavail.fip.hetzner.Hetzner`) when
   the poll is due, the last pass moved or failed, or nothing was read yet; the
   servers' addresses go to ``on_servers`` (the checks probe them);
2. plan (:func:`goavail.fip.plan.plan`) from the decisions (``decisions``: the
   decision stage's effective states, never raw local verdicts);
3. for each move: in cluster mode, only when the decisions it rests on are backed
   right now (``agreed``, the quorum rule DNS changes follow; else it waits for the
   next pass); then :meth:`Actuator.apply`, the one place that knows dry-run: it
   records ``planned`` and changes nothing, or assigns and waits for Hetzner's
   action to finish;
4. a failed read or assign is retried after :func:`goavail.dns.backoff.backoff_delay`
   (equal jitter, base 1 s, cap 30 s); after a pass that moved an IP, no plan is made
   for ``post_plan_delay`` seconds.

Drift (an IP re-assigned by hand) is seen at the next poll and planned like any other
state: an IP on a down or foreign server is moved, an indexed one goes back to its
canonical server (see :mod:`goavail.fip.plan`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from goavail.config import FloatingIpSection
from goavail.dns.audit import AuditLog
from goavail.dns.backoff import backoff_delay
from goavail.fip.hetzner import Hetzner, HetznerError
from goavail.fip.plan import FloatingIp, Move, Plan, Server, plan
from goavail.health import State

log = logging.getLogger("goavail.fip")

RETRY_BASE = 1.0
"""Seconds before the first retry of a failed pass (doubling, see ``backoff_delay``)."""
RETRY_CAP = 30.0
"""The longest wait between two retries (seconds)."""


class Actuator:
    """Makes a move, or in dry-run (and read-only) only records it: the one place that
    knows dry-run (as :class:`goavail.dns.providers.base.Provider`).

    Every call writes one audit record: ``action`` = ``"assign"``, ``group``,
    ``floating_ip`` (name), ``address``, ``from`` / ``to`` (server names; ``from``
    None when unassigned or foreign), ``reason``, ``dry_run``, ``outcome``
    (``"planned"``, ``"applied"`` or ``"error"``) and ``error`` on errors.
    """

    def __init__(
        self, hetzner: Hetzner, audit: Callable[[], AuditLog], *, dry_run: bool, group: str
    ) -> None:
        self.hetzner = hetzner
        self.audit = audit
        self.dry_run = dry_run
        self.group = group

    async def apply(self, move: Move, source: str | None) -> bool:
        """Assign ``move.ip`` to ``move.target`` (waiting for the action), or record it.

        Returns True when the IP targets the server now (or would, in dry-run).
        Raises nothing: a failure is recorded and returns False.
        """
        entry: dict[str, object] = {
            "action": "assign",
            "group": self.group,
            "floating_ip": move.ip.name,
            "address": move.ip.address,
            "from": source,
            "to": move.target.name,
            "reason": move.reason,
            "dry_run": self.dry_run,
        }
        if self.dry_run:
            self._record(entry, "planned")
            return True
        try:
            await self.hetzner.assign(move.ip.id, move.target.id)
        except HetznerError as exc:
            self._record(entry, "error", str(exc))
            return False
        self._record(entry, "applied")
        return True

    def _record(self, entry: dict[str, object], outcome: str, error: str | None = None) -> None:
        entry = {**entry, "outcome": outcome, **({"error": error} if error else {})}
        self.audit().extra(
            entry,
            f"FLOATING IP {entry['floating_ip']} ({entry['address']}) {entry['from'] or '-'} -> "
            f"{entry['to']} ({entry['reason']}) group={self.group} "
            f"dry_run={str(self.dry_run).lower()} outcome={outcome}"
            + (f" error={error}" if error else ""),
        )


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the API said at ``read_at`` (``time.monotonic()``)."""

    servers: tuple[Server, ...]
    ips: tuple[FloatingIp, ...]
    read_at: float
    skipped: tuple[str, ...] = ()
    """Servers left out: no public address."""


class GroupReconciler:
    """The reconciler of one ``[[floating_ips]]`` group (see the module's docstring).

    Args:
        section: the group's settings.
        hetzner: the API edge.
        actuator: makes or records the moves (dry-run lives there; ``read_only``
            groups get a dry-run actuator).
        decisions: target address -> effective decided state (a live mapping).
        agreed: ``agreed(address)``: the decision is backed now (cluster mode; always
            True on a single node).
        on_servers: called with the group id and its servers' addresses after every
            read (the checks follow them).
        jitter: returns a number in [0, 1) (the backoff's jitter).

    Attributes (read by the page and the metrics):
        inventory: the last read, or None.
        plan: the last plan, or None.
        last_error: the last failure's text, or None after a clean pass.
        passes, failed_passes, moves, failed_moves, held: counters.
    """

    def __init__(
        self,
        section: FloatingIpSection,
        hetzner: Hetzner,
        actuator: Actuator,
        *,
        decisions: Mapping[str, State],
        agreed: Callable[[str], bool],
        on_servers: Callable[[str, list[str]], None],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.section = section
        self.hetzner = hetzner
        self.actuator = actuator
        self.decisions = decisions
        self.agreed = agreed
        self.on_servers = on_servers
        self.jitter = jitter
        self.inventory: Inventory | None = None
        self.plan: Plan | None = None
        self.last_error: str | None = None
        self.passes = self.failed_passes = self.moves = self.failed_moves = self.held = 0
        self._wake = asyncio.Event()
        self._stale = True
        self._recorded: dict[int, int] = {}
        """Dry-run: IP id -> the server id its planned move was recorded for."""
        self._attempt = 0

    @property
    def id(self) -> str:
        """The group's id."""
        return self.section.id

    def trigger(self) -> None:
        """Ask for a pass now (a decision changed); never blocks."""
        self._wake.set()

    def health(self) -> dict[str, State]:
        """Server address -> its decided state, for this group's servers."""
        inventory = self.inventory
        if inventory is None:
            return {}
        return {s.address: self.decisions.get(s.address, State.UNKNOWN) for s in inventory.servers}

    async def run(self) -> None:
        """Pass after pass until cancelled (see the module's docstring)."""
        while True:
            delay = await self.run_pass()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def run_pass(self) -> float:
        """One pass; returns the seconds until the next one (unless triggered first)."""
        self.passes += 1
        poll = self.section.poll_interval
        inventory = self.inventory
        if self._stale or inventory is None or time.monotonic() - inventory.read_at >= poll:
            try:
                inventory = await self.read()
            except HetznerError as exc:
                return self._failed(f"read failed: {exc}")
        moved, failed = await self._apply(inventory)
        if failed:
            return self._failed(f"{failed} assign(s) failed")
        self._attempt = 0
        self.last_error = None
        if moved:
            self._stale = True  # confirm the moves at the next read
            if self.section.post_plan_delay > 0:
                await asyncio.sleep(self.section.post_plan_delay)
            return 0.0
        return max(0.0, poll - (time.monotonic() - inventory.read_at))

    def _failed(self, error: str) -> float:
        self.failed_passes += 1
        self._attempt += 1
        self._stale = True
        self.last_error = error
        delay = backoff_delay(self._attempt, self.jitter(), base=RETRY_BASE, cap=RETRY_CAP)
        log.warning(
            "floating IPs %s: %s; retrying in %.1fs (attempt %d)",
            self.id,
            error,
            delay,
            self._attempt,
            extra={"group": self.id},
        )
        return delay

    async def read(self) -> Inventory:
        """Read the group's servers and floating IPs; hand the addresses on.

        Raises:
            HetznerError: a call failed.
        """
        servers, skipped = await self.hetzner.servers(self.section.server_selector)
        ips = await self.hetzner.floating_ips(self.section.floating_ip_selector)
        before = self.inventory
        inventory = Inventory(tuple(servers), tuple(ips), time.monotonic(), tuple(skipped))
        if (
            before is None
            or before.servers != inventory.servers
            or before.skipped != inventory.skipped
        ):
            log.info(
                "floating IPs %s: %d server(s) (%s), %d floating IP(s)%s",
                self.id,
                len(servers),
                ", ".join(f"{s.name} {s.address} {s.location}" for s in servers) or "none",
                len(ips),
                f"; without a public address, not used: {', '.join(skipped)}" if skipped else "",
                extra={"group": self.id},
            )
        self.inventory = inventory
        self._stale = False
        self.on_servers(self.id, [s.address for s in servers])
        return inventory

    async def _apply(self, inventory: Inventory) -> tuple[int, int]:
        """Plan and make the moves; returns ``(moved, failed)``."""
        result = plan(inventory.servers, inventory.ips, self.health())
        if result != self.plan:
            self._log_plan(result, inventory)
        self.plan = result
        names = {s.id: s.name for s in inventory.servers}
        addresses = {s.id: s.address for s in inventory.servers}
        moved = failed = 0
        dry = self.actuator.dry_run
        for move in result.moves:
            if dry and self._recorded.get(move.ip.id) == move.target.id:
                continue  # planned and recorded already
            rests_on = [move.target.address]
            if move.source in addresses:
                rests_on.append(addresses[move.source])
            if not dry and not all(self.agreed(a) for a in rests_on):
                self.held += 1
                log.info(
                    "floating IP %s: move to %s held: the decisions it rests on are not "
                    "backed by enough peers now",
                    move.ip.name,
                    move.target.name,
                    extra={"group": self.id},
                )
                continue
            source = names.get(move.source) if move.source is not None else None
            if await self.actuator.apply(move, source):
                moved += 0 if dry else 1
                self.moves += 0 if dry else 1
                self._recorded[move.ip.id] = move.target.id
            else:
                failed += 1
                self.failed_moves += 1
        planned = {m.ip.id for m in result.moves}
        for ip_id in [i for i in self._recorded if i not in planned]:
            del self._recorded[ip_id]
        return moved, failed

    def _log_plan(self, result: Plan, inventory: Inventory) -> None:
        if result.pending:
            log.info(
                "floating IPs %s: waiting for the health of %s before planning",
                self.id,
                ", ".join(result.pending),
                extra={"group": self.id},
            )
            return
        if result.all_down:
            log.warning(
                "floating IPs %s: every server is down: all are considered healthy, "
                "no floating IP moves because of it",
                self.id,
                extra={"group": self.id},
            )
        names = {s.id: s.name for s in inventory.servers}
        log.info(
            "floating IPs %s: plan %s",
            self.id,
            ", ".join(
                f"{ip.name} -> {names.get(result.targets.get(ip.id, -1), '-')}"
                for ip in sorted(inventory.ips, key=lambda i: (i.name, i.id))
            )
            or "(no floating IPs)",
            extra={"group": self.id},
        )
