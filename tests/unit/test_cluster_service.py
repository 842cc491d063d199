"""The cluster service's event handling, fed Serf events directly (no Serf, no sockets)."""

from __future__ import annotations

import logging

import pytest

from goavail.cluster.serf_agent import NameConflict, SerfAgent
from goavail.cluster.serf_rpc import Member, MemberEvent, UserEvent
from goavail.cluster.service import Cluster, default_node_name, route_source, serf_settings
from goavail.cluster.wire import Codec, OverrideMode, Verdict
from goavail.config import Members
from goavail.decision import DecisionStage, Override
from goavail.health import State

KEY = b"0123456789abcdef"
T1, T2 = "192.0.2.1", "192.0.2.2"
NOW = 1_800_000_000.0


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
) -> tuple[Cluster, list[tuple[str, State]], Clock]:
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
        local_verdicts=lambda: stage.local,
        targets=lambda: configured,
        on_decision=lambda target, state: decided.append((target, state)),
        clock=clock,
    )
    return cluster, decided, clock


def member(name: str, status: str = "alive") -> Member:
    return Member(name=name, addr="198.51.100.9", port=7946, tags={}, status=status)


def join(cluster: Cluster, *names: str) -> None:
    cluster._on_member_event(MemberEvent("member-join", [member(n) for n in names]))


def event(
    node: str,
    target: str,
    up: bool,
    seq: int,
    *,
    issued_at: float = NOW,
    key: bytes | None = KEY,
    name: str = "goavail-verdict",
) -> UserEvent:
    payload = Codec(key, name).seal(Verdict(node, target, up, seq, issued_at))
    return UserEvent(name=name, payload=payload, ltime=seq, coalesce=False)


def test_agreeing_peer_vote_decides() -> None:
    cluster, decided, _ = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.DOWN)
    cluster._on_user_event(event("b", T1, False, 1))
    assert decided == [(T1, State.DOWN)]
    assert cluster.counters["accepted"] == 1
    assert cluster.describe_votes(T1) == "a(self)=down b=down"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: event("b", T1, False, 1, key=b"fedcba9876543210"), "rejected_tag"),
        (lambda: event("b", T1, False, 1, key=None), "rejected_plaintext"),
        (lambda: event("b", T1, False, 1, issued_at=NOW - 31), "rejected_skew"),
        (lambda: event("b", T1, False, 1, issued_at=NOW + 31), "rejected_skew"),
        (lambda: event("zed", T1, False, 1), "rejected_not_member"),
        (
            lambda: UserEvent("goavail-verdict", b"\x01garbage", 1, False),
            "rejected_truncated",
        ),
    ],
)
def test_rejections_are_counted_and_ignored(build: object, reason: str) -> None:
    cluster, decided, _ = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.DOWN)
    assert callable(build)
    cluster._on_user_event(build())
    assert cluster.counters[reason] == 1
    assert cluster.counters["accepted"] == 0
    assert decided == []
    assert cluster.stage.votes_for(T1) == {}


def test_replay_rejected() -> None:
    cluster, _, _ = make()
    join(cluster, "b")
    captured = event("b", T1, True, 5)
    cluster._on_user_event(captured)
    cluster._on_user_event(event("b", T1, False, 6))
    cluster._on_user_event(captured)  # an attacker replays the old "up"
    assert cluster.counters["rejected_replay"] == 1
    assert cluster.stage.votes_for(T1) == {"b": State.DOWN}


def test_own_echo_and_foreign_events_ignored() -> None:
    cluster, _, _ = make()
    join(cluster, "b")
    cluster._on_user_event(event("a", T1, False, 1))  # Serf delivers our own events too
    cluster._on_user_event(UserEvent("deploy", b"x", 1, False))
    cluster._on_user_event(event("b", T1, False, 2, name="other-goavail-verdict"))
    assert sum(cluster.counters.values()) == 0
    assert cluster.stage.votes_for(T1) == {}


def test_cluster_name_prefixes_the_event() -> None:
    cluster, _, _ = make(cluster_name="edge")
    join(cluster, "b")
    assert cluster.event == "edge-goavail-verdict"
    cluster._on_user_event(event("b", T1, True, 1, name="edge-goavail-verdict"))
    assert cluster.counters["accepted"] == 1


def test_failed_peer_loses_votes_and_quorum_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cluster, _, _ = make()
    join(cluster, "b")
    cluster._on_user_event(event("b", T1, False, 1))
    assert cluster.stage.quorum_unmet() is False
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert cluster.live == set()
    assert cluster.stage.votes_for(T1) == {}
    assert cluster.stage.quorum_unmet() is True
    assert "QUORUM UNMET" in caplog.text
    # votes from a peer that is not alive are not accepted
    cluster._on_user_event(event("b", T1, False, 2))
    assert cluster.counters["rejected_not_member"] == 1
    join(cluster, "b")
    assert "quorum possible again" in caplog.text


