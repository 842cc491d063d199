"""Cluster mode: Serf for membership, verdict sync v2 for the votes.

I/O edge around the pure parts: :mod:`goavail.cluster.sync` (vectors, notices,
sealing) and :class:`goavail.decision.DecisionStage` (quorum). The flow:

* Serf (goavail's own supervised ``serf agent`` child, or an existing agent at
  ``serf_rpc_addr``) keeps the member list and detects failures; member events
  keep the set of live peers, and a peer that fails or leaves loses its votes at
  once;
* verdicts travel as :class:`~goavail.cluster.syncer.VerdictSync` does it: a
  small sealed *notice* (Serf user event ``goavail-sync``) after each batch of
  transitions and once per ``announce_interval``, and the votes themselves
  pulled over TCP from the address Serf advertises for the member that sent
  the notice. Steady-state cost: one notice per agent per interval, whatever
  the number of targets;
* a version-1 verdict (event ``goavail-verdict``, from an agent of an earlier
  release) is refused and counted (``rejected_legacy``) with a log line naming
  the fix: upgrade every agent.

What a peer sends can never grow this agent's state beyond *live members x
configured targets* entries: notices from non-members are dropped before
anything is recorded, entries for targets not configured here are dropped when
pulled, a departed peer's entries are pruned, and a reload that removes a target
prunes it too (:meth:`Cluster.forget_target`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final

from goavail.cluster.serf_agent import NameConflict, SerfAgent, SyncPortError
from goavail.cluster.serf_rpc import MemberEvent, SerfError, SerfRPC, UserEvent
from goavail.cluster.sync import Sealer, sync_event_name
from goavail.cluster.syncer import VerdictSync
from goavail.cluster.syncnet import SyncServer
from goavail.cluster.wire import event_name
from goavail.config.members import Members
from goavail.config.values import split_host_port
from goavail.decision import DecisionStage, Override
from goavail.health import State

log = logging.getLogger("goavail.cluster")

STREAM_TYPES = "user,member-join,member-leave,member-failed,member-update,member-reap"
GONE = frozenset({"left", "failed", "leaving", "reap"})
"""Serf member statuses that mean "no longer votes"."""
GONE_EVENTS = frozenset({"member-leave", "member-failed", "member-reap"})
RPC_AUTH_ENV = "SERF_RPC_AUTH"
CLUSTER_REJECT_REASONS: Final = ("not_member", "identity", "legacy")
"""Rejection reasons of the cluster layer, counted like :data:`~goavail.cluster.wire.REJECT_REASONS`
(``rejected_<reason>``):

- ``not_member``: a notice or pull from a node that is not a live Serf member;
- ``identity``: a pull sent to member N's address was answered by another node,
  or without this pull's nonce (a key holder posing as N);
