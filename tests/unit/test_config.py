"""Tests for goavail.config: loading, validation problems, durations, names, secrets."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pydantic
import pytest

from goavail.config import (
    CloudflareSection,
    Config,
    ConfigError,
    DnsSection,
    Members,
    RFC2136Section,
    Route53Section,
    ServerSection,
    ZonefileSection,
    check_runtime,
    choose_provider,
    cluster_mode,
    load_config,
    parse_duration,
    provider_sections,
    qualify,
    split_host_port,
)

DATA = Path(__file__).resolve().parent.parent / "data"
ORIGINAL = DATA / "goavail-original.toml"
FULL = DATA / "goavail-full.toml"
RAW_KEY = "1234567891012345"

CLOUDFLARE = """
[Cloudflare]
dns_domain = "example.com"
hostnames = ["test"]
ip_addresses = ["192.0.2.1"]
"""


RFC2136_NO_SERVER = """
[RFC2136]
zone = "example.org"
hostnames = ["www"]
ip_addresses = ["192.0.2.1", "2001:db8::1"]
"""
RFC2136 = RFC2136_NO_SERVER + 'server = "192.0.2.53"\n'


def write(tmp_path: Path, text: str, name: str = "goavail.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


# --------------------------------------------------------------------------- the original file


def test_original_file_is_a_byte_identical_copy() -> None:
    reference = Path("/work/shared/reference/goavail-original.toml")
    if not reference.exists():
        pytest.skip("reference file not available on this machine")
    assert ORIGINAL.read_bytes() == reference.read_bytes()


def test_original_file_loads_unchanged() -> None:
    config = load_config(ORIGINAL)

    assert config.failure_threshold == 5
    assert config.rise_threshold == 5
    assert config.interval == 2.0
    assert config.timeout == 1.0
    assert config.resync_interval == 60.0
    assert config.port == 8000
    assert config.slack_addr is None
    assert config.source == ORIGINAL

    assert config.members is not None
    assert config.members.peers == ["127.0.0.1:8082"]
    assert config.members.local_addr == "127.0.0.1:8081"
    assert config.members.members_port == 7947
    assert config.members.min_peers_agree == 1
    assert config.members.key_bytes() == RAW_KEY.encode()

    # The original file's addresses (172.16.123.1, 10.20.20.120) are only parsed here and in
    # `validate`; no test probes them, and every test runs in a private network namespace
    # with no link out (tests/conftest.py), so no packet could reach them anyway.
    assert config.cloudflare is not None
    assert config.cloudflare.domain == "example.com"
    assert config.cloudflare.names() == ["test.example.com"]
    assert config.cloudflare.ip_addresses == ["172.16.123.1"]
    assert config.cloudflare.dns_proxied is False
    assert config.cloudflare.ttl == 1

    assert config.route53 is not None
    assert config.route53.domain == "example.com"
    assert config.route53.names() == ["test.example.com"]
    assert config.route53.ip_addresses == ["10.20.20.120", "127.0.0.1", "172.16.123.1"]
    assert config.route53.ttl == 30
    assert config.route53.aws_zoneid == "ZZZZZZZZZZZZZ"
    assert config.route53.aws_region == "us-west-2"

    assert config.zonefile is None


def test_full_file_loads_every_key() -> None:
    config = load_config(FULL)

    assert (config.failure_threshold, config.rise_threshold) == (3, 2)
    assert (config.interval, config.timeout, config.resync_interval) == (0.5, 0.25, 90.0)
    assert config.port == 443
    assert config.node_name == "agent-a"
    assert config.audit_file == DATA / "audit" / "goavail.jsonl"
    assert config.members is not None
    assert config.members.key_bytes() == bytes(range(32))
    assert config.cloudflare is not None
    assert config.cloudflare.names() == ["example.com", "www.example.com", "api.example.com"]
    assert config.cloudflare.ip_addresses == ["192.0.2.10", "2001:db8::10"]
    assert (config.cloudflare.dns_proxied, config.cloudflare.ttl) == (True, 300)
    assert config.route53 is not None
    assert config.route53.ttl == 0
    assert config.zonefile is not None
    assert config.zonefile.path == DATA / "zones" / "db.example.org"
    assert config.zonefile.domain == "example.org"
    assert config.zonefile.names() == ["www.example.org", "*.apps.example.org"]
    assert config.zonefile.reload_command == ["rndc", "reload", "example.org"]
    assert config.overrides_file == DATA / "overrides.toml"
    assert config.server == ServerSection(enabled=False, listen="[::1]:9090")
    assert config.server.host_port() == ("::1", 9090)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")

    assert config.failure_threshold == 3
    assert config.rise_threshold == 3
    assert config.interval == 2.0
    assert config.timeout == 1.0
    assert config.resync_interval == 60.0
    assert config.port is None
    assert config.audit_file is None
    assert config.members is None
    assert config.cloudflare is None
    assert config.route53 is None
    assert config.zonefile is None
    assert config.overrides_file is None
    assert config.server.enabled is True
    assert config.server.listen == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failure_threshold = 4", {"rise_threshold": 4}),
        ("failure_threshold = 4\nrise_threshold = 1", {"rise_threshold": 1}),
        ("interval = 0.5", {"interval": 0.5, "timeout": 0.5}),
        ('interval = "10s"', {"timeout": 1.0, "resync_interval": 60.0}),
        ('interval = "2m"', {"timeout": 1.0, "resync_interval": 120.0}),
        ('interval = 5\ntimeout = "5s"', {"timeout": 5.0}),
        ('resync_interval = "2s"', {"resync_interval": 2.0}),
    ],
)
def test_resolved_defaults(tmp_path: Path, text: str, expected: dict[str, float]) -> None:
    config = load(tmp_path, text)
    for attribute, value in expected.items():
        assert getattr(config, attribute) == value, attribute


def test_config_is_immutable() -> None:
    config = load_config(ORIGINAL)
    with pytest.raises(ValueError, match="frozen"):
        config.interval = 1.0


# --------------------------------------------------------------------------- validation problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # top level
        (
            "failure_threshold = 0",
            "failure_threshold: must be between 1 and 100, not 0: at least one",
        ),
        ('failure_threshold = "5"', "failure_threshold: must be an integer, not a string"),
        ("failure_threshold = 2.5", "failure_threshold: must be an integer, not a float"),
        ("failure_threshold = true", "failure_threshold: must be an integer, not a boolean"),
        ("rise_threshold = 0", "rise_threshold: must be between 1 and 100, not 0: at least one"),
        ("interval = 0", "interval: must be > 0 seconds"),
        ("interval = -1", "interval: must be > 0 seconds"),
        ("interval = true", "interval: must be a duration, not a boolean"),
        ('interval = "2"', "interval: invalid duration '2': missing unit"),
        ('interval = "fast"', "interval: invalid duration 'fast'"),
        ("interval = [1]", "interval: must be a duration"),
        ('timeout = "3s"', "timeout: must be ≤ interval (2.0 s)"),
        ('interval = "1s"\ntimeout = 1.5', "timeout: must be ≤ interval (1.0 s)"),
        ('resync_interval = "1s"', "resync_interval: must be ≥ interval (2.0 s)"),
        ("port = 0", "port: must be ≥ 1"),
        ("port = 65536", "port: must be ≤ 65535"),
        ('port = "8000"', "port: must be an integer, not a string"),
        ('slack_addr = ""', "slack_addr: must not be empty"),
        ("slack_addr = 5", "slack_addr: must be a string, not an integer"),
        ('audit_file = ""', "audit_file: must not be empty"),
        ("audit_file = 1", "audit_file: must be a string (a file path), not an integer"),
        ('node_name = ""', "node_name: must not be empty"),
        ("Members = 1", "Members: must be a table, not an integer"),
        # [Members]
        ('[Members]\npeers = "127.0.0.1:1"', "Members.peers: must be an array, not a string"),
        ('[Members]\npeers = ["nohost"]', "Members.peers[0]: 'nohost' is not host:port"),
        (
            '[Members]\npeers = ["192.0.2.1:1", "192.0.2.2:0"]',
            "Members.peers[1]: '192.0.2.2:0': port must be an integer in 1-65535",
        ),
        ('[Members]\npeers = ["::1:80"]', "Members.peers[0]: '::1:80': write an IPv6 address"),
        ('[Members]\npeers = ["[zz]:80"]', "Members.peers[0]: '[zz]:80': 'zz' is not a valid IPv6"),
        ('[Members]\npeers = ["bad_host!:80"]', "Members.peers[0]: 'bad_host!:80': 'bad_host!'"),
        ('[Members]\nlocal_addr = "127.0.0.1"', "Members.local_addr: '127.0.0.1' is not host:port"),
        ("[Members]\nmembers_port = 0", "Members.members_port: must be ≥ 1"),
        ("[Members]\nmembers_port = 70000", "Members.members_port: must be ≤ 65535"),
        (
            "[Members]\nmin_peers_agree = -1",
            "Members.min_peers_agree: must be between 0 and 1000, not -1",
        ),
        (
            "[Members]\nmin_peers_agree = 1",
            "Members.min_peers_agree: 1 needs peers: with no peers (and no serf_rpc_addr)",
        ),
        ('[Members]\ncrypto_key = "short"', "Members.crypto_key: must be an AES key of 16, 24"),
        ('[Members]\ncrypto_key = "base64:!!!"', "Members.crypto_key: the text after 'base64:'"),
        ('[Members]\ncrypto_key = "base64:AAAA"', "Members.crypto_key: must be an AES key"),
        ("[Members]\ncrypto_key = 12", "Members.crypto_key: must be a string, not an integer"),
        # [Cloudflare]
        (
            '[Cloudflare]\nhostnames = ["a"]\nip_addresses = ["192.0.2.1"]',
            "Cloudflare.dns_domain: field required",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames: required with ip_addresses",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]',
            "Cloudflare.ip_addresses: required with hostnames",
        ),
        (
            '[Cloudflare]\ndns_domain = "-bad-.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.dns_domain: '-bad-.com' is not a valid DNS domain name",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = []\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames: required with ip_addresses",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]\nip_addresses = []',
            "Cloudflare.ip_addresses: required with hostnames",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a", "b c"]\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames[1]: 'b c' is not a valid host name",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1", "300.1.1.1"]',
            "Cloudflare.ip_addresses[1]: '300.1.1.1' is not a valid IPv4 or IPv6 address",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["fe80::1%eth0"]',
            "Cloudflare.ip_addresses[0]: 'fe80::1%eth0': a scoped IPv6 address",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["2001:db8::1", "2001:DB8:0::1"]',
            "Cloudflare.ip_addresses[1]: '2001:db8::1' is listed twice (also at ip_addresses[0])",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a", "A.example.com."]\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames[1]: 'A.example.com.' is the same name as hostnames[0] ('a')",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["@", "example.com"]\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames[1]: 'example.com' is the same name as hostnames[0] ('@')",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["www.example.org."]\n'
            'ip_addresses = ["192.0.2.1"]',
            "Cloudflare.hostnames[0]: 'www.example.org.' is outside the domain 'example.com'",
        ),
        (
            CLOUDFLARE + "ttl = 10",
            "Cloudflare.ttl: must be 1 (automatic) or between 30 and 86400 seconds",
        ),
        (CLOUDFLARE + "ttl = 86401", "Cloudflare.ttl: must be 1 (automatic)"),
        (CLOUDFLARE + 'dns_proxied = "yes"', "Cloudflare.dns_proxied: must be true or false"),
        # [Route53]
        (
            '[Route53]\nhostnames = ["a"]\nip_addresses = ["192.0.2.1"]',
            "Route53.aws_domain: field required",
        ),
        (
            '[Route53]\naws_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nttl = -1',
            "Route53.ttl: must be between 0 and 86400, not -1",
        ),
        (
            '[Route53]\naws_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nttl = 2147483648',
            "Route53.ttl: must be between 0 and 86400, not 2147483648: resolvers",
        ),
        (
            '[Route53]\naws_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\naws_zoneid = ""',
            "Route53.aws_zoneid: must not be empty",
        ),
        # [Zonefile]
        (
            '[Zonefile]\norigin = "example.org"\nhostnames = ["a"]\nip_addresses = ["192.0.2.1"]',
            "Zonefile.path: field required",
        ),
        (
            '[Zonefile]\npath = "db"\nhostnames = ["a"]\nip_addresses = ["192.0.2.1"]',
            "Zonefile.origin: field required",
        ),
        (
            '[Zonefile]\npath = "db"\norigin = "example.org"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nttl = 0',
            "Zonefile.ttl: must be between 1 and 86400, not 0",
        ),
        (
            '[Zonefile]\npath = "db"\norigin = "example.org"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nreload_command = ""',
            "Zonefile.reload_command: must not be empty",
        ),
        (
            '[Zonefile]\npath = "db"\norigin = "example.org"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nreload_command = "rndc \'reload"',
            "Zonefile.reload_command: cannot split command",
        ),
        (
            '[Zonefile]\npath = "db"\norigin = "example.org"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\nreload_command = ["rndc", 1]',
            "Zonefile.reload_command[1]: must be a string, not an integer",
        ),
        (
            '[Cloudflare]\ndns_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["::FFFF:192.0.2.1"]',
            "Cloudflare.ip_addresses[0]: '::FFFF:192.0.2.1' is an IPv4-mapped IPv6 address "
            "(not reachable over IPv6, not for an AAAA record): write 192.0.2.1",
        ),
        # [RFC2136]
        (
            RFC2136_NO_SERVER + 'server = "ns1.example.org"',
            "RFC2136.server: 'ns1.example.org' is not an IP",
        ),
        (RFC2136_NO_SERVER, "RFC2136.server: field required"),
        (
            '[RFC2136]\nserver = "127.0.0.1"\nhostnames = ["a"]\nip_addresses = ["192.0.2.1"]',
            "RFC2136.zone: field required",
        ),
        (RFC2136_NO_SERVER + 'server = "127.0.0.1"\nport = 0', "RFC2136.port: must be ≥ 1"),
        (
            RFC2136_NO_SERVER + 'server = "127.0.0.1"\ntsig_key_name = "bad key"',
            "RFC2136.tsig_key_name: 'bad key' is not a valid TSIG key name",
        ),
        (
            RFC2136_NO_SERVER + 'server = "127.0.0.1"\ntsig_algorithm = "hmac-sha257"',
            "RFC2136.tsig_algorithm: Input should be 'hmac-sha256'",
        ),
        (
            RFC2136_NO_SERVER + 'server = "::1"\nttl = -5',
            "RFC2136.ttl: must be between 0 and 86400, not -5",
        ),
    ],
)
def test_each_bad_key_is_reported_at_its_path(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]
    assert "Value error" not in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus = 1", "bogus: unknown key"),
        (
            "failure_treshold = 4",
            "failure_treshold: unknown key (did you mean 'failure_threshold'?)",
        ),
        ("[members]\npeers = []", "members: unknown key (did you mean 'Members'?)"),
        ("[Members]\npeer = []", "Members.peer: unknown key (did you mean 'peers'?)"),
        ("[Members]\nzzz = 1", "Members.zzz: unknown key"),
        (CLOUDFLARE + "proxied = true", "Cloudflare.proxied: unknown key"),
        (CLOUDFLARE + "dns_proxyed = true", "Cloudflare.dns_proxyed: unknown key (did you mean"),
        (
            '[Route53]\naws_domain = "example.com"\nhostnames = ["a"]\n'
            'ip_addresses = ["192.0.2.1"]\naws_zone_id = "Z"',
            "Route53.aws_zone_id: unknown key (did you mean 'aws_zoneid'?)",
        ),
        ("[Route53.Extra]\nx = 1", "Route53.Extra: unknown key"),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_unknown_subtable_is_named(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, CLOUDFLARE + "[Cloudflare.extra]\nx = 1")
    assert problems == ["Cloudflare.extra: unknown key"]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = """
