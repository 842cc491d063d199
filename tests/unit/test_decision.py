"""Table tests of the decision stage (single node and the quorum rule)."""

from __future__ import annotations

import pytest

from goavail.decision import (
    DecisionStage,
    Override,
    apply_override,
    backed,
    combine_overrides,
    decide,
    designated_writer,
    writer_rank,
)
from goavail.health import State

U, D, K = State.UP, State.DOWN, State.UNKNOWN


@pytest.mark.parametrize(
    ("previous", "local", "peers", "quorum", "expected"),
    [
        # single node: the local verdict is the decision
        (K, D, [], 0, D),
        (K, U, [], 0, U),
        (D, U, [], 0, U),
        (U, K, [], 0, U),  # an unknown local verdict never changes the decision
        (K, K, [], 0, K),
        # cluster: local + at least min_peers_agree peers
        (U, D, [D], 1, D),
        (U, D, [U], 1, U),
        (U, D, [], 1, U),
        (U, D, [D, U], 2, U),
        (U, D, [D, D, U], 2, D),
        (D, U, [U, K], 1, U),
        (K, D, [K, K], 1, K),
    ],
)
def test_decide(
    previous: State, local: State, peers: list[State], quorum: int, expected: State
) -> None:
    assert decide(previous, local, peers, quorum) is expected


def test_decide_rejects_negative_quorum() -> None:
    with pytest.raises(ValueError, match="min_peers_agree"):
        decide(K, D, [], -1)


def test_stage_reports_only_changes() -> None:
    stage = DecisionStage()
    assert stage.update("192.0.2.1", K) is None
    assert stage.update("192.0.2.1", D) is D
    assert stage.update("192.0.2.1", D) is None
    assert stage.update("192.0.2.1", U) is U
    assert stage.decisions == {"192.0.2.1": U}
    stage.forget("192.0.2.1")
    assert stage.decisions == {}


def test_stage_with_peers() -> None:
    stage = DecisionStage(min_peers_agree=1)
    assert stage.update("192.0.2.1", D) is None  # no peer agrees yet
    assert stage.peer_vote("b", "192.0.2.1", U) is None
    assert stage.peer_vote("b", "192.0.2.1", D) is D
    assert stage.votes_for("192.0.2.1") == {"b": D}


# Each step: ("local", state) | ("vote", node, state) | ("gone", node) | ("alive", node);
# expected: the decision after the step.
Step = tuple[str, ...]


@pytest.mark.parametrize(
    ("quorum", "steps", "expected"),
    [
        # one of three sees it down: nothing happens
        (
            1,
            [("alive", "b"), ("alive", "c"), ("local", D), ("vote", "b", U), ("vote", "c", U)],
            [K, K, K, K, K],
        ),
        # two of three agree (quorum 1): removed; recovery needs agreement again
        (
            1,
            [
                ("local", U),
                ("vote", "b", U),
                ("local", D),
                ("vote", "b", D),
                ("local", U),
                ("vote", "b", U),
            ],
            [K, U, U, D, D, U],
        ),
        # a peer joins late and agrees
        (1, [("local", D), ("alive", "b"), ("vote", "b", D)], [K, K, D]),
        # the agreeing peer leaves: the decision stays, a new disagreement cannot flip it
        (1, [("local", D), ("vote", "b", D), ("gone", "b"), ("local", U)], [K, D, D, D]),
        # flapping peer: its latest vote counts
        (1, [("local", D), ("vote", "b", D), ("vote", "b", U), ("vote", "b", D)], [K, D, D, D]),
        (1, [("local", U), ("vote", "b", D), ("vote", "b", U)], [K, K, U]),
        # split votes with quorum 2 of 4 peers
        (
            2,
            [("local", D), ("vote", "b", D), ("vote", "c", U), ("vote", "d", U), ("vote", "e", D)],
            [K, K, K, K, D],
        ),
        # a peer's unknown vote never counts
        (1, [("local", D), ("vote", "b", K)], [K, K]),
        # single node: peers are irrelevant
        (0, [("vote", "b", U), ("local", D)], [K, D]),
    ],
)
def test_stage_sequences(quorum: int, steps: list[Step], expected: list[State]) -> None:
    target = "192.0.2.1"
    stage = DecisionStage(min_peers_agree=quorum)
    got = []
    for step in steps:
        kind = step[0]
        if kind == "local":
            stage.update(target, step[1])  # type: ignore[arg-type]
        elif kind == "vote":
            stage.peer_vote(step[1], target, step[2])  # type: ignore[arg-type]
        elif kind == "gone":
            stage.peer_gone(step[1])
        else:
            stage.peer_alive(step[1])
        got.append(stage.decisions.get(target, K))
    assert got == expected