def test_left_peer_and_self_events() -> None:
    cluster, _, _ = make(min_peers_agree=0)
    join(cluster, "a", "b", "c")  # our own member entry is not a peer
    assert cluster.live == {"b", "c"}
    cluster._on_member_event(MemberEvent("member-leave", [member("c", "left")]))
    assert cluster.live == {"b"}


def test_stale_votes_expire() -> None:
    cluster, _, clock = make()
    join(cluster, "b", "c")
    cluster._on_user_event(event("b", T1, False, 1))
    cluster._on_user_event(event("c", T2, True, 1))
    clock.now += 2.0
    cluster._on_user_event(event("c", T2, True, 2, issued_at=clock.now))  # c re-announces
    clock.now += 1.5  # b's vote is 3.5 s old, more than 3 announce intervals
    cluster.expire_votes()
    assert cluster.stage.votes_for(T1) == {}
    assert cluster.stage.votes_for(T2) == {"c": State.UP}


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


def test_quorum_state_is_reported_on_every_membership_change() -> None:
    cluster, _, _ = make(min_peers_agree=2)
    reports: list[tuple[bool, int, int]] = []
    cluster.on_quorum = lambda unmet, live, needed: reports.append((unmet, live, needed))
    join(cluster, "b")
    join(cluster, "c")
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert reports == [(True, 1, 2), (False, 2, 2), (True, 1, 2)]


# --- overrides ride along with verdicts ------------------------------------------------------


def make_recording(
    min_peers_agree: int = 1,
) -> tuple[Cluster, list[tuple[str, str, Override, Override]]]:
    stage = DecisionStage(min_peers_agree)
    seen: list[tuple[str, str, Override, Override]] = []
    cluster = Cluster(
        node="a",
        members=members(min_peers_agree=min_peers_agree),
        stage=stage,
        local_verdicts=lambda: stage.local,
        targets=lambda: {T1, T2},
        on_decision=lambda target, state: None,
        on_override=lambda node, target, old, new: seen.append((node, target, old, new)),
        clock=Clock(),
    )
    return cluster, seen


def override_event(node: str, target: str, seq: int, override: OverrideMode) -> UserEvent:
    payload = Codec(KEY, "goavail-verdict").seal(Verdict(node, target, True, seq, NOW, override))
    return UserEvent(name="goavail-verdict", payload=payload, ltime=seq, coalesce=False)


def test_a_peer_override_is_honoured_and_cleared() -> None:
    cluster, seen = make_recording()
    join(cluster, "b")
    cluster.stage.update(T1, State.UP)
    cluster._on_user_event(override_event("b", T1, 1, "down"))
    assert seen == [("b", T1, Override.AUTO, Override.DOWN)]
    assert cluster.stage.override_of(T1) is Override.DOWN
    assert cluster.stage.effective[T1] is State.DOWN
    cluster._on_user_event(override_event("b", T1, 2, "down"))  # re-announced: no news
    assert len(seen) == 1
    cluster._on_user_event(override_event("b", T1, 3, "auto"))
    assert seen[-1] == ("b", T1, Override.DOWN, Override.AUTO)
    assert cluster.stage.effective[T1] is State.UP


def test_a_peer_override_lapses_when_the_peer_fails() -> None:
    cluster, seen = make_recording()
    join(cluster, "b")
    cluster._on_user_event(override_event("b", T1, 1, "up"))
    cluster._on_member_event(MemberEvent("member-failed", [member("b", "failed")]))
    assert seen[-1] == ("b", T1, Override.UP, Override.AUTO)
    assert cluster.stage.override_of(T1) is Override.AUTO
    assert cluster.member_status == {"b": "failed"}


class FakeRPC:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def user_event(self, name: str, payload: bytes, *, coalesce: bool) -> None:
        self.sent.append(payload)


async def test_published_verdicts_carry_our_override() -> None:
    cluster, _ = make_recording()
    rpc = FakeRPC()
    cluster._rpc = rpc  # type: ignore[assignment]
    cluster.stage.update(T1, State.UP)
    cluster.stage.set_override(T1, Override.DOWN)
    await cluster._send(T1, State.UP)
    cluster.stage.set_override(T1, Override.AUTO)
    await cluster._send(T1, State.UP)
    opened = [cluster.codec.open(p) for p in rpc.sent]
    assert [(v.up, v.override) for v in opened] == [(True, "down"), (True, "auto")]


# --- state bounded by members x configured targets --------------------------------------------

FLOOD = 200_000
"""Verdicts an attacker (or a misconfigured cluster) sends: the count issue 12 measured."""


