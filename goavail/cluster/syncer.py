"""Verdict sync v2 at the I/O edge: notices out and in, pulls, the sync endpoint, votes.

:class:`VerdictSync` keeps this agent's :class:`~goavail.cluster.sync.LocalVector`
and one :class:`~goavail.cluster.sync.PeerVector` per live peer, and feeds the
peers' votes and overrides into the :class:`~goavail.decision.DecisionStage`.
The cluster service (:mod:`goavail.cluster.service`) owns Serf and membership
and calls in here; see :mod:`goavail.cluster.sync` for the protocol.

Timing:

* a local transition is committed and noticed after ``batch_window`` seconds
  (50 ms), so a burst of transitions is one version and one notice;
* a notice is also sent every ``announce_interval`` (anti-entropy): a lost
  notice or a failed pull is repaired within one interval;
* a notice that announces something this agent does not hold starts a pull at
  once (one in flight per peer; a newer notice during a pull pulls again after
  it); a failed pull is retried after 0.5, 1, 2 ... seconds, at most one
  announce interval;
* a live peer not heard from (no accepted notice, no successful pull) for
  ``VOTE_LIFETIME`` announce intervals loses its votes until it is heard again.

Freshness: while a live peer has announced a vector this agent has not pulled
yet (or has not been pulled at all since it joined), this agent's view of the
votes is stale (:meth:`VerdictSync.behind`); the agent holds its deletes until
the pull lands (``on_caught_up``), so a delete is never made from a peer's
old "down" vote that the peer has already replaced. The wait is bounded: a peer
whose pulls keep failing is expired after ``VOTE_LIFETIME`` intervals and no
longer counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field

from goavail.cluster.sync import (
    PULL_NONCE_BYTES,
    LocalVector,
    Notice,
    PeerVector,
    PullRequest,
    Sealer,
    StateReply,
    code_override,
    code_state,
    entry_code,
)
from goavail.cluster.syncnet import SyncClient, SyncError, SyncRefused
from goavail.cluster.wire import WireError
from goavail.decision import DecisionStage, Override
from goavail.firstlines import LineBudget, describe
from goavail.health import State

log = logging.getLogger("goavail.cluster")

VOTE_LIFETIME = 3
"""A live peer not heard from for this many announce intervals loses its votes."""
BATCH_WINDOW = 0.05
"""Seconds a local transition waits so that a burst becomes one version (and one notice)."""

_STATES = {"unknown": State.UNKNOWN, "up": State.UP, "down": State.DOWN}
_OVERRIDES = {"auto": Override.AUTO, "up": Override.UP, "down": Override.DOWN}


@dataclass(slots=True)
class _Peer:
    vector: PeerVector = field(default_factory=PeerVector)
    heard: float = 0.0
    port: int | None = None
    wanted: Notice | None = None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    expired: bool = False


class VerdictSync:
    """This agent's side of verdict sync v2.

    Args:
        node: this agent's node name.
        sealer: seals and opens sync messages (the cluster's key and name).
        stage: the decision stage (local verdicts and overrides read, peers' fed in).
        targets: returns the configured targets, a live container (peers' entries
            for others are dropped).
        port: this agent's sync port (announced in notices).
        announce_interval: seconds between periodic notices.
        max_clock_skew: seconds a notice or pull may be off this agent's clock.
        address_of: node -> the address Serf advertises for it (None: not a member).
        is_live: node -> True while Serf says it is alive.
        send: ``await send(payload)`` publishes a notice as a Serf user event.
        on_decision: ``(target, state)`` when a peer's vote changes a decision.
        on_override: ``(node, target, previous, override)`` when a peer's override changes.
        counters: the cluster's counters ("accepted", "rejected_<reason>",
            "published", "publish_failed", "pulls", "pull_failed", "pulls_served").
        clock: Unix seconds (wall clock: notices carry issue times).
        monotonic: seconds for timeouts and liveness.
        client: the pull client (tests pass one that reaches their servers).
        on_caught_up: called (no arguments) when a pull leaves this agent with no
            stale peer view (:meth:`behind` empty); must return at once.
    """

    def __init__(
        self,
        *,
        node: str,
        sealer: Sealer,
        stage: DecisionStage,
        targets: Callable[[], Container[str]],
        port: int,
        announce_interval: float,
        max_clock_skew: float,
        address_of: Callable[[str], str | None],
        is_live: Callable[[str], bool],
        send: Callable[[bytes], Awaitable[None]],
        on_decision: Callable[[str, State], None],
        on_override: Callable[[str, str, Override, Override], None] | None = None,
        counters: Counter[str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        client: SyncClient | None = None,
        on_caught_up: Callable[[], None] | None = None,
    ) -> None:
        self.node = node
        self.on_caught_up = on_caught_up
        self.sealer = sealer
        self.stage = stage
        self._targets = targets
        self.port = port
        self.announce_interval = announce_interval
        self.max_clock_skew = max_clock_skew
        self._address_of = address_of
        self._is_live = is_live
        self._send = send
        self._on_decision = on_decision
        self._on_override = on_override
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._clock = clock
        self._monotonic = monotonic
        self._first_votes = LineBudget()
        """Peers' first votes: one line each for a few targets, a summary per pull for
        more (see :mod:`goavail.firstlines`)."""
        self.client = client or SyncClient(timeout=min(5.0, max(1.0, announce_interval)))
        self.vector = LocalVector(time.time_ns() // 1000)
        self.peers: dict[str, _Peer] = {}
        self._commit: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- this agent's verdicts ---------------------------------------------------------

    def local_changed(self, target: str) -> None:
        """This agent's verdict or override of ``target`` changed: publish it soon.

        Reads the stage (local verdict, own override); never blocks.
        """
        state = self.stage.local.get(target, State.UNKNOWN)
        override = self.stage.overrides.get(target, Override.AUTO)
        if not self.vector.set(target, entry_code(state.value, override.value)):
            return
        if self._commit is None:
            loop = asyncio.get_running_loop()
            self._commit = loop.call_later(BATCH_WINDOW, self._commit_now)

    def _commit_now(self) -> None:
        self._commit = None
        if self.vector.commit():
            self.notify()

    def notify(self) -> None:
        """Send a notice now, in the background."""
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notice(self) -> Notice:
        """The notice of the committed vector."""
        return Notice(
            self.node,
            self.vector.epoch,
            self.vector.version,
            self.vector.digest(),
            self.port,
            self._clock(),
        )

    async def _notify(self) -> None:
        payload = self.notice().seal(self.sealer)
        pushes = [
            self._push(node, address, peer.port, payload)
            for node, peer in self.peers.items()
            if peer.port is not None
            and self._is_live(node)
            and (address := self._address_of(node)) is not None
        ]
        try:
            await self._send(payload)
        except Exception as exc:  # Serf down, a refused event: the next notice repeats it
            self.counters["publish_failed"] += 1
            log.warning("cannot send a verdict notice: %s", exc)
        else:
            self.counters["published"] += 1
        if pushes:
            await asyncio.gather(*pushes)

    async def _push(self, node: str, address: str, port: int, payload: bytes) -> None:
        """The notice straight to one live peer's sync port too: it does not wait for
        Serf's gossip to reach it (a hint like the Serf event; votes still come from a
        pull). A failure is only counted: the Serf event and the next notice remain."""
        try:
            await self.client.push(address, port, payload)
        except SyncError as exc:
            self.counters["push_failed"] += 1
            log.debug("cannot push a notice to %s: %s", node, exc)
        else:
            self.counters["pushed"] += 1

    def forget(self, target: str) -> None:
        """A reload removed ``target``: withdraw this agent's entry for it (published
        with the next batch) and drop every peer's."""
        if self.vector.set(target, 0) and self._commit is None:
            self._commit = asyncio.get_running_loop().call_later(BATCH_WINDOW, self._commit_now)
        for node, peer in self.peers.items():
            if peer.vector.codes is not None and peer.vector.codes.pop(target, None) is not None:
                self._drop(node, target)

    def targets_added(self) -> None:
        """A reload added targets: peers' entries for them were dropped when pulled, so
        the next notice of every peer pulls its whole vector again."""
        for peer in self.peers.values():
            peer.vector.version = 0

    # -- notices in --------------------------------------------------------------------

    def on_notice(self, payload: bytes) -> None:
        """A notice arrived as a Serf user event: check it, and pull if it is news."""
        try:
            notice = Notice.open(self.sealer, payload)
        except WireError as exc:
            self._reject(exc.reason)
            return
        if notice.node == self.node:
            return  # our own, echoed by Serf
        if not abs(self._clock() - notice.issued_at) <= self.max_clock_skew:
            self._reject("skew")
            return
        if not self._is_live(notice.node):
            self._reject("not_member")  # nothing recorded for non-members
            return
        peer = self.peers.setdefault(notice.node, _Peer())
        held = peer.vector
        if held.codes is not None and (notice.epoch, notice.version) < (held.epoch, held.version):
            # older than what we hold: a captured notice replayed, or (far more often) one
            # overtaken by a newer notice or a pull; harmless either way, so counted quietly
            self._reject("replay", quiet=True)
            return
        peer.port = notice.port
        self.counters["accepted"] += 1
        if peer.vector.current(notice):
            self._heard(notice.node, peer)
            return
        peer.wanted = notice
        self._start_pull(notice.node, peer)

    def _reject(self, reason: str, *, quiet: bool = False) -> None:
        key = f"rejected_{reason}"
        self.counters[key] += 1
        count = self.counters[key]
        if not quiet and (count == 1 or count % 100 == 0):  # loud once, then every hundred
            log.warning("gossip message rejected (%s), %d so far", reason, count)
        else:
            log.debug("gossip message rejected (%s), %d so far", reason, count)

    def _heard(self, node: str, peer: _Peer) -> None:
        peer.heard = self._monotonic()
        if peer.expired:
            peer.expired = False
            log.info("peer %s heard again: its votes count again", node)

    # -- pulls -------------------------------------------------------------------------

    def _start_pull(self, node: str, peer: _Peer) -> None:
        if peer.task is not None and not peer.task.done():
            return  # the running pull looks at peer.wanted again when it ends
        peer.task = asyncio.get_running_loop().create_task(self._pull_loop(node, peer))

    async def _pull_loop(self, node: str, peer: _Peer) -> None:
        while peer.wanted is not None and self.peers.get(node) is peer:
            wanted = peer.wanted
            ok = await self.pull(node, peer)
            if not self._is_live(node) or self.peers.get(node) is not peer:
                return
            if ok:
                peer.failures = 0
                if peer.wanted is wanted or peer.vector.current(peer.wanted):
                    peer.wanted = None
                    self._caught_up()
            else:
                peer.failures += 1
                await asyncio.sleep(min(0.5 * 2 ** (peer.failures - 1), self.announce_interval))

    async def pull(self, node: str, peer: _Peer | None = None) -> bool:
        """Pull ``node``'s vector from the address Serf advertises for it.

        Returns True when a genuine reply was applied. Never raises (failures are
        logged and counted as ``pull_failed``; a reply from anyone but ``node``,
        or without our nonce, as ``rejected_identity``).
        """
        peer = peer or self.peers.setdefault(node, _Peer())
        address = self._address_of(node)
        if address is None or peer.port is None:
            return False
        nonce = os.urandom(PULL_NONCE_BYTES)
        request = PullRequest(
            self.node, nonce, peer.vector.epoch, peer.vector.version, self._clock()
        )
        self.counters["pulls"] += 1
        try:
            data = await self.client.pull(address, peer.port, request.seal(self.sealer))
            reply = StateReply.open(self.sealer, data)
        except SyncError as exc:
            self.counters["pull_failed"] += 1
            # the first failure is often a start-up race (the peer does not list us as a
            # live member yet: 403); it is retried in 0.5 s, so only the fourth is a warning
            level = {0: logging.INFO, 3: logging.WARNING}.get(peer.failures, logging.DEBUG)
            log.log(level, "cannot pull verdicts from %s: %s", node, exc)
            return False
        except WireError as exc:
            self.counters["pull_failed"] += 1
            self._reject(exc.reason)
            return False
        if reply.node != node or reply.nonce != nonce:
            self.counters["pull_failed"] += 1
            self._reject("identity")
            log.warning(
                "a pull from %s at %s:%d was answered as %r%s: votes ignored (another key "
                "holder on that address?)",
                node,
                address,
                peer.port,
                reply.node,
                "" if reply.nonce == nonce else " without our nonce",
            )
            return False
        if self.peers.get(node) is not peer or not self._is_live(node):
            return False
        changed = peer.vector.apply(reply, self._targets())
        self._heard(node, peer)
        for target, code in changed.items():
            self._apply(node, target, code)
        tally = self._first_votes.summary()
        if tally is not None:
            log.info(
                "peer %s: first votes on %d more targets: %s (one line each at DEBUG)",
                node,
                tally.total,
                describe(tally),
                extra={"peer": node},
            )
        return True

    def answer(self, body: bytes, peer_ip: str) -> bytes:
        """The sync endpoint: a sealed pull request in, this agent's sealed reply out.

        Raises:
            SyncRefused: 400 for a message that does not open or is off the clock,
                403 when the requester is not a live member.
        """
        try:
            request = PullRequest.open(self.sealer, body)
        except WireError as exc:
            self._reject(exc.reason)
            raise SyncRefused(400, f"rejected: {exc.reason}") from None
        if not abs(self._clock() - request.issued_at) <= self.max_clock_skew:
            self._reject("skew")
            raise SyncRefused(400, "rejected: skew")
        if not self._is_live(request.node):
            self._reject("not_member")
            raise SyncRefused(403, "not a live member")
        self.counters["pulls_served"] += 1
        return self.vector.reply(self.node, request).seal(self.sealer)

    # -- votes -------------------------------------------------------------------------

    def _apply(self, node: str, target: str, code: int) -> None:
        state = _STATES[code_state(code)]
        override = _OVERRIDES[code_override(code)]
        before = self.stage.peers.get(node, {}).get(target)
        if state is State.UNKNOWN:
            changed = self.stage.drop_vote(node, target)
        else:
            changed = self.stage.peer_vote(node, target, state)
        if before is not (None if state is State.UNKNOWN else state):
            # a first vote (none held before) may be summarised; a change never is
            level = logging.INFO
            if before is None and not self._first_votes.take(self._monotonic(), str(state), target):
                level = logging.DEBUG
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "peer %s votes %s %s",
                    node,
                    target,
                    state,
                    extra={"target": target, "peer": node},
                )
        if changed is not None:
            self._on_decision(target, changed)
        held = self.stage.peer_overrides.get(node, {}).get(target, Override.AUTO)
        if override is not held:
            self.stage.peer_override(node, target, override)
            log.warning(
                "peer %s %s its override of %s (%s); honoured here too",
                node,
                "cleared" if override is Override.AUTO else "holds",
                target,
                override,
                extra={"target": target, "peer": node},
            )
            if self._on_override is not None:
                self._on_override(node, target, held, override)

    def _drop(self, node: str, target: str) -> None:
        held = self.stage.peer_overrides.get(node, {}).get(target, Override.AUTO)
        changed = self.stage.drop_vote(node, target)
        if changed is not None:
            self._on_decision(target, changed)
        if held is not Override.AUTO and self._on_override is not None:
            self._on_override(node, target, held, Override.AUTO)

    def peer_alive(self, node: str) -> None:
        """Serf says ``node`` is alive: tell it where we are (it pulls), expect its notice."""
        peer = self.peers.setdefault(node, _Peer())
        peer.heard = self._monotonic()
        self.notify()

    def peer_gone(self, node: str) -> None:
        """Serf says ``node`` failed or left: forget it (the stage drops its votes)."""
        peer = self.peers.pop(node, None)
        if peer is not None and peer.task is not None:
            peer.task.cancel()
        if peer is not None:
            self._caught_up()

    def behind(self) -> list[str]:
        """Live peers whose votes this agent does not hold up to date: they announced a
        vector not pulled yet, or none was pulled since they joined (node names, sorted).

        Peers whose votes expired (:meth:`expire`) are left out: their votes do not
        count, so they cannot be stale; this bounds how long a view stays behind.
        """
        return sorted(
            node
            for node, peer in self.peers.items()
            if not peer.expired
            and self._is_live(node)
            and (peer.wanted is not None or peer.vector.codes is None)
        )

    def silent(self) -> list[tuple[str, int | None]]:
        """Live peers whose votes were dropped because they were not heard from (no
        accepted notice, no successful pull for VOTE_LIFETIME intervals): (node, sync port)."""
        return sorted(
            (node, peer.port)
            for node, peer in self.peers.items()
            if peer.expired and self._is_live(node)
        )

    def expire(self) -> None:
        """Drop the votes of live peers not heard from for VOTE_LIFETIME intervals."""
        horizon = self._monotonic() - VOTE_LIFETIME * self.announce_interval
        expired = False
        for node, peer in self.peers.items():
            if peer.expired or peer.heard >= horizon:
                continue
            peer.expired = expired = True
            log.warning(
                "peer %s not heard from for %d announce intervals: its votes are dropped "
                "until it is (is its sync port %s reachable?)",
                node,
                VOTE_LIFETIME,
                peer.port,
            )
            for target in list(peer.vector.codes or ()):
                self._drop(node, target)
            peer.vector = PeerVector()  # the next notice pulls everything
        if expired:
            self._caught_up()

    def _caught_up(self) -> None:
        if self.on_caught_up is not None and not self.behind():
            self.on_caught_up()

    async def run(self) -> None:
        """Periodic notices and vote expiry, until cancelled."""
        try:
            while True:
                self.notify()
                await asyncio.sleep(self.announce_interval)
                self.expire()
        finally:
            if self._commit is not None:
                self._commit.cancel()
                self._commit = None
            for peer in self.peers.values():
                if peer.task is not None:
                    peer.task.cancel()
            await self.client.close()