def test_votes_for_unwatched_targets_decide_nothing() -> None:
    stage = DecisionStage(min_peers_agree=1)
    assert stage.peer_vote("b", "192.0.2.9", D) is None
    assert "192.0.2.9" not in stage.decisions
    # the target is added by a reload: the stored vote counts
    assert stage.update("192.0.2.9", D) is D


def test_quorum_unmet() -> None:
    stage = DecisionStage(min_peers_agree=2)
    assert stage.quorum_unmet()
    stage.peer_alive("b")
    stage.peer_vote("c", "192.0.2.1", U)
    assert not stage.quorum_unmet()
    stage.peer_gone("b")
    assert stage.quorum_unmet()
    assert not DecisionStage(0).quorum_unmet()


@pytest.mark.parametrize(
    ("decision", "votes", "expected"),
    [
        (D, {}, "m"),
        (D, {"a": D, "z": D}, "a"),
        (D, {"a": U, "z": D}, "m"),  # a disagrees: not among the writers
        (U, {"a": K, "b": U}, "b"),
        (U, {"x": U}, "m"),
    ],
)
def test_designated_writer(decision: State, votes: dict[str, State], expected: str) -> None:
    assert designated_writer("m", decision, votes) == expected


@pytest.mark.parametrize(
    ("decision", "votes", "expected"),
    [
        (D, {}, 0),
        (D, {"a": D, "z": D}, 1),  # a writes first, then m, then z
        (D, {"a": U, "b": D, "z": D}, 1),  # a disagrees: not in the order
        (U, {"a": U, "b": U, "c": K}, 2),
        (U, {"x": U, "y": U}, 0),
    ],
)
def test_writer_rank(decision: State, votes: dict[str, State], expected: int) -> None:
    """The takeover order (regression: with the writer killed, every agreeing agent
    took over at the same instant, one writer_grace after its decision: three DELETEs
    of one record, two of them 404s)."""
    assert writer_rank("m", decision, votes) == expected
    assert (expected == 0) == (designated_writer("m", decision, votes) == "m")


def test_writer_rank_of_the_stage_under_an_override() -> None:
    stage = DecisionStage(min_peers_agree=1)
    stage.update("192.0.2.1", U)
    for peer, vote in (("a", D), ("b", U), ("z", U)):
        stage.peer_vote(peer, "192.0.2.1", vote)
    assert stage.writer_rank("m", "192.0.2.1") == 1  # b agrees with "up" and comes first
    stage.peer_override("z", "192.0.2.1", Override.DOWN)  # everyone honours it
    assert stage.writer_rank("m", "192.0.2.1") == 2  # a, b, then m


def test_drop_vote() -> None:
    stage = DecisionStage(min_peers_agree=1)
    stage.update("192.0.2.1", D)
    stage.peer_vote("b", "192.0.2.1", D)
    assert stage.drop_vote("b", "192.0.2.1") is None  # losing a vote never flips a decision
    assert stage.votes_for("192.0.2.1") == {}
    assert stage.drop_vote("b", "192.0.2.1") is None
    assert stage.drop_vote("nobody", "192.0.2.1") is None
    assert not stage.quorum_unmet()  # b is still a live peer