failure_threshold = 0
timeout = "5s"
bogus = true

[Members]
crypto_key = "short"

[Cloudflare]
dns_domain = "example.com"
hostnames = ["ok", "not ok"]
ip_addresses = ["192.0.2.1", "300.1.1.1"]
ttl = 2
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value

    assert error.path == path
    assert sorted(p.split(":")[0] for p in error.problems) == sorted(
        [
            "failure_threshold",
            "timeout",
            "bogus",
            "Members.crypto_key",
            "Cloudflare.hostnames[1]",
            "Cloudflare.ip_addresses[1]",
            "Cloudflare.ttl",
        ]
    )
    text_lines = str(error).splitlines()
    assert text_lines[0] == f"{path}: invalid configuration (7 problems):"
    assert text_lines[1:] == [f"  - {p}" for p in error.problems]
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_config_error_text_for_one_problem_without_path() -> None:
    assert str(ConfigError(["x: bad"])) == "invalid configuration (1 problem):\n  - x: bad"


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == path
    assert info.value.problems == [f"cannot read {path}: No such file or directory"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"cannot read {tmp_path}: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"cannot read {path}: Permission denied"]


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "failure_threshold = 5\ninterval = = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith("TOML syntax error: ")
    assert "line 2" in problem
    assert "column" in problem
    assert str(info.value).startswith(f"{path}: invalid configuration (1 problem):")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "goavail.toml"
    path.write_bytes(b'node_name = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["not valid UTF-8 (at byte 13)"]


def test_load_config_accepts_a_string_path() -> None:
    assert load_config(str(ORIGINAL)).failure_threshold == 5


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (2, 2.0),
        (0.5, 0.5),
        (1e-3, 0.001),
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3s", 3723.0),
        ("100ms", 0.1),
        ("250us", 0.00025),
        ("250µs", 0.00025),  # U+00B5, as Go accepts
        ("250μs", 0.00025),  # U+03BC, as Go accepts
        ("1000000ns", 0.001),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("+3s", 3.0),
        (" 2s ", 2.0),
    ],
)
def test_parse_duration_valid(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "not a boolean"),
        (False, "not a boolean"),
        (0, "must be > 0"),
        (-2, "must be > 0"),
        (0.0, "must be > 0"),
        (math.nan, "not NaN"),
        (math.inf, "too large"),
        (1e12, "too large"),
        ("0", "must be > 0"),
        ("0s", "must be > 0"),
        ("-1s", "must be > 0"),
        ("", "invalid duration ''"),
        ("2", "missing unit"),
        ("1m30", "missing unit"),
        ("2d", "unknown unit 'd'"),
        ("2 s", "unknown unit ' s'"),
        ("s", "invalid duration 's'"),
        (".s", "invalid duration '.s'"),
        ("1..2s", "invalid duration .1..2s.: expected"),
        ("fast", "invalid duration 'fast'"),
        (None, "must be a duration"),
        ([2], "must be a duration"),
    ],
)
def test_parse_duration_invalid(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(value)
    assert not str(info.value).startswith("Value error")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("hostname", "domain", "expected"),
    [
        ("test", "example.com", "test.example.com"),
        ("Test", "Example.COM", "test.example.com"),
        ("@", "example.com", "example.com"),
        ("@", "example.com.", "example.com"),
        ("a.b", "example.com", "a.b.example.com"),
        ("test.example.com", "example.com", "test.example.com"),
        ("test.example.com.", "example.com", "test.example.com"),
        ("example.com", "example.com", "example.com"),
        ("EXAMPLE.com.", "example.com", "example.com"),
        ("other.org.", "example.com", "other.org"),
        ("notexample.com", "example.com", "notexample.com.example.com"),
        ("*.apps", "example.org", "*.apps.example.org"),
    ],
)
def test_qualify(hostname: str, domain: str, expected: str) -> None:
    assert qualify(hostname, domain) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8082", ("127.0.0.1", 8082)),
        ("[2001:db8::1]:7946", ("2001:db8::1", 7946)),
        ("agent.example.com:1", ("agent.example.com", 1)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize(
    "value", ["", ":80", "host", "host:", "host:x", "host:65536", "[::1]80", "::1:80", "a b:1"]
)
def test_split_host_port_invalid(value: str) -> None:
    with pytest.raises(ValueError, match=repr(value).replace("[", r"\[")):
        split_host_port(value)


def test_ip_addresses_are_canonical(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[Cloudflare]\ndns_domain = "Example.COM."\nhostnames = ["a"]\n'
        'ip_addresses = ["2001:DB8:0:0::1", "192.0.2.1"]',
    )
    assert config.cloudflare is not None
    assert config.cloudflare.dns_domain == "example.com"
    assert config.cloudflare.ip_addresses == ["2001:db8::1", "192.0.2.1"]


def test_every_commented_example_in_the_documented_goavail_toml_is_valid(tmp_path: Path) -> None:
    """Uncomment every ``# key = value``, ``# [Section]`` and ``# [[array]]`` line (but ``"..."``
    placeholders): the result must load."""
    import re

    text = (DATA.parent.parent / "goavail.toml").read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        match = re.match(r"# (\[\[?\w+\]\]?|[a-z_0-9]+ = .*)$", line)
        placeholder = match is not None and '= "..."' in line
        lines.append(match.group(1) if match and not placeholder else line)
    config = load(tmp_path, "\n".join(lines))
    providers = ("cloudflare", "route53", "rfc2136", "zonefile")
    assert all(config.section_for(p) is not None for p in providers)
    assert config.members is not None
    assert config.rfc2136 is not None and config.rfc2136.ip_addresses[-1] == "2001:db8::10"


def test_sections_share_the_dns_section_shape() -> None:
    config = load_config(FULL)
    providers = ("cloudflare", "route53", "zonefile", "rfc2136")
    sections = [config.section_for(p) for p in providers]
    assert [type(s) for s in sections] == [
        CloudflareSection,
        Route53Section,
        ZonefileSection,
        RFC2136Section,
    ]
    assert all(isinstance(s, DnsSection) for s in sections)
    assert [s.domain for s in sections] == [
        "example.com",
        "example.net",
        "example.org",
        "dyn.example.org",
    ]
    assert [s.ttl for s in sections] == [300, 0, 30, 20]


def test_rfc2136_defaults_and_canonical_values(tmp_path: Path) -> None:
    section = load(tmp_path, RFC2136).rfc2136
    assert section is not None
    assert (section.server, section.port, section.zone) == ("192.0.2.53", 53, "example.org")
    assert (section.tsig_key_name, section.tsig_algorithm, section.ttl) == (
        None,
        "hmac-sha256",
        60,
    )
    assert section.names() == ["www.example.org"]
    full = load_config(FULL).rfc2136
    assert full is not None
    assert (full.server, full.port) == ("2001:db8::53", 5353)
    assert (full.tsig_key_name, full.tsig_algorithm) == ("goavail-key.", "hmac-sha512")


def test_tsig_algorithms_match_the_provider() -> None:
    from typing import get_args

    from goavail.config.providers import TsigAlgorithm
    from goavail.dns.providers.rfc2136 import TSIG_ALGORITHMS

    assert set(get_args(TsigAlgorithm)) == set(TSIG_ALGORITHMS)


# --------------------------------------------------------------------------- secrets


SECRET_KEY = "TopSecretKey-123"  # 16 bytes: valid
BAD_SECRET_KEY = "TopSecretKey-1234"  # 17 bytes: invalid
SLACK = "https://hooks.slack.invalid/services/T0/B0/SECRETSECRET"


def test_secrets_never_in_repr_or_str(tmp_path: Path) -> None:
    config = load(
        tmp_path, f'slack_addr = "{SLACK}"\n[Members]\ncrypto_key = "{SECRET_KEY}"\n' + CLOUDFLARE
    )
    assert config.members is not None
    assert config.members.key_bytes() == SECRET_KEY.encode()
    assert config.slack_addr is not None
    assert config.slack_addr.get_secret_value() == SLACK
    for text in (repr(config), str(config), repr(config.members), str(config.model_dump())):
        assert SECRET_KEY not in text
        assert "SECRETSECRET" not in text


@pytest.mark.parametrize(
    "text",
    [
        f'[Members]\ncrypto_key = "{BAD_SECRET_KEY}"',
        f'[Members]\ncrypto_key = "base64:{BAD_SECRET_KEY}"',
        f'[Members]\ncrypto_key = "{BAD_SECRET_KEY}"\nbogus = 1\n[Cloudflare]\nttl = 3',
    ],
)
def test_bad_crypto_key_never_in_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert any(p.startswith("Members.crypto_key: ") for p in info.value.problems)
    for rendered in (str(info.value), repr(info.value), *info.value.problems):
        assert BAD_SECRET_KEY not in rendered
        assert "TopSecret" not in rendered


def test_secrets_not_in_error_when_other_keys_fail(tmp_path: Path) -> None:
    text = f'slack_addr = "{SLACK}"\ninterval = 0\n[Members]\ncrypto_key = "{SECRET_KEY}"\nx = 1'
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert len(info.value.problems) == 2
    assert "SECRETSECRET" not in str(info.value)
    assert SECRET_KEY not in str(info.value)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("1234567891012345", b"1234567891012345"),
        ("x" * 24, b"x" * 24),
        ("y" * 32, b"y" * 32),
        ("base64:" + "A" * 22 + "==", bytes(16)),
        ("base64:" + "A" * 32, bytes(24)),
        ("base64:" + "A" * 43 + "=", bytes(32)),
    ],
)
def test_crypto_key_forms(key: str, expected: bytes) -> None:
    members = Members.model_validate({"crypto_key": key})
    assert members.key_bytes() == expected


