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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from goavail.dns.model import Change, FailOpen, Plan, Record, RecordType, record_type_for
from goavail.health import State

_FAMILIES: tuple[RecordType, ...] = ("A", "AAAA")


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
    """Compute the changes that bring DNS in line with the decisions.

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
    creates: list[Change] = []
    deletes: list[Change] = []
    fail_open: list[FailOpen] = []
    by_family: dict[RecordType, list[str]] = {f: [] for f in _FAMILIES}
    for address in addresses:
        by_family[record_type_for(address)].append(address)

    for name in sorted(set(names)):
        records = current.get(name, ())
        for family in _FAMILIES:
            configured = by_family[family]
            if not configured:
                continue
            # Sets for every membership test: this runs on every reconcile pass, and
            # 50,000 addresses in lists made one plan take 20 s (O(n²)).
            configured_set = set(configured)
            managed = [r for r in records if r.type == family and r.content in configured_set]
            present = {r.content for r in managed}
            up = [a for a in configured if decisions.get(a, State.UNKNOWN) is State.UP]
            up_set = set(up)
            down = {a for a in configured if decisions.get(a, State.UNKNOWN) is State.DOWN}
            unknown_present = [
                a for a in configured if a in present and a not in down and a not in up_set
            ]

            def create(
                address: str, reason: str, name: str = name, family: RecordType = family
            ) -> None:
                record = Record(name, family, address, ttl=ttl, proxied=proxied)
                creates.append(Change("create", record, reason))

            if not up and not unknown_present and down:
                kept = tuple(a for a in configured if a in down)
                fail_open.append(FailOpen(name, family, kept))
                for address in kept:
                    if address not in present:
                        create(
                            address,
                            f"fail-open: every address of {name} ({family}) is down; restoring",
                        )
                continue
            for address in up:
                if address not in present:
                    create(address, f"target {address} up{_why(address, overridden)}")
            deletes.extend(
                Change("delete", r, f"target {r.content} down{_why(r.content, overridden)}")
                for r in managed
                if r.content in down
            )

    def order(c: Change) -> tuple[str, str, str]:
        return c.record.key

    return Plan(tuple(sorted(creates, key=order) + sorted(deletes, key=order)), tuple(fail_open))


def _why(address: str, overridden: Collection[str]) -> str:
    return " (override)" if address in overridden else ""
