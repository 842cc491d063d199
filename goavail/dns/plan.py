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
  never emptied by goavail, unless its ``all_down`` policy says ``"fail-closed"``.
  Route 53 ("if all records are unhealthy, Route 53 considers all of them
  healthy") and gdnsd (all-down -> all-up) do the same.
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
* when no address of any pool is up (the **all-down** case), the name's
  ``all_down`` policy decides (:class:`NameSpec`, docs/decisions.md):

  - ``"fail-open"`` (the default): keep (or restore) the primary's down addresses,
    as for a single pool, and withdraw the backups' down ones;
  - ``"backup"``: the same onto the *last* pool that has an address known down
    (the fallback pool of Cloudflare Load Balancing, served whatever its health:
    a "sorry" pool listed last); the other pools' down addresses go;
  - ``"fail-closed"``: withdraw every down address of every pool; the name
    answers NODATA for that family. The only rule that empties a name, so it is
    reported (:class:`~goavail.dns.model.FailClosed`) and the name guard lets
    exactly those names and families be emptied. Unknown addresses still stay;
* while nothing is known about the primary (every address unknown and absent:
  start-up), the name is left as it is.

An address listed in ``held`` (the mass-withdrawal brake) is never withdrawn; the
rest of the plan is made as without the brake, so the brake only ever keeps
records, never causes a change.

**TTL management** (``degraded_ttl`` of :class:`NameSpec`, per name, both families;
off when None): while any address of any pool of the name is DOWN, every managed
record of the name that stays in DNS gets ``degraded_ttl`` (an ``update`` change;
created records get it at once); once every address is UP, the name's ``ttl`` again.
While none is down but some are UNKNOWN, TTLs are left as they are (as a start-up
leaves records alone). gdnsd halves a degraded resource's TTL; here the operator
names the lowered value. A name without ``degraded_ttl`` keeps whatever TTL its
records have (existing record sets keep theirs), as before.

Changes come in the order creates, updates, deletes, each group sorted by record.
Every name planned also gets a small :class:`~goavail.dns.model.Explanation`: which
rule chose its records of each family and why its TTL is what it is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from goavail.dns.model import (
    AllDown,
    Change,
    Explanation,
    FailClosed,
    FailOpen,
    FamilyChoice,
    Plan,
    Record,
    RecordType,
    TtlChoice,
    record_type_for,
)
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
        ttl, proxied: attributes given to the name's created records (seconds;
            Cloudflare's orange cloud).
        all_down: what the name serves when no address of any pool is up:
            ``"fail-open"`` (the primary's addresses), ``"backup"`` (the last
            pool's) or ``"fail-closed"`` (nothing: NODATA). See the module's rules.
        degraded_ttl: seconds; while any address of the name is down its records
            get this TTL, and ``ttl`` again once all are up. None (default): TTLs are
            not managed. Ignored when ``ttl`` is None (nothing to restore to).
    """

    name: str
    pools: tuple[tuple[str, ...], ...]
    pool_names: tuple[str, ...] = ()
    ttl: int | None = None
    proxied: bool | None = None
    all_down: AllDown = "fail-open"
    degraded_ttl: int | None = None

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
            change nothing else in the plan (a fail-closed name keeps them too).

    Returns:
        A :class:`Plan`: creates first, then TTL updates, then deletes, each group
        sorted by name and address; every fail-open and fail-closed case met; one
        explanation per name. Linear in names x addresses.
    """
    creates: list[Change] = []
    updates: list[Change] = []
    deletes: list[Change] = []
    fail_open: list[FailOpen] = []
    fail_closed: list[FailClosed] = []
    explanations: list[Explanation] = []
    held_set = set(held)
    seen: set[str] = set()

    def state(address: str) -> State:
        return decisions.get(address, State.UNKNOWN)

    for spec in sorted(specs, key=lambda s: s.name):
        if spec.name in seen:
            continue
        seen.add(spec.name)
        records = current.get(spec.name, ())
        ttl_choice = _ttl_choice(spec, state)
        want_ttl = ttl_choice.ttl if ttl_choice is not None else None
        if want_ttl is not None:
            spec = replace(spec, ttl=want_ttl)  # created records get it at once
        choices: list[FamilyChoice] = []
        gone: set[tuple[str, str, str]] = set()
        for family in _FAMILIES:
            pools = [
                (i, [a for a in pool if record_type_for(a) == family])
                for i, pool in enumerate(spec.pools)
            ]
            pools = [(i, pool) for i, pool in pools if pool]
            if not pools:
                continue
            changes, case, choice = _plan_family(spec, family, pools, records, state, overridden)
            choices.append(choice)
            if isinstance(case, FailOpen):
                fail_open.append(case)
            elif isinstance(case, FailClosed):
                fail_closed.append(case)
            for change in changes:
                if change.action == "create":
                    creates.append(change)
                elif change.record.content not in held_set:
                    deletes.append(change)
                    gone.add(change.record.key)
        if want_ttl is not None and ttl_choice is not None:
            managed = set(spec.addresses)
            updates.extend(
                Change(
                    "update",
                    replace(r, ttl=want_ttl),
                    f"TTL {r.ttl} -> {want_ttl}: " + ttl_choice.because,
                )
                for r in records
                if r.content in managed
                and r.key not in gone
                and r.ttl is not None
                and r.ttl != want_ttl
            )
        explanations.append(Explanation(spec.name, tuple(choices), ttl_choice))

    def order(c: Change) -> tuple[str, str, str]:
        return c.record.key

    return Plan(
        tuple(sorted(creates, key=order) + sorted(updates, key=order) + sorted(deletes, key=order)),
        tuple(fail_open),
        tuple(fail_closed),
        tuple(explanations),
    )


def _ttl_choice(spec: NameSpec, state: Callable[[str], State]) -> TtlChoice | None:
    """The TTL rule of ``spec`` (None when its TTL is not managed)."""
    if spec.degraded_ttl is None or spec.ttl is None:
        return None
    states = [(a, state(a)) for a in spec.addresses]
    down = [a for a, s in states if s is State.DOWN]
    if down:
        more = f" and {len(down) - 3} more" if len(down) > 3 else ""
        verb = "is" if len(down) == 1 else "are"
        return TtlChoice("lowered", spec.degraded_ttl, f"{', '.join(down[:3])}{more} {verb} down")
    if all(s is State.UP for _, s in states):
        return TtlChoice("normal", spec.ttl, f"every address of {spec.name} is up")
    return TtlChoice(
        "unchanged", None, f"no address of {spec.name} is down, some are not known yet"
    )


def _plan_family(
    spec: NameSpec,
    family: RecordType,
    pools: list[tuple[int, list[str]]],
    records: Sequence[Record],
    state: Callable[[str], State],
    overridden: Collection[str],
) -> tuple[list[Change], FailOpen | FailClosed | None, FamilyChoice]:
    """The changes of one name and family, the all-down case met (if any) and the rule
    that chose them."""
    # Sets for every membership test: this runs on every reconcile pass, and
    # 50,000 addresses in lists made one plan take 20 s (O(n²)).
    managed_set = {a for _, pool in pools for a in pool}
    managed = [r for r in records if r.type == family and r.content in managed_set]
    present = {r.content for r in managed}
    primary_index, primary = pools[0]
    primary_name = spec.pool_name(primary_index)
    states = {a: state(a) for a in managed_set}
    primary_up = any(states[a] is State.UP for a in primary)
    primary_unknown_present = any(states[a] is State.UNKNOWN and a in present for a in primary)
    if primary_up or primary_unknown_present:
        active = 0
    elif not any(states[a] is State.DOWN for a in primary):
        # nothing known about the primary yet: leave the name as it is
        because = f"nothing is known yet about the addresses of {primary_name}; left as it is"
        return [], None, FamilyChoice(family, "unknown", "", because)
    else:
        active = next(
            (k for k, (_, pool) in enumerate(pools) if any(states[a] is State.UP for a in pool)),
            -1,
        )
        if active < 0:
            return _all_down(spec, family, pools, managed, states)
    index, pool = pools[active]
    pool_set = set(pool)
    takes_over = any(states[a] is State.UP for a in pool)
    changes: list[Change] = []
    for address in pool:
        if states[address] is State.UP and address not in present:
            if index == primary_index:
                reason = f"target {address} up{_why(address, overridden)}"
            else:
                reason = (
                    f"target {address} up in {spec.pool_name(index)}: no address of "
                    f"{primary_name} is up"
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
    if active == 0:
        because = (
            f"an address of {primary_name} is up"
            if primary_up
            else f"an address of {primary_name} is not known yet and still in DNS"
        )
        return changes, None, FamilyChoice(family, "primary", primary_name, because)
    before = ", ".join(spec.pool_name(i) for i, _ in pools[:active])
    because = f"no address of {before} is up; {spec.pool_name(index)} serves"
    return changes, None, FamilyChoice(family, "backup", spec.pool_name(index), because)


def _all_down(
    spec: NameSpec,
    family: RecordType,
    pools: list[tuple[int, list[str]]],
    managed: Sequence[Record],
    states: Mapping[str, State],
) -> tuple[list[Change], FailOpen | FailClosed, FamilyChoice]:
    """No address of any pool is up (the primary is known down): the name's policy.

    ``fail-open``/``backup``: keep (or restore) the down addresses of the primary,
    or of the last pool with an address known down, and withdraw the other pools'
    down ones. ``fail-closed``: withdraw every down one. Unknown addresses stay.
    """
    what = f"every address of {spec.name} ({family}) is down"
    if spec.all_down == "fail-closed":
        down = tuple(a for _, pool in pools for a in pool if states[a] is State.DOWN)
        changes = [
            Change(
                "delete",
                r,
                f"fail-closed: {what}; withdrawing {r.content} (all_down = fail-closed)",
            )
            for r in managed
            if states[r.content] is State.DOWN
        ]
        because = f"{what} and all_down = fail-closed: every one is withdrawn (NODATA)"
        return (
            changes,
            FailClosed(spec.name, family, down),
            FamilyChoice(family, "fail-closed", "", because),
        )
    kept_index = 0
    if spec.all_down == "backup":
        kept_index = max(
            k for k, (_, pool) in enumerate(pools) if any(states[a] is State.DOWN for a in pool)
        )
    index, pool = pools[kept_index]
    kept = tuple(a for a in pool if states[a] is State.DOWN)
    kept_set = set(kept)
    present = {r.content for r in managed}
    pool_name = spec.pool_name(index)
    changes = [
        Change(
            "create",
            Record(spec.name, family, address, ttl=spec.ttl, proxied=spec.proxied),
            f"fail-open: {what}; restoring"
            + ("" if kept_index == 0 else f" {pool_name} (all_down = backup)"),
        )
        for address in kept
        if address not in present
    ]
    changes.extend(
        Change("delete", r, f"target {r.content} down")
        for r in managed
        if r.content not in kept_set and states[r.content] is State.DOWN
    )
    because = f"{what}: {pool_name} is kept anyway" + (
        "" if kept_index == 0 else " (all_down = backup)"
    )
    return (
        changes,
        FailOpen(spec.name, family, kept),
        FamilyChoice(family, "fail-open", pool_name, because),
    )


def _why(address: str, overridden: Collection[str]) -> str:
    return " (override)" if address in overridden else ""