def test_crypto_key_length_counts_utf8_bytes() -> None:
    key = "é" * 8  # 8 characters, 16 UTF-8 bytes
    assert Members.model_validate({"crypto_key": key}).key_bytes() == key.encode()


def test_no_crypto_key() -> None:
    assert Members().key_bytes() is None


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = write(
        sub,
        'audit_file = "log/audit.jsonl"\n[Zonefile]\npath = "db.example.org"\n'
        'origin = "example.org"\nhostnames = ["www"]\nip_addresses = ["192.0.2.1"]',
    )
    config = load_config(path)
    assert config.audit_file == sub / "log" / "audit.jsonl"
    assert config.zonefile is not None
    assert config.zonefile.path == sub / "db.example.org"


def test_relative_config_path_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, 'audit_file = "audit.jsonl"')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("goavail.toml"))
    assert config.audit_file == tmp_path / "audit.jsonl"
    assert config.audit_file.is_absolute()


def test_paths_in_code_resolve_against_the_context_base_dir(tmp_path: Path) -> None:
    config = Config.model_validate(
        {"audit_file": Path("audit.jsonl")}, context={"base_dir": tmp_path}
    )
    assert config.audit_file == tmp_path / "audit.jsonl"
    assert Config.model_validate({"audit_file": "a.jsonl"}).audit_file == Path("a.jsonl")


