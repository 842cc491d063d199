"""Table tests of the decision stage (single node and the quorum rule)."""

from __future__ import annotations

import pytest

from goavail.decision import DecisionStage, decide
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
    assert stage.update("192.0.2.1", D, {"b": U}) is None
    assert stage.update("192.0.2.1", D, {"b": D}) is D
