"""The decision stage: from this agent's verdict (and, in cluster mode, its peers') to the
state DNS should reflect (pure: no I/O, no clock reads).

Single node (``min_peers_agree == 0``): the local verdict is the decision.
Cluster mode: the decision moves to UP or DOWN only when this agent's own
verdict and at least ``min_peers_agree`` live peers' verdicts agree on it;
otherwise it stays where it was (so an unmet quorum never flaps DNS). This is
the "several vantage points must agree" rule of Route 53 health checkers and
of the Go original's ``min_peers_agree``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from goavail.health import State


def decide(
    previous: State,
    local: State,
    peer_votes: Iterable[State],
    min_peers_agree: int,
) -> State:
    """Return the new decision for one target.

    Args:
        previous: the decision so far (UNKNOWN at start).
        local: this agent's verdict.
        peer_votes: the latest verdict of each live peer (one entry per peer).
        min_peers_agree: peers that must share ``local`` before it is acted on (>= 0).

    Raises:
        ValueError: ``min_peers_agree`` is negative.
    """
    if min_peers_agree < 0:
        raise ValueError(f"min_peers_agree must be >= 0, got {min_peers_agree}")
    if local is State.UNKNOWN:
        return previous
    if min_peers_agree == 0:
        return local
    agreeing = sum(1 for vote in peer_votes if vote is local)
    return local if agreeing >= min_peers_agree else previous


class DecisionStage:
    """Keeps the current decision per target and reports changes.

    The cluster issue feeds peer votes through ``peer_votes``; in single-node
    mode there are none.

    Args:
        min_peers_agree: see :func:`decide`.
    """

    def __init__(self, min_peers_agree: int = 0) -> None:
        self.min_peers_agree = min_peers_agree
        self.decisions: dict[str, State] = {}
        self.local: dict[str, State] = {}

    def update(
        self, target: str, local: State, peer_votes: Mapping[str, State] | None = None
    ) -> State | None:
        """Record ``target``'s local verdict; return the new decision if it changed, else None."""
        self.local[target] = local
        previous = self.decisions.get(target, State.UNKNOWN)
        new = decide(previous, local, (peer_votes or {}).values(), self.min_peers_agree)
        if new is previous:
            return None
        self.decisions[target] = new
        return new

    def forget(self, target: str) -> None:
        """Drop a target removed from the configuration."""
        self.decisions.pop(target, None)
        self.local.pop(target, None)
