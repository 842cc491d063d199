"""``verify`` in a DNS provider section: served-answer verification (see docs/propagation.md).

Written as ``verify = true`` (ask the zone's own NS set, resolved through
``resolver`` or the system's resolver), ``verify = false`` (the default: off), or a
table::

    [RFC2136.verify]
    servers = ["127.0.0.1:5301", "[2001:db8::53]:53"]   # IP[:port]; port 53 by default
    limit = "60s"        # a server serving an old answer longer than this: a warning
    interval = "1s"      # between query rounds while a server is behind (then backs off)
    timeout = "2s"       # one query (UDP, then TCP when truncated)
    retries = 2          # further tries of a query that timed out, within a round
    resolver = ["192.0.2.53"]   # only without servers: where the NS set is resolved

A table turns verification on (``enabled = false`` keeps it written but off).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from goavail.config.values import _MODEL_CONFIG, Duration, Within

DNS_PORT = 53


def split_server(value: str) -> tuple[str, int]:
    """``"IP"``, ``"IP:port"`` or ``"[IPv6]:port"`` -> ``(canonical IP, port)``.

    Raises:
        ValueError: not an IP address with an optional port in 1-65535.
    """
    host, port_text = value, ""
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r} is not [IPv6]:port")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address with an optional port "
            "(e.g. 192.0.2.53, 192.0.2.53:5300, [2001:db8::53]:53)"
        ) from None
    if not port_text:
        return address, DNS_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: port must be an integer in 1-65535")
    return address, int(port_text)


def format_server(address: str, port: int) -> str:
    """The canonical text of a server: ``"192.0.2.1:53"``, ``"[2001:db8::1]:53"``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _canonical_server(value: str) -> str:
    return format_server(*split_server(value))


_Server = Annotated[str, AfterValidator(_canonical_server)]


class VerifySection(BaseModel):
    """Served-answer verification of one provider's names.

    Attributes:
        enabled: False keeps the table but turns verification off.
        servers: the authoritative servers to ask (canonical ``IP:port``); empty: the
            zone's NS set, resolved at start and at each resync.
        resolver: where the NS set and the NS names' addresses are resolved
            (``IP[:port]``); empty: the system's resolver (``/etc/resolv.conf``).
        limit: seconds a server may serve an old answer before it is reported lagging.
        interval: seconds between query rounds while a server is behind (the delay
            grows by half each round, up to half the limit, at most 30 s).
        timeout: seconds one query may take.
        retries: further tries of a query that got no answer, within a round.
    """

    model_config = _MODEL_CONFIG

    enabled: bool = True
    servers: list[_Server] = Field(default_factory=list)
    resolver: list[_Server] = Field(default_factory=list)
    limit: Annotated[
        Duration,
        Within(
            1.0,
            86400.0,
            below="shorter than a second reports every zone transfer as lagging",
            above="longer than a day never warns",
        ),
    ] = 60.0
    interval: Annotated[
        Duration,
        Within(0.01, 60.0, below="shorter floods the servers", above="longer misses short lags"),
    ] = 1.0
    timeout: Annotated[
        Duration,
        Within(0.05, 30.0, below="shorter than a round trip", above="longer blocks a round"),
    ] = 2.0
    retries: Annotated[
        int,
        Within(0, 10, below="cannot be negative", above="more only delays a round", duration=False),
    ] = 2

    @model_validator(mode="after")
    def _resolver_without_servers(self) -> VerifySection:
        if self.servers and self.resolver:
            raise ValueError(
                "resolver is only used to find the NS set when servers is empty; give one"
            )
        return self


def verify_value(value: object) -> object:
    """``verify = true`` -> an empty table (the NS set), ``false`` -> None (off); a table
    as written (a pydantic before-validator of the sections' ``verify``)."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


__all__ = ["DNS_PORT", "VerifySection", "format_server", "split_server", "verify_value"]
