"""Every duration and count key has a range with a reason (issue 12, item 7).

A value that parses but cannot work (``announce_interval = "1ns"``, ``max_clock_skew`` of
292 years or 1e-300 s, a TTL of 68 years) is a problem at its key path, reported with
every other problem, naming the range and why the other side of it cannot work.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, BeforeValidator

from goavail.config import (
    CheckSection,
    CloudflareSection,
    Config,
    ConfigError,
    HeartbeatSection,
    Members,
    NotificationSection,
    RFC2136Section,
    Route53Section,
    ServerSection,
    Within,
    ZonefileSection,
    format_duration,
    load_config,
    parse_duration,
)

MODELS: dict[type[BaseModel], str] = {
    Config: "",
    Members: "Members.",
    NotificationSection: "notifications[0].",
    HeartbeatSection: "Heartbeat.",
    CheckSection: "checks[0].",
    ServerSection: "Server.",
    CloudflareSection: "Cloudflare.",
    Route53Section: "Route53.",
    RFC2136Section: "RFC2136.",
    ZonefileSection: "Zonefile.",
}
"""Each model -> the key path prefix of its keys in the file."""

CLOUDFLARE = """
[Cloudflare]
dns_domain = "example.com"
hostnames = ["www"]
ip_addresses = ["192.0.2.1"]
"""
SECTIONS = {
    "Cloudflare": CLOUDFLARE,
    "Members": '[Members]\npeers = ["192.0.2.9:7946"]\n',
    "Heartbeat": '[Heartbeat]\nurl = "https://hc.invalid/ping"\n',
    "notifications": '[[notifications]]\ntype = "webhook"\nurl = "https://hook.invalid/x"\n',
    "checks": '[[checks]]\nid = "c"\ntype = "icmp"\n',
    "Route53": '[Route53]\naws_domain = "example.com"\nhostnames = ["www"]\n'
    'ip_addresses = ["192.0.2.1"]\n',
    "RFC2136": '[RFC2136]\nserver = "192.0.2.53"\nzone = "example.com"\nhostnames = ["www"]\n'
    'ip_addresses = ["192.0.2.1"]\n',
    "Zonefile": '[Zonefile]\npath = "db"\norigin = "example.com"\nhostnames = ["www"]\n'
    'ip_addresses = ["192.0.2.1"]\n',
}

# key path, min, max, duration?, reason shown below min, reason shown above max, and the
# other lines a value at either end needs (a timeout is at most its interval, ...)
RANGES: list[tuple[str, float, float, bool, str, str, str]] = [
    ("failure_threshold", 1, 100, False, "at least one probe", "dead target published", ""),
    ("rise_threshold", 1, 100, False, "at least one probe", "dead target published", ""),
    ("interval", 0.1, 3600, True, "probe flood", "dead target published for hours", ""),
    ("timeout", 0.01, 600, True, "did answer", "hung probe", 'interval = "1h"\n'),
    ("resync_interval", 1, 86400, True, "API rate limits", "drift", "interval = 1\n"),
    ("quorum_alert_after", 0.1, 86400, True, "blip of Serf membership", "unreported", ""),
    ("hook_timeout", 0.1, 3600, True, "even started", "one at a time", ""),
    ("Members.min_peers_agree", 0, 1000, False, "not negative", "never met", ""),
    ("Members.announce_interval", 1, 3600, True, "for nothing", "lost notice", ""),
    ("Members.max_clock_skew", 1, 600, True, "clock drift", "broken clock", ""),
    ("Members.writer_grace", 0.5, 600, True, "designated writer", "writer is dead", ""),
    ("notifications[0].timeout", 0.1, 300, True, "TLS handshake", "stuck request", ""),
    ("notifications[0].retries", 0, 10, False, "not negative", "dead destination", ""),
    ("notifications[0].coalesce_window", 0.01, 300, True, "floods the channel", "news", ""),
    ("Heartbeat.interval", 0.1, 86400, True, "floods the monitoring", "dead-man", ""),
    ("Heartbeat.timeout", 0.1, 300, True, "TLS handshake", "stuck request", 'interval = "1h"\n'),
    ("checks[0].interval", 0.1, 3600, True, "probe flood", "dead target published", ""),
    ("checks[0].timeout", 0.01, 600, True, "did answer", "hung probe", 'interval = "1h"\n'),
    ("checks[0].fall", 1, 100, False, "at least one probe", "dead target published", ""),
    ("checks[0].rise", 1, 100, False, "at least one probe", "dead target published", ""),
    ("Route53.ttl", 0, 86400, False, "not negative", "defeats failover", ""),
    ("RFC2136.ttl", 0, 86400, False, "not negative", "defeats failover", ""),
    ("Zonefile.ttl", 1, 86400, False, "at least 1", "defeats failover", ""),
    *(
        (f"{section}.degraded_ttl", 1, 86400, False, "ask again", "lowers nothing", "")
        for section in ("Cloudflare", "Route53", "RFC2136", "Zonefile")
    ),
]


def toml_for(path: str, value: str, extra: str) -> str:
    """A config file setting ``path`` (``"Members.writer_grace"``) to ``value``."""
    section, _, key = path.rpartition(".")
    line = f"{key} = {value}\n"
    if not section:
        return line + extra + CLOUDFLARE
    header = SECTIONS[section.removesuffix("[0]")]
    return (
        header
        + line
        + extra
        + ("" if section in ("Cloudflare", "Route53", "RFC2136", "Zonefile") else CLOUDFLARE)
    )


def value_at(config: Config, path: str) -> Any:
    """The validated value of ``path`` (``"notifications[0].timeout"``) in ``config``."""
    node: Any = config
    for part in path.split("."):
        name, _, index = part.partition("[")
        node = getattr(node, name.lower() if name[0].isupper() else name)
        if index:
            node = node[int(index.rstrip("]"))]
    return node


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "goavail.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "goavail.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _edges(low: float, high: float, duration: bool) -> tuple[float, float]:
    """A value just below ``low`` and one just above ``high``."""
    if duration:
        return low * 0.999, high * 1.001
    return low - 1, high + 1


@pytest.mark.parametrize(("path", "low", "high", "duration", "below", "above", "extra"), RANGES)
def test_each_end_of_the_range_loads(
    tmp_path: Path,
    path: str,
    low: float,
    high: float,
    duration: bool,
    below: str,
    above: str,
    extra: str,
) -> None:
    for edge in (low, high):
        text = repr(float(edge)) if duration else str(int(edge))
        assert value_at(load(tmp_path, toml_for(path, text, extra)), path) == edge


@pytest.mark.parametrize(("path", "low", "high", "duration", "below", "above", "extra"), RANGES)
def test_outside_the_range_names_the_key_range_and_reason(
    tmp_path: Path,
    path: str,
    low: float,
    high: float,
    duration: bool,
    below: str,
    above: str,
    extra: str,
) -> None:
    show = format_duration if duration else (lambda v: str(int(v)))
    span = f"must be between {show(low)} and {show(high)}, not "
    under, over = _edges(low, high, duration)
    for value, reason in ((under, below), (over, above)):
        text = repr(value) if duration else str(int(value))
        found = problems(tmp_path, toml_for(path, text, extra))
        assert len(found) == 1, found
        assert found[0].startswith(f"{path}: {span}{show(value)}: "), found
        assert reason in found[0], found


def _metadata(annotation: object) -> list[object]:
    """Every ``Annotated`` metadata item in ``annotation`` (through ``X | None``)."""
    found: list[object] = list(getattr(annotation, "__metadata__", ()))
    for arg in typing.get_args(annotation):
        found += _metadata(arg)
    return found


def _bounded_keys() -> dict[str, tuple[Within, bool]]:
    """Key path -> (its Within, whether it is a duration), for every model's keys."""
    keys: dict[str, tuple[Within, bool]] = {}
    for model, prefix in MODELS.items():
        for name, field in model.model_fields.items():
            items = list(field.metadata) + _metadata(field.annotation)
            is_duration = any(
                isinstance(m, BeforeValidator) and m.func is parse_duration for m in items
            )
            bounds = [m for m in items if isinstance(m, Within)]
            if is_duration:
                assert bounds, f"{prefix}{field.alias or name} is a duration without a range"
            if bounds:
                keys[prefix + (field.alias or name)] = (bounds[0], is_duration)
    return keys


