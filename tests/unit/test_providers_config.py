"""Several providers at once: the top-level ``providers`` list, ``[[names]] providers``, the
rule of ``--dns-provider`` against the list, and the publication per provider
(goavail/config/model.py ``run_providers``, goavail/pools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.compose import check_loaded, publication_of, run_of
from goavail.config import ConfigError, load_config
from goavail.dns.plan import NameSpec
from goavail.options import Options

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
EU, US, LEGACY = ("192.0.2.1", "192.0.2.2"), ("198.51.100.1",), ("203.0.113.9",)

SECTIONS = f"""
[Cloudflare]
dns_domain = "example.com"
zones = ["example.org"]
ttl = 120
dns_proxied = true

[Route53]
aws_domain = "example.org"
aws_zoneid = "Z1"
ttl = 30
hostnames = ["legacy"]
ip_addresses = ["{LEGACY[0]}"]

[Zonefile]
path = "zone"
origin = "example.test"
"""
POOLS = f"""
[[pools]]
name = "eu"
addresses = ["{EU[0]}", "{EU[1]}"]

[[pools]]
name = "us"
addresses = ["{US[0]}"]
ttl = 45
"""


US_NAME = '\n[[names]]\nname = "us.example.org"\npools = ["us"]\n'


def names(*entries: tuple[str, str]) -> str:
    """``[[names]]`` entries: ``(name, extra TOML lines)``, each served by pool ``eu``."""
    return "".join(
        f'\n[[names]]\nname = "{name}"\npools = ["eu"]\n{extra}\n' for name, extra in entries
    )


def run(tmp_path: Path, text: str, provider: str = "cloudflare", explicit: bool = False) -> Options:
    """Load and check ``text`` as ``goavail -p provider`` (``explicit``) would; return the
    options. Raises ConfigError like the CLI's check."""
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    options = Options(path, True, "ip", provider, explicit_provider=explicit)
    check_loaded(load_config(path), options)
    return options


