"""Configuration: the TOML file, validated into typed, immutable models.

The Go original's ``goavail.toml`` loads unchanged; every key it knew keeps its
name and meaning. New keys are optional with safe defaults.

Shape (TOML key -> Python attribute)::

    failure_threshold, rise_threshold, interval, timeout, resync_interval,
    port, slack_addr, audit_file, node_name,
    quorum_alert_after                               -> Config.<same name>
    [[notifications]] -> Config.notifications (list of NotificationSection)
    [Heartbeat]  -> Config.heartbeat   (HeartbeatSection)
    [[checks]]   -> Config.checks      (list of CheckSection)
    hooks_dir, hook_timeout                          -> Config.<same name>
    [Members]    -> Config.members     (Members)
    [Cloudflare] -> Config.cloudflare  (CloudflareSection)
    [Route53]    -> Config.route53     (Route53Section)
    [Zonefile]   -> Config.zonefile    (ZonefileSection)
    [Server]     -> Config.server      (ServerSection; always present, defaults)
    overrides_file                     -> Config.overrides_file
    [RFC2136]    -> Config.rfc2136     (RFC2136Section)

Durations are float seconds. Validation collects every problem at once:
:func:`load_config` raises :class:`ConfigError`, whose ``problems`` are lines
like ``"Cloudflare.ip_addresses[1]: '300.1.1.1' is not a valid IPv4 or IPv6
address"``. Secret values (``crypto_key``, ``slack_addr``, notification and
heartbeat URLs) never appear in error messages or reprs.

This module is pure: no logging, no environment reads; the only I/O is
reading the file in :func:`load_config`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import math
import os
import re
import shlex
import sys
import types
import typing
import urllib.parse
from abc import abstractmethod
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

if sys.version_info >= (3, 11):  # noqa: UP036 - tomli fallback kept on purpose
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

__all__ = [
    "CHECK_TYPES",
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "CheckSection",
    "CloudflareSection",
    "Config",
    "ConfigError",
    "DnsSection",
    "Duration",
    "HeartbeatSection",
    "Members",
    "NotificationSection",
    "RFC2136Section",
    "Route53Section",
    "ServerSection",
    "Within",
    "ZonefileSection",
    "check_runtime",
    "choose_provider",
    "cluster_mode",
    "format_duration",
    "load_config",
    "parse_duration",
    "provider_sections",
    "qualify",
    "split_host_port",
]

# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """The configuration cannot be used.

    Attributes:
        problems: one line per problem, each ``"<key.path>: <message>"`` (or a
            whole-file problem such as an unreadable file or a TOML syntax error).
        path: the configuration file, when known.

    ``str()`` gives a readable multi-line message::

        goavail.toml: invalid configuration (2 problems):
          - interval: must be > 0 seconds
          - Cloudflare.dns_domain: field required
    """

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.path: Path | None = path
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid configuration ({n} problem{'' if n == 1 else 's'}):"
        if self.path is not None:
            head = f"{self.path}: {head}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class _Problems(ValueError):
    """Raised inside validators to report one or more problems at sub-locations.

    Each item is ``(sub_location, message)``; the sub-location is appended to the
    location pydantic reports for the validator (e.g. ``("hostnames", 2)``).
    """

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(message for _, message in items))


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: dict[str, Decimal] = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),  # U+00B5 MICRO SIGN
    "μs": Decimal("1e-6"),  # U+03BC GREEK SMALL LETTER MU
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")
_DURATION_HINT = "expected seconds as a number, or a string like '500ms', '2s', '1m30s'"
# Go's time.Duration is an int64 of nanoseconds: about 292 years.
_MAX_DURATION = (2**63 - 1) / 1e9


def parse_duration(value: object) -> float:
    """Parse a duration into float seconds.

    Accepts an int or float number of seconds (``2``, ``0.5``) or a Go
    ``time.ParseDuration`` string: an optional sign and one or more
    ``<number><unit>`` parts, units ``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``,
    ``h`` (``"500ms"``, ``"1.5s"``, ``"1m30s"``).

    Returns:
        The duration in seconds, always finite and > 0.

    Raises:
        ValueError: for booleans, other types, malformed strings, unknown or
            missing units, and values that are not > 0 or too large.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a duration, not a boolean ({_DURATION_HINT})")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds):
            raise ValueError("must be a duration, not NaN")
    elif isinstance(value, str):
        seconds = _parse_duration_string(value)
    else:
        raise ValueError(f"must be a duration ({_DURATION_HINT})")
    if not seconds > 0:
        raise ValueError("must be > 0 seconds")
    if seconds > _MAX_DURATION:
        raise ValueError(f"is too large (at most {_MAX_DURATION:.0f} s)")
    return seconds


def _parse_duration_string(value: str) -> float:
    text = value.strip()
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        number, unit = match.groups()
        if not unit and match.end() < len(text):
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        if not unit:
            raise ValueError(f"invalid duration {value!r}: missing unit (e.g. '{number}s')")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"invalid duration {value!r}: unknown unit {unit!r} "
                "(valid units: ns, us, µs, ms, s, m, h)"
            )
        try:
            total += Decimal(number) * _DURATION_UNITS[unit]
        except InvalidOperation:  # pragma: no cover - the regex only admits numbers
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}") from None
        pos = match.end()
    return sign * float(total)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in float seconds; see :func:`parse_duration` for accepted input.

