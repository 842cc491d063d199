"""``[Members]``: the cluster (peers, Serf, the gossip key, quorum)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from goavail.config.errors import _Problems
from goavail.config.values import _MODEL_CONFIG, Duration, Within, _check_label, _HostPort, _Port


class Members(BaseModel):
    """``[Members]``: cluster mode (peers and their agreement).

    The original's keys keep their meaning; the port in ``peers`` and
    ``local_addr`` was the Go original's update port and is not used: Serf
    binds the host of ``local_addr`` on ``members_port`` and joins the host of
    every peer on ``members_port``.

    Attributes:
        peers: peer agents, each ``"host:port"``.
        local_addr: ``"host:port"`` whose host Serf binds and advertises, or None
            (bind 0.0.0.0).
        members_port: gossip (Serf) port, 1-65535, default 7946.
        sync_port: TCP port of the verdict sync endpoint (peers pull votes from it,
            see :mod:`goavail.cluster.sync`); None: ``members_port + 1`` (7947).
        min_peers_agree: live peers that must agree before a change (0: the local
            verdict alone decides). More than 0 needs ``peers`` or ``serf_rpc_addr``
            (validation error otherwise: no peer could ever agree).
        crypto_key: the AES key as configured (raw text or ``"base64:..."``);
            use :meth:`key_bytes` for the key itself.
        cluster_name: prefix of the verdict event name (``<name>-goavail-verdict``)
            so several goavail clusters can share one Serf cluster.
        gossip_key: Serf's own gossip encryption key (base64 of 16, 24 or 32 bytes).
        serf_rpc_addr: ``"host:port"`` of an existing Serf agent's RPC (its auth
            key from the ``SERF_RPC_AUTH`` environment variable); None: goavail
            starts and supervises its own ``serf agent``.
        serf_binary: the Serf executable (default ``serf``).
        serf_profile: Serf timing profile, ``lan`` (default), ``wan`` or ``local``.
        announce_interval: seconds between re-announcements of all verdicts (1-3600).
        max_clock_skew: seconds a verdict's issue time may differ from ours (1-600).
        writer_grace: seconds an agreeing agent that is not the designated writer
            waits before it applies a change itself (the writer may be dead; 0.5-600).

    Every duration and count carries its range and the reasons for it (:class:`Within`).
    """

    model_config = _MODEL_CONFIG

    peers: list[_HostPort] = Field(default_factory=list)
    local_addr: _HostPort | None = None
    members_port: _Port = 7946
    sync_port: _Port | None = None
    min_peers_agree: Annotated[
        int,
        Within(
            0,
            1000,
            below="0 is single-node mode, a count is not negative",
            above="a quorum that large is never met in practice (every agent probes every "
            "target), so DNS would never change",
            duration=False,
        ),
    ] = 0
    crypto_key: SecretStr | None = None
    cluster_name: Annotated[str, AfterValidator(_check_label)] | None = None
    gossip_key: SecretStr | None = None
    serf_rpc_addr: _HostPort | None = None
    serf_binary: Annotated[str, Field(min_length=1)] = "serf"
    serf_profile: Literal["lan", "wan", "local"] = "lan"
    announce_interval: Annotated[
        Duration,
        Within(
            1.0,
            3600.0,
            below="shorter makes every agent send a notice (and its peers check it) more "
            "than once a second for nothing",
            above="longer leaves a lost notice unrepaired, and a silent peer's votes kept "
            "(3 intervals), for hours",
        ),
    ] = 10.0
    max_clock_skew: Annotated[
        Duration,
        Within(
            1.0,
            600.0,
            below="shorter rejects notices over ordinary clock drift and gossip delay",
            above="longer accepts notices and pulls sealed that long ago, which only a "
            "broken clock needs",
        ),
    ] = 30.0
    writer_grace: Annotated[
        Duration,
        Within(
            0.5,
            600.0,
            below="shorter makes every agreeing agent write at once, defeating the "
            "designated writer",
            above="longer leaves a decided change unwritten that long when the writer is dead",
        ),
    ] = 5.0

    @field_validator("gossip_key")
    @classmethod
    def _check_gossip_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                key = base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64 (as `serf keygen` prints)") from None
            if len(key) not in (16, 24, 32):
                raise ValueError(f"must decode to 16, 24 or 32 bytes, not {len(key)}")
        return value

    @field_validator("crypto_key")
    @classmethod
    def _check_crypto_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _decode_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _sync_port_free(self) -> Members:
        if self.sync_port is None and self.members_port == 65535:
            raise _Problems(
                [
                    (
                        ("sync_port",),
                        "must be set when members_port is 65535 (default: members_port + 1)",
                    )
                ]
            )
        if self.sync_port_number == self.members_port:
            raise _Problems(
                [
                    (
                        ("sync_port",),
                        "must differ from members_port: Serf uses that port over TCP too",
                    )
                ]
            )
        return self

    @property
    def sync_port_number(self) -> int:
        """The sync port in force: ``sync_port``, or ``members_port + 1``."""
        return self.sync_port if self.sync_port is not None else self.members_port + 1

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Members:
        if self.min_peers_agree > 0 and not self.cluster_mode:
            raise _Problems(
                [
                    (
                        ("min_peers_agree",),
                        f"{self.min_peers_agree} needs peers: with no peers (and no "
                        "serf_rpc_addr) no other agent can ever agree, so no DNS change "
                        "could ever be made; list the other agents in peers, or set "
                        "min_peers_agree = 0 to run this agent as a single node",
                    )
                ]
            )
        return self

    @property
    def cluster_mode(self) -> bool:
        """True when this section puts the agent in cluster mode (Serf, gossip).

        The rule: ``peers`` is not empty, or ``serf_rpc_addr`` names an existing Serf
        agent (which does its own joining). A ``[Members]`` section with neither runs
        the agent as a single node, with no Serf at all, whatever else it holds
        (``local_addr``, ``crypto_key``...), as the Go original does with such files;
        validation has already refused ``min_peers_agree > 0`` then.
        """
        return bool(self.peers) or self.serf_rpc_addr is not None

    def key_bytes(self) -> bytes | None:
        """The AES key (16, 24 or 32 bytes), or None when ``crypto_key`` is not set."""
        if self.crypto_key is None:
            return None
        return _decode_key(self.crypto_key.get_secret_value())


def cluster_mode(members: Members | None) -> bool:
    """True when the agent runs in cluster mode: a ``[Members]`` section whose
    :attr:`Members.cluster_mode` holds (peers, or an external Serf agent)."""
    return members is not None and members.cluster_mode


def _decode_key(text: str) -> bytes:
    """Decode a crypto_key; error messages never contain the key."""
    if text.startswith("base64:"):
        try:
            key = base64.b64decode(text.removeprefix("base64:"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the text after 'base64:' is not valid base64") from None
        what = "the decoded key"
    else:
        key = text.encode("utf-8")
        what = "the key"
    if len(key) not in (16, 24, 32):
        raise ValueError(
            f"must be an AES key of 16, 24 or 32 bytes ({what} has {len(key)} bytes); "
            "give it as raw text or as 'base64:...'"
        )
    return key
