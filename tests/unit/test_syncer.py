"""VerdictSync (sync v2 at the I/O edge): agents on loopback with their real sync endpoints,
notices carried by an in-memory stand-in for Serf's user events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from goavail.cluster.sync import Notice, PullRequest, Sealer, StateReply, sync_event_name
from goavail.cluster.syncer import VOTE_LIFETIME, VerdictSync
from goavail.cluster.syncnet import SyncClient, SyncError, SyncRefused, SyncServer
from goavail.decision import DecisionStage, Override
from goavail.firstlines import LineBudget
from goavail.health import State
from tests.e2e.harness import free_port

KEY = b"k" * 16
TARGETS = [f"127.30.0.{i}" for i in range(1, 201)]
TARGET_SET = frozenset(TARGETS)


@dataclass
class Bus:
    """Serf's user events, in memory: every notice reaches every agent (or is dropped)."""

    agents: dict[str, VerdictSync] = field(default_factory=dict)
    drop: Callable[[str, str], bool] = lambda sender, receiver: False
    sent: int = 0

    def sender(self, node: str) -> Callable[[bytes], asyncio.Future[None]]:
        async def send(payload: bytes) -> None:
            self.sent += 1
            for name, agent in self.agents.items():
                if name != node and not self.drop(node, name):
                    agent.on_notice(payload)

        return send  # type: ignore[return-value]


@dataclass
class Agent:
    sync: VerdictSync
    stage: DecisionStage
    server: SyncServer
    decisions: list[tuple[str, State]]


@pytest.fixture
async def cluster() -> AsyncIterator[Callable[..., Agent]]:
    bus = Bus()
    made: list[Agent] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(node: str, *, interval: float = 0.5, min_peers: int = 1) -> Agent:
        stage = DecisionStage(min_peers)
        decisions: list[tuple[str, State]] = []
        port = free_port()
        sync = VerdictSync(
            node=node,
            sealer=Sealer(KEY, sync_event_name(None)),
            stage=stage,
            targets=lambda: TARGET_SET,
            port=port,
            announce_interval=interval,
            max_clock_skew=30.0,
            address_of=lambda n: "127.0.0.1" if n in bus.agents else None,
            is_live=lambda n: n in bus.agents,
            send=bus.sender(node),
            on_decision=lambda t, s: decisions.append((t, s)),
        )
        server = SyncServer("127.0.0.1", port, sync.answer, notice=sync.on_notice)
        await server.start()
        for other in bus.agents:
            stage.peer_alive(other)
            bus.agents[other].stage.peer_alive(node)
        bus.agents[node] = sync
        agent = Agent(sync, stage, server, decisions)
        made.append(agent)
        tasks.append(asyncio.create_task(sync.run()))
        return agent

    make.bus = bus  # type: ignore[attr-defined]
    yield make  # type: ignore[misc]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for agent in made:
        await agent.server.stop()


