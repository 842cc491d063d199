"""Verdict sync, version 2: notices over Serf, state pulled from the peer itself (pure: no I/O).

Version 1 sent every verdict of every target as its own Serf user event and
re-announced all of them every ``announce_interval``: O(targets) events per
interval per agent. At 1,000 targets that flooded Serf's event buffer and lost a
quarter of the verdict changes (BENCHMARKS.md, the loss study). Version 2 costs
O(changes):

* Each agent keeps its **verdict vector** (:class:`LocalVector`): target ->
  a one-byte code (state and override), a **version** that grows by one per
  batch of changes, and an **epoch** (the agent's start time in microseconds; a
  restart starts a new epoch).
* A **notice** (:class:`Notice`) says "node N is at epoch E, version V, its
  vector's digest is D, pull from my sync port P". It is one small sealed Serf
  user event, sent after a batch of changes and once per ``announce_interval``
  (anti-entropy): O(changes + 1/interval), whatever the number of targets.
* A receiver whose copy of N's vector (:class:`PeerVector`) is not at (E, V, D)
  **pulls**: it connects to the address Serf gives for member N, at port P, and
  sends a sealed :class:`PullRequest` naming what it holds; N answers with a
  sealed :class:`StateReply` holding the changes since then (from a bounded log)
  or its whole vector.

Identity (issue 12, item 8): a notice names its sender inside the sealed body,
and any holder of ``crypto_key`` can seal one naming any node; so a notice is
only a hint. Votes come only from a reply to a pull that this agent sent to the
address Serf advertises for member N, that echoes this pull's fresh nonce and
names N. A key holder elsewhere in the network cannot answer on N's address, so
it can vote only as itself (what it can still do is listed in docs/cluster.md).

Wire: every message is ``version byte ‖ nonce (12) ‖ AES-GCM(body, aad)`` with
version ``0x02`` (``0x82 ‖ body`` in plaintext mode, without a key), the body a
msgpack array, the associated data the Serf event name plus ``/notice``,
``/pull`` or ``/state``, so a message of one kind never opens as another and a
message of one cluster never opens in another.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import os
import zlib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from goavail.cluster.wire import (
    KEY_SIZES,
    NONCE_BYTES,
    TAG_BYTES,
    UINT64_MAX,
    USER_EVENT_BUDGET,
    WireError,
)

SYNC_EVENT_BASE: Final = "goavail-sync"
"""Serf user-event name of notices when no ``cluster_name`` is configured."""

VERSION_SEALED: Final = 0x02
VERSION_PLAINTEXT: Final = 0x82
PULL_NONCE_BYTES: Final = 16
"""Bytes of the fresh random nonce a pull carries and its reply echoes."""
DIGEST_BYTES: Final = 8
"""Bytes of a vector digest (BLAKE2b): a mismatch is found with probability 1 - 2**-64."""
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
"""Largest sealed reply accepted, compressed (a 100,000-target IPv6 vector is ~1.7 MB raw)."""
MAX_ENTRIES: Final = 1_000_000
"""Most entries a reply may unpack to (a bound on memory, far above any configuration)."""

Kind = Literal["notice", "pull", "state"]

# -- one-byte codes of a target's entry ------------------------------------------------

STATE_CODES: Final = {"unknown": 0, "up": 1, "down": 2}
OVERRIDE_SHIFT: Final = 2
OVERRIDE_CODES: Final = {"auto": 0, "up": 1, "down": 2}
_V6_FLAG: Final = 0x80


def entry_code(state: str, override: str = "auto") -> int:
    """The one-byte code of a target's entry: ``state | override << 2``.

    Args:
        state: "unknown", "up" or "down".
        override: "auto", "up" or "down".

    Raises:
        KeyError: an unknown state or override.
    """
    return STATE_CODES[state] | OVERRIDE_CODES[override] << OVERRIDE_SHIFT


def code_state(code: int) -> str:
    """The state of a code: "unknown", "up" or "down"."""
    return ("unknown", "up", "down")[code & 0x3]


def code_override(code: int) -> str:
    """The override of a code: "auto", "up" or "down"."""
    return ("auto", "up", "down")[(code >> OVERRIDE_SHIFT) & 0x3]


def _valid_code(code: int) -> bool:
    return (code & 0x3) != 3 and ((code >> OVERRIDE_SHIFT) & 0x3) != 3 and code < 16


def pack_entries(entries: Iterable[tuple[str, int]]) -> bytes:
    """Pack ``(target, code)`` pairs: per entry one byte (code, 0x80 for IPv6) and the
    4 or 16 address bytes, the whole zlib-compressed (level 6).

    Raises:
        ValueError: a target is not an IP address or a code is invalid.
    """
    out = bytearray()
    for target, code in entries:
        if not _valid_code(code):
            raise ValueError(f"invalid entry code {code}")
        packed = ipaddress.ip_address(target).packed
        out.append(code | (_V6_FLAG if len(packed) == 16 else 0))
        out += packed
    return zlib.compress(bytes(out), 6)


def unpack_entries(blob: bytes) -> dict[str, int]:
    """Inverse of :func:`pack_entries`: target (canonical text) -> code.

    Raises:
        WireError: ``decode`` for anything malformed (bad zlib, truncated entry,
            invalid code, more than :data:`MAX_ENTRIES`, a target twice).
    """
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(blob, MAX_ENTRIES * 17)
        if inflater.unconsumed_tail or not inflater.eof:
            raise WireError("decode", "entries do not end where they should, or are too many")
    except zlib.error as exc:
        raise WireError("decode", f"entries are not zlib: {exc}") from None
    entries: dict[str, int] = {}
    i = 0
    while i < len(raw):
        head = raw[i]
        size = 16 if head & _V6_FLAG else 4
        code = head & ~_V6_FLAG
        if i + 1 + size > len(raw) or not _valid_code(code):
            raise WireError("decode", f"bad entry at byte {i}")
        target = str(ipaddress.ip_address(raw[i + 1 : i + 1 + size]))
        if target in entries:
            raise WireError("decode", f"{target} twice")
        entries[target] = code
        i += 1 + size
    return entries


_DIGEST_MOD = 1 << (8 * DIGEST_BYTES)


def entry_hash(target: str, code: int) -> int:
    """One entry's share of :func:`vector_digest`: its 8-byte BLAKE2b (over the address
    length, the code and the packed address) as an unsigned integer; 0 for code 0."""
    if code == 0:
        return 0
    packed = ipaddress.ip_address(target).packed
    h = hashlib.blake2b(bytes((len(packed), code)) + packed, digest_size=DIGEST_BYTES)
    return int.from_bytes(h.digest(), "big")


def vector_digest(vector: Mapping[str, int]) -> bytes:
    """A digest of a verdict vector: the sum, modulo 2**64, of :func:`entry_hash` over its
    entries other than unknown-and-auto (code 0), as 8 bytes big-endian. Two vectors that
    mean the same votes have the same digest, whatever their history and order; and a
    sum can be kept up to date per change (:class:`LocalVector` does: O(changes) per
    version, not O(targets)). Only its sender computes it: a receiver compares the
    digest of a notice with the one of the reply it pulled (the additive construction of
    X. Bellare and D. Micciancio, "A New Paradigm for Collision-Free Hashing:
    Incrementality at Reduced Cost", EUROCRYPT 1997; here it only detects divergence,
    the messages themselves are sealed)."""
    total = sum(entry_hash(t, c) for t, c in vector.items()) % _DIGEST_MOD
    return total.to_bytes(DIGEST_BYTES, "big")


# -- sealing ---------------------------------------------------------------------------


def sync_event_name(cluster_name: str | None) -> str:
    """Serf user-event name of notices: ``goavail-sync`` or ``<cluster_name>-goavail-sync``."""
    return f"{cluster_name}-{SYNC_EVENT_BASE}" if cluster_name else SYNC_EVENT_BASE


class Sealer:
    """Seals and opens sync messages for one cluster.

    Args:
        key: ``crypto_key`` (16, 24 or 32 bytes) or None for plaintext mode.
        event: the notice event name (:func:`sync_event_name`); with the kind it
            forms the GCM associated data.

    Raises:
        ValueError: a key of another length (the message never shows the key).
    """

    __slots__ = ("_aead", "_event")

    def __init__(self, key: bytes | None, event: str) -> None:
        if key is not None and len(key) not in KEY_SIZES:
            raise ValueError(f"crypto_key must be 16, 24 or 32 bytes long, not {len(key)}")
        self._aead = AESGCM(key) if key is not None else None
        self._event = event

    @property
    def event(self) -> str:
        """The notice event name."""
        return self._event

    def _aad(self, kind: Kind) -> bytes:
        return f"{self._event}/{kind}".encode()

    def seal(self, kind: Kind, row: list[object]) -> bytes:
        """Seal the msgpack array ``row`` as a message of ``kind``."""
        body: bytes = msgpack.packb(row, use_bin_type=True)
        if self._aead is None:
            return bytes((VERSION_PLAINTEXT,)) + body
        nonce = os.urandom(NONCE_BYTES)
        return bytes((VERSION_SEALED,)) + nonce + self._aead.encrypt(nonce, body, self._aad(kind))

    def open(self, kind: Kind, data: bytes, *, fields: int) -> list[object]:
        """The msgpack array of ``fields`` elements sealed in ``data`` as ``kind``.

        Raises:
            WireError: truncated, version (a version-1 verdict or anything else),
                plaintext/sealed (mode mismatch), tag (wrong key, forged, another
                kind or cluster), decode (not an array of ``fields`` elements).
        """
        if not data:
            raise WireError("truncated", "empty")
        version = data[0]
        if version == VERSION_SEALED:
            if self._aead is None:
                raise WireError("sealed", "sealed message but no crypto_key configured")
            if len(data) < 1 + NONCE_BYTES + TAG_BYTES + 1:
                raise WireError("truncated", f"{len(data)} bytes")
            try:
                body = self._aead.decrypt(
                    data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :], self._aad(kind)
                )
            except InvalidTag:
                raise WireError("tag", "wrong key, forged, or another kind/cluster") from None
        elif version == VERSION_PLAINTEXT:
            if self._aead is not None:
                raise WireError("plaintext", "plaintext message but a crypto_key is configured")
            body = data[1:]
        else:
            raise WireError("version", f"version byte 0x{version:02x}")
        try:
            row = msgpack.unpackb(
                body,
                raw=False,
                strict_map_key=True,
                max_array_len=fields,
                max_map_len=0,
                max_bin_len=MAX_REPLY_BYTES,
                max_ext_len=0,
            )
        except Exception as exc:  # untrusted bytes: any failure is a rejection
            raise WireError("decode", f"not msgpack: {exc}") from None
        if type(row) is not list or len(row) != fields:
            raise WireError("decode", f"not an array of {fields}")
        return row


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= UINT64_MAX:
        raise WireError("decode", f"{what} is not an unsigned 64-bit int")
    return value


def _node(value: object) -> str:
    if type(value) is not str or not value:
        raise WireError("decode", "node is not a non-empty str")
    return value


def _bin(value: object, size: int | None, what: str) -> bytes:
    if type(value) is not bytes or (size is not None and len(value) != size):
        raise WireError("decode", f"{what} is not {size or 'some'} bytes")
    return value


# -- messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """ "Node ``node`` is at (``epoch``, ``version``), digest ``digest``; pull from ``port``."

    Attributes:
        node: the sender's Serf node name.
        epoch: the sender's start time in microseconds (a restart starts a new epoch).
        version: the sender's vector version (one more per batch of changes).
        digest: :func:`vector_digest` of the sender's vector (8 bytes).
        port: the sender's sync port (TCP, on the address Serf advertises for it).
        issued_at: Unix seconds when sent (clock-skew check).

    Replay: a notice is a hint, never a vote. A replayed (or forged) one makes the
    receiver pull at most once from the named member's own address, and the pull's
    fresh nonce makes its reply impossible to replay; a notice older than what the
    receiver holds is dropped and counted as ``replay``.
    """

    node: str
    epoch: int
    version: int
    digest: bytes
    port: int
    issued_at: float

    def seal(self, sealer: Sealer) -> bytes:
        """The Serf event payload.

        Raises:
            ValueError: it would not fit Serf's user-event limit (a very long node name).
        """
        payload = sealer.seal(
            "notice",
            [
                self.node,
                self.epoch,
                self.version,
                self.digest,
                self.port,
                round(self.issued_at * 1000),
            ],
        )
        if len(sealer.event.encode()) + len(payload) > USER_EVENT_BUDGET:
            raise ValueError("notice does not fit a Serf user event: node name too long")
        return payload

    @classmethod
    def open(cls, sealer: Sealer, data: bytes) -> Notice:
        """Open a received notice.

        Raises:
            WireError: see :meth:`Sealer.open`; ``decode`` for a bad field.
        """
        node, epoch, version, digest, port, ms = sealer.open("notice", data, fields=6)
        port = _uint(port, "port")
        if not 0 < port < 65536:
            raise WireError("decode", "port is not 1-65535")
        return cls(
            _node(node),
            _uint(epoch, "epoch"),
            _uint(version, "version"),
            _bin(digest, DIGEST_BYTES, "digest"),
            port,
            _uint(ms, "issued_at") / 1000,
        )


@dataclass(frozen=True, slots=True)
class PullRequest:
    """ "I am ``node``; I hold your vector at (``epoch``, ``version``); send what I lack."

    ``nonce`` is fresh and random; the reply must echo it. (0, 0) means "nothing".
    """

    node: str
    nonce: bytes
    epoch: int
    version: int
    issued_at: float

    def seal(self, sealer: Sealer) -> bytes:
        """The request body."""
        row: list[object] = [
            self.node,
            self.nonce,
            self.epoch,
            self.version,
            round(self.issued_at * 1000),
        ]
        return sealer.seal("pull", row)

    @classmethod
    def open(cls, sealer: Sealer, data: bytes) -> PullRequest:
        """Open a received request.

        Raises:
            WireError: see :meth:`Sealer.open`.
        """
        node, nonce, epoch, version, ms = sealer.open("pull", data, fields=5)
        return cls(
            _node(node),
            _bin(nonce, PULL_NONCE_BYTES, "nonce"),
            _uint(epoch, "epoch"),
            _uint(version, "version"),
            _uint(ms, "issued_at") / 1000,
        )


@dataclass(frozen=True, slots=True)
class StateReply:
    """The answer to a pull: ``node``'s vector at (``epoch``, ``version``).

    Attributes:
        node: the responder's node name (must be the member the pull went to).
        nonce: the request's nonce, echoed.
        epoch, version, digest: where the responder's vector is now.
        full: True when ``entries`` is the whole vector (else: the entries that
            changed since the version the request named).
        entries: target -> code.
    """

    node: str
    nonce: bytes
    epoch: int
    version: int
    digest: bytes
    full: bool
    entries: dict[str, int]

    def seal(self, sealer: Sealer) -> bytes:
        """The reply body."""
        row: list[object] = [
            self.node,
            self.nonce,
            self.epoch,
            self.version,
            self.digest,
            self.full,
            pack_entries(self.entries.items()),
        ]
        return sealer.seal("state", row)

    @classmethod
    def open(cls, sealer: Sealer, data: bytes) -> StateReply:
        """Open a received reply.

        Raises:
            WireError: see :meth:`Sealer.open` and :func:`unpack_entries`.
        """
        if len(data) > MAX_REPLY_BYTES:
            raise WireError("decode", f"reply of {len(data)} bytes")
        node, nonce, epoch, version, digest, full, blob = sealer.open("state", data, fields=7)
        if type(full) is not bool:
            raise WireError("decode", "full is not a bool")
        return cls(
            _node(node),
            _bin(nonce, PULL_NONCE_BYTES, "nonce"),
            _uint(epoch, "epoch"),
            _uint(version, "version"),
            _bin(digest, DIGEST_BYTES, "digest"),
            full,
            unpack_entries(_bin(blob, None, "entries")),
        )


# -- vectors ---------------------------------------------------------------------------


class LocalVector:
    """This agent's verdict vector, its version and a bounded log of changes.

    Changes are staged with :meth:`set` and become one new version at
    :meth:`commit` (the cluster layer commits a burst of transitions at once, so
    a mass failure is one version and one notice, not one per target).

    Args:
        epoch: this agent's start time in microseconds.
        log_limit: changes kept for incremental replies (whole versions only: a
            version is dropped from the log entirely, never in part); a pull from
            further back gets the whole vector.

    Attributes:
        version: grows by one for each :meth:`commit` that changed something.
        codes: the committed vector, target -> code (code 0 is not stored).
    """

    def __init__(self, epoch: int, log_limit: int = 65536) -> None:
        self.epoch = epoch
        self.version = 0
        self.codes: dict[str, int] = {}
        self._staged: dict[str, int] = {}
        self._log_versions: list[int] = []
        self._log_targets: list[str] = []
        self._log_limit = log_limit
        self._sum = 0

    def code(self, target: str) -> int:
        """The latest code of ``target``, staged or committed."""
        return self._staged.get(target, self.codes.get(target, 0))

    def set(self, target: str, code: int) -> bool:
        """Stage ``target``'s new code (published at the next :meth:`commit`).

        Returns:
            True when it differs from the latest code.
        """
        if self.code(target) == code:
            return False
        if self.codes.get(target, 0) == code:
            del self._staged[target]  # back to the committed code: nothing to publish
        else:
            self._staged[target] = code
        return True

    @property
    def dirty(self) -> bool:
        """True when changes wait for :meth:`commit`."""
        return bool(self._staged)

    def commit(self) -> bool:
        """Make the staged changes one new version. Returns True if there were any."""
        if not self._staged:
            return False
        self.version += 1
        for target, code in sorted(self._staged.items()):
            self._sum += entry_hash(target, code) - entry_hash(target, self.codes.get(target, 0))
            if code == 0:
                self.codes.pop(target, None)
            else:
                self.codes[target] = code
            self._log_versions.append(self.version)
            self._log_targets.append(target)
        self._staged.clear()
        excess = len(self._log_versions) - self._log_limit
        if excess > 0:
            # Never keep part of a version: a reply from the version before it would
            # miss the trimmed changes (and the peer would take it as complete).
            cut = self._log_versions[excess - 1]
            excess = bisect.bisect_right(self._log_versions, cut)
            del self._log_versions[:excess]
            del self._log_targets[:excess]
        return True

    def digest(self) -> bytes:
        """:func:`vector_digest` of the committed vector (kept up to date by
        :meth:`commit`, O(1) here)."""
        return (self._sum % _DIGEST_MOD).to_bytes(DIGEST_BYTES, "big")

    def reply(self, node: str, request: PullRequest) -> StateReply:
        """The reply to ``request`` (committed state only): the changes since the
        version it names when the epoch matches and the log still holds them, else
        the whole vector."""
        full = (
            request.epoch != self.epoch
            or request.version == 0
            or request.version > self.version
            or not self._log_versions
            or self._log_versions[0] > request.version + 1
        )
        if full:
            entries = dict(self.codes)
        else:
            start = bisect.bisect_right(self._log_versions, request.version)
            entries = {t: self.codes.get(t, 0) for t in self._log_targets[start:]}
        return StateReply(
            node, request.nonce, self.epoch, self.version, self.digest(), full, entries
        )


@dataclass(slots=True)
class PeerVector:
    """What this agent holds of one peer's vector.

    Attributes:
        epoch, version: the peer's vector version held (0, 0: nothing yet).
        digest: the digest the peer reported for that version (its whole vector;
            ``codes`` may hold fewer targets, so it is compared, not recomputed).
        codes: target -> code, only configured targets (others are dropped).
    """

    epoch: int = 0
    version: int = 0
    digest: bytes = b""
    codes: dict[str, int] | None = None

    def current(self, notice: Notice) -> bool:
        """True when what is held is what ``notice`` announces (no pull needed)."""
        return (
            self.codes is not None
            and (notice.epoch, notice.version) == (self.epoch, self.version)
            and notice.digest == self.digest
        )

    def apply(self, reply: StateReply, configured: Container[str]) -> dict[str, int]:
        """Apply ``reply`` and return the targets whose code changed -> new code.

        Entries for targets not in ``configured`` are ignored (bounded state).
        A reply older than what is held, and an incremental reply of another
        epoch, are ignored (an empty result; the next notice triggers a new pull).
        """
        codes = self.codes if self.codes is not None else {}
        if self.codes is not None and (reply.epoch, reply.version) < (self.epoch, self.version):
            return {}  # an older state than held (replies overtook each other)
        if not reply.full and (reply.epoch != self.epoch or self.codes is None):
            return {}
        changed: dict[str, int] = {}
        if reply.full:
            for target in [t for t in codes if reply.entries.get(t, 0) == 0]:
                changed[target] = 0
                del codes[target]
        for target, code in reply.entries.items():
            if target not in configured:
                continue
            if codes.get(target, 0) != code:
                changed[target] = code
                if code == 0:
                    codes.pop(target, None)
                else:
                    codes[target] = code
        self.codes, self.epoch, self.version = codes, reply.epoch, reply.version
        self.digest = reply.digest
        return changed

    def prune(self, configured: Container[str]) -> dict[str, int]:
        """Drop targets no longer configured; returns them -> 0."""
        if self.codes is None:
            return {}
        gone = [t for t in self.codes if t not in configured]
        for target in gone:
            del self.codes[target]
        return dict.fromkeys(gone, 0)
