"""The floating-IP groups of a run: their reconcilers, the checks that probe their
servers, and the few hooks the agent calls (start, run, close, trigger, views).

The servers' public addresses come from the API, so the targets of these checks change
at run time: a :class:`~goavail.checks.multi.CheckSet` of their own follows every read
(:meth:`FipRuntime.servers_read`). Its verdicts go through the agent's decision stage
(``verdict``, which in cluster mode also publishes them to the peers): the reconcilers
plan from the *decisions*, as DNS does. An address that is also a DNS target is not
probed twice: its DNS checks judge it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Mapping, Sequence

from goavail.checks.multi import CheckSet, Prepared
from goavail.config import CheckSection, Config
from goavail.dns.audit import AuditLog
from goavail.fip.groups import group_checks
from goavail.fip.hetzner import Hetzner, client_from_env
from goavail.fip.reconcile import Actuator, GroupReconciler
from goavail.health import State
from goavail.judges import Assignment
from goavail.web.snapshot import FloatingIpRow, FloatingIpView

log = logging.getLogger("goavail.fip")


class _Either:
    """``in`` either of two containers (the cluster's view of the watched targets)."""

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self.first, self.second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


class FipRuntime:
    """Every ``[[floating_ips]]`` group of a run.

    Args:
        config: the validated configuration (its ``floating_ips`` not empty).
        sections: the run's checks (``[[checks]]``, or the ``--type`` probe).
        dry_run: goavail's ``--dry-run`` (the default): moves are only recorded.
        audit: returns the audit log in use (a reload may replace it).
        decisions: the decision stage's effective states (a live mapping).
        agreed: the decision stage's ``agreed`` (quorum backing).
        verdict: ``verdict(address, state)``: a server's checked state changed (the
            agent's decision path).
        dns_targets: the DNS targets (a live container): not probed here.
        on_added, on_removed: called with server addresses that appeared in or left
            every group (the cluster pulls peers' votes again / forgets them).
        hetzner: the API edge (default: from ``HCLOUD_TOKEN``/``HCLOUD_ENDPOINT``).

    Raises:
        SetupError: ``HCLOUD_TOKEN`` is missing.
    """

    def __init__(
        self,
        config: Config,
        sections: Sequence[CheckSection],
        *,
        dry_run: bool,
        audit: Callable[[], AuditLog],
        decisions: Mapping[str, State],
        agreed: Callable[[str], bool],
        verdict: Callable[[str, State], None],
        dns_targets: Container[str],
        on_added: Callable[[list[str]], None] = lambda _: None,
        on_removed: Callable[[list[str]], None] = lambda _: None,
        hetzner: Hetzner | None = None,
    ) -> None:
        self.config = config
        self.sections = list(sections)
        self.dry_run = dry_run
        self.verdict = verdict
        self.dns_targets = dns_targets
        self.on_added, self.on_removed = on_added, on_removed
        timeout = max(g.action_timeout for g in config.floating_ips)
        self.hetzner = hetzner or Hetzner(client_from_env(), action_timeout=timeout)
        used = {s.id for g in config.floating_ips for s in group_checks(g, self.sections)}
        self._used = [s for s in self.sections if s.id in used]
        self.groups: dict[str, GroupReconciler] = {
            g.id: GroupReconciler(
                g,
                self.hetzner,
                Actuator(self.hetzner, audit, dry_run=dry_run or g.read_only, group=g.id),
                decisions=decisions,
                agreed=agreed,
                on_servers=self.servers_read,
            )
            for g in config.floating_ips
        }
        self._servers: dict[str, list[str]] = {g: [] for g in self.groups}
        self.addresses: set[str] = set()
        """Every group's server addresses (the targets the cluster accepts votes for)."""
        self.checks = CheckSet(self._used, [], self._on_verdict, assignment=Assignment({}))

    def watching(self, dns_targets: Container[str]) -> Container[str]:
        """The targets the cluster keeps peers' votes for: the DNS ones and the servers."""
        return _Either(dns_targets, self.addresses)

    def trigger(self) -> None:
        """A decision changed: every group plans again (never blocks)."""
        for group in self.groups.values():
            group.trigger()

    def servers_read(self, group: str, addresses: list[str]) -> None:
        """A group read its servers: probe the addresses of every group from now on."""
        if self._servers.get(group) == addresses:
            return
        self._servers[group] = list(addresses)
        every = list(dict.fromkeys(a for g in self._servers.values() for a in g))
        added = [a for a in every if a not in self.addresses]
        removed = [a for a in self.addresses if a not in set(every)]
        self.addresses = set(every)
        probed = [a for a in every if a not in self.dns_targets]
        judged: dict[str, list[str]] = {s.id: [] for s in self._used}
        for g in self.config.floating_ips:
            for section in group_checks(g, self._used):
                judged[section.id].extend(
                    a for a in self._servers[g.id] if a in probed and a not in judged[section.id]
                )
        assignment = Assignment({k: tuple(v) for k, v in judged.items()})
        retired = self.checks.commit(Prepared(self._used, assignment=assignment), probed)
        assert not retired  # the same sections: every engine is kept
        if removed:
            self.on_removed(removed)
        if added:
            self.on_added(added)

    def _on_verdict(self, target: str, old: State, new: State, why: str) -> None:
        log.info(
            "server %s %s -> %s: %s (floating IPs)",
            target,
            old,
            new,
            why,
            extra={"target": target, "state": str(new)},
        )
        self.verdict(target, new)

    def views(self) -> tuple[FloatingIpView, ...]:
        """Each group's state for the page, ``/api/status`` and ``/metrics`` (values)."""
        out: list[FloatingIpView] = []
        for group in self.groups.values():
            inventory, result = group.inventory, group.plan
            servers = inventory.servers if inventory is not None else ()
            names = {s.id: s.name for s in servers}
            health = group.health()
            ips = inventory.ips if inventory is not None else ()
            targets = result.targets if result is not None else {}
            out.append(
                FloatingIpView(
                    id=group.id,
                    servers=tuple(
                        (s.name, s.address, s.location, health.get(s.address, State.UNKNOWN))
                        for s in sorted(servers, key=lambda s: (s.name, s.id))
                    ),
                    ips=tuple(
                        FloatingIpRow(
                            ip.name,
                            ip.address,
                            ip.location,
                            names.get(ip.server) if ip.server is not None else None,
                            names.get(targets[ip.id]) if ip.id in targets else None,
                        )
                        for ip in sorted(ips, key=lambda i: (i.name, i.id))
                    ),
                    pending=result.pending if result is not None else (),
                    all_down=result.all_down if result is not None else False,
                    dry_run=group.actuator.dry_run,
                    read_at=inventory.read_at if inventory is not None else None,
                    last_error=group.last_error,
                    moves=group.moves,
                    failed_moves=group.failed_moves,
                    passes=group.passes,
                    failed_passes=group.failed_passes,
                    held=group.held,
                )
            )
        return tuple(out)

    async def start(self) -> None:
        """Start the checks' engines.

        Raises:
            ProbeSetupError: an engine cannot start.
        """
        await self.checks.start()

    async def run(self) -> None:
        """Run the checks and every group's reconciler until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.checks.run(), name="fip-checks")
            for reconciler in self.groups.values():
                group.create_task(reconciler.run(), name=f"fip-{reconciler.id}")

    async def close(self) -> None:
        """Stop the checks and close the API session."""
        await self.checks.close()
        await self.hetzner.close()
