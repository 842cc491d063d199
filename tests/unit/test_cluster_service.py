"""The cluster service's event handling, fed Serf events directly (no Serf); peers' votes
are pulled through a fake client that answers from the peers' own verdict vectors."""

from __future__ import annotations

import logging

import pytest

from goavail.cluster.serf_agent import NameConflict, SerfAgent
from goavail.cluster.serf_rpc import Member, MemberEvent, UserEvent
from goavail.cluster.service import Cluster, default_node_name, route_source, serf_settings
from goavail.cluster.sync import Notice, Sealer, entry_code, sync_event_name
from goavail.cluster.wire import event_name
from goavail.config import Members
from goavail.decision import DecisionStage, Override
from goavail.health import State
from tests import syncfake
from tests.syncfake import address

KEY = b"0123456789abcdef"
T1, T2 = "192.0.2.1", "192.0.2.2"
NOW = 1_800_000_000.0
EVENT = sync_event_name(None)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def members(**overrides: object) -> Members:
    values: dict[str, object] = {
        "peers": ["198.51.100.2:8082"],
        "local_addr": "198.51.100.1:8081",
        "min_peers_agree": 1,
        "crypto_key": KEY.decode(),
        "announce_interval": 1.0,
    }
    values.update(overrides)
    return Members.model_validate(values)


def make(
    min_peers_agree: int = 1, targets: set[str] | None = None, **overrides: object
) -> tuple[Cluster, list[tuple[str, State]], Clock, Peers]:
    """A cluster of node "a" monitoring ``targets`` (default T1 and T2; the set is read
    live, so a test can change it as a reload would)."""
    stage = DecisionStage(min_peers_agree)
    decided: list[tuple[str, State]] = []
    clock = Clock()
    configured = {T1, T2} if targets is None else targets
    cluster = Cluster(
        node="a",
        members=members(min_peers_agree=min_peers_agree, **overrides),
        stage=stage,
        targets=lambda: configured,
        on_decision=lambda target, state: decided.append((target, state)),
        clock=clock,
    )
    peers = Peers(KEY, cluster.event)
    cluster.sync.client = peers
    return cluster, decided, clock, peers


def member(name: str, status: str = "alive") -> Member:
    return Member(name=name, addr=address(name), port=7946, tags={}, status=status)


def join(cluster: Cluster, *names: str) -> None:
    cluster._on_member_event(MemberEvent("member-join", [member(n) for n in names]))


def event(notice: Notice, *, key: bytes | None = KEY, name: str = EVENT) -> UserEvent:
    return UserEvent(name=name, payload=notice.seal(Sealer(key, name)), ltime=1, coalesce=False)


async def deliver(cluster: Cluster, notice: Notice, name: str = EVENT) -> None:
    """The notice as a Serf user event, then let the pull it starts finish."""
    await syncfake.deliver(cluster, event(notice, name=name))


class Peers(syncfake.Peers):
    """The fake peers, with notices issued at the tests' fixed clock."""

    def vote(  # type: ignore[override]
        self, node: str, target: str, state: str, override: str = "auto"
    ) -> Notice:
        return super().vote(node, target, state, override, at=NOW)


async def test_agreeing_peer_vote_decides() -> None:
    cluster, decided, _, peers = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.DOWN)
    await deliver(cluster, peers.vote("b", T1, "down"))
    assert decided == [(T1, State.DOWN)]
    assert cluster.counters["accepted"] == 1
    assert cluster.describe_votes(T1) == "a(self)=down b=down"
    # the same notice again (periodic): nothing to pull
    await deliver(cluster, peers.vote("b", T1, "down"))
    assert peers.pulls == 1


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda p: event(p.vote("b", T1, "down"), key=b"fedcba9876543210"), "rejected_tag"),
        (lambda p: event(p.vote("b", T1, "down"), key=None), "rejected_plaintext"),
        (
            lambda p: event(Notice("b", 1, 1, b"\0" * 8, 7947, NOW - 31)),
            "rejected_skew",
        ),
        (
            lambda p: event(Notice("b", 1, 1, b"\0" * 8, 7947, NOW + 31)),
            "rejected_skew",
        ),
        (lambda p: event(p.vote("zed", T1, "down")), "rejected_not_member"),
        (lambda p: UserEvent(EVENT, b"\x02garbage", 1, False), "rejected_truncated"),
        (lambda p: UserEvent(event_name(None), b"\x01" + b"v1" * 40, 1, False), "rejected_legacy"),
    ],
)
async def test_rejections_are_counted_and_ignored(build: object, reason: str) -> None:
    cluster, decided, _, peers = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.DOWN)
    assert callable(build)
    cluster._on_user_event(build(peers))
    assert cluster.counters[reason] == 1
    assert cluster.counters["accepted"] == 0
    assert peers.pulls == 0
    assert decided == []
    assert cluster.stage.votes_for(T1) == {}


