"""The decision stage: from this agent's verdict (and, in cluster mode, its peers') to the
state DNS should reflect (pure: no I/O, no clock reads).

Single node (``min_peers_agree == 0``): the local verdict is the decision.
Cluster mode: the decision moves to UP or DOWN only when this agent's own
verdict and at least ``min_peers_agree`` live peers' verdicts agree on it;
otherwise it stays where it was (so an unmet quorum never flaps DNS). This is
the "several vantage points must agree" rule of Route 53 health checkers and
of the Go original's ``min_peers_agree``.

Overrides (maintenance): an operator may pin a target ``up`` (always keep its
records) or ``down`` (drain: withdraw them, still subject to the planner's
fail-open), or leave it ``auto``. An override is held by one agent and
announced to its peers with its verdicts; every agent honours the overrides of
its live peers as its own, so agents never fight over a record. The *effective*
state of a target (:attr:`DecisionStage.effective`, what DNS should reflect) is
the decision with the combined override applied (:func:`combine_overrides`,
:func:`apply_override`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from goavail.health import State


class Override(enum.Enum):
    """An operator's override of one target: ``auto`` (none), ``up`` (keep), ``down`` (drain)."""

    AUTO = "auto"
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


def combine_overrides(overrides: Iterable[Override]) -> Override:
    """The override in force when several agents hold one for the same target.

    ``up`` wins over ``down``: when operators disagree, goavail keeps the records
    (it never withdraws an address in doubt, as with fail-open); ``down`` when at
    least one agent drains and none keeps; ``auto`` when nobody overrides.
    """
    seen = set(overrides)
    if Override.UP in seen:
        return Override.UP
    if Override.DOWN in seen:
        return Override.DOWN
    return Override.AUTO


def apply_override(decision: State, override: Override) -> State:
    """The state DNS should reflect: ``up``/``down`` overrides win, ``auto`` keeps ``decision``."""
    if override is Override.UP:
        return State.UP
    if override is Override.DOWN:
        return State.DOWN
    return decision


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


def backed(
    decision: State, local: State, peer_votes: Iterable[State], min_peers_agree: int
) -> bool:
    """True when ``decision`` may be written now: it is known, this agent's verdict
    ``local`` and at least ``min_peers_agree`` of the live peers' votes equal it, and
    more agents (this one included) vote for it than for the opposite state.

    The last condition settles conflicting quorums: with four agents and
    ``min_peers_agree = 1``, two may see a target down and two up, and both pairs
    would have a quorum. Each agent sees every live peer's vote, so all of them
    compute the same answer: the larger side writes, and on a tie nobody does (the
    records stay as they are), so agents whose views differ never take turns
    deleting and re-creating a record (see :meth:`DecisionStage.agreed`).
    """
    if decision is State.UNKNOWN or local is not decision:
        return False
    votes = list(peer_votes)
    opposite = State.UP if decision is State.DOWN else State.DOWN
    support = 1 + sum(1 for vote in votes if vote is decision)
    against = sum(1 for vote in votes if vote is opposite)
    return support - 1 >= min_peers_agree and support > against


def designated_writer(self_node: str, decision: State, votes: Mapping[str, State]) -> str:
    """The node that applies a change: of the agents that agree with ``decision``
    (this one and every peer whose vote equals it), the lowest node name.

    Args:
        self_node: this agent's node name (it agrees: it made the decision).
        decision: the decided state.
        votes: live peers' latest votes for the target, node name -> state.
    """
    return min([self_node, *(node for node, vote in votes.items() if vote is decision)])


def writer_rank(self_node: str, decision: State, votes: Mapping[str, State]) -> int:
    """This agent's place in the takeover order of a change: 0 for the designated
    writer (:func:`designated_writer`), 1 for the agreeing agent with the next lowest
    node name, and so on. Rank ``k`` takes over after ``k`` writer graces, so when the
    writer is dead one agent writes instead of every agreeing one at once.

    Args: as :func:`designated_writer`.
    """
    return sum(1 for node, vote in votes.items() if vote is decision and node < self_node)


