"""The planner: decisions + the provider's current records -> changes (pure: no I/O).

Rules (see design.md; octodns / external-dns style):

* Only configured names, and only A/AAAA records whose content is a configured
  address, are ever touched. Other names, other addresses and other types are
  left alone.
* A target whose decision is still UNKNOWN is never withdrawn nor added.
* UP and missing -> create; DOWN and present -> delete.
* **Fail-open**, per name and address family: if no configured address of the
  name would remain in DNS (every one is DOWN, or UNKNOWN and absent) while at
  least one is DOWN, all DOWN addresses are kept (or restored) instead. A name is
  never emptied by goavail. Route 53 ("if all records are unhealthy, Route 53
  considers all of them healthy") and gdnsd (all-down -> all-up) do the same.
* Creates come before deletes (make before break).
* A change caused by a maintenance override says so in its reason
  ("target 192.0.2.1 down (override)").

**Pools** (:func:`plan_names`): a name may list several pools of addresses in
priority order, the first one primary, the others backups (the failover pools of
Cloudflare Load Balancing and Route 53 failover routing, gdnsd's and PowerDNS's
``ifportup`` fallbacks). Per name and address family:

* while the primary pool has an address that is up, or one whose state is not
  known yet and that is still in DNS, the primary is **active** and the rules
  above apply to it;
* when every address of the primary is known down, the first backup pool with
  an address that is up is active instead: its up addresses are published and
  the primary's withdrawn (creates first, so the name is never empty);
* a pool that is active because one of its addresses is up *takes over*: the
  records of every other pool of the name are withdrawn (on the way back to the
  primary, once its rise threshold is met, the backup's records go);
* when no address of any pool is up, **fail-open** keeps (or restores) the
  primary's addresses, as for a single pool;
* while nothing is known about the primary (every address unknown and absent:
  start-up), the name is left as it is.

An address listed in ``held`` (the mass-withdrawal brake) is never withdrawn; the
rest of the plan is made as without the brake, so the brake only ever keeps
records, never causes a change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from goavail.dns.model import Change, FailOpen, Plan, Record, RecordType, record_type_for
from goavail.health import State

_FAMILIES: tuple[RecordType, ...] = ("A", "AAAA")


@dataclass(frozen=True, slots=True)
class NameSpec:
    """One managed name and the pools that serve it.

    Attributes:
        name: fully qualified name (lower case, no trailing dot).
        pools: the pools' addresses (canonical text), primary first, then the
            backups in the order they take over; at least one pool.
        pool_names: the pools' names, same order (for the reasons of changes;
            empty: "primary", "backup 1", ...).
        ttl, proxied: attributes given to the name's created records.
    """

    name: str
    pools: tuple[tuple[str, ...], ...]
    pool_names: tuple[str, ...] = ()
    ttl: int | None = None
    proxied: bool | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address of every pool, each once, in priority order."""
        return tuple(dict.fromkeys(a for pool in self.pools for a in pool))

    def pool_name(self, index: int) -> str:
        """The name of pool ``index`` (0: the primary)."""
        if index < len(self.pool_names):
            return self.pool_names[index]
        return "primary" if index == 0 else f"backup {index}"


def plan(
    names: Sequence[str],
    addresses: Sequence[str],
    decisions: Mapping[str, State],
    current: Mapping[str, Sequence[Record]],
    *,
    ttl: int | None = None,
    proxied: bool | None = None,
    overridden: Collection[str] = (),
) -> Plan:
    """Compute the changes that bring DNS in line with the decisions, every name
    holding one pool of every configured address (the original goavail's model).

    Args:
        names: managed fully qualified names (lower case, no trailing dot).
        addresses: configured addresses (canonical text); each name should
            hold the A/AAAA record of every address that is up.
        decisions: target address -> decided state; missing means UNKNOWN.
        current: name -> the provider's current A/AAAA records of that name
            (a name missing here is treated as having no records).
        ttl, proxied: attributes given to created records.
        overridden: addresses whose decision is a maintenance override (only the
            reasons of their changes differ).

    Returns:
        A :class:`Plan`: creates first, then deletes, each group sorted by
        name and address; plus every fail-open case met.
    """
    pool = (tuple(addresses),)
    specs = [NameSpec(name, pool, ttl=ttl, proxied=proxied) for name in sorted(set(names))]
    return plan_names(specs, decisions, current, overridden=overridden)