async def test_an_older_notice_is_a_replay_and_pulls_nothing() -> None:
    cluster, _, _, peers = make()
    join(cluster, "b")
    old = peers.vote("b", T1, "up")
    await deliver(cluster, old)
    await deliver(cluster, peers.vote("b", T1, "down"))
    await deliver(cluster, old)  # an attacker replays the old notice
    assert cluster.counters["rejected_replay"] == 1
    assert peers.pulls == 2
    assert cluster.stage.votes_for(T1) == {"b": State.DOWN}


async def test_own_echo_and_foreign_events_ignored() -> None:
    cluster, _, _, peers = make()
    join(cluster, "b")
    await deliver(cluster, peers.vote("a", T1, "down"))  # Serf delivers our own events too
    cluster._on_user_event(UserEvent("deploy", b"x", 1, False))
    cluster._on_user_event(event(peers.vote("b", T1, "down"), name="other-goavail-sync"))
    assert sum(cluster.counters.values()) == 0
    assert cluster.stage.votes_for(T1) == {}


async def test_cluster_name_prefixes_the_event() -> None:
    cluster, _, _, peers = make(cluster_name="edge")
    join(cluster, "b")
    assert cluster.event == "edge-goavail-sync"
    assert cluster.legacy_event == "edge-goavail-verdict"
    await deliver(cluster, peers.vote("b", T1, "up"), name="edge-goavail-sync")
    assert cluster.counters["accepted"] == 1
    assert cluster.stage.votes_for(T1) == {"b": State.UP}


async def test_failed_peer_loses_votes_and_quorum_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cluster, _, _, peers = make()
    join(cluster, "b")
    await deliver(cluster, peers.vote("b", T1, "down"))
    assert cluster.stage.quorum_unmet() is False
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert cluster.live == set()
    assert cluster.stage.votes_for(T1) == {}
    assert cluster.stage.quorum_unmet() is True
    assert "QUORUM UNMET" in caplog.text
    # notices from a peer that is not alive are not accepted
    cluster._on_user_event(event(peers.vote("b", T1, "down")))
    assert cluster.counters["rejected_not_member"] == 1
    join(cluster, "b")
    assert "quorum possible again" in caplog.text


async def test_left_peer_and_self_events() -> None:
    cluster, _, _, _ = make(min_peers_agree=0)
    join(cluster, "a", "b", "c")  # our own member entry is not a peer
    assert cluster.live == {"b", "c"}
    cluster._on_member_event(MemberEvent("member-leave", [member("c", "left")]))
    assert cluster.live == {"b"}


async def test_a_peer_not_heard_from_loses_its_votes() -> None:
    cluster, _, _, peers = make()
    now = [100.0]
    cluster.sync._monotonic = lambda: now[0]
    join(cluster, "b", "c")
    await deliver(cluster, peers.vote("b", T1, "down"))
    await deliver(cluster, peers.vote("c", T2, "up"))
    now[0] += 2.0
    await deliver(cluster, peers.vote("c", T2, "up"))  # c's periodic notice: heard
    now[0] += 1.5  # b not heard from for 3.5 s, more than 3 announce intervals
    cluster.sync.expire()
    assert cluster.stage.votes_for(T1) == {}
    assert cluster.stage.votes_for(T2) == {"c": State.UP}
    assert cluster.sync.silent() == [("b", 7947)]  # /_health names it
    await deliver(cluster, peers.vote("b", T1, "down"))  # heard again: everything pulled
    assert cluster.stage.votes_for(T1) == {"b": State.DOWN}
    assert cluster.sync.silent() == []


