"""The floating-IP plan: which server each floating IP should target (pure: no I/O, no
clock reads).

The rules are flipper's (github.com/gzuidhof/flipper, "Floating IP targeting logic" of
its README), made precise here, plus goavail's rule of minimal re-targets:

1. **Pending health.** While the health of any server of the group is unknown, nothing
   is planned (flipper: "waits until it knows the health state of all servers before
   executing any plan").
2. **All down means all up.** If every server is unhealthy, every server is considered
   healthy (Envoy's panic threshold, flipper's first rule): nothing moves because of
   an outage that looks total from here (more likely this agent's own network); an IP
   on a server of the group stays there (even off its canonical server), only IPs
   unassigned or on foreign servers are placed.
3. **Location first.** A floating IP's candidates are the healthy servers in its own
   location (its ``home_location``); only when none is healthy there, every healthy
   server of the group.
4. **Canonical target.** Within the location, the server whose ``resource_index`` label
   equals the floating IP's is its canonical target: when that server is a healthy
   candidate, the IP targets it (so when a server is healthy again, the canonical
   assignment comes back).
5. **Never move a healthy assignment.** Otherwise an IP whose current server is a
   healthy candidate stays where it is (minimal re-targets; a manual move to another
   healthy server of the group is respected).
6. **Round-robin for the rest.** The IPs still unassigned (in order of name, then id)
   each go to the candidate that the fewest IPs target so far, ties broken by server
   name (then id): the loads of a fleet placed from scratch differ by at most one.

The result is deterministic: the same servers, IPs and health give the same plan,
whatever the order of the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from goavail.health import State

RESOURCE_INDEX = "resource_index"
"""The label (on servers and floating IPs) that gives the canonical mapping (flipper)."""


def resource_index(labels: Mapping[str, str]) -> int | None:
    """The ``resource_index`` label as a non-negative integer, or None (absent or not a
    number: such a resource has no canonical partner).

    >>> resource_index({"resource_index": "2"}), resource_index({"resource_index": "x"})
    (2, None)
    """
    text = labels.get(RESOURCE_INDEX)
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Server:
    """A server of a group (from the API).

    Attributes:
        id: the Hetzner server id.
        name: its name (the round-robin's tie-break).
        location: its location's name (``"fsn1"``).
        address: its public IPv4 (or IPv6) address: the target its checks probe.
        index: its ``resource_index`` label, or None.
    """

    id: int
    name: str
    location: str
    address: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class FloatingIp:
    """A floating IP of a group (from the API).

    Attributes:
        id: the Hetzner floating IP id.
        name: its name.
        address: the floating address (``"203.0.113.10"``).
        location: its home location's name.
        index: its ``resource_index`` label, or None.
        server: the id of the server it targets now, or None (unassigned).
    """

    id: int
    name: str
    address: str
    location: str
    index: int | None = None
    server: int | None = None


@dataclass(frozen=True, slots=True)
class Move:
    """One re-target: floating IP ``ip`` from server ``source`` (None: unassigned, or a
    server outside the group) to server ``target``; ``reason`` says which rule."""

    ip: FloatingIp
    source: int | None
    target: Server
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A group's plan.

    Attributes:
        targets: floating IP id -> the server id it should target (every IP when the
            plan is not pending and the group has servers).
        moves: the re-targets needed (IPs whose current server differs), by IP name.
        pending: servers (names) whose health is still unknown: nothing is planned.
        all_down: every server is down, so all were considered healthy (rule 2).
    """

    targets: dict[int, int] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()
    pending: tuple[str, ...] = ()
    all_down: bool = False


def _server_key(server: Server) -> tuple[str, int]:
    return (server.name, server.id)


def plan(servers: Iterable[Server], ips: Iterable[FloatingIp], health: Mapping[str, State]) -> Plan:
    """The plan of one group (the module's rules).

    Args:
        servers: the group's servers.
        ips: the group's floating IPs.
        health: server address -> its decided state (UP/DOWN; absent or UNKNOWN:
            not known yet).

    Returns:
        The :class:`Plan`; without servers, an empty plan (nothing can be targeted).
    """
    fleet = sorted(servers, key=_server_key)
    flips = sorted(ips, key=lambda ip: (ip.name, ip.id))
    if not fleet:
        return Plan()
    states = {s.id: health.get(s.address, State.UNKNOWN) for s in fleet}
    pending = tuple(s.name for s in fleet if states[s.id] is State.UNKNOWN)
    if pending:
        return Plan(pending=pending)
    healthy = [s for s in fleet if states[s.id] is State.UP]
    all_down = not healthy
    if all_down:
        healthy = fleet
    by_id = {s.id: s for s in healthy}
    load: dict[int, int] = dict.fromkeys(by_id, 0)
    targets: dict[int, int] = {}
    reasons: dict[int, str] = {}

    def candidates(ip: FloatingIp) -> list[Server]:
        local = [s for s in healthy if s.location == ip.location]
        return local or healthy

    # rule 4: the canonical target, where it is a healthy candidate (not when every
    # server is down: then an IP on a server of the group stays there, rule 2)
    for ip in flips:
        if ip.index is None or (all_down and ip.server in by_id):
            continue
        for server in candidates(ip):
            if server.index == ip.index and server.location == ip.location:
                targets[ip.id] = server.id
                load[server.id] += 1
                reasons[ip.id] = f"canonical target (resource_index {ip.index})"
                break
    # rule 5: a healthy current assignment stays
    for ip in flips:
        if ip.id in targets or ip.server is None or ip.server not in by_id:
            continue
        if by_id[ip.server] in candidates(ip):
            targets[ip.id] = ip.server
            load[ip.server] += 1
            reasons[ip.id] = "current server healthy"
    # rule 6: round-robin over the least loaded candidates
    for ip in flips:
        if ip.id in targets:
            continue
        chosen = min(candidates(ip), key=lambda s: (load[s.id], s.name, s.id))
        targets[ip.id] = chosen.id
        load[chosen.id] += 1
        reasons[ip.id] = _why_moved(ip, states, fleet, chosen)
    moves = tuple(
        Move(ip, ip.server, by_id[targets[ip.id]], reasons[ip.id])
        for ip in flips
        if targets[ip.id] != ip.server
    )
    return Plan(targets=targets, moves=moves, all_down=all_down)


def _why_moved(
    ip: FloatingIp, states: Mapping[int, State], fleet: list[Server], chosen: Server
) -> str:
    """The reason of a round-robin placement, for the audit record."""
    if chosen.location == ip.location:
        where = "in its location"
    else:
        where = f"in {chosen.location} (none healthy in {ip.location})"
    if ip.server is None:
        return f"unassigned: least loaded healthy server {where}"
    current = next((s for s in fleet if s.id == ip.server), None)
    if current is None:
        return f"current server is not in the group: least loaded healthy server {where}"
    if states.get(current.id) is State.DOWN:
        return f"server {current.name} is down: least loaded healthy server {where}"
    return f"server {current.name} is outside the preferred location: least loaded {where}"


def loads(targets: Mapping[int, int]) -> dict[int, int]:
    """Server id -> how many floating IPs target it (servers targeted by none omitted)."""
    out: dict[int, int] = {}
    for server in targets.values():
        out[server] = out.get(server, 0) + 1
    return out