def test_every_duration_has_a_range_and_every_range_is_tested() -> None:
    keys = _bounded_keys()
    assert set(keys) == {row[0] for row in RANGES}
    for path, low, high, duration, *_ in RANGES:
        within, is_duration = keys[path]
        assert (within.low, within.high, within.duration, is_duration) == (
            low,
            high,
            duration,
            duration,
        ), path
        assert within.below and within.above


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        'interval = 1e-300\nhook_timeout = "2h"\n'
        '[Members]\nannounce_interval = "1ns"\nmax_clock_skew = 9e9\nmin_peers_agree = 1001\n'
        + CLOUDFLARE
    )
    assert problems(tmp_path, text) == [
        "interval: must be between 100ms and 1h, not 1e-300s: shorter probes every target "
        "more than 10 times a second, a probe flood that leaves no room for a timeout",
        "hook_timeout: must be between 100ms and 1h, not 2h: longer lets one hung hook hold "
        "up every later hook (they run one at a time) for hours",
        "Members.min_peers_agree: must be between 0 and 1000, not 1001: a quorum that large "
        "is never met in practice (every agent probes every target), so DNS would never change",
        "Members.announce_interval: must be between 1s and 1h, not 1ns: shorter makes every "
        "agent send a notice (and its peers check it) more than once a second for nothing",
        "Members.max_clock_skew: must be between 1s and 10m, not 2.5e+06h: longer accepts "
        "notices and pulls sealed that long ago, which only a broken clock needs",
    ]


def test_a_huge_integer_is_reported_without_its_digits(tmp_path: Path) -> None:
    found = problems(tmp_path, f"failure_threshold = {'9' * 40}\n" + CLOUDFLARE)
    assert found == [
        "failure_threshold: must be between 1 and 100, not a number that large: more keeps a "
        "dead target published for over 100 probe intervals"
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600.0, "1h"),
        (7200.0, "2h"),
        (600.0, "10m"),
        (90.0, "90s"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (0.0999, "99.9ms"),
        (0.00025, "250us"),
        (1e-9, "1ns"),
        (1e-300, "1e-300s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