Every duration key also carries a :class:`Within` range: parsing only checks > 0."""

_UNITS_DOWN: tuple[tuple[str, float], ...] = (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))


def format_duration(seconds: float) -> str:
    """Short Go-style text for a duration in seconds, for messages and docs.

    Whole hours, minutes and seconds read as ``"1h"``, ``"10m"``, ``"90s"``;
    less than a second as ``"100ms"``, ``"250us"``, ``"1ns"``; anything else
    (``1e-300``, ``1.5``) with :func:`format` ``g`` and ``"s"``.

    >>> format_duration(3600), format_duration(0.1), format_duration(1e-9)
    ('1h', '100ms', '1ns')
    """
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    if 1e-9 <= seconds < 1:
        for unit, size in _UNITS_DOWN:
            scaled = round(seconds / size, 6)
            if scaled >= 1:
                return f"{scaled:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Within:
    """A pydantic constraint: ``low <= value <= high``, with the reason for each end.

    Used as metadata, ``Annotated[Duration, Within(1.0, 3600.0, below=..., above=...)]``
    or on an ``int``; pydantic calls it after the type's own validation (see
    pydantic's "Custom types / ``__get_pydantic_core_schema__``"). A value outside
    the range is a problem at the key's own path, reported with every other::

        Members.announce_interval: must be between 1s and 1h, not 1ns: shorter floods ...

    Attributes:
        low: the smallest accepted value (seconds for a duration).
        high: the largest accepted value.
        below: why a smaller value cannot work ("shorter ..."), shown when it is too small.
        above: why a larger value cannot work ("longer ..."), shown when it is too large.
        duration: whether the value is a duration (shown as ``"100ms"``) or a count.
    """

    low: float
    high: float
    below: str
    above: str
    duration: bool = True

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """The inner type's schema followed by :meth:`check`."""
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def text(self, value: float) -> str:
        """``value`` as shown in messages and docs (``"100ms"``, ``"3"``)."""
        if self.duration:
            return format_duration(value)
        if isinstance(value, int) and abs(value) >= 10**18:
            return "a number that large"  # and str() of a 4,300-digit int raises
        return f"{value:g}" if isinstance(value, float) else str(value)

    def range_text(self) -> str:
        """``"between 1s and 1h"``, as in messages."""
        return f"between {self.text(self.low)} and {self.text(self.high)}"

    def check(self, value: float) -> float:
        """Return ``value`` unchanged when it is in range.

        Raises:
            ValueError: ``"must be between <low> and <high>, not <value>: <reason>"``.
        """
        if self.low <= value <= self.high:
            return value
        reason = self.below if value < self.low else self.above
        raise ValueError(f"must be {self.range_text()}, not {self.text(value)}: {reason}")


# The ranges of the duration keys that share a meaning (top level and [[checks]]).
_PROBE_INTERVAL = Within(
    0.1,
    3600.0,
    below="shorter probes every target more than 10 times a second, a probe flood "
    "that leaves no room for a timeout",
    above="longer keeps a dead target published for hours (failure_threshold x interval)",
)
_PROBE_TIMEOUT = Within(
    0.01,
    600.0,
    below="shorter fails probes that did answer (the event loop's own delay under load "
    "is of that order)",
    above="longer keeps a hung probe (socket, process) open for more than 10 minutes",
)
_THRESHOLD = Within(
    1,
    100,
    below="at least one probe must decide",
    above="more keeps a dead target published for over 100 probe intervals",
    duration=False,
)
_HTTP_TIMEOUT = Within(
    0.1,
    300.0,
    below="shorter gives up before a remote service can answer (a TLS handshake alone "
    "takes tens of milliseconds)",
    above="longer lets one stuck request hold its queue for minutes",
)
_TTL = Within(
    0,
    86400,
    below="a TTL is not negative",
    above="resolvers keep a withdrawn address for up to ttl seconds, and more than a day "
    "defeats failover",
    duration=False,
)

# --------------------------------------------------------------------------- names

NOTICE_NODE_NAME_BYTES = 387
"""Longest node name (UTF-8 bytes) whose verdict notice fits Serf's user-event limit under the
default event name ``goavail-sync``; a ``cluster_name`` costs its length + 1 more. Derived in
:mod:`goavail.cluster.sync` terms: 472 bytes for event name + payload
(:data:`goavail.cluster.wire.USER_EVENT_BUDGET`) - 12 (``goavail-sync``) - 29 (version byte,
nonce, GCM tag) - 44 (msgpack array header, a str16 header, epoch and version as uint64, an
8-byte digest as bin8, the port as uint16, issued_at as uint64). ``tests/unit/test_sync.py``
seals a notice at exactly this limit."""

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _is_dns_name(name: str, *, wildcard: bool) -> bool:
    """Whether ``name`` (lower case, no trailing dot) is a valid DNS name."""
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(_LABEL.fullmatch(label) for label in labels)


def _check_domain(value: str) -> str:
    name = value.lower()
    name = name.removesuffix(".")
    if not _is_dns_name(name, wildcard=False):
        raise ValueError(f"{value!r} is not a valid DNS domain name")
    return name


def _check_hostname(value: str) -> str:
    if value == "@":
        return value
    name = value.lower().removesuffix(".")
    if not _is_dns_name(name, wildcard=True):
        raise ValueError(f"{value!r} is not a valid host name (use '@' for the domain itself)")
    return value


def _check_ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"{value!r}: a scoped IPv6 address cannot be published in DNS")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(
            f"{value!r} is an IPv4-mapped IPv6 address (not reachable over IPv6, not for an "
            f"AAAA record): write {address.ipv4_mapped}"
        )
    return str(address)


def qualify(hostname: str, domain: str) -> str:
    """Return the fully qualified name for ``hostname`` in ``domain``.

    The result is lower case without a trailing dot:

    * ``"@"`` is the domain itself;
    * a name ending with ``"."``, equal to the domain or ending with
      ``"." + domain`` is already fully qualified and used as it is (minus the
      trailing dot), as the Go original did;
    * anything else is relative: ``hostname + "." + domain``.

    >>> qualify("test", "example.com")
    'test.example.com'
    """
    domain = domain.lower().removesuffix(".")
    name = hostname.lower()
    if name == "@":
        return domain
    if name.endswith("."):
        return name[:-1]
    if name == domain or name.endswith("." + domain):
        return name
    return f"{name}.{domain}"


