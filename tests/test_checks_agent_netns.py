"""Several checks per target, in-process: the CheckSet's worst-of verdicts, reloads that
keep, rebuild, add and remove checks, and the agent switching between ``[[checks]]`` and
the single ``--type`` probe — with real HTTP servers, real scripts and real ICMP on
loopback addresses in the private network namespace, and the zone file provider."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from goavail.agent import Agent
from goavail.checks.http import HttpProbe
from goavail.checks.icmp import IcmpProbe
from goavail.checks.multi import CheckSet
from goavail.checks.script import ScriptProbe
from goavail.compose import compose, load_checked
from goavail.config import CheckSection, load_config
from goavail.health import State
from goavail.options import Options
from tests.appserver import AppServer, Behaviour

pytestmark = pytest.mark.netns

A, B = "127.41.0.1", "127.41.0.2"
PORT = 18090
U, D, K = State.UP, State.DOWN, State.UNKNOWN


async def until(predicate: object, within: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, at most ``within`` seconds."""
    assert callable(predicate)
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def app() -> AsyncIterator[AppServer]:
    async with AppServer([A, B], PORT) as server:
        yield server


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    """A directory; the script check fails for a target while ``flags/<target>`` exists."""
    directory = tmp_path / "down"
    directory.mkdir()
    return directory


