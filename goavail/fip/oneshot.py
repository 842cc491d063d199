"""``goavail plan`` for the ``[[floating_ips]]`` groups: read each group once, check its
servers once (as many probes as rise/fall need), and plan, changing nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from goavail.checks.multi import assess
from goavail.config import CheckSection, Config
from goavail.fip.groups import group_checks
from goavail.fip.hetzner import Hetzner, client_from_env
from goavail.fip.plan import FloatingIp, Plan, Server, plan
from goavail.health import State
from goavail.judges import Assignment


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """One group's one-shot plan: what was read, the servers' checked states, the plan."""

    id: str
    servers: tuple[Server, ...]
    ips: tuple[FloatingIp, ...]
    health: dict[str, State]
    plan: Plan
    read_only: bool


async def plan_groups(
    config: Config, sections: Sequence[CheckSection], hetzner: Hetzner | None = None
) -> list[GroupPlan]:
    """Every group's plan, in configuration order.

    Raises:
        SetupError: ``HCLOUD_TOKEN`` is missing.
        HetznerError: an API call failed.
        ProbeSetupError: a check's engine cannot start.
    """
    api = hetzner or Hetzner(client_from_env())
    out: list[GroupPlan] = []
    try:
        for group in config.floating_ips:
            servers, _ = await api.servers(group.server_selector)
            ips = await api.floating_ips(group.floating_ip_selector)
            checks = group_checks(group, sections)
            addresses = [s.address for s in servers]
            assessed = await assess(
                checks, addresses, Assignment.every([c.id for c in checks], addresses)
            )
            health = {target: state for target, (state, _) in assessed.items()}
            out.append(
                GroupPlan(
                    group.id,
                    tuple(servers),
                    tuple(ips),
                    health,
                    plan(servers, ips, health),
                    group.read_only,
                )
            )
    finally:
        await api.close()
    return out


def plan_lines(groups: Sequence[GroupPlan]) -> list[str]:
    """The plans as text: one line per server, one per floating IP (current -> planned)."""
    lines: list[str] = []
    for g in groups:
        names = {s.id: s.name for s in g.servers}
        head = f"floating IPs {g.id}" + (" (read_only)" if g.read_only else "")
        if g.plan.pending:
            head += f": health unknown for {', '.join(g.plan.pending)}: nothing planned"
        elif g.plan.all_down:
            head += ": every server is down: all considered healthy"
        lines.append(head)
        for s in sorted(g.servers, key=lambda s: (s.name, s.id)):
            state = g.health.get(s.address, State.UNKNOWN)
            lines.append(f"  server {s.name} {s.address} {s.location}: {state}")
        moves = {m.ip.id: m for m in g.plan.moves}
        for ip in sorted(g.ips, key=lambda i: (i.name, i.id)):
            if ip.server is None:
                current = "unassigned"
            else:
                current = names.get(ip.server, f"server #{ip.server} (not in the group)")
            move = moves.get(ip.id)
            if move is None:
                lines.append(f"  {ip.name} {ip.address}: {current} (no change)")
            else:
                lines.append(
                    f"  {ip.name} {ip.address}: {current} -> {move.target.name} ({move.reason})"
                )
    return lines


def plan_json(groups: Sequence[GroupPlan]) -> list[dict[str, object]]:
    """The plans as JSON values (``goavail plan --json``'s ``floating_ips``)."""
    out: list[dict[str, object]] = []
    for g in groups:
        names = {s.id: s.name for s in g.servers}
        out.append(
            {
                "id": g.id,
                "pending": list(g.plan.pending),
                "all_down": g.plan.all_down,
                "servers": [
                    {
                        "name": s.name,
                        "address": s.address,
                        "location": s.location,
                        "state": str(g.health.get(s.address, State.UNKNOWN)),
                    }
                    for s in g.servers
                ],
                "moves": [
                    {
                        "floating_ip": m.ip.name,
                        "address": m.ip.address,
                        "from": names.get(m.source) if m.source is not None else None,
                        "to": m.target.name,
                        "reason": m.reason,
                    }
                    for m in g.plan.moves
                ],
            }
        )
    return out
