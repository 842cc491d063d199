"""The freshness rule of cluster writes: a delete waits while a live peer has announced
votes this agent has not pulled yet (the agent's real ``_hold``, no network: peers answer
through :class:`tests.syncfake.Peers`, held back by a gate)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.cluster.serf_rpc import Member, MemberEvent
from goavail.compose import compose, load_checked
from goavail.dns.model import Change, Record
from goavail.health import State
from goavail.options import Options
from tests.syncfake import Peers, address, deliver, notice_event

A, B = "192.0.2.1", "192.0.2.2"
KEY = "0123456789abcdef"


class GatedPeers(Peers):
    """Peers whose pull answers wait until ``gate`` is set."""

    def __init__(self, key: bytes, event: str) -> None:
        super().__init__(key, event)
        self.gate = asyncio.Event()
        self.gate.set()

    async def pull(self, host: str, port: int, body: bytes) -> bytes:
        await self.gate.wait()
        return await super().pull(host, port, body)


def make_agent(tmp_path: Path) -> Agent:
    config = tmp_path / "goavail.toml"
    config.write_text(
        f"""\
failure_threshold = 1
rise_threshold = 1
port = 9
node_name = "a"
[Members]
peers = ["198.51.100.2:7946"]
min_peers_agree = 1
crypto_key = "{KEY}"
[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}", "{B}"]
"""
    )
    options = Options(config, False, "tcp", "zonefile")
    return compose(load_checked(options), options)


def feed(agent: Agent, target: str, result: ProbeResult) -> None:
    """One result of the --type probe (the check it stands for)."""
    check = agent.checks.single_check
    assert check is not None
    check.on_result(target, result)


def delete_of(target: str) -> Change:
    return Change("delete", Record("www.example.test", "A", target, 60), f"target {target} down")


async def test_a_delete_waits_for_the_pull_of_a_newer_announcement(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    cluster = agent.cluster
    assert cluster is not None
    peers = GatedPeers(KEY.encode(), cluster.event)
    cluster.sync.client = peers
    members = [Member(n, address(n), 7946, {}, "alive") for n in ("b", "c")]
    for member in members:
        cluster.member_addr[member.name] = member.addr
    cluster._on_member_event(MemberEvent("member-join", members))
    # joined, never pulled: the view of both is behind, so no delete yet
    assert cluster.behind() == ["b", "c"]
    for node in ("b", "c"):
        await deliver(
            cluster,
            notice_event(peers.vote(node, A, "down", at=time.time()), KEY.encode(), cluster.event),
        )
    assert cluster.behind() == []
    feed(agent, A, ProbeResult(ok=False, error="timeout"))
    assert agent.decision.effective[A] is State.DOWN
    assert agent.hold(delete_of(A)) == 0.0  # "a" is the first writer, the view is current

    # b announces a new vector (A is up again there); its pull is slow
    peers.gate.clear()
    cluster._on_user_event(
        notice_event(peers.vote("b", A, "up", at=time.time()), KEY.encode(), cluster.event)
    )
    assert cluster.behind() == ["b"]
    agent.reconciler._wake.clear()
    assert agent.hold(delete_of(A)) == cluster.members.announce_interval
    assert agent.hold(delete_of(A)) > 0  # asked again (the send-time check): still held
    assert cluster.counters["stale_holds"] == 1  # one hold episode, counted once
    assert not agent.reconciler._wake.is_set()

    peers.gate.set()  # the pull lands: the agent is current and looks again at once
    task = cluster.sync.peers["b"].task
    assert task is not None
    await task
    assert cluster.behind() == []
    assert agent.reconciler._wake.is_set()
    assert cluster.stage.votes_for(A) == {"b": State.UP, "c": State.DOWN}
    # two agents (this one and c) still see A down against one: the delete is backed
    assert agent.hold(delete_of(A)) == 0.0


async def test_creates_never_wait_for_a_pull(tmp_path: Path) -> None:
    """Restoring a record is the safe direction: a pending pull never delays it."""
    agent = make_agent(tmp_path)
    cluster = agent.cluster
    assert cluster is not None
    peers = GatedPeers(KEY.encode(), cluster.event)
    cluster.sync.client = peers
    member = Member("b", address("b"), 7946, {}, "alive")
    cluster.member_addr["b"] = member.addr
    cluster._on_member_event(MemberEvent("member-join", [member]))
    await deliver(
        cluster, notice_event(peers.vote("b", A, "up", at=time.time()), KEY.encode(), cluster.event)
    )
    feed(agent, A, ProbeResult(ok=True, rtt=0.001))
    assert agent.decision.effective[A] is State.UP
    peers.gate.clear()
    cluster._on_user_event(
        notice_event(peers.vote("b", B, "down", at=time.time()), KEY.encode(), cluster.event)
    )
    assert cluster.behind() == ["b"]
    create = Change("create", Record("www.example.test", "A", A, 60), "target up")
    assert agent.hold(create) == 0.0
    peers.gate.set()
    task = cluster.sync.peers["b"].task
    assert task is not None
    await task
