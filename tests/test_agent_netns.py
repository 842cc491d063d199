"""The agent in-process: reload swaps the probe engine, the interval and the targets.

Runs in the private network namespace of the test session with real TCP
listeners on loopback addresses and the zone file provider.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.checks.icmp import IcmpProbe
from goavail.checks.multi import Check
from goavail.checks.tcp import TcpProbe
from goavail.compose import compose, load_checked
from goavail.dns.providers.zonefile import ZonefileProvider
from goavail.health import State
from goavail.options import Options

pytestmark = pytest.mark.netns

A, B, C = "127.30.0.1", "127.30.0.2", "127.30.0.3"
PORT, PORT2 = 18081, 18082


def config_text(zone: Path, addresses: list[str], *, port: int, timeout: str, interval: str) -> str:
    quoted = ", ".join(f'"{a}"' for a in addresses)
    return f"""\
failure_threshold = 2
rise_threshold = 2
interval = "{interval}"
timeout = "{timeout}"
port = {port}
resync_interval = "1s"

[Zonefile]
path = "{zone}"
origin = "example.test"
hostnames = ["www"]
ip_addresses = [{quoted}]

[Server]
enabled = false
"""


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    socks = []
    for addr in (A, B, C):
        for port in (PORT, PORT2):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(64)
            socks.append(s)
    yield socks
    for s in socks:
        s.close()


@pytest.fixture
async def agent(tmp_path: Path, listeners: list[socket.socket]) -> AsyncIterator[Agent]:
    config = tmp_path / "goavail.toml"
    zone = tmp_path / "example.test.zone"
    config.write_text(config_text(zone, [A, B], port=PORT, timeout="150ms", interval="200ms"))
    options = Options(config, dry_run=False, probe_type="tcp", provider="zonefile")
    agent = compose(load_checked(options), options)
    task = asyncio.create_task(agent.run())
    yield agent
    agent.request_stop()
    async with asyncio.timeout(5):
        await task


async def until(predicate: object, within: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, at most ``within`` seconds."""
    assert callable(predicate)
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.05)


def single(agent: Agent) -> Check:
    """The check ``--type`` stands for."""
    check = agent.checks.single_check
    assert check is not None
    return check


async def zone_addresses(agent: Agent) -> set[str]:
    return {r.content for r in await agent.provider.records("www.example.test")}


async def test_reload_swaps_probe_engine_interval_and_targets(agent: Agent, tmp_path: Path) -> None:
    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    first_probe = single(agent).probe
    assert isinstance(first_probe, TcpProbe)
    assert first_probe.port == PORT

    # new port and timeout -> a new engine; new interval; B dropped, C added
    zone = tmp_path / "example.test.zone"
    config = tmp_path / "goavail.toml"
    config.write_text(config_text(zone, [A, C], port=PORT2, timeout="300ms", interval="400ms"))
    assert await agent.reload()

    probe = single(agent).probe
    assert probe is not first_probe
    assert isinstance(probe, TcpProbe)
    assert probe.port == PORT2
    assert probe.timeout == 0.3
    assert single(agent).scheduler.interval == 0.4
    assert single(agent).health[A].state is State.UP  # a new engine is no new opinion
    assert set(agent.targets) == {A, C}
    assert B not in agent.decision.decisions  # forgotten
    await until(lambda: agent.decision.decisions.get(C) is State.UP)
    await until(lambda: agent.reconciler.converged and not agent.reconciler.pending)
    # C was added to DNS; B's record is left alone (no longer managed)
    assert await zone_addresses(agent) == {A, B, C}


async def test_results_of_a_closed_engine_do_not_count(agent: Agent) -> None:
    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    check = single(agent)
    check.scheduler.stop()  # no more real results
    before = check.health[A]
    for _ in range(5):
        check.on_result(A, ProbeResult(ok=False, error="closed"))
    assert check.health[A] == before
    check.on_result(A, ProbeResult(ok=False, error="timeout"))
    assert check.health[A].failures == 1
    check.on_result("192.0.2.99", ProbeResult(ok=False, error="timeout"))  # dropped target
    assert "192.0.2.99" not in agent.targets


async def test_invalid_reload_keeps_everything(agent: Agent, tmp_path: Path) -> None:
    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    probe, provider, config = single(agent).probe, agent.provider, agent.config
    (tmp_path / "goavail.toml").write_text("failure_threshold = 0\n[Zonefile]\n")
    assert not await agent.reload()
    assert single(agent).probe is probe
    assert agent.provider is provider
    assert agent.config is config
    assert set(agent.targets) == {A, B}


async def test_reload_with_new_zone_rebuilds_provider(agent: Agent, tmp_path: Path) -> None:
    await until(lambda: agent.reconciler.converged and len(agent.decision.decisions) == 2)
    await until(lambda: agent.reconciler.passes >= 1)
    old_provider = agent.provider
    zone2 = tmp_path / "other.zone"
    (tmp_path / "goavail.toml").write_text(
        config_text(zone2, [A, B], port=PORT, timeout="150ms", interval="200ms")
    )
    assert await agent.reload()
    assert agent.provider is not old_provider
    assert isinstance(agent.provider, ZonefileProvider)
    assert agent.reconciler.provider is agent.provider
    # the new zone file gets the up targets at the next pass
    await until(lambda: zone2.exists() and "127.30.0.2" in zone2.read_text())
    assert isinstance(single(agent).probe, TcpProbe)


def test_icmp_is_the_default_engine(tmp_path: Path) -> None:
    config = tmp_path / "goavail.toml"
    config.write_text(
        config_text(tmp_path / "z.zone", [A], port=PORT, timeout="150ms", interval="200ms")
    )
    options = Options(config, dry_run=True, probe_type="ip", provider="zonefile")
    agent = compose(load_checked(options), options)
    assert isinstance(single(agent).probe, IcmpProbe)
    assert agent.provider.dry_run


async def test_reload_that_cannot_be_built_keeps_everything(
    agent: Agent, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    probe, provider, audit = single(agent).probe, agent.provider, agent.audit
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    text = config_text(
        tmp_path / "example.test.zone", [A, B, C], port=PORT2, timeout="150ms", interval="200ms"
    )
    # valid config, but the audit file cannot be opened (its parent is a regular file)
    (tmp_path / "goavail.toml").write_text(f'audit_file = "{blocker}/audit.jsonl"\n' + text)
    assert not await agent.reload()
    assert "reload failed, still running the previous configuration" in caplog.text
    assert (single(agent).probe, agent.provider, agent.audit) == (probe, provider, audit)
    assert set(agent.targets) == {A, B}


async def test_members_added_by_reload_need_a_restart(
    agent: Agent, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await until(lambda: agent.decision.decisions == {A: State.UP, B: State.UP})
    text = config_text(
        tmp_path / "example.test.zone", [A, B], port=PORT, timeout="150ms", interval="200ms"
    )
    (tmp_path / "goavail.toml").write_text(
        text + '[Members]\npeers = ["192.0.2.2:7946"]\nmin_peers_agree = 1\n'
    )
    assert await agent.reload()
    assert "restart goavail for the other cluster settings" in caplog.text
    # no cluster is running: requiring a peer now would freeze every decision
    assert agent.cluster is None
    assert agent.decision.min_peers_agree == 0
