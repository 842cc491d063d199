"""Value types shared by the planner, the reconciler and the providers."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Final, Literal

RecordType = Literal["A", "AAAA"]
Action = Literal["create", "delete", "update"]
AllDown = Literal["fail-open", "fail-closed", "backup"]
"""A name's all-down policy: what it serves when no address of any of its pools is up
(see :mod:`goavail.dns.plan` and docs/decisions.md)."""
ALL_DOWN_POLICIES: tuple[AllDown, ...] = ("fail-open", "fail-closed", "backup")


_CACHED: Final = 1 << 17
"""Addresses whose answers :func:`record_type_for` and :func:`normalize_address` keep
(131,072: every target of a large fleet, twice the 50,000 the benchmarks run)."""


@functools.lru_cache(maxsize=_CACHED)
def record_type_for(address: str) -> RecordType:
    """Return "A" for an IPv4 address string and "AAAA" for IPv6.

    Cached (the planner asks for every configured address at every reconcile pass;
    parsing 10,000 addresses twice per pass cost 0.1-0.6 s of CPU per pass).

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


@functools.lru_cache(maxsize=_CACHED)
def normalize_address(address: str) -> str:
    """Canonical text form of an IP address ("2001:DB8::01" -> "2001:db8::1").

    Cached, as :func:`record_type_for` (providers normalize every record they read,
    at every pass).

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    return str(ipaddress.ip_address(address))


def normalize_name(name: str) -> str:
    """Lower-case a DNS name, strip the trailing dot: "Www.Example.COM." -> "www.example.com"."""
    return name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class Record:
    """One A or AAAA record as the provider holds it.

    Attributes:
        name: fully qualified name, lower case, no trailing dot.
        type: "A" or "AAAA".
        content: the address in canonical text form.
        ttl: seconds, or None when the provider did not say (1 = Cloudflare "automatic").
        proxied: Cloudflare's orange cloud; None for other providers.
        id: the provider's identifier of the record, when it has one.
    """

    name: str
    type: RecordType
    content: str
    ttl: int | None = None
    proxied: bool | None = None
    id: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, RecordType, str]:
        """Identity used for planning: (name, type, content)."""
        return (self.name, self.type, self.content)


@dataclass(frozen=True, slots=True)
class Change:
    """One change the planner wants: create, delete or update a single record.

    * ``create``: add ``record`` (with its ``ttl``, ``proxied``);
    * ``delete``: remove ``record`` (its ``id`` is set when it was read);
    * ``update``: give the existing ``record`` (same name, type, content; ``id`` as
      read) the TTL ``record.ttl``. Providers that keep record *sets* (Route 53,
      RFC 2136, the zone file) set the TTL of the whole set, in one atomic write:
      an update never removes the record, not even for a moment.

    ``reason`` is a short human text ("target 192.0.2.1 down", "fail-open: ...",
    "TTL 300 -> 30: 192.0.2.1 down") carried into logs and audit records.
    """

    action: Action
    record: Record
    reason: str


@dataclass(frozen=True, slots=True)
class FailOpen:
    """Fail-open engaged for one name and address family.

    Every configured address of ``name`` would have been withdrawn, so all
    addresses in ``kept`` stay (or are restored) in DNS.
    """

    name: str
    type: RecordType
    kept: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FailClosed:
    """Fail-closed engaged for one name and address family (``all_down = "fail-closed"``).

    No address of any pool of ``name`` is up, and the name's policy is to withdraw
    them all: every managed record of the family whose target is down goes, and
    the name answers NODATA for ``type``. ``down`` lists the addresses known down
    (withdrawn, or already absent). The only case where goavail empties a name.
    """

    name: str
    type: RecordType
    down: tuple[str, ...]


Rule = Literal["unknown", "primary", "backup", "fail-open", "fail-closed"]
"""Which planner rule chose a name's records of one family (see :class:`FamilyChoice`)."""

TtlRule = Literal["lowered", "normal", "unchanged"]
"""Which TTL rule holds for a name (see :class:`TtlChoice`)."""


@dataclass(frozen=True, slots=True)
class FamilyChoice:
    """Why a name's records of one family are what the plan makes them.

    Attributes:
        type: "A" or "AAAA".
        rule: ``"unknown"``: nothing is known about the primary yet, the name is
            left as it is; ``"primary"``: the primary pool serves; ``"backup"``: a
            backup pool serves because no address of the pools before it is up;
            ``"fail-open"``: no address is up anywhere and a pool's addresses are
            kept anyway (the primary, or with ``all_down = "backup"`` the last pool);
            ``"fail-closed"``: no address is up anywhere and every one is withdrawn.
        pool: the name of the pool whose addresses are served ("" for
            ``"unknown"`` and ``"fail-closed"``).
        because: one sentence for people ("no address of web-eu is up; web-us serves").
    """

    type: RecordType
    rule: Rule
    pool: str
    because: str


@dataclass(frozen=True, slots=True)
class TtlChoice:
    """The TTL the plan wants for a name's managed records (``degraded_ttl`` set).

    Attributes:
        rule: ``"lowered"`` (an address of the name is down: ``degraded_ttl``),
            ``"normal"`` (every address is up: the name's TTL) or ``"unchanged"``
            (none is down, some are still unknown: TTLs are left as they are).
        ttl: seconds wanted, or None for ``"unchanged"``.
        because: one sentence for people.
    """

    rule: TtlRule
    ttl: int | None
    because: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one name's records are what the plan makes them (pure data; what
    ``goavail explain NAME`` reads).

    Attributes:
        name: the managed name.
        families: one :class:`FamilyChoice` per address family the name's pools hold.
        ttl: the TTL rule, or None when the name has no ``degraded_ttl``.
    """

    name: str
    families: tuple[FamilyChoice, ...]
    ttl: TtlChoice | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's output: changes to make, the fail-open and fail-closed cases met
    on the way, and one :class:`Explanation` per name planned (sorted by name)."""

    changes: tuple[Change, ...] = ()
    fail_open: tuple[FailOpen, ...] = ()
    fail_closed: tuple[FailClosed, ...] = ()
    explanations: tuple[Explanation, ...] = ()

    def explain(self, name: str) -> Explanation | None:
        """The explanation of ``name``, or None when it was not planned (O(names))."""
        return next((e for e in self.explanations if e.name == name), None)

    def __bool__(self) -> bool:
        return bool(self.changes)
