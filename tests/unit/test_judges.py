"""Checks per pool (goavail/judges.py, ``[[pools]] checks``, ``failure_threshold``,
``rise_threshold``): the config rules with their key paths, and which checks judge which
targets with which thresholds, as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from goavail.compose import assignment_of, check_loaded, check_sections
from goavail.config import Config, ConfigError, PoolSection, load_config
from goavail.judges import Assignment, pool_checks
from goavail.options import Options

ZONEFILE = '\n[Zonefile]\npath = "zone"\norigin = "example.test"\n'
CHECKS = """\
failure_threshold = 2
port = 8080

[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "web"
type = "tcp"
fall = 4
rise = 3
"""
E1, E2, S = "192.0.2.1", "192.0.2.2", "192.0.2.9"  # eu, us, shared by both
U1 = "198.51.100.1"
TOP = "failure_threshold = 2\nport = 8080\n"  # no [[checks]]: the --type probe judges


def pools(
    eu: str = "", us: str = "", *, checks: str = CHECKS, legacy: list[str] | None = None
) -> str:
    """A file with pools ``eu`` = [E1, S] and ``us`` = [U1, S] (``eu``/``us``: extra keys
    of each), both published under www, and the original's pool when ``legacy``."""
    text = checks
    text += f'\n[[pools]]\nname = "eu"\naddresses = ["{E1}", "{S}"]\n{eu}\n'
    text += f'\n[[pools]]\nname = "us"\naddresses = ["{U1}", "{S}"]\n{us}\n'
    text += '\n[[names]]\nname = "www.example.test"\npools = ["eu", "us"]\n'
    text += ZONEFILE
    if legacy is not None:
        text += f'hostnames = ["old"]\nip_addresses = {legacy!r}\n'.replace("'", '"')
    return text


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    return load_config(path)


def options(tmp_path: Path, probe_type: Literal["ip", "tcp"] = "ip") -> Options:
    return Options(tmp_path / "goavail.toml", True, probe_type, "zonefile")


def all_problems(tmp_path: Path, text: str) -> list[str]:
    """Every problem of the file, those only the run can tell included."""
    try:
        config = load(tmp_path, text)
        check_loaded(config, options(tmp_path))
    except ConfigError as exc:
        return exc.problems
    return []


# -- the config rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            pools('checks = ["ping", "db"]'),
            ["pools[0].checks[1]: no check 'db' ([[checks]] ids: 'ping', 'web')"],
            id="unknown-id",
        ),
        pytest.param(
            pools('checks = ["ping", "web", "ping"]'),
            ["pools[0].checks[2]: 'ping' is listed twice (also at checks[0])"],
            id="duplicate-id",
        ),
        pytest.param(
            pools("checks = []"),
            ["pools[0].checks: must have at least 1 item"],
            id="empty-list",
        ),
        pytest.param(
            pools('checks = ["ping"]', checks=""),
            ["pools[0].checks[0]: no check 'ping' ([[checks]] ids: none: add [[checks]] entries)"],
            id="no-checks-at-all",
        ),
        pytest.param(
            pools("failure_threshold = 0\nrise_threshold = 101"),
            [
                "pools[0].failure_threshold: must be between 1 and 100, not 0",
                "pools[0].rise_threshold: must be between 1 and 100, not 101",
            ],
            id="threshold-ranges",
        ),
        pytest.param(
            pools('checks = ["db"]', 'checks = ["web", "web", "mail"]'),
            [
                "pools[0].checks[0]: no check 'db'",
                "pools[1].checks[1]: 'web' is listed twice (also at checks[0])",
                "pools[1].checks[2]: no check 'mail'",
            ],
            id="every-problem-at-once",
        ),
        pytest.param(
            pools('checks = ["web"]\nfailure_threshold = 5', 'checks = ["web", "ping"]'),
            [
                f"pools[1].addresses[1]: '{S}' is also in another pool with other thresholds "
                "(check 'web' has fall 5, rise 5 in pool 'eu' but fall 4, rise 3 here)"
            ],
            id="shared-target-two-thresholds",
        ),
        pytest.param(
            pools("rise_threshold = 7", legacy=[S]),
            [
                f"pools[0].addresses[1]: '{S}' is also in another pool with other thresholds "
                "(check 'ping' has fall 2, rise 2 in [Zonefile] ip_addresses but fall 2, "
                "rise 7 here; check 'web' has fall 4, rise 3 in [Zonefile] ip_addresses but "
                "fall 4, rise 7 here)"
            ],
            id="the-originals-pool-too",
        ),
        pytest.param(
            pools('checks = ["ping"]', 'checks = ["ping"]'),
            ["checks[1].id: 'web' judges no target (every pool lists its checks and none"],
            id="a-check-judging-nothing",
        ),
    ],
)
def test_problems_name_their_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    problems = all_problems(tmp_path, text)
    assert len(problems) == len(expected), problems
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(pools(), id="no-pool-chooses"),
        pytest.param(pools('checks = ["ping"]', 'checks = ["web"]'), id="union-on-the-shared"),
        pytest.param(
            pools("failure_threshold = 3", "failure_threshold = 3"), id="same-thresholds-shared"
        ),
        pytest.param(
            pools('checks = ["ping"]\nfailure_threshold = 5', 'checks = ["web"]'),
            id="thresholds-of-checks-not-shared",
        ),
        pytest.param(
            pools("failure_threshold = 4", "failure_threshold = 4", checks=TOP), id="type"
        ),
    ],
)
def test_valid_choices(tmp_path: Path, text: str) -> None:
    assert all_problems(tmp_path, text) == []