def split_host_port(value: str) -> tuple[str, int]:
    """Split ``"host:port"`` (IPv6 as ``"[addr]:port"``) into ``(host, port)``.

    Raises:
        ValueError: when the text is not ``host:port``, the host is not an IP
            address or DNS name, or the port is not an integer in 1-65535.
    """
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r} is not host:port (IPv6 as '[addr]:port')")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not a valid IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{value!r} is not host:port")
        if ":" in host:
            raise ValueError(f"{value!r}: write an IPv6 address as '[addr]:port'")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _is_dns_name(host.lower().removesuffix("."), wildcard=False):
                raise ValueError(f"{value!r}: {host!r} is not a valid host") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r}: port must be an integer in 1-65535")
    return host, int(port_text)


def _check_label(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
        raise ValueError(
            f"{value!r} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _check_host_port(value: str) -> str:
    split_host_port(value)
    return value


def _resolve_path(value: object, info: ValidationInfo) -> object:
    """Turn a string (or Path) into a Path, relative ones against ``context['base_dir']``."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        got = _TYPE_NAMES.get(type(value), "something else")
        raise ValueError(f"must be a string (a file path), not {got}")
    if not value:
        raise ValueError("must not be empty")
    path = Path(value)
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if isinstance(base, Path) and not path.is_absolute():
        # normpath, not resolve(): "a/../b" is tidied but a symlinked zone file stays a link
        path = Path(os.path.normpath(base / path))
    return path


_MODEL_CONFIG = ConfigDict(
    extra="forbid", strict=True, frozen=True, hide_input_in_errors=True, validate_default=False
)

_Hostname = Annotated[str, AfterValidator(_check_hostname)]
_IpAddress = Annotated[str, AfterValidator(_check_ip)]
_HostPort = Annotated[str, AfterValidator(_check_host_port)]
_Port = Annotated[int, Field(ge=1, le=65535)]

# --------------------------------------------------------------------------- sections


class Members(BaseModel):
    """``[Members]``: cluster mode (peers and their agreement).

    The original's keys keep their meaning; the port in ``peers`` and
    ``local_addr`` was the Go original's update port and is not used: Serf
    binds the host of ``local_addr`` on ``members_port`` and joins the host of
    every peer on ``members_port``.

    Attributes:
        peers: peer agents, each ``"host:port"``.
        local_addr: ``"host:port"`` whose host Serf binds and advertises, or None
            (bind 0.0.0.0).
        members_port: gossip (Serf) port, 1-65535, default 7946.
        sync_port: TCP port of the verdict sync endpoint (peers pull votes from it,
            see :mod:`goavail.cluster.sync`); None: ``members_port + 1`` (7947).
        min_peers_agree: live peers that must agree before a change (0: the local
            verdict alone decides). More than 0 needs ``peers`` or ``serf_rpc_addr``
            (validation error otherwise: no peer could ever agree).
        crypto_key: the AES key as configured (raw text or ``"base64:..."``);
            use :meth:`key_bytes` for the key itself.
        cluster_name: prefix of the verdict event name (``<name>-goavail-verdict``)
            so several goavail clusters can share one Serf cluster.
        gossip_key: Serf's own gossip encryption key (base64 of 16, 24 or 32 bytes).
        serf_rpc_addr: ``"host:port"`` of an existing Serf agent's RPC (its auth
            key from the ``SERF_RPC_AUTH`` environment variable); None: goavail
            starts and supervises its own ``serf agent``.
        serf_binary: the Serf executable (default ``serf``).
        serf_profile: Serf timing profile, ``lan`` (default), ``wan`` or ``local``.
        announce_interval: seconds between re-announcements of all verdicts (1-3600).
        max_clock_skew: seconds a verdict's issue time may differ from ours (1-600).
        writer_grace: seconds an agreeing agent that is not the designated writer
            waits before it applies a change itself (the writer may be dead; 0.5-600).

    Every duration and count carries its range and the reasons for it (:class:`Within`).
    """

    model_config = _MODEL_CONFIG

    peers: list[_HostPort] = Field(default_factory=list)
    local_addr: _HostPort | None = None
    members_port: _Port = 7946
    sync_port: _Port | None = None
    min_peers_agree: Annotated[
        int,
        Within(
            0,
            1000,
            below="0 is single-node mode, a count is not negative",
            above="a quorum that large is never met in practice (every agent probes every "
            "target), so DNS would never change",
            duration=False,
        ),
    ] = 0
    crypto_key: SecretStr | None = None
    cluster_name: Annotated[str, AfterValidator(_check_label)] | None = None
    gossip_key: SecretStr | None = None
    serf_rpc_addr: _HostPort | None = None
    serf_binary: Annotated[str, Field(min_length=1)] = "serf"
    serf_profile: Literal["lan", "wan", "local"] = "lan"
    announce_interval: Annotated[
        Duration,
        Within(
            1.0,
            3600.0,
            below="shorter makes every agent send a notice (and its peers check it) more "
            "than once a second for nothing",
            above="longer leaves a lost notice unrepaired, and a silent peer's votes kept "
            "(3 intervals), for hours",
        ),
    ] = 10.0
    max_clock_skew: Annotated[
        Duration,
        Within(
            1.0,
            600.0,
            below="shorter rejects notices over ordinary clock drift and gossip delay",
            above="longer accepts notices and pulls sealed that long ago, which only a "
            "broken clock needs",
        ),
    ] = 30.0
    writer_grace: Annotated[
        Duration,
        Within(
            0.5,
            600.0,
            below="shorter makes every agreeing agent write at once, defeating the "
            "designated writer",
            above="longer leaves a decided change unwritten that long when the writer is dead",
        ),
    ] = 5.0

    @field_validator("gossip_key")
    @classmethod
    def _check_gossip_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                key = base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64 (as `serf keygen` prints)") from None
            if len(key) not in (16, 24, 32):
                raise ValueError(f"must decode to 16, 24 or 32 bytes, not {len(key)}")
        return value

    @field_validator("crypto_key")
    @classmethod
    def _check_crypto_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _decode_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _sync_port_free(self) -> Members:
        if self.sync_port is None and self.members_port == 65535:
            raise _Problems(
                [
                    (
                        ("sync_port",),
                        "must be set when members_port is 65535 (default: members_port + 1)",
                    )
                ]
            )
        if self.sync_port_number == self.members_port:
            raise _Problems(
                [
                    (
                        ("sync_port",),
                        "must differ from members_port: Serf uses that port over TCP too",
                    )
                ]
            )
        return self

    @property
    def sync_port_number(self) -> int:
        """The sync port in force: ``sync_port``, or ``members_port + 1``."""
        return self.sync_port if self.sync_port is not None else self.members_port + 1

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Members:
        if self.min_peers_agree > 0 and not self.cluster_mode:
            raise _Problems(
                [
                    (
                        ("min_peers_agree",),
                        f"{self.min_peers_agree} needs peers: with no peers (and no "
                        "serf_rpc_addr) no other agent can ever agree, so no DNS change "
                        "could ever be made; list the other agents in peers, or set "
                        "min_peers_agree = 0 to run this agent as a single node",
                    )
                ]
            )
        return self

    @property
    def cluster_mode(self) -> bool:
        """True when this section puts the agent in cluster mode (Serf, gossip).

        The rule: ``peers`` is not empty, or ``serf_rpc_addr`` names an existing Serf
        agent (which does its own joining). A ``[Members]`` section with neither runs
        the agent as a single node, with no Serf at all, whatever else it holds
        (``local_addr``, ``crypto_key``...), as the Go original does with such files;
        validation has already refused ``min_peers_agree > 0`` then.
        """
        return bool(self.peers) or self.serf_rpc_addr is not None

    def key_bytes(self) -> bytes | None:
        """The AES key (16, 24 or 32 bytes), or None when ``crypto_key`` is not set."""
        if self.crypto_key is None:
            return None
        return _decode_key(self.crypto_key.get_secret_value())


def cluster_mode(members: Members | None) -> bool:
    """True when the agent runs in cluster mode: a ``[Members]`` section whose
    :attr:`Members.cluster_mode` holds (peers, or an external Serf agent)."""
    return members is not None and members.cluster_mode


def _decode_key(text: str) -> bytes:
    """Decode a crypto_key; error messages never contain the key."""
    if text.startswith("base64:"):
        try:
            key = base64.b64decode(text.removeprefix("base64:"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the text after 'base64:' is not valid base64") from None
        what = "the decoded key"
    else:
        key = text.encode("utf-8")
        what = "the key"
    if len(key) not in (16, 24, 32):
        raise ValueError(
            f"must be an AES key of 16, 24 or 32 bytes ({what} has {len(key)} bytes); "
            "give it as raw text or as 'base64:...'"
        )
    return key


class DnsSection(BaseModel):
    """Common shape of the DNS provider sections.

    Attributes:
        hostnames: host names as configured (at least one); relative to
            :attr:`domain` unless fully qualified; ``"@"`` is the domain itself.
        ip_addresses: addresses to monitor and publish (at least one, canonical
            text, no duplicates).
        ttl: record TTL in seconds (limits depend on the provider).
    """

    model_config = _MODEL_CONFIG

    hostnames: list[_Hostname] = Field(min_length=1)
    ip_addresses: list[_IpAddress] = Field(min_length=1)
    ttl: int = 60

    @property
    @abstractmethod
    def domain(self) -> str:
        """The zone's domain name: lower case, no trailing dot."""

    def names(self) -> list[str]:
        """Fully qualified names of :attr:`hostnames` (see :func:`qualify`), in order."""
        return [qualify(h, self.domain) for h in self.hostnames]

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
        dns_proxied: whether records are proxied through Cloudflare.
        ttl: 1 (Cloudflare's "automatic", the default) or 30-86400 seconds.
    """

    dns_domain: Annotated[str, AfterValidator(_check_domain)]
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


# --------------------------------------------------------------------------- notifications

SLACK_HOOKS = "https://hooks.slack.com/services/"
"""Prefix of a ``slack_addr`` given as in the Go original (the part after it)."""


def _check_http_url(value: SecretStr) -> SecretStr:
    """Check that a secret URL is ``http://`` or ``https://`` with a host.

    Messages never contain the URL: webhook and heartbeat URLs carry tokens.
    """
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError("must not be empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError("must be a URL without spaces")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


_SecretUrl = Annotated[SecretStr, AfterValidator(_check_http_url)]


class NotificationSection(BaseModel):
    """One ``[[notifications]]`` entry: where event messages are posted.

    Attributes:
        type: ``"slack"`` or ``"mattermost"`` (incoming-webhook JSON with ``text``,
            optional ``channel`` and ``username``), or ``"webhook"`` (goavail's own
            JSON body, documented in docs/notifications.md).
        url: the webhook URL, http(s) (secret: it carries the hook's token).
        channel: channel override (slack and mattermost only), or None.
        username: sender name override (slack and mattermost only), or None.
        timeout: seconds one POST may take in all (connect, send, answer).
        retries: retries of a message after a timeout, a connection error, HTTP
            408, 429 or 5xx (0-10); other answers are not retried.
        coalesce_window: seconds events are collected before a message goes out;
            everything collected goes out as one message.
    """

    model_config = _MODEL_CONFIG

    type: Literal["slack", "mattermost", "webhook"]
    url: _SecretUrl
    channel: Annotated[str, Field(min_length=1)] | None = None
    username: Annotated[str, Field(min_length=1)] | None = None
    timeout: Annotated[Duration, _HTTP_TIMEOUT] = 5.0
    retries: Annotated[
        int,
        Within(
            0,
            10,
            below="a count is not negative",
            above="more keeps retrying a dead destination while its queue fills",
            duration=False,
        ),
    ] = 3
    coalesce_window: Annotated[
        Duration,
        Within(
            0.01,
            300.0,
            below="shorter sends one message per event, and a mass failover floods the channel",
            above="longer delays the news of a failover by more than 5 minutes",
        ),
    ] = 2.0

    @model_validator(mode="after")
    def _chat_options(self) -> NotificationSection:
        if self.type == "webhook":
            problems: list[tuple[tuple[str | int, ...], str]] = [
                ((key,), "only for type 'slack' or 'mattermost'")
                for key in ("channel", "username")
                if getattr(self, key) is not None
            ]
            if problems:
                raise _Problems(problems)
        return self


class HeartbeatSection(BaseModel):
    """``[Heartbeat]``: a dead-man switch (flipper's heartbeat).

    goavail sends ``GET url`` at start and then every ``interval`` seconds; a
    monitoring service (healthchecks.io, UptimeRobot, ...) alerts when the GETs stop.

    Attributes:
        url: http(s) URL (secret: such URLs usually carry a token).
        interval: seconds between two GETs (default 60).
        timeout: seconds one GET may take (default 10; ≤ interval).
    """

    model_config = _MODEL_CONFIG

    url: _SecretUrl
    interval: Annotated[
        Duration,
        Within(
            0.1,
            86400.0,
            below="shorter floods the monitoring service with GETs",
            above="longer is no dead-man switch (goavail's death would go unnoticed for "
            "over a day)",
        ),
    ] = 60.0
    timeout: Annotated[Duration, _HTTP_TIMEOUT] = 10.0

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value


def _check_listen(value: str) -> str:
    host, _ = split_host_port(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r}: the host must be an IP address (e.g. '127.0.0.1:8080', '[::1]:8080')"
        ) from None
    return value


class ServerSection(BaseModel):
    """``[Server]``: the agent's HTTP server (status page, ``/_health``, ``/metrics``, API).

    Attributes:
        enabled: start the server (default True).
        listen: ``"ip:port"`` (IPv6 as ``"[addr]:port"``) to listen on, default
            ``"127.0.0.1:8080"``. Read-only endpoints are open to whoever reaches it;
            write endpoints need the ``GOAVAIL_ADMIN_TOKEN`` bearer token.
    """

    model_config = _MODEL_CONFIG

    enabled: bool = True
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:8080"

    def host_port(self) -> tuple[str, int]:
        """``listen`` split into (host, port), the host without IPv6 brackets."""
        return split_host_port(self.listen)


# --------------------------------------------------------------------------- checks

CHECK_TYPES = ("icmp", "tcp", "http", "https", "script")
"""Values of ``[[checks]] type``."""

_CHECK_KEY_TYPES: dict[str, tuple[str, ...]] = {
    "port": ("tcp", "http", "https"),
    "path": ("http", "https"),
    "method": ("http", "https"),
    "host": ("http", "https"),
    "expected_status": ("http", "https"),
    "body_contains": ("http", "https"),
    "tls_verify": ("https",),
    "ca_file": ("https",),
    "command": ("script",),
}
"""Type-specific ``[[checks]]`` keys -> the check types that accept them."""


class _Invalid:
    """A raw value found wrong before field validation (a key on the wrong check type,
    a duplicate id): put in the value's place so that the field reports ``message``
    at its own key path, together with every other problem of the file."""

    def __init__(self, message: str) -> None:
        self.message = message


def _reject_invalid(value: object) -> object:
    if isinstance(value, _Invalid):
        raise ValueError(value.message)
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} must not contain spaces or control characters")
    return value


def _check_check_host(value: str) -> str:
    name = value.lower().removesuffix(".")
    if not _is_dns_name(name, wildcard=False):
        raise ValueError(f"{value!r} is not a valid host name (a DNS name without port or scheme)")
    return name


def _status_list(value: object) -> object:
    """``expected_status = 200`` is short for ``[200]``."""
    _reject_invalid(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 100 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status code (100-599)")
        return [value]
    return value


def _check_statuses(codes: list[int]) -> list[int]:
    if not codes:
        raise ValueError("must have at least 1 item")
    problems: list[tuple[tuple[str | int, ...], str]] = [
        ((i,), f"{code} is not an HTTP status code (100-599)")
        for i, code in enumerate(codes)
        if not 100 <= code <= 599
    ]
    if problems:
        raise _Problems(problems)
    return list(dict.fromkeys(codes))


def _check_argv(value: object) -> object:
    _reject_invalid(value)
    if isinstance(value, str):
        raise ValueError(
            "must be an array of strings (the program and its arguments, e.g. "
            '["/usr/local/bin/check-db", "--fast"]), not a string'
        )
    if isinstance(value, list):
        if not value:
            raise ValueError("must not be empty (the program and its arguments)")
        if value[0] == "":
            raise _Problems([((0,), "the program must not be empty")])
    return value


class CheckSection(BaseModel):
    """One ``[[checks]]`` entry: a health check every target must pass (flipper's checks).

    A target is healthy when all its checks are healthy, down when any is down
    (see :func:`goavail.health.worst_of`). Every check has its own schedule and its
    own rise/fall counters per target.

    Attributes:
        id: unique name of the check in logs and metrics (letters, digits, ``.``,
            ``_``, ``-``).
        type: ``"icmp"`` (echo), ``"tcp"`` (connect), ``"http"``/``"https"`` (a
            request to the target's address), ``"script"`` (a program's exit code).
        interval: seconds between two checks of one target (default: the
            top-level ``interval``).
        timeout: seconds one check may take (default: the top-level ``timeout``,
            at most ``interval``; ≤ ``interval``).
        fall: consecutive failures that make the check DOWN for a target
            (default: ``failure_threshold``).
        rise: consecutive successes that make it UP (default: ``fall`` when set
            in the entry, else ``rise_threshold``).
        port: tcp: required unless the top-level ``port`` is set (its default);
            http/https: default 80/443.
        path: http/https request path, starting with ``/`` (default ``/``).
        method: http/https request method (default ``GET``).
        host: http/https: sent as the ``Host`` header and, for https, as TLS SNI
            and the name the certificate is validated against; the connection
            still goes to the target's address. None: the address itself.
        expected_status: http/https status codes that count as healthy; None:
            any 2xx.
        body_contains: http/https: text the response body must contain (searched
            in its first 1 MiB), or None.
        tls_verify: https: validate the certificate chain and name (default true).
        ca_file: https: PEM file of the CAs to trust instead of the default
            bundle (certifi's, as httpx uses), or None.
        command: script: argv of the program (a relative path containing ``/`` is
            relative to the configuration file; a bare name is looked up in
            ``PATH``); the target's address is appended as its last argument.
            Exit status 0 = healthy.
    """

    model_config = _MODEL_CONFIG

    id: Annotated[str, AfterValidator(_check_label)]
    type: Literal["icmp", "tcp", "http", "https", "script"]
    interval: Annotated[Duration, _PROBE_INTERVAL] | None = None
    timeout: Annotated[Duration, _PROBE_TIMEOUT] | None = None
    fall: Annotated[int, _THRESHOLD] | None = None
    rise: Annotated[int, _THRESHOLD] | None = None
    port: _Port | None = None
    path: Annotated[str, AfterValidator(_check_path)] | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] | None = None
    host: Annotated[str, AfterValidator(_check_check_host)] | None = None
    expected_status: (
        Annotated[list[int], BeforeValidator(_status_list), AfterValidator(_check_statuses)] | None
    ) = None
    body_contains: Annotated[str, Field(min_length=1)] | None = None
    tls_verify: bool | None = None
    ca_file: Path | None = None
    command: Annotated[list[str], BeforeValidator(_check_argv)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys_of_type(cls, data: object) -> object:
        """Mark keys that do not belong to the entry's type (reported by each key)."""
        if not isinstance(data, dict) or data.get("type") not in CHECK_TYPES:
            return data
        kind = data["type"]
        data = dict(data)
        for key, types_ in _CHECK_KEY_TYPES.items():
            if key in data and kind not in types_:
                names = [repr(t) for t in types_]
                allowed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
                data[key] = _Invalid(f"only for type {allowed}, not {kind!r}")
        return data

    @field_validator(
        "id", "port", "path", "method", "host", "body_contains", "tls_verify", mode="before"
    )
    @classmethod
    def _invalid(cls, value: object) -> object:
        return _reject_invalid(value)

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca_path(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(_reject_invalid(value), info)

    @field_validator("command")
    @classmethod
    def _program_path(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """A relative program path with a ``/`` is relative to the configuration file."""
        if value is None or "/" not in value[0] or os.path.isabs(value[0]):
            return value
        base = info.context.get("base_dir") if isinstance(info.context, dict) else None
        if not isinstance(base, Path):
            return value
        return [os.path.normpath(base / value[0]), *value[1:]]

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if value is not None and interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value

    @model_validator(mode="after")
    def _required_keys(self) -> CheckSection:
        if self.type == "script" and self.command is None:
            raise _Problems([(("command",), "required for type 'script'")])
        return self


# --------------------------------------------------------------------------- top level

DEFAULT_PROVIDER = "cloudflare"
"""The provider used when neither ``--dns-provider`` nor the file settles it: the Go
original's ``--dns-provider`` default (kingpin ``Default("cloudflare")`` in its
``cli_options.go``), so its files, which may hold both ``[Cloudflare]`` and
``[Route53]``, behave as they did."""


class Config(BaseModel):
    """The whole configuration file; immutable once validated.

    Attributes:
        failure_threshold: consecutive failed probes after which a target is down (≥ 1).
        rise_threshold: consecutive successful probes after which a target is up
            (≥ 1; defaults to ``failure_threshold``).
        interval: seconds between probes of a target (default 2.0).
        timeout: seconds a probe may take (default min(interval, 1.0); ≤ interval).
        resync_interval: seconds between full DNS re-syncs (default max(60, interval);
            ≥ interval).
        port: TCP probe port (for ``--type tcp``), or None.
        slack_addr: Slack webhook address (secret), or None: the part after
            ``https://hooks.slack.com/services/`` as in the Go original, or a full
            http(s) URL; :meth:`slack_url` gives the URL.
        notifications: ``[[notifications]]`` entries (see :class:`NotificationSection`).
        quorum_alert_after: seconds the cluster quorum must stay unmet before a
            notification says so (default 60).
        heartbeat: the ``[Heartbeat]`` section, or None.
        checks: ``[[checks]]`` entries with every default resolved (see
            :class:`CheckSection`); empty: the single probe of ``--type`` is used.
        hooks_dir: directory whose executables run after each DNS change and
            fail-open change (see goavail/hooks.py), or None.
        hook_timeout: seconds one hook may run before its process group is killed.
        audit_file: audit log file (absolute when loaded by :func:`load_config`), or None.
        node_name: this agent's name in cluster mode, or None.
        overrides_file: TOML file of maintenance overrides (absolute when loaded by
            :func:`load_config`; it may not exist yet), or None.
        members, cloudflare, route53, zonefile, rfc2136: the ``[Members]``,
            ``[Cloudflare]``, ``[Route53]``, ``[Zonefile]`` and ``[RFC2136]``
            sections, or None.
        server: the ``[Server]`` section (defaults when absent).
    """

    model_config = _MODEL_CONFIG

    failure_threshold: Annotated[int, _THRESHOLD] = 3
    # 0 is a sentinel for "not set": resolved to failure_threshold after validation.
    rise_threshold: Annotated[int, _THRESHOLD] = 0
    interval: Annotated[Duration, _PROBE_INTERVAL] = 2.0
    # 0.0 is a sentinel for "not set": resolved to min(interval, 1.0).
    timeout: Annotated[Duration, _PROBE_TIMEOUT] = 0.0
    # 0.0 is a sentinel for "not set": resolved to max(60.0, interval).
    resync_interval: Annotated[
        Duration,
        Within(
            1.0,
            86400.0,
            below="shorter re-reads every record from the provider more than once a second "
            "and runs into its API rate limits",
            above="longer leaves drift (a record edited by hand) unrepaired for more than a day",
        ),
    ] = 0.0
    port: _Port | None = None
    slack_addr: SecretStr | None = None
    audit_file: Path | None = None
    node_name: Annotated[str, Field(min_length=1)] | None = None
    # notifications and heartbeat (goavail/notify/, goavail/heartbeat.py)
    notifications: list[NotificationSection] = Field(default_factory=list)
    quorum_alert_after: Annotated[
        Duration,
        Within(
            0.1,
            86400.0,
            below="shorter notifies every blip of Serf membership",
            above="longer leaves an unmet quorum (no failover possible) unreported for "
            "more than a day",
        ),
    ] = 60.0
    heartbeat: HeartbeatSection | None = Field(default=None, alias="Heartbeat")
    # application-level checks and hooks (goavail/checks/multi.py, goavail/hooks.py)
    checks: list[CheckSection] = Field(default_factory=list)
    hooks_dir: Path | None = None
    hook_timeout: Annotated[
        Duration,
        Within(
            0.1,
            3600.0,
            below="shorter kills a hook before its program has even started",
            above="longer lets one hung hook hold up every later hook (they run one at a "
            "time) for hours",
        ),
    ] = 10.0
    members: Members | None = Field(default=None, alias="Members")
    cloudflare: CloudflareSection | None = Field(default=None, alias="Cloudflare")
    route53: Route53Section | None = Field(default=None, alias="Route53")
    zonefile: ZonefileSection | None = Field(default=None, alias="Zonefile")
    overrides_file: Path | None = None
    server: ServerSection = Field(default_factory=ServerSection, alias="Server")
    rfc2136: RFC2136Section | None = Field(default=None, alias="RFC2136")

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(f"must be ≤ interval ({interval} s)")
        return value

    @field_validator("resync_interval")
    @classmethod
    def _resync_not_below_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value < interval:
            raise ValueError(f"must be ≥ interval ({interval} s)")
        return value

    @field_validator("slack_addr")
    @classmethod
    def _check_slack_addr(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("must not be empty")
        if "://" in text:
            return _check_http_url(value)
        if any(c.isspace() for c in text):
            raise ValueError(
                "must be the part after https://hooks.slack.com/services/ "
                "(e.g. 'T000/B000/XXXX') or a full http(s) URL, without spaces"
            )
        return value

    @field_validator("checks", mode="before")
    @classmethod
    def _unique_check_ids(cls, value: object) -> object:
        """Mark a repeated ``[[checks]] id`` (reported at ``checks[i].id``)."""
        if not isinstance(value, list):
            return value
        seen: dict[str, int] = {}
        entries: list[object] = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                first = seen.setdefault(entry["id"], i)
                if first != i:
                    entry = {
                        **entry,
                        "id": _Invalid(f"{entry['id']!r} is used twice (also checks[{first}])"),
                    }
            entries.append(entry)
        return entries

    @field_validator("audit_file", "overrides_file", "hooks_dir", mode="before")
    @classmethod
    def _paths(cls, value: object, info: ValidationInfo) -> object:
        return _resolve_path(value, info)

    @model_validator(mode="after")
    def _node_name_fits(self) -> Config:
        members = self.members
        if self.node_name is None or members is None:
            return self
        limit = NOTICE_NODE_NAME_BYTES - (
            len(members.cluster_name.encode()) + 1 if members.cluster_name else 0
        )
        size = len(self.node_name.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _Problems(
                [
                    (
                        ("node_name",),
                        f"{size} bytes is too long: at most {limit} bytes (UTF-8) fit in a "
                        "verdict notice under Serf's 512-byte user-event limit",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Config:
        # The model is frozen; defaults that depend on other fields are filled
        # in once, here, before anyone sees the instance.
        fields_set = self.model_fields_set
        if "rise_threshold" not in fields_set:
            object.__setattr__(self, "rise_threshold", self.failure_threshold)
        if "timeout" not in fields_set:
            object.__setattr__(self, "timeout", min(self.interval, 1.0))
        if "resync_interval" not in fields_set:
            object.__setattr__(self, "resync_interval", max(60.0, self.interval))
        if self.checks:
            object.__setattr__(self, "checks", self._resolve_checks())
        return self

    def _resolve_checks(self) -> list[CheckSection]:
        """The checks with their defaults filled in from the top level.

        Raises:
            _Problems: a tcp check without a port, a timeout longer than its
                inherited interval.
        """
        problems: list[tuple[tuple[str | int, ...], str]] = []
        resolved: list[CheckSection] = []
        for i, check in enumerate(self.checks):
            interval = check.interval if check.interval is not None else self.interval
            timeout = check.timeout if check.timeout is not None else min(self.timeout, interval)
            if check.timeout is not None and check.interval is None and timeout > interval:
                problems.append(
                    (
                        ("checks", i, "timeout"),
                        f"must be ≤ interval ({interval} s, the top-level interval)",
                    )
                )
            fall = check.fall if check.fall is not None else self.failure_threshold
            if check.rise is not None:
                rise = check.rise
            else:
                rise = check.fall if check.fall is not None else self.rise_threshold
            port = check.port
            if check.type == "tcp" and port is None:
                if self.port is None:
                    problems.append(
                        (
                            ("checks", i, "port"),
                            "required for type 'tcp' (or set the top-level port)",
                        )
                    )
                port = self.port
            update: dict[str, object] = {
                "interval": interval,
                "timeout": timeout,
                "fall": fall,
                "rise": rise,
                "port": port,
            }
            if check.type in ("http", "https"):
                update.update(
                    port=port if port is not None else (80 if check.type == "http" else 443),
                    path=check.path or "/",
                    method=check.method or "GET",
                )
            if check.type == "https" and check.tls_verify is None:
                update["tls_verify"] = True
            resolved.append(check.model_copy(update=update))
        if problems:
            raise _Problems(problems)
        return resolved

    @property
    def source(self) -> Path | None:
        """The file this configuration was loaded from (None if built in code)."""
        return self._source

    def slack_url(self) -> str | None:
        """The full Slack webhook URL of ``slack_addr`` (a secret), or None.

        ``"T000/B000/XXXX"`` -> ``"https://hooks.slack.com/services/T000/B000/XXXX"``;
        a full http(s) URL is used as it is.
        """
        if self.slack_addr is None:
            return None
        text = self.slack_addr.get_secret_value()
        return text if "://" in text else SLACK_HOOKS + text.lstrip("/")

    def section_for(self, provider: str) -> DnsSection:
        """The DNS section used by ``--dns-provider provider``.

        Args:
            provider: one of ``"cloudflare"``, ``"route53"``, ``"zonefile"``, ``"rfc2136"``.

        Raises:
            ConfigError: the provider is unknown or its section is missing.
        """
        problem = _section_problem(self, provider)
        if problem is not None:
            raise ConfigError([problem], self._source)
        section = getattr(self, provider)
        assert isinstance(section, DnsSection)
        return section


PROVIDERS: dict[str, tuple[str, type[DnsSection]]] = dict(
    sorted(
        (name, (field.alias or name, model))
        for name, field in Config.model_fields.items()
        for model in get_args(field.annotation)
        if isinstance(model, type) and issubclass(model, DnsSection)
    )
)
"""DNS provider name (the ``Config`` attribute) -> (TOML section, section model), read
from :class:`Config`'s own fields, in name order; the providers themselves are built by
:mod:`goavail.dns.registry`, which checks that it names the same ones."""


def provider_sections(config: Config) -> list[str]:
    """The providers whose section the file has, e.g. ``["cloudflare", "route53"]``.

    In :data:`PROVIDERS` order (alphabetical); empty when the file has none.
    """
    return [name for name in PROVIDERS if getattr(config, name) is not None]


def choose_provider(config: Config, requested: str | None) -> str:
    """The provider a run uses: ``--dns-provider`` when given, else the file's only one.

    Args:
        config: a validated configuration.
        requested: the ``--dns-provider`` value, or None when the option was not given.

    Returns:
        ``requested`` when not None (even when the file lacks its section: the check
        that follows reports that); else the provider of the file's only provider
        section; else (no section, or several) :data:`DEFAULT_PROVIDER`, as the Go
        original.
    """
    if requested is not None:
        return requested
    present = provider_sections(config)
    return present[0] if len(present) == 1 else DEFAULT_PROVIDER


def _section_problem(config: Config, provider: str) -> str | None:
    if provider not in PROVIDERS:
        names = ", ".join(sorted(PROVIDERS))
        return f"unknown DNS provider {provider!r} (expected one of: {names})"
    toml_name, _ = PROVIDERS[provider]
    if getattr(config, provider) is not None:
        return None
    problem = f"{toml_name}: section missing (required by --dns-provider {provider})"
    present = provider_sections(config)
    if not present:
        every = ", ".join(f"[{toml}]" for toml, _ in PROVIDERS.values())
        return f"{problem}; the file has no provider section (one of {every})"
    sections = ", ".join(f"[{PROVIDERS[name][0]}]" for name in present)
    options = " or ".join(f"--dns-provider {name}" for name in present)
    return f"{problem}; the file has {sections}: use {options}"


def check_runtime(config: Config, *, provider: str, probe_type: str) -> list[str]:
    """Problems that depend on command-line flags as well as on the file.

    Args:
        config: a validated configuration.
        provider: the ``--dns-provider`` value.
        probe_type: the ``--type`` value (``"icmp"``, ``"tcp"``, ...).

    Returns:
        Problem lines in the :class:`ConfigError` format; empty when all is well.
    """
    problems: list[str] = []
    section_problem = _section_problem(config, provider)
    if section_problem is not None:
        problems.append(section_problem)
    if probe_type == "tcp" and config.port is None and not config.checks:
        problems.append("port: required by --type tcp")
    return problems


# --------------------------------------------------------------------------- loading


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML configuration file.

    Relative paths in the file (``audit_file``, ``[Zonefile] path``) are
    resolved against the file's directory.

    Raises:
        ConfigError: the file cannot be read (one problem naming the path and
            the OS error), is not valid UTF-8 TOML (one problem with line and
            column), or fails validation (every problem at once).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"], path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not valid UTF-8 (at byte {exc.start})"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], path) from None
    try:
        config = Config.model_validate(data, context={"base_dir": path.absolute().parent})
    except ValidationError as exc:
        # `from None`: the ValidationError's text would carry input values.
        raise ConfigError(_format_errors(exc), path) from None
    config._source = path
    return config


_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}

_TYPE_MESSAGES: dict[str, str] = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be an array",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "path_type": "must be a string (a file path)",
    "int_from_float": "must be an integer",
}


def _format_errors(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _Problems):
            problems.extend(f"{_key_path(loc + sub)}: {msg}" for sub, msg in cause.items)
            continue
        problems.append(f"{_key_path(loc)}: {_message(error['type'], error, loc)}")
    return problems


def _message(kind: str, error: Any, loc: tuple[str | int, ...]) -> str:
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        hint = _suggest(loc)
        return f"unknown key (did you mean {hint!r}?)" if hint else "unknown key"
    if kind in _TYPE_MESSAGES:
        got = _TYPE_NAMES.get(type(error.get("input")))
        message = _TYPE_MESSAGES[kind]
        if got is not None:
            message += f", not {got}"
        return message
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'' if n == 1 else 's'}"
    if kind == "string_too_short":
        return "must not be empty"
    message = str(error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _key_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _model_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """TOML key -> nested model class (None for scalar fields) of ``model``."""
    result: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        nested: type[BaseModel] | None = None
        annotation = info.annotation
        candidates = (
            typing.get_args(annotation)
            if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None
            else (annotation,)
        )
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
        result[info.alias or name] = nested
    return result


def _suggest(loc: tuple[str | int, ...]) -> str | None:
    """A known key close to the unknown key at ``loc``, if any."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an index into a list of tables ([[notifications]])
        if model is None:
            return None
        model = _model_fields(model).get(part)
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    known = {key.lower(): key for key in _model_fields(model)}
    match = difflib.get_close_matches(loc[-1].lower(), list(known), n=1, cutoff=0.75)
    return known[match[0]] if match else None
