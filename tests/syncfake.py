"""Peers for the cluster layer's tests without a network: a pull to a peer's address is
answered from that peer's own :class:`~goavail.cluster.sync.LocalVector`."""

from __future__ import annotations

from goavail.cluster.serf_rpc import UserEvent
from goavail.cluster.service import Cluster
from goavail.cluster.sync import LocalVector, Notice, PullRequest, Sealer, entry_code
from goavail.cluster.syncnet import SyncClient, SyncError


def address(node: str) -> str:
    """The address a fake peer answers on (what its Serf member entry must carry)."""
    return f"198.51.100.{sum(map(ord, node)) % 250 + 1}"


class Peers(SyncClient):
    """Stands in for the network and the peers' agents.

    Args:
        key: the cluster's ``crypto_key`` (None: plaintext).
        event: the cluster's notice event name.
    """

    def __init__(self, key: bytes | None, event: str) -> None:
        super().__init__()
        self.sealer = Sealer(key, event)
        self.vectors: dict[str, LocalVector] = {}
        self.by_address: dict[str, str] = {}
        self.pulls = 0
        self.pushed: list[tuple[str, int]] = []

    def peer(self, node: str) -> LocalVector:
        """``node``'s verdict vector (made on first use)."""
        if node not in self.vectors:
            self.vectors[node] = LocalVector(epoch=len(self.vectors) + 1)
            self.by_address[address(node)] = node
        return self.vectors[node]

    def vote(
        self, node: str, target: str, state: str, override: str = "auto", *, at: float
    ) -> Notice:
        """``node``'s vector now says ``state`` (and ``override``) for ``target``: its notice,
        issued at Unix time ``at``."""
        vector = self.peer(node)
        vector.set(target, entry_code(state, override))
        vector.commit()
        return Notice(node, vector.epoch, vector.version, vector.digest(), 7947, at)

    async def push(self, host: str, port: int, body: bytes) -> None:
        """Record a notice pushed to ``host:port`` (nothing is sent)."""
        self.pushed.append((host, port))

    async def pull(self, host: str, port: int, body: bytes) -> bytes:
        """Answer as the peer at ``host`` would (``SyncError`` for an unknown address)."""
        self.pulls += 1
        node = self.by_address.get(host)
        if node is None:
            raise SyncError(f"{host}:{port}: connection refused")
        request = PullRequest.open(self.sealer, body)
        return self.vectors[node].reply(node, request).seal(self.sealer)


def notice_event(notice: Notice, key: bytes | None, name: str) -> UserEvent:
    """``notice`` as the Serf user event ``name``, sealed with ``key``."""
    return UserEvent(name=name, payload=notice.seal(Sealer(key, name)), ltime=1, coalesce=False)


async def deliver(cluster: Cluster, event: UserEvent) -> None:
    """Hand ``event`` to ``cluster`` and wait for the pulls it starts."""
    cluster._on_user_event(event)
    for peer in list(cluster.sync.peers.values()):
        if peer.task is not None:
            await peer.task