async def until(check: Callable[[], bool], limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while not check():
            await asyncio.sleep(0.01)


def silence(agent: Agent) -> Callable[[str, int, bytes], Awaitable[None]]:
    """Make ``agent``'s direct notice pushes fail (as a cut network would); returns the
    real push, to restore it."""
    real = agent.sync.client.push

    async def refused(host: str, port: int, body: bytes) -> None:
        raise SyncError(f"{host}:{port}: connection refused")

    agent.sync.client.push = refused  # type: ignore[method-assign]
    return real


def set_local(agent: Agent, target: str, state: State) -> None:
    agent.stage.update(target, state)
    agent.sync.local_changed(target)


async def test_a_burst_of_changes_is_one_version_and_reaches_every_peer(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a, b, c = [await cluster(n) for n in ("a", "b", "c")]
    bus: Bus = cluster.bus  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)
    sent = bus.sent
    for target in TARGETS:
        set_local(a, target, State.DOWN)
    await until(lambda: all(b.stage.votes_for(t).get("a") is State.DOWN for t in TARGETS))
    await until(lambda: all(c.stage.votes_for(t).get("a") is State.DOWN for t in TARGETS))
    assert a.sync.vector.version == 1  # 200 transitions, one version
    assert bus.sent - sent <= 3  # one notice (periodic ones may fall in between)
    assert a.sync.counters["pulls_served"] >= 2


async def test_notices_pushed_to_known_peers_need_no_serf(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    """Once a peer's sync port is known (from one notice), notices also go straight to it:
    a change reaches it even when Serf's gossip delivers nothing (a partition's minority,
    a slow gossip round)."""
    a, b = [await cluster(n, interval=60.0) for n in ("a", "b")]
    bus: Bus = cluster.bus  # type: ignore[attr-defined]
    a.sync.notify()  # as on a member-join: each learns the other's sync port
    b.sync.notify()
    await until(lambda: "a" in b.sync.peers and b.sync.peers["a"].port is not None)
    await until(lambda: "b" in a.sync.peers and a.sync.peers["b"].port is not None)
    bus.drop = lambda sender, receiver: True  # Serf delivers nothing from now on
    set_local(a, TARGETS[0], State.DOWN)
    await until(lambda: b.stage.votes_for(TARGETS[0]).get("a") is State.DOWN, limit=2.0)
    assert a.sync.counters["pushed"] >= 1
    assert b.sync.counters["accepted"] >= 2


async def test_a_lost_notice_is_repaired_by_the_next_periodic_one(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a, b = [await cluster(n, interval=0.3) for n in ("a", "b")]
    bus: Bus = cluster.bus  # type: ignore[attr-defined]
    bus.drop = lambda sender, receiver: True
    silence(a)
    set_local(a, TARGETS[0], State.UP)
    await asyncio.sleep(0.2)
    assert b.stage.votes_for(TARGETS[0]) == {}
    bus.drop = lambda sender, receiver: False
    await until(lambda: b.stage.votes_for(TARGETS[0]).get("a") is State.UP, limit=2.0)


async def test_quorum_decisions_and_overrides_travel(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a, b = [await cluster(n) for n in ("a", "b")]
    target = TARGETS[5]
    set_local(a, target, State.DOWN)
    set_local(b, target, State.DOWN)
    await until(lambda: (target, State.DOWN) in a.decisions and (target, State.DOWN) in b.decisions)
    a.stage.set_override(target, Override.UP)
    a.sync.local_changed(target)
    await until(lambda: b.stage.override_of(target) is Override.UP)
    assert b.stage.effective[target] is State.UP


async def test_a_peer_not_heard_from_loses_its_votes(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a, b = [await cluster(n, interval=0.2) for n in ("a", "b")]
    bus: Bus = cluster.bus  # type: ignore[attr-defined]
    set_local(a, TARGETS[0], State.UP)
    await until(lambda: b.stage.votes_for(TARGETS[0]).get("a") is State.UP)
    bus.drop = lambda sender, receiver: sender == "a"
    push = silence(a)
    await asyncio.sleep(0.2 * (VOTE_LIFETIME + 2))
    assert b.stage.votes_for(TARGETS[0]) == {}
    bus.drop = lambda sender, receiver: False
    a.sync.client.push = push  # type: ignore[method-assign,assignment]
    await until(lambda: b.stage.votes_for(TARGETS[0]).get("a") is State.UP, limit=2.0)


async def test_votes_come_only_from_the_members_own_address(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    """A key holder (here: agent "m") seals a notice naming "a" with its own port: the
    pull goes to "a"'s address at that port, is answered by "m" as "m", and no vote counts."""
    a, b, m = [await cluster(n) for n in ("a", "b", "m")]
    await asyncio.sleep(0.2)
    set_local(m, TARGETS[0], State.DOWN)
    await until(lambda: b.stage.votes_for(TARGETS[0]).get("m") is State.DOWN)
    forged = Notice("a", 2**62, 99, b"\0" * 8, m.sync.port, m.sync._clock())
    b.sync.on_notice(forged.seal(m.sync.sealer))
    await until(lambda: b.sync.counters["rejected_identity"] >= 1)
    assert "a" not in {n for n, s in b.stage.votes_for(TARGETS[0]).items() if s is State.DOWN}
    # the real "a" is not locked out: its next notice resets the port and its votes count
    set_local(a, TARGETS[1], State.UP)
    await until(lambda: b.stage.votes_for(TARGETS[1]).get("a") is State.UP)


async def test_the_endpoint_refuses_strangers_and_bad_messages(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a = await cluster("a")
    sealer = Sealer(KEY, sync_event_name(None))
    stranger = PullRequest("zz", b"n" * 16, 0, 0, a.sync._clock()).seal(sealer)
    with pytest.raises(SyncRefused) as info:
        a.sync.answer(stranger, "127.0.0.1")
    assert info.value.status == 403
    for body in (b"", b"\x02" + b"x" * 40, Sealer(b"x" * 16, "goavail-sync").seal("pull", [])):
        with pytest.raises(SyncRefused) as info:
            a.sync.answer(body, "127.0.0.1")
        assert info.value.status == 400
    stale = PullRequest("a", b"n" * 16, 0, 0, a.sync._clock() - 3600).seal(sealer)
    with pytest.raises(SyncRefused):
        a.sync.answer(stale, "127.0.0.1")
    # through HTTP: the refusal is an HTTP status
    client = SyncClient(timeout=2)
    try:
        with pytest.raises(Exception, match="403"):
            await client.pull("127.0.0.1", a.sync.port, stranger)
        with pytest.raises(Exception, match="413"):
            await client.pull("127.0.0.1", a.sync.port, b"x" * 10_000)
    finally:
        await client.close()
    assert a.sync.counters["rejected_not_member"] >= 2


async def test_state_from_non_members_and_for_other_targets_is_not_kept(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    a = await cluster("a")
    sealer = Sealer(KEY, sync_event_name(None))
    for i in range(2000):
        a.sync.on_notice(Notice(f"x{i}", 1, 1, b"\0" * 8, 1, a.sync._clock()).seal(sealer))
    assert a.sync.peers == {}
    assert a.sync.counters["rejected_not_member"] == 2000
    b = await cluster("b")
    b.sync.vector.set("203.0.113.1", 1)  # not a target of a
    set_local(b, TARGETS[0], State.UP)
    await until(lambda: a.stage.votes_for(TARGETS[0]).get("b") is State.UP)
    assert a.sync.peers["b"].vector.codes == {TARGETS[0]: 1}
    assert "203.0.113.1" not in a.stage.peers.get("b", {})


async def test_reply_roundtrip_sizes_for_10000_targets() -> None:
    from goavail.cluster.sync import LocalVector, entry_code

    vector = LocalVector(1)
    for i in range(10_000):
        vector.set(f"10.0.{i // 256}.{i % 256}", entry_code("up"))
    vector.commit()
    sealer = Sealer(KEY, sync_event_name(None))
    reply = vector.reply("a", PullRequest("b", b"n" * 16, 0, 0, 0)).seal(sealer)
    assert len(reply) < 30_000
    assert len(StateReply.open(sealer, reply).entries) == 10_000


async def test_a_view_behind_a_peer_whose_pulls_fail_is_released_by_expiry(
    cluster: Callable[..., asyncio.Future[Agent]],
) -> None:
    """A peer that announces votes nobody can pull keeps the view stale (deletes wait)
    only until its votes expire: then it no longer counts and the view is current."""
    a, b = [await cluster(n, interval=0.2) for n in ("a", "b")]
    caught_up: list[bool] = []
    a.sync.on_caught_up = lambda: caught_up.append(True)
    await b.server.stop()  # b's sync port is gone: a's pulls fail from now on
    set_local(b, TARGETS[0], State.DOWN)
    await until(lambda: a.sync.behind() == ["b"])
    assert caught_up == []
    await until(lambda: a.sync.behind() == [], limit=0.2 * (VOTE_LIFETIME + 3))
    assert a.sync.peers["b"].expired
    assert caught_up == [True]


async def test_a_pull_of_many_first_votes_is_summarised_but_changes_are_not(
    cluster: Callable[..., asyncio.Future[Agent]], caplog: pytest.LogCaptureFixture
) -> None:
    """200 first votes in one pull: ten lines at INFO, the rest at DEBUG and one INFO
    summary; a vote that later changes is an INFO line of its own."""
    a, b = [await cluster(n) for n in ("a", "b")]
    # one window of the line budget, however long a loaded machine takes over the pulls
    b.sync._first_votes = LineBudget(window=3600.0)
    with caplog.at_level(logging.DEBUG, logger="goavail.cluster"):
        for target in TARGETS:
            set_local(a, target, State.DOWN if target == TARGETS[-1] else State.UP)
        await until(lambda: all(t in b.stage.peers.get("a", {}) for t in TARGETS))
        votes = [r for r in caplog.records if "peer a votes" in r.getMessage()]
        assert len(votes) == len(TARGETS)
        info = [r.getMessage() for r in votes if r.levelno == logging.INFO]
        assert len(info) == 10
        summaries = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("peer a: first")
        ]
        counted = sum(int(s.split()[5]) for s in summaries)
        assert counted + len(info) == len(TARGETS)
        assert any(f"1 down ({TARGETS[-1]})" in s for s in summaries) or (
            f"peer a votes {TARGETS[-1]} down" in info
        )
        caplog.clear()
        set_local(a, TARGETS[0], State.DOWN)
        await until(lambda: b.stage.peers["a"][TARGETS[0]] is State.DOWN)
    changed = [r for r in caplog.records if f"peer a votes {TARGETS[0]} down" in r.getMessage()]
    assert [r.levelno for r in changed] == [logging.INFO]