def test_relative_paths_are_tidied(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    path = write(tmp_path / "examples", 'audit_file = "../.run/audit.jsonl"')
    assert load_config(path).audit_file == tmp_path / ".run" / "audit.jsonl"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    config = load(tmp_path, 'audit_file = "/var/log/goavail/audit.jsonl"')
    assert config.audit_file == Path("/var/log/goavail/audit.jsonl")


def test_reload_command_as_list() -> None:
    section = ZonefileSection.model_validate(
        {
            "path": Path("/tmp/db"),
            "origin": "example.org",
            "hostnames": ["@"],
            "ip_addresses": ["192.0.2.1"],
            "reload_command": ["nsd-control", "reload", "example.org"],
        }
    )
    assert section.reload_command == ["nsd-control", "reload", "example.org"]
    assert section.path == Path("/tmp/db")


# --------------------------------------------------------------------------- runtime checks


ORIGINAL_HINT = (
    "; the file has [Cloudflare], [Route53]: "
    "use --dns-provider cloudflare or --dns-provider route53"
)


def test_section_for_returns_the_section() -> None:
    config = load_config(ORIGINAL)
    section = config.section_for("cloudflare")
    assert section is config.cloudflare
    assert config.section_for("route53") is config.route53


@pytest.mark.parametrize(
    ("provider", "problem"),
    [
        (
            "zonefile",
            "Zonefile: section missing (required by --dns-provider zonefile)" + ORIGINAL_HINT,
        ),
        (
            "bogus",
            "unknown DNS provider 'bogus' "
            "(expected one of: cloudflare, rfc2136, route53, zonefile)",
        ),
        (
            "rfc2136",
            "RFC2136: section missing (required by --dns-provider rfc2136)" + ORIGINAL_HINT,
        ),
    ],
)
def test_section_for_raises(provider: str, problem: str) -> None:
    config = load_config(ORIGINAL)
    with pytest.raises(ConfigError) as info:
        config.section_for(provider)
    assert info.value.problems == [problem]
    assert info.value.path == ORIGINAL


def test_section_for_missing_cloudflare_in_code() -> None:
    with pytest.raises(ConfigError, match=r"Cloudflare: section missing") as info:
        Config().section_for("cloudflare")
    assert info.value.path is None


@pytest.mark.parametrize(
    ("text", "provider", "probe_type", "expected"),
    [
        (CLOUDFLARE, "cloudflare", "icmp", []),
        ("port = 80\n" + CLOUDFLARE, "cloudflare", "tcp", []),
        (CLOUDFLARE, "cloudflare", "tcp", ["port: required by --type tcp"]),
        (
            CLOUDFLARE,
            "route53",
            "icmp",
            [
                "Route53: section missing (required by --dns-provider route53); "
                "the file has [Cloudflare]: use --dns-provider cloudflare"
            ],
        ),
        (
            "",
            "zonefile",
            "tcp",
            [
                "Zonefile: section missing (required by --dns-provider zonefile); the file "
                "has no provider section (one of [Cloudflare], [RFC2136], [Route53], [Zonefile])",
                "port: required by --type tcp",
            ],
        ),
    ],
)
def test_check_runtime(
    tmp_path: Path, text: str, provider: str, probe_type: str, expected: list[str]
) -> None:
    config = load(tmp_path, text)
    assert check_runtime(config, provider=provider, probe_type=probe_type) == expected


def test_original_passes_runtime_checks() -> None:
    config = load_config(ORIGINAL)
    assert check_runtime(config, provider="cloudflare", probe_type="tcp") == []
    assert check_runtime(config, provider="route53", probe_type="icmp") == []


def test_cluster_keys_defaults_and_values(tmp_path: Path) -> None:
    members = load(tmp_path, "[Members]\n" + CLOUDFLARE).members
    assert members is not None
    assert (members.announce_interval, members.max_clock_skew, members.writer_grace) == (
        10.0,
        30.0,
        5.0,
    )
    assert (members.serf_binary, members.serf_profile, members.serf_rpc_addr) == (
        "serf",
        "lan",
        None,
    )
    text = (
        '[Members]\ncluster_name = "edge-eu"\ngossip_key = "AAAAAAAAAAAAAAAAAAAAAA=="\n'
        'serf_rpc_addr = "127.0.0.1:7373"\nserf_profile = "wan"\nannounce_interval = "2s"\n'
        + CLOUDFLARE
    )
    members = load(tmp_path, text).members
    assert members is not None
    assert members.cluster_name == "edge-eu"
    assert members.serf_rpc_addr == "127.0.0.1:7373"
    assert members.announce_interval == 2.0


@pytest.mark.parametrize(
    ("line", "key", "needle"),
    [
        ('cluster_name = "no spaces"', "Members.cluster_name", "letters, digits"),
        ('gossip_key = "not base64!"', "Members.gossip_key", "base64"),
        ('gossip_key = "AAAA"', "Members.gossip_key", "16, 24 or 32 bytes"),
        ('serf_profile = "moon"', "Members.serf_profile", ""),
        ('serf_rpc_addr = "nope"', "Members.serf_rpc_addr", "host:port"),
        ('announce_interval = "0s"', "Members.announce_interval", ""),
    ],
)
def test_cluster_key_errors(tmp_path: Path, line: str, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[Members]\n{line}\n" + CLOUDFLARE)
    problems = [p for p in info.value.problems if p.startswith(key + ":")]
    assert problems, info.value.problems
    assert needle in problems[0]
    assert "not base64!" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[Server]\nlisten = "localhost:8080"', "Server.listen: 'localhost:8080': the host must"),
        ('[Server]\nlisten = "127.0.0.1"', "Server.listen: '127.0.0.1' is not host:port"),
        ('[Server]\nlisten = "127.0.0.1:0"', "Server.listen: '127.0.0.1:0': port must be"),
        ('[Server]\nlisten = "::1:8080"', "Server.listen: '::1:8080': write an IPv6 address"),
        ("[Server]\nenabled = 1", "Server.enabled: must be true or false, not an integer"),
        ("[Server]\nlistn = 1", "Server.listn: unknown key (did you mean 'listen'?)"),
        ("overrides_file = 3", "overrides_file: must be a string (a file path), not an integer"),
        ('overrides_file = ""', "overrides_file: must not be empty"),
    ],
)
def test_server_and_overrides_file_problems(tmp_path: Path, text: str, expected: str) -> None:
    found = problems_of(tmp_path, text)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_server_listen_forms(tmp_path: Path) -> None:
    config = load(tmp_path, '[Server]\nlisten = "0.0.0.0:80"')
    assert config.server.host_port() == ("0.0.0.0", 80)
    assert load(tmp_path, "[Server]\n").server == ServerSection()


