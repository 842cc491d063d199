"""``[[floating_ips]]``: validation with key paths, the label-selector grammar, and a
floating-IP-only file (no DNS section) being a valid run; DNS files are unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.compose import check_loaded, run_of
from goavail.config import ConfigError, load_config
from goavail.fip.selector import Requirement, matches, parse_selector
from goavail.options import Options

GROUP = """
[[floating_ips]]
id = "web"
server_selector = "role=lb"
floating_ip_selector = "service=web"
"""


def load(tmp_path: Path, text: str) -> tuple[ConfigError | None, object]:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    try:
        return None, load_config(path)
    except ConfigError as exc:
        return exc, None


def problems(tmp_path: Path, text: str) -> list[str]:
    error, _ = load(tmp_path, text)
    assert error is not None
    return error.problems


def options(path: Path, provider: str | None = None) -> Options:
    return Options(
        config_path=path,
        provider=provider or "cloudflare",
        explicit_provider=provider is not None,
    )


def test_every_problem_with_its_key_path(tmp_path: Path) -> None:
    text = """
[[floating_ips]]
id = "bad id!"
server_selector = "role=,="
floating_ip_selector = ""
poll_interval = "10ms"
post_plan_delay = "2h"
read_only = "yes"
checks = ["a", "a"]
surprise = 1
"""
    found = problems(tmp_path, text)
    assert [p.split(": ")[0] for p in found] == [
        "floating_ips[0].id",
        "floating_ips[0].server_selector",
        "floating_ips[0].floating_ip_selector",
        "floating_ips[0].checks[1]",
        "floating_ips[0].poll_interval",
        "floating_ips[0].post_plan_delay",
        "floating_ips[0].read_only",
        "floating_ips[0].surprise",
    ]
    assert found[1].startswith("floating_ips[0].server_selector: 'role=,=' is not a label")
    assert found[4].startswith("floating_ips[0].poll_interval: must be between 1s and 24h")


def test_unknown_checks_and_repeated_ids(tmp_path: Path) -> None:
    text = (
        '[[checks]]\nid = "web"\ntype = "icmp"\n'
        + GROUP
        + GROUP.replace('id = "web"', 'id = "web"\nchecks = ["nope"]')
    )
    assert problems(tmp_path, text) == [
        "floating_ips[1].id: 'web' is used twice (also floating_ips[0])",
        "floating_ips[1].checks[0]: no check 'nope' ([[checks]] ids: 'web')",
    ]


def test_a_floating_ip_only_file_needs_no_dns_section(tmp_path: Path) -> None:
    error, config = load(tmp_path, GROUP)
    assert error is None
    opts = options(tmp_path / "goavail.toml")
    check_loaded(config, opts)  # type: ignore[arg-type]
    assert run_of(config, opts) == ()  # type: ignore[arg-type]


def test_an_explicit_provider_still_needs_its_section(tmp_path: Path) -> None:
    _, config = load(tmp_path, GROUP)
    with pytest.raises(ConfigError, match=r"Cloudflare: section missing"):
        check_loaded(config, options(tmp_path / "goavail.toml", "cloudflare"))  # type: ignore[arg-type]


def test_a_file_without_dns_nor_floating_ips_still_needs_a_section(tmp_path: Path) -> None:
    _, config = load(tmp_path, "interval = 1\n")
    with pytest.raises(ConfigError, match=r"section missing"):
        check_loaded(config, options(tmp_path / "goavail.toml"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env=prod", [Requirement("env", "=", ("prod",))]),
        ("env==prod", [Requirement("env", "=", ("prod",))]),
        ("env!=prod", [Requirement("env", "!=", ("prod",))]),
        ("env", [Requirement("env", "exists")]),
        ("!env", [Requirement("env", "!exists")]),
        ("env in (a, b)", [Requirement("env", "in", ("a", "b"))]),
        ("env notin (a)", [Requirement("env", "notin", ("a",))]),
        (
            "role=lb,env in (prod,stage),!draining",
            [
                Requirement("role", "=", ("lb",)),
                Requirement("env", "in", ("prod", "stage")),
                Requirement("draining", "!exists"),
            ],
        ),
    ],
)
def test_selector_grammar(text: str, expected: list[Requirement]) -> None:
    assert list(parse_selector(text)) == expected


@pytest.mark.parametrize("text", ["", " ", "=x", "a=b,", "a in ()", "a b", "a=b=c"])
def test_selector_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_selector(text)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "dev"}, False),
        ("env!=prod", {}, True),
        ("env", {}, False),
        ("!env", {}, True),
        ("env in (a,b)", {"env": "b"}, True),
        ("env notin (a,b)", {"env": "b"}, False),
        ("env notin (a,b)", {}, True),
        ("role=lb,env", {"role": "lb"}, False),
    ],
)
def test_selector_matching(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert matches(parse_selector(selector), labels) is expected
