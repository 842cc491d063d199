"""``[[pools]]``, ``[[names]]`` and ``[Brake]``: validation with key paths, and the
publication a run makes of them (goavail/pools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.brake import ALL_TARGETS
from goavail.compose import check_loaded
from goavail.config import BrakeSection, Config, ConfigError, load_config
from goavail.dns.plan import NameSpec
from goavail.options import Options
from goavail.pools import publication

ZONEFILE = '[Zonefile]\npath = "zone"\norigin = "example.test"\nttl = 120\n'
POOLS = """\
[[pools]]
name = "eu"
addresses = ["192.0.2.1", "192.0.2.2"]
ttl = 30

[[pools]]
name = "us"
addresses = ["198.51.100.1", "192.0.2.2"]
max_down_share = 0.3

[[names]]
name = "www.example.test"
pools = ["eu", "us"]

[[names]]
name = "API.Example.Test."
pools = ["us"]
ttl = 300
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    return load_config(path)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def test_pools_make_a_publication(tmp_path: Path) -> None:
    config = load(tmp_path, POOLS + ZONEFILE)
    assert config.zonefile is not None
    published = publication(config, ["zonefile"])
    assert published.specs == (
        NameSpec("api.example.test", (("198.51.100.1", "192.0.2.2"),), ("us",), 300),
        NameSpec(
            "www.example.test",
            (("192.0.2.1", "192.0.2.2"), ("198.51.100.1", "192.0.2.2")),
            ("eu", "us"),
            30,  # the primary pool's TTL; the name sets none
        ),
    )
    assert published.targets == ("192.0.2.1", "192.0.2.2", "198.51.100.1")  # each once
    assert published.names_of("192.0.2.2") == ["api.example.test", "www.example.test"]
    assert published.groups()[ALL_TARGETS] == published.targets
    assert published.shares == {"us": 0.3}
    assert config.brake_settings() == BrakeSection()  # pools: the brake is on by default


def test_the_original_section_is_one_pool(tmp_path: Path) -> None:
    text = ZONEFILE + 'hostnames = ["www", "@"]\nip_addresses = ["192.0.2.1", "2001:db8::1"]\n'
    config = load(tmp_path, text)
    assert config.zonefile is not None
    published = publication(config, ["zonefile"])
    pool = ("192.0.2.1", "2001:db8::1")
    assert published.specs == (
        NameSpec("example.test", (pool,), ("Zonefile",), 120),
        NameSpec("www.example.test", (pool,), ("Zonefile",), 120),
    )
    assert config.brake_settings() is None  # the original's behaviour: no brake


def test_both_shapes_in_one_file(tmp_path: Path) -> None:
    text = POOLS + ZONEFILE + 'hostnames = ["legacy"]\nip_addresses = ["203.0.113.1"]\n'
    config = load(tmp_path, text)
    assert config.zonefile is not None
    published = publication(config, ["zonefile"])
    assert published.names == ["api.example.test", "legacy.example.test", "www.example.test"]
    assert "203.0.113.1" in published.targets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            POOLS.replace('pools = ["us"]', 'pools = ["us", "asia"]') + ZONEFILE,
            ["names[1].pools[1]: no pool 'asia' (pools: 'eu', 'us')"],
        ),
        (
            POOLS.replace('name = "us"', 'name = "eu"') + ZONEFILE,
            ["pools[1].name: 'eu' is used twice (also pools[0])"],
        ),
        (
            POOLS.replace('pools = ["eu", "us"]', 'pools = ["eu", "eu"]') + ZONEFILE,
            ["names[0].pools[1]: 'eu' is listed twice (also at pools[0])"],
        ),
        (
            POOLS.replace("API.Example.Test.", "www.example.test") + ZONEFILE,
            ["names[1].name: 'www.example.test' is listed twice (also names[0])"],
        ),
        (
            '[[pools]]\nname = "eu"\naddresses = ["192.0.2.1"]\n' + ZONEFILE,
            ["names: required with [[pools]]: which names publish them?"],
        ),
        (
            POOLS + '[[pools]]\nname = "spare"\naddresses = ["192.0.2.9"]\n' + ZONEFILE,
            ["pools[2].name: 'spare' is not used by any [[names]] entry"],
        ),
        (
            '[[pools]]\nname = "eu"\naddresses = ["192.0.2.1", "192.0.2.1"]\n[[names]]\n'
            'name = "www.example.test"\npools = ["eu"]\n' + ZONEFILE,
            ["pools[0].addresses[1]: '192.0.2.1' is listed twice (also at ip_addresses[0])"],
        ),
        (
            '[[names]]\nname = "www"\npools = []\n' + ZONEFILE,
            [
                "names[0].name: 'www' is not a fully qualified name (e.g. 'www.example.com')",
                "names[0].pools: must have at least 1 item",
            ],
        ),
        (ZONEFILE, ["Zonefile.hostnames: field required (list hostnames and ip_addresses"]),
        (
            "[Brake]\nmax_down_share = 0\nmin_targets = 0\n" + POOLS + ZONEFILE,
            [
                "Brake.max_down_share: must be between 0.01 and 1, not 0: smaller holds",
                "Brake.min_targets: must be between 1 and 1000000, not 0",
            ],
        ),
    ],
)
def test_problems_name_their_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    problems = problems_of(tmp_path, text)
    for line in expected:
        assert any(p.startswith(line) for p in problems), problems


def run_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    options = Options(path, True, "ip", "zonefile")
    with pytest.raises(ConfigError) as info:
        check_loaded(load_config(path), options)
    return info.value.problems


def test_names_outside_the_zone_or_twice_are_refused_for_the_run(tmp_path: Path) -> None:
    text = POOLS.replace("API.Example.Test.", "api.example.org") + ZONEFILE
    assert run_problems(tmp_path, text) == [
        "names[1].name: 'api.example.org' is outside the zone 'example.test' of [Zonefile]"
    ]
    text = POOLS + ZONEFILE + 'hostnames = ["www"]\nip_addresses = ["203.0.113.1"]\n'
    assert run_problems(tmp_path, text) == [
        "names[0].name: 'www.example.test' is also one of [Zonefile] hostnames "
        "(publish it one way only)"
    ]


def test_cloudflare_names_may_lie_in_further_zones(tmp_path: Path) -> None:
    cloudflare = '[Cloudflare]\ndns_domain = "example.test"\nzones = ["example.org"]\n'
    text = POOLS.replace("API.Example.Test.", "api.example.org") + cloudflare
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    check_loaded(load_config(path), Options(path, True, "ip", "cloudflare"))  # no problem
    text = POOLS.replace("API.Example.Test.", "api.example.net") + cloudflare
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        check_loaded(load_config(path), Options(path, True, "ip", "cloudflare"))
    assert info.value.problems == [
        "names[1].name: 'api.example.net' is outside the zones 'example.test', 'example.org' "
        "of [Cloudflare]"
    ]
