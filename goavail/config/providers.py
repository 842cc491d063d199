"""The DNS provider sections: ``[Cloudflare]``, ``[Route53]``, ``[RFC2136]``,
``[Zonefile]`` (their common shape: :class:`DnsSection`). The providers themselves are
built by :mod:`goavail.dns.registry`."""

from __future__ import annotations

import ipaddress
import shlex
from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goavail.config.checks import _Invalid, _reject_invalid
from goavail.config.errors import _Problems
from goavail.config.values import (
    _DEGRADED_TTL,
    _MODEL_CONFIG,
    _TTL,
    Within,
    _check_domain,
    _Hostname,
    _IpAddress,
    _is_dns_name,
    _Port,
    _resolve_path,
    qualify,
)
from goavail.config.verify import VerifySection, verify_value
from goavail.dns.model import AllDown


class DnsSection(BaseModel):
    """Common shape of the DNS provider sections.

    Attributes:
        hostnames: host names as configured; relative to :attr:`domain` unless
            fully qualified; ``"@"`` is the domain itself. Empty (with
            ``ip_addresses``) when the section only publishes ``[[names]]``.
        ip_addresses: addresses to monitor and publish under every host name
            (canonical text, no duplicates): the original's one pool. Empty
            together with ``hostnames``.
        ttl: record TTL in seconds (limits depend on the provider).
        verify: served-answer verification (:mod:`goavail.config.verify`): None (the
            default) is off; ``verify = true`` asks the zone's NS set.
        all_down: the all-down policy of this section's ``hostnames`` and the default
            of the ``[[names]]`` it publishes (after the name's and its primary
            pool's): ``"fail-open"``, ``"fail-closed"`` or ``"backup"``; None:
            ``"fail-open"`` (see :mod:`goavail.dns.plan`).
        degraded_ttl: seconds, the TTL of the records of a name while one of its
            addresses is down (default of the names it publishes, as ``all_down``);
            None: TTLs are not managed.
    """

    model_config = _MODEL_CONFIG

    hostnames: list[_Hostname] = Field(default_factory=list)
    ip_addresses: list[_IpAddress] = Field(default_factory=list)
    ttl: int = 60
    all_down: AllDown | None = None
    degraded_ttl: Annotated[int, _DEGRADED_TTL] | None = None
    verify: VerifySection | None = None

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_shorthand(cls, value: object) -> object:
        return verify_value(value)

    def verification(self) -> VerifySection | None:
        """The verification settings in force, or None when verification is off."""
        if self.verify is None or not self.verify.enabled:
            return None
        return self.verify

    @property
    @abstractmethod
    def domain(self) -> str:
        """The zone's domain name: lower case, no trailing dot."""

    def names(self) -> list[str]:
        """Fully qualified names of :attr:`hostnames` (see :func:`qualify`), in order."""
        return [qualify(h, self.domain) for h in self.hostnames]

    @model_validator(mode="before")
    @classmethod
    def _in_pairs(cls, data: object) -> object:
        """``hostnames`` and ``ip_addresses`` go together: the one missing reports it at
        its own key path, with every other problem of the section."""
        if isinstance(data, dict) and bool(data.get("hostnames")) != bool(data.get("ip_addresses")):
            missing, other = (
                ("ip_addresses", "hostnames")
                if data.get("hostnames")
                else ("hostnames", "ip_addresses")
            )
            message = (
                f"required with {other} (list both, or neither and publish through "
                "[[names]] and [[pools]])"
            )
            data = {**data, missing: _Invalid(message)}
        return data

    @field_validator("hostnames", "ip_addresses", mode="before")
    @classmethod
    def _invalid(cls, value: object) -> object:
        return _reject_invalid(value)

    @field_validator("ip_addresses")
    @classmethod
    def _no_duplicate_addresses(cls, value: list[str]) -> list[str]:
        seen: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, address in enumerate(value):
            if address in seen:
                problems.append(
                    ((i,), f"{address!r} is listed twice (also at ip_addresses[{seen[address]}])")
                )
            else:
                seen[address] = i
        if problems:
            raise _Problems(problems)
        return value

    @model_validator(mode="after")
    def _check_names(self) -> DnsSection:
        seen: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        domain = self.domain
        for i, (hostname, name) in enumerate(zip(self.hostnames, self.names(), strict=True)):
            if name != domain and not name.endswith("." + domain):
                problems.append(
                    (("hostnames", i), f"{hostname!r} is outside the domain {domain!r}")
                )
            elif name in seen:
                first = seen[name]
                problems.append(
                    (
                        ("hostnames", i),
                        f"{hostname!r} is the same name as hostnames[{first}] "
                        f"({self.hostnames[first]!r}): {name}",
                    )
                )
            else:
                seen[name] = i
        if problems:
            raise _Problems(problems)
        return self