- ``legacy``: a version-1 verdict event from an agent of an earlier release.
"""


@dataclass(frozen=True, slots=True)
class SerfSettings:
    """How to reach Serf, derived from ``[Members]`` (see :func:`serf_settings`)."""

    bind: str
    advertise: str | None
    join: tuple[str, ...]
    rpc_addr: str | None
    gossip_key: str | None


def serf_settings(members: Members) -> SerfSettings:
    """Serf addresses from ``[Members]``: bind/advertise the host of ``local_addr`` and join
    the host of every peer, all on ``members_port`` (the ports written in ``peers`` and
    ``local_addr`` were the Go original's update port)."""
    port = members.members_port
    host = split_host_port(members.local_addr)[0] if members.local_addr else None
    join = tuple(_host_port(split_host_port(peer)[0], port) for peer in members.peers)
    return SerfSettings(
        bind=_host_port(host or "0.0.0.0", port),
        advertise=_host_port(host, port) if host else None,
        join=join,
        rpc_addr=members.serf_rpc_addr,
        gossip_key=members.gossip_key.get_secret_value() if members.gossip_key else None,
    )


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_node_name(hostname: str, members: Members | None, source: str | None = None) -> str:
    """The node name of an agent whose config sets no ``node_name`` (pure).

    Two agents with one host name (containers or network namespaces sharing a UTS
    namespace, cloned VMs) must not share a Serf node name: Serf's name-conflict
    resolution would shut one of them down. So, in cluster mode, the host name is
    joined with the address Serf advertises, which no two members can share:

    - ``local_addr`` set: ``<hostname>@<host of local_addr>:<members_port>``
      (``<hostname>@[v6]:<port>`` for IPv6), e.g. ``web1@192.0.2.10:7946``;
    - no ``local_addr``: the same with ``source``, the local address this host uses to
      reach its first peer (see :func:`route_source`), when known;
    - otherwise the host name alone: single-node mode (no Serf), an external Serf agent
      (``serf_rpc_addr``: Serf's own default node name is the host name, and goavail's
      must be that agent's), or no source address found.

    An explicit ``node_name`` always wins (the caller only asks when there is none).
    """
    if members is None or not members.cluster_mode or members.serf_rpc_addr is not None:
        return hostname
    advertise = serf_settings(members).advertise
    if advertise is None and source is not None:
        advertise = _host_port(source, members.members_port)
    return hostname if advertise is None else f"{hostname}@{advertise}"


def route_source(members: Members) -> str | None:
    """The local address this host would use to reach its first reachable peer, or None.

    A connected UDP socket makes the kernel pick the route and the source address; no
    packet is sent. Peers given as names are resolved (blocking; called once at start-up).
    """
    for peer in members.peers:
        host = split_host_port(peer)[0]
        try:
            infos = socket.getaddrinfo(host, members.members_port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            continue
        for family, kind, proto, _, address in infos:
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.connect(address)
                    local: str = sock.getsockname()[0]
            except OSError:
                continue
            return local.split("%", 1)[0]  # no IPv6 scope id
    return None


class Cluster:
    """One agent's membership in the goavail cluster.

    Args:
        node: this agent's node name (also its Serf node name).
        members: the ``[Members]`` configuration.
        stage: the decision stage; peers' votes are fed into it.
        targets: returns the targets configured here (a live container, read for every
            pulled entry: keep ``in`` cheap); peers' entries for others are dropped.
        on_decision: called as ``on_decision(target, state)`` when a peer's vote
            (or its loss) changes a decision.
        on_override: called as ``on_override(node, target, previous, override)`` when
            the override peer ``node`` holds for ``target`` changes (``Override.AUTO``:
            cleared, or lapsed because the peer left, failed, or stopped announcing).
        clock: wall clock in Unix seconds (verdicts carry wall-clock issue times).
        on_quorum: see the ``on_quorum`` attribute (None: nobody is told).
        on_name_conflict: called as ``on_name_conflict(conflict)`` when goavail's own
            Serf child reports another member with this node's name (a
            :class:`~goavail.cluster.serf_agent.NameConflict`), and with None once
            resolved; must return at once (the notifier's hook).
        on_caught_up: called (no arguments) when this agent's view of every live peer's
            votes is current again (see :meth:`behind`); must return at once.

    Attributes:
        counters: messages by outcome: "published", "publish_failed" (notices),
            "accepted" (notices), "pulls", "pull_failed", "pulls_served", and
            "rejected_<reason>" for every :data:`goavail.cluster.wire.REJECT_REASONS`
            and :data:`CLUSTER_REJECT_REASONS` reason.
        sync: the verdict sync (this agent's vector, its peers' vectors).
        live: node names of live peers (this node excluded).
        member_status: every member Serf has reported (this node excluded) -> its latest
            Serf status ("alive", "failed", "left", "leaving", ...).
        connected: True while the RPC connection to Serf is up.
        name_conflict: the node-name conflict in force (goavail's own Serf child
            only), or None.
        name_conflicts: how many times Serf reported another member with this name.

    Each target's entry carries this agent's own override of it (``stage.overrides``),
    so peers honour it (see :mod:`goavail.decision`).
    """

    def __init__(
        self,
        *,
        node: str,
        members: Members,
        stage: DecisionStage,
        targets: Callable[[], Container[str]],
        on_decision: Callable[[str, State], None],
        on_override: Callable[[str, str, Override, Override], None] | None = None,
        clock: Callable[[], float] = time.time,
        on_quorum: Callable[[bool, int, int], None] | None = None,
        on_name_conflict: Callable[[NameConflict | None], None] | None = None,
        on_caught_up: Callable[[], None] | None = None,
    ) -> None:
        self.node = node
        self.members = members
        self.stage = stage
        self._targets = targets
        self._on_decision = on_decision
        self._on_override = on_override
        self._clock = clock
        self.event = sync_event_name(members.cluster_name)
        self.legacy_event = event_name(members.cluster_name)
        self.settings = serf_settings(members)
        self.counters: Counter[str] = Counter()
        self.live: set[str] = set()
        self.member_status: dict[str, str] = {}
        self.member_addr: dict[str, str] = {}
        self.connected = False
        self._rpc: SerfRPC | None = None
        self._serf: SerfAgent | None = None
        self._server: SyncServer | None = None
        self._legacy_logged = False
        self.sync = VerdictSync(
            node=node,
            sealer=Sealer(members.key_bytes(), self.event),
            stage=stage,
            targets=targets,
            port=members.sync_port_number,
            announce_interval=members.announce_interval,
            max_clock_skew=members.max_clock_skew,
            address_of=self.member_addr.get,
            is_live=self.live.__contains__,
            send=self._send_notice,
            on_decision=on_decision,
            on_override=on_override,
            counters=self.counters,
            clock=clock,
            on_caught_up=on_caught_up,
        )
        self._quorum_unmet: bool | None = None
        self._on_name_conflict = on_name_conflict
        self.on_quorum = on_quorum
        """Called with ``(unmet, live peers, min_peers_agree)`` on every membership
        change (the notifier times its quorum alert with it); must return at once."""

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start goavail's own Serf agent (unless ``serf_rpc_addr`` is set) and the verdict
        sync endpoint (on the host of ``local_addr``, or every address, at ``sync_port``).

        Raises:
            goavail.cluster.serf_agent.SerfAgentError: Serf is missing or does not start.
            goavail.cluster.serf_agent.SyncPortError: the sync port cannot be bound.
        """
        if self.codec_is_plaintext:
            log.warning(
                "CLUSTER MODE WITHOUT crypto_key: verdicts travel in plaintext and anyone "
                "who can reach Serf can forge them; set [Members] crypto_key"
            )
        if self.settings.rpc_addr is None:
            self._serf = SerfAgent(
                node_name=self.node,
                bind=self.settings.bind,
                advertise=self.settings.advertise,
                join=self.settings.join,
                gossip_key=self.settings.gossip_key,
                serf_binary=self.members.serf_binary,
                profile=self.members.serf_profile,
                on_name_conflict=self._name_conflict_changed,
            )
            await self._serf.start()
        host = self.settings.bind.rsplit(":", 1)[0].strip("[]")
        self._server = SyncServer(
            host, self.members.sync_port_number, self.sync.answer, notice=self.sync.on_notice
        )
        try:
            await self._server.start()
        except OSError as exc:
            if self._serf is not None:
                await self._serf.stop()
            raise SyncPortError(
                f"cannot listen on the sync port {host}:{self.members.sync_port_number} "
                f"(TCP): {exc.strerror or exc}; free it or set [Members] sync_port"
            ) from exc
        self._check_quorum()

    async def run(self) -> None:
        """Gossip until cancelled (after :meth:`start`); reconnects to Serf after losses."""
        async with asyncio.TaskGroup() as tg:
            if self._serf is not None:
                tg.create_task(self._serf.run(), name="serf-agent")
            tg.create_task(self.sync.run(), name="verdict-sync")
            tg.create_task(self._connection_loop(), name="serf-stream")

    async def stop(self) -> None:
        """Stop gossiping. goavail's own Serf child leaves the cluster (peers see "left",
        not "failed") and stops; an external agent (``serf_rpc_addr``) is not ours to stop:
        it keeps running, and peers drop this agent's votes when they expire."""
        rpc, self._rpc = self._rpc, None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._serf is not None:
            await self._serf.stop()  # sends leave itself
        if rpc is not None:
            with contextlib.suppress(SerfError, OSError):
                await rpc.close()

    @property
    def name_conflict(self) -> NameConflict | None:
        """The node-name conflict in force (goavail's own Serf child only), or None."""
        return None if self._serf is None else self._serf.name_conflict

    @property
    def name_conflicts(self) -> int:
        """How many times Serf reported another member with this node's name."""
        return 0 if self._serf is None else self._serf.name_conflicts

    def _name_conflict_changed(self, conflict: NameConflict | None) -> None:
        if self._on_name_conflict is not None:
            self._on_name_conflict(conflict)
        self._check_quorum()

    @property
    def codec_is_plaintext(self) -> bool:
        """True when no crypto_key is configured."""
        return self.members.crypto_key is None

    def _rpc_endpoint(self) -> tuple[str, int, str | None]:
        if self._serf is not None:
            return self._serf.rpc_host, self._serf.rpc_port, self._serf.rpc_auth
        assert self.settings.rpc_addr is not None
        host, port = split_host_port(self.settings.rpc_addr)
        return host, port, os.environ.get(RPC_AUTH_ENV)

    async def _connection_loop(self) -> None:
        delay = 0.5
        while True:
            host, port, auth = self._rpc_endpoint()
            try:
                rpc = await SerfRPC.connect(host, port, auth)
            except (SerfError, OSError) as exc:  # refused, auth errors: retry, never crash
                log.warning(
                    "cannot reach Serf RPC at %s:%d: %s; retrying in %.1fs", host, port, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            self._rpc = rpc
            self.connected = True
            try:
                # Subscribe first, then read the member list: a peer joining in between
                # is then seen by one or the other (handling a join twice is harmless).
                stream = await rpc.stream(STREAM_TYPES)
                await self._sync_members(rpc)
                self.sync.notify()
                async for event in stream:
                    if isinstance(event, UserEvent):
                        self._on_user_event(event)
                    elif isinstance(event, MemberEvent):
                        self._on_member_event(event)
            except (SerfError, OSError) as exc:  # connection lost: reconnect
                log.warning("Serf RPC connection lost: %s; reconnecting", exc)
            finally:
                self.connected = False
                self._rpc = None
                with contextlib.suppress(SerfError, OSError):
                    await rpc.close()
            await asyncio.sleep(delay)

    # -- membership -----------------------------------------------------------------

    async def _sync_members(self, rpc: SerfRPC) -> None:
        listed = await rpc.members()
        if self._serf is None and self.node not in {m.name for m in listed}:
            log.error(
                "node_name %r is not a member of the Serf cluster behind serf_rpc_addr: set "
                "node_name to that Serf agent's node name, or this agent's own Serf member "
                "is taken for a peer",
                self.node,
            )
        self.member_status = {m.name: m.status for m in listed if m.name != self.node}
        self.member_addr.clear()
        self.member_addr.update({m.name: m.addr for m in listed if m.name != self.node})
        alive = {m.name for m in listed if m.status == "alive"} - {self.node}
        for node in alive - self.live:
            self._peer_alive(node)
        for node in self.live - alive:
            self._peer_gone(node, "not alive in Serf's member list")

    def _on_member_event(self, event: MemberEvent) -> None:
        for member in event.members:
            if member.name == self.node:
                continue
            self.member_status[member.name] = member.status
            self.member_addr[member.name] = member.addr
            alive = member.status == "alive" and event.event in ("member-join", "member-update")
            if alive and member.name not in self.live:
                self._peer_alive(member.name)
            elif (
                not alive
                and member.name in self.live
                and (member.status in GONE or event.event in GONE_EVENTS)
            ):
                self._peer_gone(member.name, event.event)

    def _peer_alive(self, node: str) -> None:
        self.live.add(node)
        self.stage.peer_alive(node)
        log.info("peer %s joined (%d live peers)", node, len(self.live))
        self._check_quorum()
        self.sync.peer_alive(node)  # a notice at once: the late joiner pulls our verdicts

    def _peer_gone(self, node: str, why: str) -> None:
        self.live.discard(node)
        self.sync.peer_gone(node)
        overridden = dict(self.stage.peer_overrides.get(node, {}))
        changed = self.stage.peer_gone(node)
        log.warning(
            "peer %s gone (%s): its votes are dropped (%d live peers)", node, why, len(self.live)
        )
        for target, state in changed.items():
            self._on_decision(target, state)
        for target, held in overridden.items():
            log.warning("override of %s held by %s lapsed: %s is gone", target, node, node)
            self._override_changed(node, target, held, Override.AUTO)
        self._check_quorum()

    def _check_quorum(self) -> None:
        unmet = self.stage.quorum_unmet()
        if unmet != self._quorum_unmet:
            self._quorum_unmet = unmet
            if unmet:
                conflict = self.name_conflict
                log.warning(
                    "QUORUM UNMET: %d live peer(s), min_peers_agree = %d: no DNS change "
                    "can be made until more peers are alive%s",
                    len(self.live),
                    self.stage.min_peers_agree,
                    f" (node name {self.node!r} is also used by the member at "
                    f"{conflict.other}: see the NODE NAME CONFLICT error)"
                    if conflict is not None
                    else "",
                )
            else:
                log.info("quorum possible again: %d live peer(s)", len(self.live))
        if self.on_quorum is not None:
            self.on_quorum(unmet, len(self.live), self.stage.min_peers_agree)

    @property
    def quorum_unmet(self) -> bool:
        """True when fewer peers are alive than ``min_peers_agree``."""
        return self.stage.quorum_unmet()

    # -- verdicts in and out -------------------------------------------------------

    def _on_user_event(self, event: UserEvent) -> None:
        if event.name == self.event:
            self.sync.on_notice(event.payload)
        elif event.name == self.legacy_event:
            self.counters["rejected_legacy"] += 1
            if not self._legacy_logged:
                self._legacy_logged = True
                log.error(
                    "a goavail agent of an earlier release (one Serf event per verdict, %s) is "
                    "in the cluster: its votes are not counted here, nor ours there; upgrade "
                    'every agent (counted as goavail_gossip_messages_total{reason="legacy"})',
                    self.legacy_event,
                )
        # any other event belongs to another application (or cluster)

    def _override_changed(
        self, node: str, target: str, previous: Override, override: Override
    ) -> None:
        if self._on_override is not None:
            self._on_override(node, target, previous, override)

    def behind(self) -> list[str]:
        """Live peers whose latest announced votes are not pulled yet (sorted node names);
        empty when this agent's view of the cluster is current (see
        :meth:`goavail.cluster.syncer.VerdictSync.behind`)."""
        return self.sync.behind()

    def describe_votes(self, target: str) -> str:
        """``"self=down b=down c=up"``: this agent's and every live peer's vote for ``target``."""
        local = self.stage.local.get(target, State.UNKNOWN)
        votes = " ".join(f"{n}={s}" for n, s in self.stage.votes_for(target).items())
        return f"{self.node}(self)={local}" + (f" {votes}" if votes else "")

    def forget_target(self, target: str) -> None:
        """A reload removed ``target``: drop this agent's entry and every peer's for it.
        Call it after the target left the ``targets`` container and
        :meth:`DecisionStage.forget`."""
        self.sync.forget(target)

    def targets_added(self) -> None:
        """A reload added targets: peers' votes for them are pulled again (with their
        next notice, within one announce interval)."""
        self.sync.targets_added()

    def publish(self, target: str, state: State) -> None:
        """This agent's verdict (or own override) of ``target`` changed: publish it with
        the next batch (see :class:`~goavail.cluster.syncer.VerdictSync`). Never blocks."""
        self.sync.local_changed(target)

    async def _send_notice(self, payload: bytes) -> None:
        rpc = self._rpc
        if rpc is None:
            raise SerfError("not connected to Serf")  # the next periodic notice repeats it
        await rpc.user_event(self.event, payload, coalesce=False)