# --------------------------------------------------------------------------- cluster mode


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (None, False),
        ({}, False),
        ({"min_peers_agree": 0}, False),
        # the single-node files of the original: local_addr, a key, but no peers
        ({"local_addr": "127.0.0.1:8081", "crypto_key": "1234567891012345"}, False),
        ({"peers": ["192.0.2.2:7946"]}, True),
        ({"peers": ["192.0.2.2:7946"], "min_peers_agree": 0}, True),
        ({"peers": ["192.0.2.2:7946"], "min_peers_agree": 1}, True),
        ({"serf_rpc_addr": "127.0.0.1:7373"}, True),
        ({"serf_rpc_addr": "127.0.0.1:7373", "min_peers_agree": 2}, True),
    ],
)
def test_cluster_mode_rule(members: dict[str, object] | None, expected: bool) -> None:
    section = None if members is None else Members.model_validate(members)
    assert cluster_mode(section) is expected
    if section is not None:
        assert section.cluster_mode is expected


@pytest.mark.parametrize("agree", [1, 3])
def test_quorum_without_peers_is_refused(agree: int) -> None:
    with pytest.raises(pydantic.ValidationError, match=f"{agree} needs peers"):
        Members.model_validate({"min_peers_agree": agree, "local_addr": "127.0.0.1:8081"})