@pytest.mark.parametrize(
    ("fall", "rise", "own", "expected"),
    [
        (None, None, (2, 3), (2, 3)),  # the check's own
        (5, None, (2, 3), (5, 5)),  # rise follows the pool's failure_threshold
        (None, 4, (2, 3), (2, 4)),
        (5, 1, (2, 3), (5, 1)),
    ],
)
def test_pool_thresholds(
    fall: int | None, rise: int | None, own: tuple[int, int], expected: tuple[int, int]
) -> None:
    pool = PoolSection(
        name="eu", addresses=["192.0.2.1"], failure_threshold=fall, rise_threshold=rise
    )
    assert pool.thresholds(*own) == expected


# -- which checks judge which targets ------------------------------------------------------


@pytest.mark.parametrize(
    ("eu", "us", "legacy", "judges", "overrides"),
    [
        pytest.param(
            "",
            "",
            None,
            {E1: ("ping", "web"), S: ("ping", "web"), U1: ("ping", "web")},
            {},
            id="default-every-check",
        ),
        pytest.param(
            'checks = ["ping"]',
            'checks = ["web"]',
            None,
            {E1: ("ping",), S: ("ping", "web"), U1: ("web",)},
            {},
            id="own-checks-union-on-the-shared",
        ),
        pytest.param(
            'checks = ["web"]',
            "",
            None,
            {E1: ("web",), S: ("ping", "web"), U1: ("ping", "web")},
            {},
            id="one-pool-chooses",
        ),
        pytest.param(
            'checks = ["ping"]\nfailure_threshold = 5\nrise_threshold = 1',
            'checks = ["web"]',
            None,
            {E1: ("ping",), S: ("ping", "web"), U1: ("web",)},
            {"ping": {E1: (5, 1), S: (5, 1)}},
            id="a-pools-thresholds",
        ),
        pytest.param(
            'checks = ["web"]',
            'checks = ["web"]',
            [E2],
            {E2: ("ping", "web"), E1: ("web",), S: ("web",), U1: ("web",)},
            {},
            id="the-originals-pool-takes-the-defaults",
        ),
    ],
)
def test_assignment(
    tmp_path: Path,
    eu: str,
    us: str,
    legacy: list[str] | None,
    judges: dict[str, tuple[str, ...]],
    overrides: dict[str, dict[str, tuple[int, int]]],
) -> None:
    config = load(tmp_path, pools(eu, us, legacy=legacy))
    assignment = assignment_of(config, options(tmp_path))
    assert assignment.problems == ()
    assert {t: assignment.checks_of(t) for t in judges} == judges
    assert assignment.overrides == overrides
    for check_id, targets in assignment.targets.items():
        # each target once per check, in the publication's order, whatever its pools
        assert len(set(targets)) == len(targets)
        assert list(targets) == [t for t in judges if check_id in judges[t]]


def test_the_type_probe_judges_every_target_with_the_pools_thresholds(tmp_path: Path) -> None:
    text = pools("failure_threshold = 4", "failure_threshold = 4", checks=TOP, legacy=[E2])
    config = load(tmp_path, text)
    kinds: list[tuple[Literal["ip", "tcp"], str]] = [("ip", "icmp"), ("tcp", "tcp")]
    for probe_type, check_id in kinds:
        sections, single = check_sections(config, options(tmp_path, probe_type))
        assert single
        assignment = assignment_of(config, options(tmp_path, probe_type))
        assert assignment.problems == ()
        assert assignment.targets == {check_id: (E2, E1, S, U1)}
        assert assignment.thresholds(sections[0], E1) == (4, 4)
        assert assignment.thresholds(sections[0], E2) == (2, 2)  # the top level's
        assert pool_checks(sections, config.pools[1]) == [(check_id, (4, 4))]
        assert pool_checks(sections, None) == [(check_id, (2, 2))]


def test_every_check_judges_every_target_without_an_assignment() -> None:
    assignment = Assignment.every(["ping", "web"], [E1, U1, E1])
    assert assignment.targets == {"ping": (E1, U1), "web": (E1, U1)}
    assert assignment.checks_of(U1) == ("ping", "web")
    assert assignment.checks_of("203.0.113.1") == ()