class CloudflareSection(DnsSection):
    """``[Cloudflare]``: records in a Cloudflare zone.

    Attributes:
        dns_domain: the zone name (required).
        zones: further zones of the same account that ``[[names]]`` may publish to
            (each name goes to the longest zone it lies in); the ``hostnames`` stay
            in ``dns_domain``.
        dns_proxied: whether records are proxied through Cloudflare.
        ttl: 1 (Cloudflare's "automatic", the default) or 30-86400 seconds.
    """

    dns_domain: Annotated[str, AfterValidator(_check_domain)]
    zones: list[Annotated[str, AfterValidator(_check_domain)]] = Field(default_factory=list)
    dns_proxied: bool = False
    ttl: int = 1

    @property
    def domain(self) -> str:
        """The zone name (``dns_domain``)."""
        return self.dns_domain

    @field_validator("ttl")
    @classmethod
    def _check_ttl(cls, value: int) -> int:
        if value != 1 and not 30 <= value <= 86400:
            raise ValueError("must be 1 (automatic) or between 30 and 86400 seconds")
        return value


class Route53Section(DnsSection):
    """``[Route53]``: records in an AWS Route 53 hosted zone.

    Attributes:
        aws_domain: the hosted zone's name (required).
        ttl: 0-86400 seconds, default 60.
        aws_zoneid: the hosted zone ID, or None to look it up by name.
        aws_region: AWS region, or None for the SDK's default.
    """

    aws_domain: Annotated[str, AfterValidator(_check_domain)]
    ttl: Annotated[int, _TTL] = 60
    aws_zoneid: Annotated[str, Field(min_length=1)] | None = None
    aws_region: Annotated[str, Field(min_length=1)] | None = None

    @property
    def domain(self) -> str:
        """The hosted zone's name (``aws_domain``)."""
        return self.aws_domain


TsigAlgorithm = Literal[
    "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
]


def _check_key_name(value: str) -> str:
    name = value.lower().removesuffix(".")
    if not _is_dns_name(name, wildcard=False):
        raise ValueError(f"{value!r} is not a valid TSIG key name (a domain name)")
    return name + "."


def _check_server(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address (give the primary name server's address)"
        ) from None


class RFC2136Section(DnsSection):
    """``[RFC2136]``: records on a name server that takes RFC 2136 dynamic updates.

    Attributes:
        server: IP address of the zone's primary server (required).
        port: its DNS port, default 53.
        zone: the zone's name (required).
        tsig_key_name: the TSIG key's name (canonical: lower case, trailing dot),
            or None for unsigned updates; the secret comes from the
            ``GOAVAIL_TSIG_SECRET`` environment variable.
        tsig_algorithm: default ``hmac-sha256``.
        ttl: 0-86400 seconds, default 60: TTL of record sets goavail creates.
    """

    server: Annotated[str, AfterValidator(_check_server)]
    port: _Port = 53
    zone: Annotated[str, AfterValidator(_check_domain)]
    tsig_key_name: Annotated[str, AfterValidator(_check_key_name)] | None = None
    tsig_algorithm: TsigAlgorithm = "hmac-sha256"
    ttl: Annotated[int, _TTL] = 60

    @property
    def domain(self) -> str:
        """The zone's name."""
        return self.zone


class ZonefileSection(DnsSection):
    """``[Zonefile]``: records in a local RFC 1035 zone file.

    Attributes:
        path: the zone file (relative paths are resolved against the
            configuration file's directory by :func:`load_config`).
        origin: the zone's origin (required).
        ttl: 1-86400 seconds, default 60.
        reload_command: argv run after the file changes (a string is split
            with :func:`shlex.split`), or None.
    """

    path: Path
    origin: Annotated[str, AfterValidator(_check_domain)]
    ttl: Annotated[
        int,
        Within(1, 86400, below="a zone file's TTL is at least 1", above=_TTL.above, duration=False),
    ] = 60
    reload_command: list[str] | None = None

    @property
    def domain(self) -> str:
        """The zone's origin."""
        return self.origin

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(value, info)

    @field_validator("reload_command", mode="before")
    @classmethod
    def _split_command(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split command: {exc}") from None
        if isinstance(value, list) and not value:
            raise ValueError("must not be empty")
        return value
