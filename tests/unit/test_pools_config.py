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


# -- all_down and degraded_ttl (issue 15) ------------------------------------------------


def test_all_down_and_degraded_ttl_follow_the_ttl_chain(tmp_path: Path) -> None:
    """name, else its primary pool, else the provider section, else fail-open / None."""
    text = (
        POOLS.replace(
            "ttl = 30\n", 'ttl = 30\nall_down = "fail-closed"\ndegraded_ttl = 10\n', 1
        ).replace("ttl = 300\n", 'ttl = 300\nall_down = "fail-open"\n')
        + ZONEFILE
        + 'degraded_ttl = 20\nall_down = "fail-closed"\n'
    )
    config = load(tmp_path, text)
    specs = {s.name: s for s in publication(config, ["zonefile"]).specs}
    www, api = specs["www.example.test"], specs["api.example.test"]
    assert (www.all_down, www.degraded_ttl, www.ttl) == ("fail-closed", 10, 30)
    assert (api.all_down, api.degraded_ttl, api.ttl) == ("fail-open", 20, 300)
    plain = {s.name: s for s in publication(load(tmp_path, POOLS + ZONEFILE), ["zonefile"]).specs}
    assert {(s.all_down, s.degraded_ttl) for s in plain.values()} == {("fail-open", None)}
    legacy = ZONEFILE + 'hostnames = ["www"]\nip_addresses = ["192.0.2.1"]\n'
    legacy += 'all_down = "fail-closed"\ndegraded_ttl = 5\n'
    [spec] = publication(load(tmp_path, legacy), ["zonefile"]).specs
    assert (spec.all_down, spec.degraded_ttl, spec.ttl) == ("fail-closed", 5, 120)


def test_all_down_and_degraded_ttl_are_checked_at_their_keys(tmp_path: Path) -> None:
    bad = POOLS.replace("ttl = 300\n", 'ttl = 300\nall_down = "closed"\ndegraded_ttl = 0\n')
    assert problems_of(tmp_path, bad + ZONEFILE) == [
        "names[1].all_down: Input should be 'fail-open', 'fail-closed' or 'backup'",
        "names[1].degraded_ttl: must be between 1 and 86400, not 0: a TTL of 0 makes every "
        "resolver ask again at every query",
    ]


def test_all_down_and_degraded_ttl_against_the_run(tmp_path: Path) -> None:
    # backup with one pool; a degraded TTL that lowers nothing (the pool's, the section's)
    text = (
        POOLS.replace("ttl = 300\n", 'ttl = 300\nall_down = "backup"\n').replace(
            "max_down_share = 0.3\n", "max_down_share = 0.3\ndegraded_ttl = 300\n"
        )
        + ZONEFILE
        + "degraded_ttl = 60\n"
    )
    assert run_problems(tmp_path, text) == [
        "names[1].all_down: 'backup' keeps the last backup pool when every address is down, "
        "but pools lists only one (add a backup pool, or use 'fail-open' or 'fail-closed')",
        "pools[1].degraded_ttl: 300 is not lower than the TTL of api.example.test at zonefile "
        "(300 s): nothing would be lowered",
        "Zonefile.degraded_ttl: 60 is not lower than the TTL of www.example.test at zonefile "
        "(30 s): nothing would be lowered",
    ]


def test_degraded_ttl_at_cloudflare(tmp_path: Path) -> None:
    names = '[[pools]]\nname = "web"\naddresses = ["192.0.2.1"]\n\n'
    names += '[[names]]\nname = "www.example.test"\npools = ["web"]\ndegraded_ttl = 20\n\n'
    cloudflare = '[Cloudflare]\ndns_domain = "example.test"\n'
    path = tmp_path / "goavail.toml"

    def problems(text: str) -> list[str]:
        path.write_text(text)
        try:
            check_loaded(load_config(path), Options(path, True, "ip", "cloudflare"))
        except ConfigError as exc:
            return exc.problems
        return []

    assert problems(names + cloudflare) == [
        "names[0].degraded_ttl: 20 is below Cloudflare's shortest TTL, 30 seconds"
    ]
    # ttl = 1 is "automatic", 300 s: 60 lowers it
    assert problems(names.replace("= 20", "= 60") + cloudflare) == []
    assert problems(names.replace("= 20", "= 60") + cloudflare + "dns_proxied = true\n") == [
        "names[0].degraded_ttl: www.example.test is proxied at Cloudflare ([Cloudflare] "
        "dns_proxied), whose records always have the automatic TTL"
    ]