@pytest.mark.parametrize(
    ("quorum", "local", "votes", "expected"),
    [
        (1, D, {"b": D}, True),  # backed: ours + one peer
        (1, D, {"b": U}, False),  # the peer changed its mind: sticky decision, not backed
        (1, D, {}, False),  # the agreeing peer is gone
        (2, D, {"b": D, "c": U}, False),
        (0, D, {}, True),  # single node: our verdict is enough
    ],
)
def test_agreed_means_backed_right_now(
    quorum: int, local: State, votes: dict[str, State], expected: bool
) -> None:
    stage = DecisionStage(min_peers_agree=quorum)
    target = "192.0.2.1"
    stage.update(target, D)
    for node in ("b", "c"):
        stage.peer_vote(node, target, D)
    assert stage.decisions[target] is D
    # now the situation of the row
    for node in ("b", "c"):
        stage.peer_gone(node)
    for node, vote in votes.items():
        stage.peer_vote(node, target, vote)
    stage.update(target, local)
    assert stage.agreed(target) is expected


def test_agreed_false_when_our_verdict_differs() -> None:
    stage = DecisionStage(min_peers_agree=1)
    stage.update("192.0.2.1", D)
    stage.peer_vote("b", "192.0.2.1", D)
    stage.update("192.0.2.1", U)  # we recovered; b still sees it down: decision stays down
    assert stage.decisions["192.0.2.1"] is D
    assert not stage.agreed("192.0.2.1")
    assert not stage.agreed("192.0.2.99")  # unknown target


# --------------------------------------------------------------------------- overrides

AUTO, OUP, ODOWN = Override.AUTO, Override.UP, Override.DOWN


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        ([], AUTO),
        ([AUTO, AUTO], AUTO),
        ([ODOWN], ODOWN),
        ([AUTO, ODOWN], ODOWN),
        ([OUP], OUP),
        ([ODOWN, OUP], OUP),  # operators disagree: keep the records
        ([OUP, ODOWN, AUTO], OUP),
    ],
)
def test_combine_overrides(held: list[Override], expected: Override) -> None:
    assert combine_overrides(held) is expected


@pytest.mark.parametrize(
    ("decision", "override", "expected"),
    [
        (U, AUTO, U),
        (D, AUTO, D),
        (K, AUTO, K),
        (U, ODOWN, D),  # drain a healthy target
        (K, ODOWN, D),
        (D, OUP, U),  # keep a failing target
        (K, OUP, U),
        (D, ODOWN, D),
    ],
)
def test_apply_override(decision: State, override: Override, expected: State) -> None:
    assert apply_override(decision, override) is expected


# Steps: ("local", state) | ("own", override) | ("peer", node, override) | ("vote", node, state)
#        | ("gone", node) | ("expire", node); expected: (decision, override in force, effective)
@pytest.mark.parametrize(
    ("quorum", "steps", "expected"),
    [
        # single node: a drain withdraws a healthy target, auto gives it back
        (
            0,
            [("local", U), ("own", ODOWN), ("own", AUTO)],
            [(U, AUTO, U), (U, ODOWN, D), (U, AUTO, U)],
        ),
        # an "up" override keeps a failing target; the decision underneath still moves
        (
            0,
            [("own", OUP), ("local", D), ("local", U), ("own", AUTO)],
            [(K, OUP, U), (D, OUP, U), (U, OUP, U), (U, AUTO, U)],
        ),
        # a peer's drain is honoured here, and lapses when the peer is gone
        (
            1,
            [
                ("local", U),
                ("vote", "b", U),
                ("peer", "b", ODOWN),
                ("gone", "b"),
            ],
            [(K, AUTO, K), (U, AUTO, U), (U, ODOWN, D), (U, AUTO, U)],
        ),
        # ... and when its vote expires (not re-announced)
        (
            1,
            [("local", U), ("vote", "b", U), ("peer", "b", ODOWN), ("expire", "b")],
            [(K, AUTO, K), (U, AUTO, U), (U, ODOWN, D), (U, AUTO, U)],
        ),
        # conflict: our drain, a peer's keep: kept
        (
            1,
            [("local", U), ("vote", "b", U), ("own", ODOWN), ("peer", "b", OUP)],
            [(K, AUTO, K), (U, AUTO, U), (U, ODOWN, D), (U, OUP, U)],
        ),
        # a drain needs no quorum: with no peer at all it still applies
        (2, [("local", U), ("own", ODOWN)], [(K, AUTO, K), (K, ODOWN, D)]),
    ],
)
def test_override_sequences(
    quorum: int, steps: list[Step], expected: list[tuple[State, Override, State]]
) -> None:
    target = "192.0.2.1"
    stage = DecisionStage(min_peers_agree=quorum)
    got = []
    for step in steps:
        kind = step[0]
        if kind == "local":
            stage.update(target, step[1])  # type: ignore[arg-type]
        elif kind == "own":
            stage.set_override(target, step[1])  # type: ignore[arg-type]
        elif kind == "peer":
            stage.peer_override(step[1], target, step[2])  # type: ignore[arg-type]
        elif kind == "vote":
            stage.peer_vote(step[1], target, step[2])  # type: ignore[arg-type]
        elif kind == "gone":
            stage.peer_gone(step[1])
        else:
            stage.drop_vote(step[1], target)
        got.append(
            (
                stage.decisions.get(target, K),
                stage.override_of(target),
                stage.effective.get(target, K),
            )
        )
    assert got == expected
    assert stage.forced == ({target: got[-1][1]} if got[-1][1] is not AUTO else {})