def state_size(cluster: Cluster) -> int:
    """Entries the cluster holds that a peer's messages could add: replay entries and
    floors, last-seen times of votes, votes and overrides in the decision stage."""
    stage = cluster.stage
    return (
        len(cluster.guard)
        + cluster.guard.floors
        + len(cluster._vote_seen)
        + sum(len(votes) for votes in stage.peers.values())
        + sum(len(held) for held in stage.peer_overrides.values())
    )


def test_a_flood_from_non_members_and_for_unknown_targets_records_nothing() -> None:
    cluster, decided, _ = make()
    join(cluster, "b")
    cluster.stage.update(T1, State.UP)
    cluster._on_user_event(event("b", T1, True, 1))
    baseline = state_size(cluster)
    assert baseline == 3  # b's replay entry, last-seen time and vote for T1
    assert decided == [(T1, State.UP)]
    decided.clear()
    codec = Codec(KEY, "goavail-verdict")
    for i in range(FLOOD):
        if i % 2:  # a different non-member every time, for a configured target
            verdict = Verdict(f"intruder-{i}", T1, False, i + 2, NOW)
        else:  # the live member b, for an address nobody configured here
            unknown = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            verdict = Verdict("b", unknown, False, i + 2, NOW)
        payload = codec.seal(verdict, nonce=i.to_bytes(12, "big"))
        cluster._on_user_event(UserEvent("goavail-verdict", payload, i, False))
    assert cluster.counters["rejected_not_member"] == FLOOD // 2
    assert cluster.counters["rejected_unknown_target"] == FLOOD // 2
    assert state_size(cluster) == baseline
    assert len(cluster.guard) == 1
    assert decided == []
    assert cluster.stage.votes_for(T1) == {"b": State.UP}


def test_state_stays_within_members_times_targets() -> None:
    cluster, _, _ = make()
    peers = [f"p{i}" for i in range(5)]
    join(cluster, *peers)
    seq = 0
    for _ in range(50):  # many rounds of re-announcements
        for peer in peers:
            for target in (T1, T2):
                seq += 1
                cluster._on_user_event(event(peer, target, True, seq))
    assert cluster.counters["accepted"] == 50 * 5 * 2
    assert len(cluster.guard) == len(cluster._vote_seen) == 5 * 2


def test_a_departed_peer_is_pruned_and_its_captures_stay_refused() -> None:
    cluster, _, clock = make()
    join(cluster, "b")
    captured = event("b", T1, False, 7)
    cluster._on_user_event(captured)
    cluster._on_user_event(event("b", T2, True, 8))
    assert len(cluster.guard) == 2
    cluster._on_member_event(MemberEvent("member-leave", [member("b", "left")]))
    assert len(cluster.guard) == 0 and cluster.guard.floors == 1
    assert state_size(cluster) == 1  # the floor: b's highest seq, for twice the skew
    join(cluster, "b")
    clock.now = NOW + 10
    cluster._on_user_event(captured)  # replayed after the re-join, still fresh enough
    assert cluster.counters["rejected_replay"] == 1
    assert cluster.stage.votes_for(T1) == {}
    cluster._on_user_event(event("b", T1, True, 9, issued_at=clock.now))  # b's fresh verdict
    assert cluster.stage.votes_for(T1) == {"b": State.UP}
    # once the floor expires (twice the skew), a capture is too old: refused as skew
    clock.now = NOW + 31
    cluster.expire_votes()
    assert cluster.guard.floors == 1
    clock.now = NOW + 61
    cluster.expire_votes()
    assert cluster.guard.floors == 0
    cluster._on_user_event(captured)
    assert cluster.counters["rejected_skew"] == 1


def test_a_reload_that_removes_a_target_prunes_it() -> None:
    configured = {T1, T2}
    cluster, _, _ = make(targets=configured)
    join(cluster, "b", "c")
    for seq, node in enumerate(("b", "c"), start=1):
        cluster._on_user_event(event(node, T1, False, seq))
        cluster._on_user_event(event(node, T2, False, seq + 10))
    cluster.stage.peer_override("b", T2, Override.DOWN)
    assert len(cluster.guard) == 4
    configured.discard(T2)  # what Agent._apply does on a reload, in this order
    cluster.stage.forget(T2)
    cluster.forget_target(T2)
    assert len(cluster.guard) == 2 and len(cluster._vote_seen) == 2
    assert cluster.stage.votes_for(T2) == {}
    assert cluster.stage.peer_overrides == {}
    cluster._on_user_event(event("b", T2, False, 30))
    assert cluster.counters["rejected_unknown_target"] == 1
    # added back by a later reload: old captures stay refused, new verdicts count
    configured.add(T2)
    cluster._on_user_event(event("b", T2, False, 11))
    assert cluster.counters["rejected_replay"] == 1
    cluster._on_user_event(event("b", T2, True, 31))
    assert cluster.stage.votes_for(T2) == {"b": State.UP}


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
        local_verdicts=lambda: stage.local,
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