class DecisionStage:
    """Keeps the local verdicts, the live peers' votes and the decisions, per target.

    Pure bookkeeping around :func:`decide`; the cluster layer feeds peer votes
    in and tells it when a peer is gone. Every method that can change a
    decision returns the change(s).

    Args:
        min_peers_agree: see :func:`decide`.

    Attributes:
        decisions: target -> the decision of the verdicts (quorum); UNKNOWN targets absent.
        local: target -> this agent's own verdict.
        peers: live peer -> target -> that peer's latest verdict.
        overrides: target -> this agent's own override (``auto`` never stored).
        peer_overrides: live peer -> target -> that peer's announced override.
        effective: target -> the state DNS should reflect (the decision with the
            combined override applied); UNKNOWN targets absent. The reconciler
            plans from this mapping.
        forced: target -> the override in force, for targets that have one (the
            planner names it in the reasons of the changes it causes).
    """

    def __init__(self, min_peers_agree: int = 0) -> None:
        self.min_peers_agree = min_peers_agree
        self.decisions: dict[str, State] = {}
        self.local: dict[str, State] = {}
        self.peers: dict[str, dict[str, State]] = {}
        """Live peer -> target -> that peer's latest verdict."""
        self.overrides: dict[str, Override] = {}
        self.peer_overrides: dict[str, dict[str, Override]] = {}
        self.effective: dict[str, State] = {}
        self.forced: dict[str, Override] = {}

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
        self._refresh(target)
        return new

    def _refresh(self, target: str) -> None:
        override = self.override_of(target)
        if override is Override.AUTO:
            self.forced.pop(target, None)
        else:
            self.forced[target] = override
        state = apply_override(self.decisions.get(target, State.UNKNOWN), override)
        if state is State.UNKNOWN:
            self.effective.pop(target, None)
        else:
            self.effective[target] = state

    # -- overrides ------------------------------------------------------------------

    def override_of(self, target: str) -> Override:
        """The override in force for ``target``: this agent's and its live peers' combined."""
        if not self.overrides and not self.peer_overrides:
            return Override.AUTO
        held = [self.overrides.get(target, Override.AUTO)]
        held.extend(votes.get(target, Override.AUTO) for votes in self.peer_overrides.values())
        return combine_overrides(held)

    def override_holders(self, target: str) -> dict[str, Override]:
        """Live peers holding an override for ``target``: node -> override (self excluded)."""
        return {
            node: held[target]
            for node, held in sorted(self.peer_overrides.items())
            if target in held
        }

    def set_override(self, target: str, override: Override) -> Override | None:
        """Set this agent's own override of ``target``; return the override in force
        if it changed (``auto`` clears it), else None."""
        before = self.override_of(target)
        if override is Override.AUTO:
            self.overrides.pop(target, None)
        else:
            self.overrides[target] = override
        return self._override_changed(target, before)

    def peer_override(self, node: str, target: str, override: Override) -> Override | None:
        """Record the override a live peer announced with its verdict; return the
        override in force for ``target`` if it changed, else None."""
        before = self.override_of(target)
        held = self.peer_overrides.setdefault(node, {})
        if override is Override.AUTO:
            held.pop(target, None)
            if not held:
                del self.peer_overrides[node]
        else:
            held[target] = override
        return self._override_changed(target, before)

    def _override_changed(self, target: str, before: Override) -> Override | None:
        after = self.override_of(target)
        self._refresh(target)
        return None if after is before else after

    def update(self, target: str, local: State) -> State | None:
        """Record ``target``'s local verdict; return the new decision if it changed, else None."""
        self.local[target] = local
        return self._decide(target)

    def peer_vote(self, node: str, target: str, state: State) -> State | None:
        """Record a live peer's verdict; return the new decision of ``target`` if it changed.

        The cluster layer only passes votes of live peers for targets this agent
        watches (see :mod:`goavail.cluster.service`); a vote for another target would
        be kept but decide nothing.
        """
        self.peers.setdefault(node, {})[target] = state
        return self._decide(target)

    def drop_vote(self, node: str, target: str) -> State | None:
        """Forget one stale vote (the peer stopped announcing it); return a changed decision."""
        self.peer_override(node, target, Override.AUTO)  # its override lapses with the vote
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
        for target in list(self.peer_overrides.get(node, {})):
            self.peer_override(node, target, Override.AUTO)  # overrides lapse with their holder
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

        A target under an override (:meth:`override_of` not ``auto``) is always
        backed: an override is an operator's order, not a vote, and every agent
        honours it.
        """
        if self.override_of(target) is not Override.AUTO:
            return target in self.effective
        return backed(
            self.decisions.get(target, State.UNKNOWN),
            self.local.get(target, State.UNKNOWN),
            self.votes_for(target).values(),
            self.min_peers_agree,
        )

    def writer(self, self_node: str, target: str) -> str:
        """The node that applies a change of ``target`` (see :func:`designated_writer`).

        Under an override every live agent agrees (all honour it), so the lowest
        node name of this agent and all live peers writes.
        """
        if self.override_of(target) is not Override.AUTO:
            return min([self_node, *self.peers])
        decision = self.effective.get(target, State.UNKNOWN)
        return designated_writer(self_node, decision, self.votes_for(target))

    def writer_rank(self, self_node: str, target: str) -> int:
        """This agent's place in the takeover order of a change of ``target`` (see
        :func:`writer_rank`; under an override, among this agent and all live peers)."""
        if self.override_of(target) is not Override.AUTO:
            return sum(1 for node in self.peers if node < self_node)
        decision = self.effective.get(target, State.UNKNOWN)
        return writer_rank(self_node, decision, self.votes_for(target))

    def quorum_unmet(self) -> bool:
        """True when fewer live peers exist than ``min_peers_agree``: no decision can change."""
        return len(self.peers) < self.min_peers_agree

    def forget(self, target: str) -> None:
        """Drop a target removed from the configuration, with every peer's vote and
        override of it (peers announce them again if a reload adds it back). This
        agent's own override is kept: the overrides file still names it."""
        self.decisions.pop(target, None)
        self.local.pop(target, None)
        self.effective.pop(target, None)
        self.forced.pop(target, None)
        for votes in self.peers.values():
            votes.pop(target, None)
        for node in [n for n, held in self.peer_overrides.items() if target in held]:
            held = self.peer_overrides[node]
            del held[target]
            if not held:
                del self.peer_overrides[node]