@pytest.mark.parametrize(("cluster", "limit"), [("", 387), ('cluster_name = "edge"\n', 382)])
def test_a_node_name_must_fit_a_notice(tmp_path: Path, cluster: str, limit: int) -> None:
    members = f'[Members]\npeers = ["192.0.2.9:7946"]\n{cluster}'
    ok = f'node_name = "{"n" * limit}"\n' + CLOUDFLARE + members
    assert load(tmp_path, ok).node_name == "n" * limit
    long = f'node_name = "{"n" * (limit + 1)}"\n' + CLOUDFLARE + members
    assert problems_of(tmp_path, long) == [
        f"node_name: {limit + 1} bytes is too long: at most {limit} bytes (UTF-8) fit in a "
        "verdict notice under Serf's 512-byte user-event limit"
    ]


# --------------------------------------------------------------------------- provider choice

ZONEFILE = """
[Zonefile]
path = "db"
origin = "example.org"
hostnames = ["www"]
ip_addresses = ["192.0.2.1"]
"""
ROUTE53 = """
[Route53]
aws_domain = "example.org"
aws_zoneid = "Z1"
hostnames = ["www"]
ip_addresses = ["192.0.2.1"]
"""


@pytest.mark.parametrize(
    ("text", "requested", "present", "chosen"),
    [
        # exactly one section, no -p: that section's provider
        (ZONEFILE, None, ["zonefile"], "zonefile"),
        (ROUTE53, None, ["route53"], "route53"),
        (
            RFC2136_NO_SERVER.replace("[RFC2136]", '[RFC2136]\nserver = "192.0.2.53"'),
            None,
            ["rfc2136"],
            "rfc2136",
        ),
        (CLOUDFLARE, None, ["cloudflare"], "cloudflare"),
        # none or several, no -p: the Go original's default
        ("interval = 2\n", None, [], "cloudflare"),
        (ZONEFILE + ROUTE53, None, ["route53", "zonefile"], "cloudflare"),
        # -p given: it wins, even against the file's only section (the check reports that)
        (ZONEFILE, "route53", ["zonefile"], "route53"),
        (ZONEFILE + ROUTE53, "zonefile", ["route53", "zonefile"], "zonefile"),
    ],
)
def test_choose_provider(
    tmp_path: Path, text: str, requested: str | None, present: list[str], chosen: str
) -> None:
    config = load(tmp_path, text)
    assert provider_sections(config) == present
    assert choose_provider(config, requested) == chosen


def test_the_original_file_keeps_the_original_default() -> None:
    config = load_config(ORIGINAL)  # [Cloudflare] and [Route53], as the Go original's example
    assert choose_provider(config, None) == "cloudflare"
    assert choose_provider(config, "route53") == "route53"


def test_several_sections_without_cloudflare_name_the_choices(tmp_path: Path) -> None:
    config = load(tmp_path, ZONEFILE + ROUTE53)
    provider = choose_provider(config, None)
    assert check_runtime(config, provider=provider, probe_type="icmp") == [
        "Cloudflare: section missing (required by --dns-provider cloudflare); "
        "the file has [Route53], [Zonefile]: use --dns-provider route53 or --dns-provider zonefile"
    ]