def plan_names(
    specs: Sequence[NameSpec],
    decisions: Mapping[str, State],
    current: Mapping[str, Sequence[Record]],
    *,
    overridden: Collection[str] = (),
    held: Collection[str] = (),
) -> Plan:
    """Compute the changes that bring DNS in line with the decisions, per name and
    its pools (see the module's rules).

    Args:
        specs: the managed names with their pools (a name listed twice is planned
            from its first entry).
        decisions: target address -> decided state; missing means UNKNOWN.
        current: name -> the provider's current A/AAAA records of that name
            (a name missing here is treated as having no records).
        overridden: addresses whose decision is a maintenance override (only the
            reasons of their changes differ).
        held: addresses never to withdraw, whatever their state (the brake); they
            change nothing else in the plan.

    Returns:
        A :class:`Plan`: creates first, then deletes, each group sorted by name and
        address; plus every fail-open case met. Linear in names x addresses.
    """
    creates: list[Change] = []
    deletes: list[Change] = []
    fail_open: list[FailOpen] = []
    held_set = set(held)
    seen: set[str] = set()

    def state(address: str) -> State:
        return decisions.get(address, State.UNKNOWN)

    for spec in sorted(specs, key=lambda s: s.name):
        if spec.name in seen:
            continue
        seen.add(spec.name)
        records = current.get(spec.name, ())
        for family in _FAMILIES:
            pools = [
                (i, [a for a in pool if record_type_for(a) == family])
                for i, pool in enumerate(spec.pools)
            ]
            pools = [(i, pool) for i, pool in pools if pool]
            if not pools:
                continue
            changes = _plan_family(spec, family, pools, records, state, overridden)
            if isinstance(changes, FailOpen):
                fail_open.append(changes)
                changes = _fail_open_changes(spec, family, changes, pools, records, state)
            for change in changes:
                if change.action == "create":
                    creates.append(change)
                elif change.record.content not in held_set:
                    deletes.append(change)

    def order(c: Change) -> tuple[str, str, str]:
        return c.record.key

    return Plan(tuple(sorted(creates, key=order) + sorted(deletes, key=order)), tuple(fail_open))


def _plan_family(
    spec: NameSpec,
    family: RecordType,
    pools: list[tuple[int, list[str]]],
    records: Sequence[Record],
    state: Callable[[str], State],
    overridden: Collection[str],
) -> list[Change] | FailOpen:
    """The changes of one name and family, or the fail-open case when no pool has an
    address that is up while the primary is known down."""
    # Sets for every membership test: this runs on every reconcile pass, and
    # 50,000 addresses in lists made one plan take 20 s (O(n²)).
    managed_set = {a for _, pool in pools for a in pool}
    managed = [r for r in records if r.type == family and r.content in managed_set]
    present = {r.content for r in managed}
    _, primary = pools[0]
    states = {a: state(a) for a in managed_set}
    primary_up = any(states[a] is State.UP for a in primary)
    primary_unknown_present = any(states[a] is State.UNKNOWN and a in present for a in primary)
    if primary_up or primary_unknown_present:
        active = 0
    elif not any(states[a] is State.DOWN for a in primary):
        return []  # nothing known about the primary yet: leave the name as it is
    else:
        active = next(
            (k for k, (_, pool) in enumerate(pools) if any(states[a] is State.UP for a in pool)),
            -1,
        )
        if active < 0:
            return FailOpen(spec.name, family, tuple(a for a in primary if states[a] is State.DOWN))
    index, pool = pools[active]
    pool_set = set(pool)
    takes_over = any(states[a] is State.UP for a in pool)
    changes: list[Change] = []
    for address in pool:
        if states[address] is State.UP and address not in present:
            if index == 0:
                reason = f"target {address} up{_why(address, overridden)}"
            else:
                reason = (
                    f"target {address} up in {spec.pool_name(index)}: no address of "
                    f"{spec.pool_name(pools[0][0])} is up"
                )
            record = Record(spec.name, family, address, ttl=spec.ttl, proxied=spec.proxied)
            changes.append(Change("create", record, reason))
    for record in managed:
        address = record.content
        if address in pool_set:
            if states[address] is State.DOWN:
                why = _why(address, overridden)
                changes.append(Change("delete", record, f"target {address} down{why}"))
        elif takes_over:
            if states[address] is State.DOWN:
                reason = f"target {address} down{_why(address, overridden)}"
            else:
                reason = f"{spec.pool_name(index)} serves {spec.name}"
            changes.append(Change("delete", record, reason))
    return changes


def _fail_open_changes(
    spec: NameSpec,
    family: RecordType,
    case: FailOpen,
    pools: list[tuple[int, list[str]]],
    records: Sequence[Record],
    state: Callable[[str], State],
) -> list[Change]:
    """Fail-open: restore the primary's down addresses; withdraw backups' that are down."""
    kept = set(case.kept)
    backups = {a for _, pool in pools[1:] for a in pool} - kept
    present = {r.content for r in records if r.type == family}
    changes = [
        Change(
            "create",
            Record(spec.name, family, address, ttl=spec.ttl, proxied=spec.proxied),
            f"fail-open: every address of {spec.name} ({family}) is down; restoring",
        )
        for address in case.kept
        if address not in present
    ]
    changes.extend(
        Change("delete", r, f"target {r.content} down")
        for r in records
        if r.type == family and r.content in backups and state(r.content) is State.DOWN
    )
    return changes


def _why(address: str, overridden: Collection[str]) -> str:
    return " (override)" if address in overridden else ""