def test_serf_settings_from_the_original_keys() -> None:
    settings = serf_settings(
        Members.model_validate(
            {
                "peers": ["127.0.0.1:8082", "[2001:db8::2]:8082"],
                "local_addr": "127.0.0.1:8081",
                "members_port": 7947,
            }
        )
    )
    # the ports written in peers/local_addr were the Go original's; Serf uses members_port
    assert settings.bind == "127.0.0.1:7947"
    assert settings.advertise == "127.0.0.1:7947"
    assert settings.join == ("127.0.0.1:7947", "[2001:db8::2]:7947")
    assert settings.rpc_addr is None
    assert serf_settings(Members.model_validate({})).bind == "0.0.0.0:7946"


def test_sync_port_defaults_beside_members_port() -> None:
    assert Members.model_validate({}).sync_port_number == 7947
    assert Members.model_validate({"members_port": 8000}).sync_port_number == 8001
    assert Members.model_validate({"sync_port": 9000}).sync_port_number == 9000


async def test_quorum_state_is_reported_on_every_membership_change() -> None:
    cluster, _, _, _ = make(min_peers_agree=2)
    reports: list[tuple[bool, int, int]] = []
    cluster.on_quorum = lambda unmet, live, needed: reports.append((unmet, live, needed))
    join(cluster, "b")
    join(cluster, "c")
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert reports == [(True, 1, 2), (False, 2, 2), (True, 1, 2)]


# --- overrides ride along with verdicts ------------------------------------------------------


def make_recording(
    min_peers_agree: int = 1,
) -> tuple[Cluster, list[tuple[str, str, Override, Override]], Peers]:
    stage = DecisionStage(min_peers_agree)
    seen: list[tuple[str, str, Override, Override]] = []
    cluster = Cluster(
        node="a",
        members=members(min_peers_agree=min_peers_agree),
        stage=stage,
        targets=lambda: {T1, T2},
        on_decision=lambda target, state: None,
        on_override=lambda node, target, old, new: seen.append((node, target, old, new)),
        clock=Clock(),
    )
    peers = Peers(KEY, EVENT)
    cluster.sync.client = peers
    return cluster, seen, peers


async def test_a_peer_override_is_honoured_and_cleared() -> None:
    cluster, seen, peers = make_recording()
    join(cluster, "b")
    cluster.stage.update(T1, State.UP)
    await deliver(cluster, peers.vote("b", T1, "up", "down"))
    assert seen == [("b", T1, Override.AUTO, Override.DOWN)]
    assert cluster.stage.override_of(T1) is Override.DOWN
    assert cluster.stage.effective[T1] is State.DOWN
    await deliver(cluster, peers.vote("b", T1, "up", "down"))  # no news
    assert len(seen) == 1
    await deliver(cluster, peers.vote("b", T1, "up", "auto"))
    assert seen[-1] == ("b", T1, Override.DOWN, Override.AUTO)
    assert cluster.stage.effective[T1] is State.UP


async def test_a_peer_override_lapses_when_the_peer_fails() -> None:
    cluster, seen, peers = make_recording()
    join(cluster, "b")
    await deliver(cluster, peers.vote("b", T1, "up", "up"))
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert seen[-1] == ("b", T1, Override.UP, Override.AUTO)
    assert cluster.stage.override_of(T1) is Override.AUTO
    assert cluster.member_status == {"b": "failed"}


async def test_our_vector_carries_our_override() -> None:
    cluster, _, _ = make_recording()
    cluster.stage.update(T1, State.UP)
    cluster.stage.set_override(T1, Override.DOWN)
    cluster.publish(T1, State.UP)
    cluster.sync._commit_now()
    assert cluster.sync.vector.codes == {T1: entry_code("up", "down")}
    cluster.stage.set_override(T1, Override.AUTO)
    cluster.publish(T1, State.UP)
    cluster.sync._commit_now()
    assert cluster.sync.vector.codes == {T1: entry_code("up")}
    assert cluster.sync.vector.version == 2


async def test_a_burst_of_transitions_is_one_version() -> None:
    cluster, _, _ = make_recording()
    for target in (T1, T2):
        cluster.stage.update(target, State.DOWN)
        cluster.publish(target, State.DOWN)
    cluster.sync._commit_now()
    assert cluster.sync.vector.version == 1