def test_override_changes_are_reported_once() -> None:
    stage = DecisionStage()
    assert stage.set_override("192.0.2.1", ODOWN) is ODOWN
    assert stage.set_override("192.0.2.1", ODOWN) is None
    assert stage.peer_override("b", "192.0.2.1", ODOWN) is None  # still down in force
    assert stage.override_holders("192.0.2.1") == {"b": ODOWN}
    assert stage.set_override("192.0.2.1", AUTO) is None  # b still drains it
    assert stage.peer_override("b", "192.0.2.1", AUTO) is AUTO
    assert stage.peer_overrides == {}


def test_override_is_backed_and_written_by_the_lowest_live_node() -> None:
    stage = DecisionStage(min_peers_agree=1)
    target = "192.0.2.1"
    stage.update(target, U)
    stage.peer_alive("b")
    stage.peer_alive("c")
    assert not stage.agreed(target)  # nobody shares our verdict yet
    stage.peer_override("c", target, ODOWN)
    # an override is an operator's order, not a vote: backed without any agreeing peer
    assert stage.agreed(target)
    assert stage.writer("m", target) == "b"  # every live agent honours it
    assert stage.writer("a", target) == "a"


def test_forgotten_target_keeps_its_override() -> None:
    stage = DecisionStage()
    stage.update("192.0.2.1", U)
    stage.set_override("192.0.2.1", ODOWN)
    stage.forget("192.0.2.1")
    assert stage.effective == {} and stage.forced == {}
    assert stage.overrides == {"192.0.2.1": ODOWN}  # a reload may add the target back


@pytest.mark.parametrize(
    ("decision", "local", "votes", "quorum", "expected"),
    [
        (D, D, [D], 1, True),
        (D, D, [U], 1, False),
        (D, U, [D, D], 1, False),
        (K, K, [], 0, False),
        (U, U, [], 0, True),
        # conflicting quorums: the larger side writes, a tie writes nothing
        (D, D, [D, U, U], 1, False),  # 2|2 of four agents
        (U, U, [U, D, D], 1, False),
        (D, D, [D, D, U, U], 1, True),  # 3|2 of five
        (U, U, [U, D, D, D], 1, False),  # the smaller side of 3|2 does not write
        (D, D, [D, U, K, K], 1, True),  # unknown votes count for neither side: 2 to 1
        (D, D, [D, D, U, U], 2, True),
    ],
)
def test_backed(
    decision: State, local: State, votes: list[State], quorum: int, expected: bool
) -> None:
    assert backed(decision, local, votes, quorum) is expected
