"""Value types the sections share: durations, ranges (:class:`Within`), DNS names,
addresses, ``host:port``, paths relative to the file, and the models' common settings."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationInfo,
)
from pydantic_core import core_schema

from goavail.config.errors import _TYPE_NAMES

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
_DEGRADED_TTL = Within(
    1,
    86400,
    below="a TTL of 0 makes every resolver ask again at every query",
    above="a lowered TTL above a day lowers nothing",
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
    # interned: a fleet's addresses recur in pools, the publication, the agent's tables
    # and every record read from the provider (see Record in goavail/dns/model.py)
    return sys.intern(str(address))


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
    return sys.intern(value)  # a pool's name recurs in every [[names]] entry using it


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