def problems(
    tmp_path: Path, text: str, provider: str = "cloudflare", explicit: bool = False
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        run(tmp_path, text, provider, explicit)
    return info.value.problems


@pytest.mark.parametrize(
    ("top", "provider", "explicit", "want"),
    [
        # no list: today's one provider, explicit or chosen
        ("", "cloudflare", False, ("cloudflare",)),
        ("", "route53", True, ("route53",)),
        # a list: every provider of it, in its order
        ('providers = ["route53", "cloudflare"]\n', "cloudflare", False, ("route53", "cloudflare")),
        # a list and -p: the run is restricted to that one
        ('providers = ["route53", "cloudflare"]\n', "route53", True, ("route53",)),
    ],
)
def test_the_providers_of_a_run(
    tmp_path: Path, top: str, provider: str, explicit: bool, want: tuple[str, ...]
) -> None:
    text = top + POOLS + names(("www.example.org", "")) + US_NAME + SECTIONS
    options = run(tmp_path, text, provider, explicit)
    assert run_of(load_config(options.config_path), options) == want


PUBLISHED = (
    'providers = ["cloudflare", "route53"]\n'
    + POOLS
    + names(
        ("www.example.com", ""),
        ("www.example.org", "ttl = 10"),
        ("api.example.org", 'providers = ["route53"]'),
    )
    + US_NAME
    + SECTIONS
)


@pytest.mark.parametrize(
    ("provider", "explicit", "want"),
    [
        (
            "cloudflare",
            False,
            {
                # every name in its zones; TTL: the name's, the pool's, else its section's
                "cloudflare": [
                    NameSpec("us.example.org", (US,), ("us",), 45, True),
                    NameSpec("www.example.com", (EU,), ("eu",), 120, True),
                    NameSpec("www.example.org", (EU,), ("eu",), 10, True),
                ],
                # its own legacy hostnames, the names in its zone, the one restricted to it
                "route53": [
                    NameSpec("api.example.org", (EU,), ("eu",), 30, None),
                    NameSpec("legacy.example.org", (LEGACY,), ("Route53",), 30, None),
                    NameSpec("us.example.org", (US,), ("us",), 45, None),
                    NameSpec("www.example.org", (EU,), ("eu",), 10, None),
                ],
            },
        ),
        (
            "route53",
            True,  # -p route53 restricts the run: cloudflare's names are not published
            {
                "route53": [
                    NameSpec("api.example.org", (EU,), ("eu",), 30, None),
                    NameSpec("legacy.example.org", (LEGACY,), ("Route53",), 30, None),
                    NameSpec("us.example.org", (US,), ("us",), 45, None),
                    NameSpec("www.example.org", (EU,), ("eu",), 10, None),
                ],
            },
        ),
    ],
)
def test_the_publication_per_provider(
    tmp_path: Path, provider: str, explicit: bool, want: dict[str, list[NameSpec]]
) -> None:
    options = run(tmp_path, PUBLISHED, provider, explicit)
    published = publication_of(load_config(options.config_path), options)
    assert {p: list(published.specs_for(p)) for p in published.providers} == want
    assert published.providers == tuple(want)
    # every name once in the union; each target once, the legacy pool's included
    assert published.names == sorted({s.name for specs in want.values() for s in specs})
    assert set(published.targets) == {*EU, *US, *LEGACY}
    assert set(published.pools) == {"eu", "us", "Route53"}


def test_the_go_originals_file_publishes_to_cloudflare_alone(tmp_path: Path) -> None:
    """[Cloudflare] and [Route53] both present, no providers list: as before, the one
    provider of --dns-provider (default cloudflare), and only its section's hostnames."""
    text = (REPO_DATA / "goavail-original.toml").read_text()
    options = run(tmp_path, text)
    config = load_config(options.config_path)
    published = publication_of(config, options)
    assert run_of(config, options) == ("cloudflare",)
    assert published.providers == ("cloudflare",)
    assert config.cloudflare is not None
    assert published.names == sorted(config.cloudflare.names())
    assert published.targets == tuple(config.cloudflare.ip_addresses)


@pytest.mark.parametrize(
    ("text", "provider", "explicit", "want"),
    [
        (  # a name in no in-use provider's zones
            'providers = ["cloudflare", "route53"]\n'
            + POOLS
            + names(("www.example.net", ""))
            + US_NAME
            + SECTIONS,
            "cloudflare",
            False,
            [
                "names[0].name: 'www.example.net' is outside the zones 'example.com', "
                "'example.org' of [Cloudflare]; the zone 'example.org' of [Route53]"
            ],
        ),
        (  # without a list, zonefile is not in use: its zone does not count
            POOLS
            + names(("www.example.test", ""))
            + '\n[[names]]\nname = "us.example.com"\npools = ["us"]\n'
            + SECTIONS,
            "cloudflare",
            False,
            [
                "names[0].name: 'www.example.test' is outside the zones 'example.com', "
                "'example.org' of [Cloudflare]"
            ],
        ),
        (  # [[names]] providers: not in use, outside its zone, listed twice
            'providers = ["cloudflare", "route53"]\n'
            + POOLS
            + names(
                ("www.example.com", 'providers = ["zonefile", "route53"]'),
                ("www.example.org", 'providers = ["route53", "route53"]'),
            )
            + US_NAME
            + SECTIONS,
            "cloudflare",
            False,
            ["names[1].providers[1]: 'route53' is listed twice (also at providers[0])"],
        ),
        (
            'providers = ["cloudflare", "route53"]\n'
            + POOLS
            + names(("www.example.com", 'providers = ["zonefile", "route53"]'))
            + US_NAME
            + SECTIONS,
            "cloudflare",
            False,
            [
                "names[0].providers[0]: 'zonefile' is not a provider in use (in use: "
                "cloudflare, route53; see the top-level providers)",
                "names[0].providers[1]: 'www.example.com' is outside the zone "
                "'example.org' of [Route53]",
            ],
        ),
        (  # a [[names]] name that is also a hostname of a section publishing it
            'providers = ["cloudflare", "route53"]\n'
            + POOLS
            + names(("legacy.example.org", ""))
            + US_NAME
            + SECTIONS,
            "cloudflare",
            False,
            [
                "names[0].name: 'legacy.example.org' is also one of [Route53] hostnames "
                "(publish it one way only)"
            ],
        ),
        (  # -p outside the list
            'providers = ["cloudflare", "route53"]\n'
            + POOLS
            + names(("www.example.org", ""))
            + US_NAME
            + SECTIONS,
            "zonefile",
            True,
            [
                "providers: --dns-provider zonefile is not in the list (cloudflare, route53): "
                "with a providers list, --dns-provider restricts the run to one of them"
            ],
        ),
        (  # a provider of the list that would publish nothing
            'providers = ["cloudflare", "zonefile"]\n'
            + POOLS
            + names(("www.example.org", ""))
            + US_NAME
            + SECTIONS,
            "cloudflare",
            False,
            [
                "providers[1]: 'zonefile' publishes no name ([Zonefile] lists no hostnames "
                "and no [[names]] entry lies in its zones)"
            ],
        ),
    ],
)
def test_problems_with_key_paths(
    tmp_path: Path, text: str, provider: str, explicit: bool, want: list[str]
) -> None:
    assert problems(tmp_path, text, provider, explicit) == want


@pytest.mark.parametrize(
    ("top", "want"),
    [
        (
            "providers = []\n",
            [
                "providers: must name at least one provider (or leave it out: "
                "the one of --dns-provider)"
            ],
        ),
        (
            'providers = ["cloudflare", "bogus", "cloudflare"]\n',
            [
                "providers[1]: unknown DNS provider 'bogus' (expected one of: cloudflare, "
                "rfc2136, route53, zonefile)",
                "providers[2]: 'cloudflare' is listed twice (also providers[0])",
            ],
        ),
        (
            'providers = ["cloudflare", "rfc2136"]\n',
            ["providers[1]: 'rfc2136' needs its [RFC2136] section in this file"],
        ),
    ],
)
def test_the_providers_list_itself(tmp_path: Path, top: str, want: list[str]) -> None:
    text = (
        top
        + POOLS
        + names(("www.example.com", ""))
        + ('\n[[names]]\nname = "us.example.com"\npools = ["us"]\n')
        + SECTIONS
    )
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == want
