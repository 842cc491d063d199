"""Value types shared by the planner, the reconciler and the providers."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Final, Literal

RecordType = Literal["A", "AAAA"]
Action = Literal["create", "delete"]


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
    """One change the planner wants: create or delete a single record.

    ``reason`` is a short human text ("target 192.0.2.1 down", "fail-open: ...")
    carried into logs and audit records.
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
class Plan:
    """The planner's output: changes to make and the fail-open cases met on the way."""

    changes: tuple[Change, ...] = ()
    fail_open: tuple[FailOpen, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)
