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


def designated_writer(self_node: str, decision: State, votes: Mapping[str, State]) -> str:
    """The node that applies a change: of the agents that agree with ``decision``
    (this one and every peer whose vote equals it), the lowest node name.

    Args:
        self_node: this agent's node name (it agrees: it made the decision).
        decision: the decided state.
        votes: live peers' latest votes for the target, node name -> state.
    """
    return min([self_node, *(node for node, vote in votes.items() if vote is decision)])


class DecisionStage:
    """Keeps the local verdicts, the live peers' votes and the decisions, per target.

    Pure bookkeeping around :func:`decide`; the cluster layer feeds peer votes
    in and tells it when a peer is gone. Every method that can change a
    decision returns the change(s).

    Args:
        min_peers_agree: see :func:`decide`.
    """

    def __init__(self, min_peers_agree: int = 0) -> None:
        self.min_peers_agree = min_peers_agree
        self.decisions: dict[str, State] = {}
        self.local: dict[str, State] = {}
        self.peers: dict[str, dict[str, State]] = {}
        """Live peer -> target -> that peer's latest verdict."""

    def votes_for(self, target: str) -> dict[str, State]:
        """Live peers' latest votes for ``target`` (node -> state; peers without a vote omitted)."""
        return {
            node: votes[target] for node, votes in sorted(self.peers.items()) if target in votes
        }

    def _decide(self, target: str) -> State | None:
        local = self.local.get(target)
        if local is None:
            return None  # not one of our targets
        previous = self.decisions.get(target, State.UNKNOWN)
        new = decide(previous, local, self.votes_for(target).values(), self.min_peers_agree)
        if new is previous:
            return None
        self.decisions[target] = new
        return new

    def update(self, target: str, local: State) -> State | None:
        """Record ``target``'s local verdict; return the new decision if it changed, else None."""
        self.local[target] = local
        return self._decide(target)

    def peer_vote(self, node: str, target: str, state: State) -> State | None:
        """Record a live peer's verdict; return the new decision of ``target`` if it changed.

        Votes for targets this agent does not watch are kept (the target may be
        added by a reload) but decide nothing.
        """
        self.peers.setdefault(node, {})[target] = state
        return self._decide(target)

    def drop_vote(self, node: str, target: str) -> State | None:
        """Forget one stale vote (the peer stopped announcing it); return a changed decision."""
        votes = self.peers.get(node)
        if votes is None or votes.pop(target, None) is None:
            return None
        return self._decide(target)

    def peer_alive(self, node: str) -> None:
        """Register a live peer that has not voted yet (it counts for :meth:`quorum_unmet`)."""
        self.peers.setdefault(node, {})

    def peer_gone(self, node: str) -> dict[str, State]:
        """Drop every vote of ``node`` (it failed or left); return changed decisions.

        Losing votes never flips a decision by itself (see :func:`decide`), so
        the result is normally empty; it is returned for symmetry and tests.
        """
        votes = self.peers.pop(node, {})
        changed = {}
        for target in votes:
            new = self._decide(target)
            if new is not None:
                changed[target] = new
        return changed

    def agreed(self, target: str) -> bool:
        """True when the current decision of ``target`` is backed right now: this agent's
        own verdict and at least ``min_peers_agree`` live peers' votes equal it.

        A decision is sticky (it stays put while agreement is missing, so an unmet
        quorum never flaps DNS), but only a backed decision may be *written*: an
        agent left in the minority, or cut off from its peers, must not enforce
        its old decision against what the others agreed on.
        """
        decision = self.decisions.get(target, State.UNKNOWN)
        if decision is State.UNKNOWN or self.local.get(target) is not decision:
            return False
        agreeing = sum(1 for vote in self.votes_for(target).values() if vote is decision)
        return agreeing >= self.min_peers_agree

    def quorum_unmet(self) -> bool:
        """True when fewer live peers exist than ``min_peers_agree``: no decision can change."""
        return len(self.peers) < self.min_peers_agree

    def forget(self, target: str) -> None:
        """Drop a target removed from the configuration."""
        self.decisions.pop(target, None)
        self.local.pop(target, None)