def check_script(tmp_path: Path, flags: Path) -> Path:
    path = tmp_path / "check.sh"
    path.write_text(f'#!/bin/sh\nif [ -e "{flags}/$1" ]; then echo "flagged"; exit 1; fi\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def checks_toml(script: Path, *, path: str = "/health", interval: str = "100ms") -> str:
    return f"""
failure_threshold = 2
rise_threshold = 2
interval = "{interval}"
timeout = "100ms"

[[checks]]
id = "web"
type = "http"
port = {PORT}
path = "{path}"
body_contains = "ok"

[[checks]]
id = "db"
type = "script"
command = ["{script}"]
timeout = "500ms"
interval = "500ms"
"""


def sections(tmp_path: Path, text: str) -> list[CheckSection]:
    config_path = tmp_path / "checks.toml"
    config_path.write_text(text)
    return load_config(config_path).checks


Verdicts = list[tuple[str, State, State, str]]


async def test_worst_of_checks_and_reloads(tmp_path: Path, app: AppServer, flags: Path) -> None:
    script = check_script(tmp_path, flags)
    seen: Verdicts = []
    checks = CheckSet(
        sections(tmp_path, checks_toml(script)),
        [A, B],
        lambda target, old, new, why: seen.append((target, old, new, why)),
    )
    await checks.start()
    runner = asyncio.create_task(checks.run())
    try:
        await until(lambda: checks.verdicts == {A: U, B: U})
        assert sorted((t, o, n) for t, o, n, _ in seen) == [(A, K, U), (B, K, U)]

        # A's application breaks while its script check stays happy: A is down
        seen.clear()
        app.set(A, Behaviour(status=503))
        await until(lambda: checks.verdicts[A] is D)
        assert [(t, o, n) for t, o, n, _ in seen] == [(A, U, D)]
        assert seen[0][3] == "check web down: status 503 (expected 2xx) (web=down db=up)"
        assert checks.checks["db"].state(A) is U

        # B's script fails: B is down too; then A's application recovers: A is up
        (flags / B).touch()
        app.set(A, Behaviour())
        await until(lambda: checks.verdicts == {A: U, B: D})
        assert checks.describe(B) == "web=up db=down"
        ((check, health, last),) = [s for s in checks.status(B) if s[0] == "db"]
        assert (check, health.state, last is not None and last.error) == (
            "db",
            D,
            "exit status 1: flagged",
        )

        # reload: db's interval changes (same engine, same health), web's path changes
        # (a new engine: web starts unknown again, so both targets are unknown for a moment)
        db_before, web_before = checks.checks["db"], checks.checks["web"]
        seen.clear()
        prepared = await checks.prepare(
            sections(
                tmp_path,
                checks_toml(script, path="/ready", interval="150ms").replace(
                    'interval = "500ms"', 'interval = "600ms"'
                ),
            )
        )
        assert set(prepared.fresh) == {"web"}
        retired = checks.commit(prepared, [A, B])
        await checks.close_checks(retired)
        assert retired == [web_before]
        assert checks.checks["db"] is db_before and db_before.state(B) is D
        assert checks.checks["web"] is not web_before
        assert checks.checks["web"].scheduler.interval == 0.15
        assert db_before.scheduler.interval == 0.6
        assert sorted((t, o, n) for t, o, n, _ in seen) == [(A, U, K)]  # B stays down (db)
        await until(lambda: checks.verdicts == {A: U, B: D})
        assert any(s.path == "/ready" for s in app.seen)

        # reload: the db check is removed, B is left to web alone and comes back up
        await until(lambda: checks.checks["web"].state(B) is U)
        seen.clear()
        only_web = sections(tmp_path, checks_toml(script, path="/ready"))[:1]
        prepared = await checks.prepare(only_web)
        retired = checks.commit(prepared, [A, B])
        await checks.close_checks(retired)
        assert retired == [db_before]
        assert [(t, o, n) for t, o, n, _ in seen] == [(B, D, U)]
        assert seen[0][3] == "checks changed (web=up)"
        assert list(checks.checks) == ["web"]
    finally:
        runner.cancel()
        await checks.close()


async def test_failed_prepare_changes_nothing(tmp_path: Path, app: AppServer, flags: Path) -> None:
    script = check_script(tmp_path, flags)
    checks = CheckSet(sections(tmp_path, checks_toml(script)), [A], lambda *_: None)
    await checks.start()
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    text = checks_toml(script) + f'[[checks]]\nid = "tls"\ntype = "https"\nca_file = "{bad}"\n'
    before = dict(checks.checks)
    with pytest.raises(Exception, match="cannot load ca_file"):
        await checks.prepare(sections(tmp_path, text))
    assert checks.checks == before
    await checks.close()


# -------------------------------------------------------------------------- the agent


def agent_toml(zone: Path, hooks: Path, *, with_checks: bool, body: str = "ok") -> str:
    checks = f"""
[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "web"
type = "http"
port = {PORT}
path = "/health"
body_contains = "{body}"
"""
    return f"""
failure_threshold = 2
rise_threshold = 2
interval = "100ms"
timeout = "100ms"
resync_interval = "1s"
hooks_dir = "{hooks}"
{checks if with_checks else ""}
[Zonefile]
path = "{zone}"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}", "{B}"]
"""


async def test_agent_with_checks_reloads_between_modes(tmp_path: Path, app: AppServer) -> None:
    zone, hooks, log = tmp_path / "z.zone", tmp_path / "hooks.d", tmp_path / "hooks.log"
    hooks.mkdir()
    hook = hooks / "10-log"
    hook.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    hook.chmod(0o755)
    config = tmp_path / "goavail.toml"
    config.write_text(agent_toml(zone, hooks, with_checks=True))
    options = Options(config, dry_run=False, probe_type="ip", provider="zonefile")
    agent = compose(load_checked(options), options)
    assert not agent.checks.single  # the --type probe is not used with [[checks]]
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.decision.decisions == {A: U, B: U})
        await until(lambda: agent_zone_is(agent, {A, B}))

        # B's application fails while B still answers ping: B leaves DNS, the hook runs
        app.set(B, Behaviour(body="maintenance"))
        await until(lambda: agent.decision.decisions[B] is D)
        assert agent.checks.describe(B) == "ping=up web=down"
        assert agent.targets[B].health.state is D
        await until(lambda: agent_zone_is(agent, {A}))
        await until(
            lambda: log.exists() and f"delete {B} www.example.test false" in log.read_text()
        )
        assert agent.hooks.stats.ok >= 1

        # reload without [[checks]]: the ICMP --type probe takes over, B is up again
        config.write_text(agent_toml(zone, hooks, with_checks=False))
        assert await agent.reload()
        single = agent.checks.single_check
        assert single is not None and list(agent.checks.checks) == ["icmp"]
        assert isinstance(single.probe, IcmpProbe) and not isinstance(single.probe, HttpProbe)
        assert set(single.scheduler.targets) == {A, B}
        await until(lambda: agent.decision.decisions[B] is U)
        await until(lambda: agent_zone_is(agent, {A, B}))

        # and back to [[checks]] whose web check wants a body B does not send
        config.write_text(agent_toml(zone, hooks, with_checks=True))
        assert await agent.reload()
        assert agent.checks.single_check is None
        assert list(agent.checks.checks) == ["ping", "web"]
        await until(lambda: agent.decision.decisions[B] is D)
        await until(lambda: agent_zone_is(agent, {A}))
        assert agent.decision.decisions[A] is U
    finally:
        agent.request_stop()
        async with asyncio.timeout(10):
            await task


def agent_zone_is(agent: Agent, want: set[str]) -> bool:
    """True when the zone file holds exactly ``want`` (read synchronously from the file)."""
    zone = agent.config.zonefile.path if agent.config.zonefile else None
    if zone is None or not zone.exists():
        return False
    found = {
        line.split()[-1]
        for line in zone.read_text().splitlines()
        if line.startswith("www") and " A " in f" {line} "
    }
    return found == want


def test_engines_of_each_type(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/bin/sh\n")
    text = f"""
port = 9
[[checks]]
id = "a"
type = "icmp"
[[checks]]
id = "b"
type = "https"
host = "x.example"
[[checks]]
id = "c"
type = "script"
command = ["{script}"]
"""
    checks = CheckSet(sections(tmp_path, text), [A], lambda *_: None)
    engines = {cid: c.probe for cid, c in checks.checks.items()}
    assert isinstance(engines["a"], IcmpProbe)
    assert isinstance(engines["b"], HttpProbe) and engines["b"].host == "x.example"
    assert isinstance(engines["c"], ScriptProbe) and engines["c"].command == [str(script)]