# --- state bounded by members x configured targets --------------------------------------------

FLOOD = 200_000
"""Notices an attacker (or a misconfigured cluster) sends: the count issue 12 measured."""


def state_size(cluster: Cluster) -> int:
    """Entries the cluster holds that a peer's messages could add: peers' vector entries,
    votes and overrides in the decision stage, per-peer records."""
    stage = cluster.stage
    return (
        len(cluster.sync.peers)
        + sum(len(p.vector.codes or {}) for p in cluster.sync.peers.values())
        + sum(len(votes) for votes in stage.peers.values())
        + sum(len(held) for held in stage.peer_overrides.values())
    )


async def test_a_flood_from_non_members_and_for_unknown_targets_records_nothing() -> None:
    cluster, decided, _, peers = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.UP)
    await deliver(cluster, peers.vote("b", T1, "up"))
    # b's vector also names 1,000 addresses nobody configured here
    for i in range(1000):
        peers.peer("b").set(f"10.0.{i >> 8}.{i & 255}", entry_code("down"))
    await deliver(cluster, peers.vote("b", T1, "up"))
    baseline = state_size(cluster)
    assert baseline == 3  # b's record, its vector entry and its vote for T1
    assert decided == [(T1, State.UP)]
    decided.clear()
    sealer = Sealer(KEY, EVENT)
    for i in range(FLOOD):  # a different non-member every time
        notice = Notice(f"intruder-{i}", 1, i + 1, b"\0" * 8, 7947, NOW)
        cluster._on_user_event(UserEvent(EVENT, notice.seal(sealer), i, False))
    assert cluster.counters["rejected_not_member"] == FLOOD
    assert state_size(cluster) == baseline
    assert peers.pulls == 2
    assert decided == []
    assert cluster.stage.votes_for(T1) == {"b": State.UP}


async def test_a_departed_peer_is_pruned() -> None:
    cluster, _, _, peers = make()
    join(cluster, "b")
    await deliver(cluster, peers.vote("b", T1, "down"))
    await deliver(cluster, peers.vote("b", T2, "up"))
    assert state_size(cluster) == 5
    cluster._on_member_event(MemberEvent("member-leave", [member("b", "left")]))
    assert state_size(cluster) == 0


async def test_a_reload_that_removes_a_target_prunes_it() -> None:
    configured = {T1, T2}
    cluster, _, _, peers = make(targets=configured)
    join(cluster, "b", "c")
    for node in ("b", "c"):
        peers.vote(node, T1, "down")
        await deliver(cluster, peers.vote(node, T2, "down", "down"))
    cluster.stage.update(T2, State.DOWN)
    cluster.publish(T2, State.DOWN)
    cluster.sync._commit_now()
    assert cluster.stage.peer_overrides == {"b": {T2: Override.DOWN}, "c": {T2: Override.DOWN}}
    configured.discard(T2)  # what Agent._apply does on a reload, in this order
    cluster.stage.forget(T2)
    cluster.forget_target(T2)
    cluster.sync._commit_now()
    assert cluster.stage.votes_for(T2) == {}
    assert cluster.stage.peer_overrides == {}
    assert all(T2 not in (p.vector.codes or {}) for p in cluster.sync.peers.values())
    assert T2 not in cluster.sync.vector.codes  # our own entry is withdrawn too
    # a peer still announcing it: not kept
    await deliver(cluster, peers.vote("b", T2, "up"))
    assert cluster.stage.votes_for(T2) == {}
    # added back by a later reload: the next notice pulls everything, T2 included
    configured.add(T2)
    cluster.targets_added()
    await deliver(cluster, peers.vote("b", T1, "up"))
    assert cluster.stage.votes_for(T2) == {"b": State.UP}
    assert cluster.stage.votes_for(T1) == {"b": State.UP, "c": State.DOWN}


# --- node names: unique by default, conflicts loud ----------------------------------------------


