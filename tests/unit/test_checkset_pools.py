"""The CheckSet with checks per pool: each check probes only the targets it judges (each
once, a target in two pools included), with each target's thresholds; a target is the
worst of its own checks; a reload that changes a pool's checks starts the new (target,
check) pairs unknown and forgets the dropped ones. Results are fed by hand: no engine
is started, so no root is needed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from goavail.checks.base import ProbeResult
from goavail.checks.multi import CheckSet
from goavail.compose import assignment_of, publication_of
from goavail.config import Config, load_config
from goavail.health import State
from goavail.options import Options

E1, S, U1 = "192.0.2.1", "192.0.2.9", "198.51.100.1"  # eu only, in both pools, us only
U, D, K = State.UP, State.DOWN, State.UNKNOWN
OK, FAIL = ProbeResult(ok=True, rtt=0.001), ProbeResult(ok=False, error="timeout")


def text(eu: str, us: str) -> str:
    return f"""\
failure_threshold = 2
port = 8080

[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "web"
type = "tcp"

[[pools]]
name = "eu"
addresses = ["{E1}", "{S}"]
{eu}

[[pools]]
name = "us"
addresses = ["{U1}", "{S}"]
{us}

[[names]]
name = "www.example.test"
pools = ["eu", "us"]

[Zonefile]
path = "zone"
origin = "example.test"
"""


def load(tmp_path: Path, eu: str, us: str) -> tuple[Config, Options]:
    path = tmp_path / "goavail.toml"
    path.write_text(text(eu, us))
    return load_config(path), Options(path, True, "ip", "zonefile")


Verdicts = list[tuple[str, State, State, str]]


def checkset(tmp_path: Path, eu: str, us: str, seen: Verdicts) -> CheckSet:
    config, options = load(tmp_path, eu, us)
    return CheckSet(
        config.checks,
        list(publication_of(config, options).targets),
        lambda target, old, new, why: seen.append((target, old, new, why)),
        assignment=assignment_of(config, options),
    )


def feed(checks: CheckSet, check_id: str, target: str, result: ProbeResult, times: int) -> None:
    for _ in range(times):
        checks.checks[check_id].on_result(target, result)


def test_each_check_probes_its_own_targets_once(tmp_path: Path) -> None:
    checks = checkset(tmp_path, 'checks = ["ping"]', 'checks = ["web"]', [])
    ping, web = checks.checks["ping"], checks.checks["web"]
    assert ping.scheduler.targets == [E1, S]
    assert web.scheduler.targets == [S, U1]  # S in two pools: once per check
    assert list(ping.health) == [E1, S] and list(web.health) == [S, U1]
    assert checks.judges(E1) == ("ping",)
    assert checks.judges(S) == ("ping", "web")
    assert checks.judges(U1) == ("web",)
    assert [entry[0] for entry in checks.status(U1)] == ["web"]
    assert checks.describe(S) == "ping=unknown web=unknown"


@pytest.mark.parametrize(
    ("fed", "verdicts"),
    [
        pytest.param([], {E1: K, S: K, U1: K}, id="nothing-yet"),
        pytest.param(
            [("ping", E1, OK), ("ping", S, OK), ("web", S, OK), ("web", U1, OK)],
            {E1: U, S: U, U1: U},
            id="all-up",
        ),
        pytest.param(
            [("ping", E1, OK), ("ping", S, OK), ("web", S, FAIL), ("web", U1, OK)],
            {E1: U, S: D, U1: U},  # S: the worst of ping and web
            id="web-fails-the-shared",
        ),
        pytest.param(
            [("ping", E1, OK), ("ping", S, OK), ("web", S, OK), ("web", U1, FAIL)],
            {E1: U, S: U, U1: D},  # web judges U1 alone; ping never did
            id="web-fails-its-own",
        ),
        pytest.param(
            [("ping", E1, OK), ("ping", U1, FAIL), ("web", S, OK), ("web", E1, FAIL)],
            {E1: U, S: K, U1: K},  # results for targets a check does not judge are dropped
            id="results-of-others-ignored",
        ),
    ],
)
def test_a_target_is_the_worst_of_its_own_checks(
    tmp_path: Path, fed: list[tuple[str, str, ProbeResult]], verdicts: dict[str, State]
) -> None:
    checks = checkset(tmp_path, 'checks = ["ping"]', 'checks = ["web"]', [])
    for check_id, target, result in fed:
        feed(checks, check_id, target, result, 2)  # failure_threshold = rise = 2
    assert checks.verdicts == verdicts


def test_a_pools_thresholds_apply_to_its_targets(tmp_path: Path) -> None:
    seen: Verdicts = []
    eu = 'checks = ["ping"]\nfailure_threshold = 4\nrise_threshold = 1'
    checks = checkset(tmp_path, eu, 'checks = ["web"]', seen)
    assert checks.checks["ping"].thresholds == {E1: (4, 1), S: (4, 1)}
    assert checks.checks["web"].thresholds == {}  # us keeps web's own (2, 2)
    feed(checks, "ping", E1, OK, 1)
    assert checks.verdicts[E1] is U  # rise 1
    feed(checks, "ping", E1, FAIL, 3)
    assert checks.verdicts[E1] is U  # fall 4: not yet
    feed(checks, "ping", E1, FAIL, 1)
    assert checks.verdicts[E1] is D
    feed(checks, "web", U1, OK, 1)
    assert checks.verdicts[U1] is K  # web's own rise 2
    feed(checks, "web", U1, OK, 1)
    assert checks.verdicts[U1] is U
    assert [(t, o, n) for t, o, n, _ in seen] == [(E1, K, U), (E1, U, D), (U1, K, U)]


def test_full_rounds_count_each_check_by_its_own_targets(tmp_path: Path) -> None:
    checks = checkset(tmp_path, 'checks = ["ping"]', "", [])  # ping: E1, S, U1; web: S, U1
    assert checks.results == 0
    for target in (E1, S, U1):
        checks.checks["ping"].on_result(target, OK)
    assert checks.results == 0  # web has not finished a round
    for target in (S, U1):
        checks.checks["web"].on_result(target, OK)
    assert checks.results == 3  # a full round of every check: grown by the 3 targets


async def test_a_reload_that_changes_a_pools_checks(tmp_path: Path) -> None:
    seen: Verdicts = []
    checks = checkset(tmp_path, 'checks = ["ping"]', 'checks = ["web"]', seen)
    for check_id, target in (("ping", E1), ("ping", S), ("web", S), ("web", U1)):
        feed(checks, check_id, target, OK, 2)
    feed(checks, "web", S, FAIL, 2)
    assert checks.verdicts == {E1: U, S: D, U1: U}
    ping, web = checks.checks["ping"], checks.checks["web"]
    seen.clear()

    # eu now judged by web too, us by ping alone: the same engines, new pairs
    config, options = load(tmp_path, 'checks = ["ping", "web"]', 'checks = ["ping"]')
    prepared = await checks.prepare(config.checks, assignment=assignment_of(config, options))
    assert prepared.fresh == {}  # no engine changed
    retired = checks.commit(prepared, list(publication_of(config, options).targets))
    assert retired == []
    assert checks.checks["ping"] is ping and checks.checks["web"] is web
    assert ping.scheduler.targets == [E1, S, U1] and web.scheduler.targets == [E1, S]
    assert ping.state(U1) is K  # a new pair starts unknown
    assert web.state(E1) is K
    assert web.state(S) is D  # a kept pair keeps its health
    assert U1 not in web.health and U1 not in web.last  # a dropped pair is forgotten
    assert checks.verdicts == {E1: K, S: D, U1: K}
    assert sorted((t, o, n, why) for t, o, n, why in seen) == [
        (E1, U, K, "checks changed (ping=up web=unknown)"),
        (U1, U, K, "checks changed (ping=unknown)"),
    ]
    feed(checks, "ping", U1, OK, 2)
    assert checks.verdicts[U1] is U  # judged by ping alone now


async def test_the_agents_reload_applies_a_pools_new_checks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real composition root and transactional reload (nothing started)."""
    from goavail.compose import compose, load_checked

    _, options = load(tmp_path, 'checks = ["ping"]', 'checks = ["web"]')
    agent = compose(load_checked(options), options)
    ping = agent.checks.checks["ping"]
    feed(agent.checks, "ping", S, OK, 2)
    assert agent.checks.judges(U1) == ("web",)

    (tmp_path / "goavail.toml").write_text(text('checks = ["ping"]', 'checks = ["ping"]'))
    assert not await agent.reload()  # web would judge no target: refused, nothing changed
    assert agent.last_reload is not None and agent.last_reload.result == "rejected"
    assert agent.last_reload.problems[-1].endswith(
        "checks[1].id: 'web' judges no target (every pool lists its checks and none lists it)"
    )
    assert agent.checks.judges(U1) == ("web",)

    (tmp_path / "goavail.toml").write_text(text('checks = ["ping", "web"]', 'checks = ["ping"]'))
    with caplog.at_level(logging.INFO, logger="goavail.agent"):
        assert await agent.reload()
    assert any(
        "configuration reloaded" in r.message
        and "the pools' checks or thresholds changed" in r.message
        for r in caplog.records
    )
    assert agent.checks.checks["ping"] is ping  # the same engine, its health kept
    assert ping.state(S) is U and ping.state(U1) is K
    assert agent.checks.judges(E1) == ("ping", "web")
    assert agent.checks.judges(U1) == ("ping",)
    assert U1 not in agent.checks.checks["web"].health