@pytest.mark.parametrize(
    ("values", "source", "expected"),
    [
        (None, None, "web1"),  # no [Members]: single node
        ({"local_addr": "192.0.2.10:8081"}, None, "web1"),  # no peers: single node, no Serf
        ({"peers": ["192.0.2.2:1"], "local_addr": "192.0.2.10:8081"}, None, "web1@192.0.2.10:7946"),
        (
            {"peers": ["192.0.2.2:1"], "local_addr": "192.0.2.10:1", "members_port": 7000},
            "198.51.100.1",  # local_addr wins over the route's source
            "web1@192.0.2.10:7000",
        ),
        (
            {"peers": ["[2001:db8::2]:1"], "local_addr": "[2001:db8::1]:1"},
            None,
            "web1@[2001:db8::1]:7946",
        ),
        ({"peers": ["192.0.2.2:1"]}, "192.0.2.77", "web1@192.0.2.77:7946"),
        ({"peers": ["192.0.2.2:1"]}, "2001:db8::7", "web1@[2001:db8::7]:7946"),
        ({"peers": ["192.0.2.2:1"]}, None, "web1"),  # no route to any peer: host name only
        ({"serf_rpc_addr": "127.0.0.1:7373"}, "192.0.2.77", "web1"),  # Serf's own default
    ],
)
def test_default_node_name(
    values: dict[str, object] | None, source: str | None, expected: str
) -> None:
    section = None if values is None else Members.model_validate(values)
    assert default_node_name("web1", section, source) == expected


def test_two_agents_of_one_host_get_different_default_names() -> None:
    a = Members.model_validate({"peers": ["192.0.2.2:1"], "local_addr": "192.0.2.1:1"})
    b = Members.model_validate({"peers": ["192.0.2.1:1"], "local_addr": "192.0.2.2:1"})
    assert default_node_name("clone", a) != default_node_name("clone", b)


def test_route_source_names_the_local_address_toward_a_peer() -> None:
    assert route_source(members(peers=["127.0.0.1:1"])) == "127.0.0.1"
    assert route_source(members(peers=["no-such-host.invalid:1"])) is None


CONFLICT_LINES = [
    "    2026/12/04 16:14:31 [ERR] memberlist: Conflicting address for same. "
    "Mine: 192.0.2.1:7946 Theirs: 192.0.2.2:7946 Old state: 0",
    "    2026/12/04 16:14:31 [ERR] serf: Node name conflicts with another node at "
    "192.0.2.2:7946. Names must be unique! (Resolution enabled: true)",
    "    2026/12/04 16:14:33 [WARN] serf: minority in name conflict resolution, quitting [0 / 0]",
    "    2026/12/04 16:14:33 [WARN] agent: Serf shutdown detected, quitting",
]
"""What serf 0.8.2 printed (log level warn) when a second agent named "same" joined."""


async def test_serf_output_reveals_a_name_conflict(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[NameConflict | None] = []
    serf = SerfAgent(node_name="same", bind="192.0.2.1:7946", on_name_conflict=seen.append)
    for line in CONFLICT_LINES:
        serf._scan_for_conflict(line)
    assert seen == [NameConflict("192.0.2.2:7946", False), NameConflict("192.0.2.2:7946", True)]
    assert serf.name_conflict == NameConflict("192.0.2.2:7946", True)
    assert serf.name_conflicts == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "NODE NAME CONFLICT: node name 'same' is also used by the Serf member at 192.0.2.2:7946"
        in e
        and "set a unique node_name" in e
        for e in errors
    )
    serf._set_conflict(None)
    assert seen[-1] is None
    assert [serf.name_conflict] == [None]
    assert "resolved" in caplog.text


async def test_a_name_conflict_is_told_to_the_agent_and_named_in_quorum_unmet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stage = DecisionStage(1)
    told: list[NameConflict | None] = []
    cluster = Cluster(
        node="same",
        members=members(),
        stage=stage,
        targets=lambda: {T1},
        on_decision=lambda target, state: None,
        on_name_conflict=told.append,
    )
    serf = SerfAgent(
        node_name="same", bind="192.0.2.1:7946", on_name_conflict=cluster._name_conflict_changed
    )
    cluster._serf = serf  # as start() makes it, without starting a process
    for line in CONFLICT_LINES:
        serf._scan_for_conflict(line)
    assert told[-1] == NameConflict("192.0.2.2:7946", True)
    assert cluster.name_conflict == told[-1] and cluster.name_conflicts == 1
    assert "QUORUM UNMET" in caplog.text
    assert "is also used by the member at 192.0.2.2:7946" in caplog.text
