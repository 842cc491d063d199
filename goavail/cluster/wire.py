"""Wire format of gossiped verdicts: sealing, opening, replay and clock-skew checks.

Agents tell each other what they see as Serf *user events* (coalescing off) named
:func:`event_name` (``goavail-verdict``, or ``<cluster_name>-goavail-verdict``). Every event
carries one :class:`Verdict`. The payload is one of::

    0x01 ‖ nonce (12 bytes) ‖ AES-GCM(key, nonce, encoding, aad=event name)  (ciphertext ‖ tag)
    0x81 ‖ encoding                  (plaintext; only when no crypto_key is configured)

where *encoding* is the msgpack array ``[node, packed target IP (4 or 16 raw bytes), up, seq,
issued_at in whole milliseconds]``, plus a sixth element, the sender's maintenance override
of the target (1 = up, 2 = down), only while it holds one. Messages without an override are
byte-for-byte those of earlier releases, which therefore still accept them; an earlier
release rejects a verdict that carries an override (``decode``), so it ignores that one
vote until the override is cleared. The event name is the GCM associated data, so a message
captured in one cluster does not open under another cluster's event name (plaintext messages
are not bound to the event name).

Nothing here does I/O or reads a clock: times are passed in, randomness comes only from
``os.urandom`` for nonces (or a nonce passed in by tests). A received payload goes through
:meth:`Codec.open` and then :meth:`ReplayGuard.check`; both raise only :class:`WireError`, whose
``reason`` (one of :data:`REJECT_REASONS`) is what the agent counts.

Sources:

- NIST SP 800-38D (GCM), section 8.2.2: a 96-bit nonce from a random bit generator; section
  8.3: with random nonces, one key must not seal more than 2**32 messages.
- hashicorp/serf ``serf/serf.go`` (``UserEvent``, ``UserEventSizeLimit``), ``serf/config.go``
  (``UserEventSizeLimit: 512`` default) and ``serf/messages.go`` (``messageUserEvent``,
  ``encodeMessage``): see :data:`SERF_USER_EVENT_LIMIT` and :data:`SERF_USER_EVENT_OVERHEAD`.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "EVENT_BASE",
    "KEY_SIZES",
    "MAX_NODE_NAME_BYTES",
    "NONCE_BYTES",
    "OVERRIDE_CODES",
    "REJECT_REASONS",
    "SERF_USER_EVENT_LIMIT",
    "SERF_USER_EVENT_OVERHEAD",
    "TAG_BYTES",
    "UINT64_MAX",
    "USER_EVENT_BUDGET",
    "VERSION_PLAINTEXT",
    "VERSION_SEALED",
    "Codec",
    "OverrideMode",
    "RejectReason",
    "ReplayGuard",
    "SeqCounter",
    "Verdict",
    "WireError",
    "event_name",
    "max_node_name_bytes",
]

EVENT_BASE: Final = "goavail-verdict"
"""Serf user-event name of verdicts when no ``cluster_name`` is configured."""

SERF_USER_EVENT_LIMIT: Final = 512
"""Serf's cap on one user event, in bytes (hashicorp/serf ``serf/serf.go``, ``UserEvent``;
the agent's default ``Config.UserEventSizeLimit`` in ``serf/config.go``).

Serf checks it twice: ``len(name) + len(payload)`` before encoding, and then the *encoded*
gossip message (type byte + msgpack of ``messageUserEvent{LTime, Name, Payload, CC}``) after
encoding. The second check is the binding one, see :data:`SERF_USER_EVENT_OVERHEAD`.
"""

SERF_USER_EVENT_OVERHEAD: Final = 40
"""Worst-case bytes Serf adds around name and payload when it encodes a user event.

1 message-type byte + 1 fixmap header + the four field names as fixstr keys ("LTime" 6,
"Name" 5, "Payload" 8, "CC" 3 = 22) + LTime as uint64 (up to 9) + name header (up to 3) +
payload header (up to 3, go-msgpack's raw16) + CC bool (1) = 40. Checked against the installed
serf agent (Debian 0.9.4): with the 15-byte default event name a 467-byte payload is accepted
and a 468-byte one is refused with "encoded user event exceeds configured limit of 512 bytes
after encoding" (30 bytes of overhead at a small LTime; 40 allows LTime to grow to 64 bits and
the event name to 255 bytes).
"""

USER_EVENT_BUDGET: Final = SERF_USER_EVENT_LIMIT - SERF_USER_EVENT_OVERHEAD
"""Bytes available to event name + payload together (472): every sealed message fits in it."""

VERSION_SEALED: Final = 0x01
"""Version byte of an AES-GCM sealed message: ``0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)``."""

VERSION_PLAINTEXT: Final = 0x81
"""Version byte of a plaintext message (``0x81 ‖ encoding``), sent only without a key."""

NONCE_BYTES: Final = 12
"""GCM nonce length: 96 bits, the length NIST SP 800-38D section 8.2 recommends."""

TAG_BYTES: Final = 16
"""GCM authentication tag length (128 bits, the ``cryptography`` AESGCM default)."""

KEY_SIZES: Final = (16, 24, 32)
"""Allowed ``crypto_key`` lengths in bytes (AES-128, AES-192, AES-256)."""

UINT64_MAX: Final = 2**64 - 1
"""Largest ``seq`` and ``issued_at`` in milliseconds that the wire carries."""

RejectReason = Literal[
    "truncated", "version", "plaintext", "sealed", "tag", "decode", "replay", "skew"
]
"""Why a received message was rejected; the label the agent counts rejections under."""

REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)
"""Every :class:`WireError` reason, in order of the checks:

- ``truncated``: shorter than the shortest valid message of its version (empty included).
- ``version``: first byte is neither :data:`VERSION_SEALED` nor :data:`VERSION_PLAINTEXT`.
- ``plaintext``: a plaintext message reached a codec that has a key (never accepted: no
  downgrade).
- ``sealed``: a sealed message reached a codec without a key (it cannot be checked).
- ``tag``: GCM tag check failed: wrong key, forged or altered bytes, or sealed under another
  event name (other cluster).
- ``decode``: the (authentic or plaintext) body is not a well-formed verdict encoding.
- ``replay``: ``seq`` not newer than the last accepted from that node (:class:`ReplayGuard`).
- ``skew``: ``issued_at`` further than ``max_clock_skew`` from the receiver's clock.
"""

OverrideMode = Literal["auto", "up", "down"]
"""A sender's maintenance override of the target (see :class:`goavail.decision.Override`)."""

OVERRIDE_CODES: Final[dict[OverrideMode, int]] = {"auto": 0, "up": 1, "down": 2}
"""Wire code of each override; ``auto`` is sent as no sixth element at all."""
_OVERRIDE_BY_CODE: Final[dict[int, OverrideMode]] = {v: k for k, v in OVERRIDE_CODES.items()}

# Smallest valid encoding: fixarray(5), 1-byte node (2), bin8 IPv4 (6), bool, fixint, fixint.
_MIN_ENCODING: Final = 1 + 2 + 6 + 1 + 1 + 1
# Largest encoding minus the node string: fixarray, bin8 IPv6 (2 + 16), bool, uint64, uint64,
# override (fixint).
_MAX_ENCODING_WITHOUT_NODE: Final = 1 + (2 + 16) + 1 + 9 + 9 + 1
_SEALED_OVERHEAD: Final = 1 + NONCE_BYTES + TAG_BYTES
_PLAINTEXT_OVERHEAD: Final = 1


class WireError(ValueError):
    """A received message was rejected; ``reason`` is one of :data:`REJECT_REASONS`.

    ``str(error)`` is ``"<reason>: <detail>"``; the detail never contains key material.
    """

    reason: RejectReason

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self._detail = detail

    def __reduce__(self) -> tuple[type[WireError], tuple[RejectReason, str]]:
        return (type(self), (self.reason, self._detail))


def event_name(cluster_name: str | None) -> str:
    """Serf user-event name of verdicts: ``goavail-verdict``, or ``<cluster_name>-goavail-verdict``.

    ``None`` and ``""`` mean no cluster name.
    """
    return f"{cluster_name}-{EVENT_BASE}" if cluster_name else EVENT_BASE


def _msgpack_str_header(length: int) -> int:
    """Bytes of the msgpack header of a str of ``length`` bytes (fixstr, str8, str16, str32)."""
    if length < 32:
        return 1
    if length < 2**8:
        return 2
    if length < 2**16:
        return 3
    return 5


def max_node_name_bytes(event: str) -> int:
    """Longest node name, in UTF-8 bytes, whose verdicts fit Serf's limit under ``event``.

    Worst case: sealed, IPv6 target, 64-bit ``seq`` and ``issued_at``, an override, and Serf's
    worst-case overhead (:data:`USER_EVENT_BUDGET`). Returns 0 if even an empty name would not
    fit. 386 for the default event name (:data:`MAX_NODE_NAME_BYTES`); a cluster name costs its
    length + 1 more.
    """
    room = (
        USER_EVENT_BUDGET
        - len(event.encode("utf-8"))
        - _SEALED_OVERHEAD
        - _MAX_ENCODING_WITHOUT_NODE
    )
    fitting = [
        n for n in (room - h for h in (1, 2, 3, 5)) if n >= 0 and n + _msgpack_str_header(n) <= room
    ]
    return max(fitting, default=0)


MAX_NODE_NAME_BYTES: Final = max_node_name_bytes(EVENT_BASE)
"""Longest Serf node name (UTF-8 bytes) that goavail can gossip under the default event name:
386 (387 before verdicts could carry an override). Computed by :func:`max_node_name_bytes`;
the same limit holds in plaintext mode, so turning encryption on never makes a working node
name too long."""


def _ms(issued_at: float) -> int:
    """``issued_at`` (Unix seconds) as whole milliseconds, the unit on the wire."""
    return round(issued_at * 1000)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One agent's view of one target, as gossiped.

    - ``node``: the sender's Serf node name (non-empty; at most :data:`MAX_NODE_NAME_BYTES`
      UTF-8 bytes to be sealable).
    - ``target``: the probed address as canonical IP text (IPv4 or IPv6, no scope id); other
      spellings are normalised (``"2001:DB8::1"`` becomes ``"2001:db8::1"``).
    - ``up``: the sender's verdict, ``True`` for healthy.
    - ``seq``: the sender's message counter (unsigned 64-bit), see :class:`SeqCounter`.
    - ``issued_at``: Unix time in seconds when the verdict was sent; carried with millisecond
      precision, so an opened verdict has ``issued_at`` rounded to the millisecond.
    - ``override``: the sender's maintenance override of the target, ``"auto"`` (none, the
      default), ``"up"`` or ``"down"``.

    Raises ``TypeError`` for wrongly typed fields and ``ValueError`` for out-of-range ones.
    """

    node: str
    target: str
    up: bool
    seq: int
    issued_at: float
    override: OverrideMode = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.node, str):
            raise TypeError("node must be a str")
        if not self.node:
            raise ValueError("node must not be empty")
        self.node.encode("utf-8")  # UnicodeEncodeError (a ValueError) for lone surrogates
        if not isinstance(self.target, str):
            raise TypeError("target must be IP address text")
        address = ipaddress.ip_address(self.target)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValueError(f"target {self.target!r}: a scope id cannot be gossiped")
        object.__setattr__(self, "target", str(address))
        if not isinstance(self.up, bool):
            raise TypeError("up must be a bool")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int):
            raise TypeError("seq must be an int")
        if not 0 <= self.seq <= UINT64_MAX:
            raise ValueError(f"seq {self.seq} is outside 0..2**64-1")
        if isinstance(self.issued_at, bool) or not isinstance(self.issued_at, int | float):
            raise TypeError("issued_at must be a number of seconds")
        if not (math.isfinite(self.issued_at) and 0 <= _ms(self.issued_at) <= UINT64_MAX):
            raise ValueError(f"issued_at {self.issued_at} is not a Unix time the wire can carry")
        if self.override not in OVERRIDE_CODES:
            raise ValueError(f"override {self.override!r} is not one of auto, up, down")


def _encode(verdict: Verdict) -> bytes:
    """The compact msgpack encoding of ``verdict`` (see the module docstring)."""
    packed = ipaddress.ip_address(verdict.target).packed
    row: list[object] = [verdict.node, packed, verdict.up, verdict.seq, _ms(verdict.issued_at)]
    if verdict.override != "auto":
        row.append(OVERRIDE_CODES[verdict.override])
    body: bytes = msgpack.packb(row, use_bin_type=True)
    return body


def _is_uint64(value: object) -> bool:
    return type(value) is int and 0 <= value <= UINT64_MAX


def _decode(body: bytes) -> Verdict:
    """Parse an encoding strictly; anything but exactly the expected shape is ``decode``."""
    try:
        row = msgpack.unpackb(
            body,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_array_len=6,
            max_map_len=0,
            max_bin_len=16,
            max_ext_len=0,
        )
    # msgpack documents that unpackb "may raise exception other than subclass of
    # UnpackException"; any failure to parse untrusted bytes is a rejection, not a crash.
    except Exception as exc:
        raise WireError("decode", f"not msgpack: {exc}") from None
    if type(row) is not list or len(row) not in (5, 6):
        raise WireError("decode", "not a 5- or 6-element array")
    node, packed, up, seq, issued_ms = row[:5]
    code = row[5] if len(row) == 6 else OVERRIDE_CODES["auto"]
    if len(row) == 6 and (type(code) is not int or code not in (1, 2)):
        raise WireError("decode", "override is not 1 (up) or 2 (down)")
    if type(node) is not str or not node:
        raise WireError("decode", "node is not a non-empty str")
    if type(packed) is not bytes or len(packed) not in (4, 16):
        raise WireError("decode", "target is not 4 or 16 raw bytes")
    if type(up) is not bool:
        raise WireError("decode", "up is not a bool")
    if not _is_uint64(seq):
        raise WireError("decode", "seq is not an unsigned 64-bit int")
    if not _is_uint64(issued_ms):
        raise WireError("decode", "issued_at is not an unsigned 64-bit int of milliseconds")
    try:
        return Verdict(
            node,
            str(ipaddress.ip_address(packed)),
            up,
            seq,
            issued_ms / 1000,
            _OVERRIDE_BY_CODE[code],
        )
    except (TypeError, ValueError) as exc:  # e.g. node with lone surrogates (not valid UTF-8)
        raise WireError("decode", str(exc)) from None


class Codec:
    """Seals verdicts into event payloads and opens received payloads, for one event name.

    ``key``: the ``crypto_key``, 16, 24 or 32 raw bytes (AES-128/192/256-GCM), or ``None`` for
    plaintext mode. ``event``: the Serf event name (:func:`event_name`); it is the GCM
    associated data and counts against Serf's size limit.

    A keyed codec only sends and accepts sealed messages; a keyless one only plaintext ones.

    Raises ``ValueError`` for a key of another length (the message gives the length, never the
    key), an empty event name, or one so long that no node name would fit; ``TypeError`` if the
    key is not bytes.
    """

    __slots__ = ("_aad", "_aead", "_event", "_max_node_name_bytes")

    def __init__(self, key: bytes | None, event: str) -> None:
        if not isinstance(event, str) or not event:
            raise ValueError("event name must be a non-empty str")
        self._event = event
        self._aad = event.encode("utf-8")
        self._max_node_name_bytes = max_node_name_bytes(event)
        if self._max_node_name_bytes < 1:
            raise ValueError(f"event name of {len(self._aad)} bytes leaves no room for a verdict")
        if key is None:
            self._aead: AESGCM | None = None
        elif not isinstance(key, bytes):
            raise TypeError("crypto_key must be bytes")
        elif len(key) not in KEY_SIZES:
            raise ValueError(f"crypto_key must be 16, 24 or 32 bytes long, not {len(key)}")
        else:
            self._aead = AESGCM(key)

    @property
    def event(self) -> str:
        """The Serf event name this codec seals for and opens from."""
        return self._event

    @property
    def keyed(self) -> bool:
        """True when messages are sealed with AES-GCM, False in plaintext mode."""
        return self._aead is not None

    @property
    def max_node_name_bytes(self) -> int:
        """Longest node name (UTF-8 bytes) :meth:`seal` accepts under this event name."""
        return self._max_node_name_bytes

    def seal(self, verdict: Verdict, *, nonce: bytes | None = None) -> bytes:
        """The event payload for ``verdict``.

        Keyed: ``0x01 ‖ nonce ‖ ciphertext ‖ tag``, the nonce 12 random bytes from
        ``os.urandom`` (NIST SP 800-38D section 8.2.2) unless ``nonce`` is given (tests only;
        reusing a nonce under one key breaks GCM). Keyless: ``0x81 ‖ encoding``.

        Raises ``ValueError`` if the node name is longer than :attr:`max_node_name_bytes` (so
        event name + payload could exceed Serf's limit), if ``nonce`` is not 12 bytes, or if a
        nonce is given to a keyless codec.
        """
        node_bytes = len(verdict.node.encode("utf-8"))
        if node_bytes > self._max_node_name_bytes:
            raise ValueError(
                f"node name of {node_bytes} bytes is too long for a Serf user event named "
                f"{self._event!r}: at most {self._max_node_name_bytes} bytes"
            )
        body = _encode(verdict)
        if self._aead is None:
            if nonce is not None:
                raise ValueError("a nonce only applies to a keyed codec")
            payload = bytes((VERSION_PLAINTEXT,)) + body
        else:
            if nonce is None:
                nonce = os.urandom(NONCE_BYTES)
            elif len(nonce) != NONCE_BYTES:
                raise ValueError(f"nonce must be {NONCE_BYTES} bytes, not {len(nonce)}")
            sealed = self._aead.encrypt(nonce, body, self._aad)
            payload = bytes((VERSION_SEALED,)) + nonce + sealed
        if len(self._aad) + len(payload) > USER_EVENT_BUDGET:  # guarded by the node check
            raise ValueError(f"verdict does not fit a {SERF_USER_EVENT_LIMIT}-byte user event")
        return payload

    def open(self, payload: bytes | bytearray | memoryview) -> Verdict:
        """The verdict in a received event payload.

        Raises only :class:`WireError` (reasons ``truncated``, ``version``, ``plaintext``,
        ``sealed``, ``tag``, ``decode``), whatever the bytes; anything that is not bytes-like is
        ``decode``. Replay and clock skew are :class:`ReplayGuard`'s job.
        """
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise WireError("decode", f"payload is {type(payload).__name__}, not bytes")
        data = bytes(payload)
        if not data:
            raise WireError("truncated", "empty payload")
        version = data[0]
        if version == VERSION_SEALED:
            if self._aead is None:
                raise WireError("sealed", "sealed message but no crypto_key configured")
            if len(data) < _SEALED_OVERHEAD + _MIN_ENCODING:
                raise WireError("truncated", f"{len(data)} bytes")
            nonce = data[1 : 1 + NONCE_BYTES]
            try:
                body = self._aead.decrypt(nonce, data[1 + NONCE_BYTES :], self._aad)
            except InvalidTag:
                raise WireError("tag", "wrong key, forged, or another event name") from None
        elif version == VERSION_PLAINTEXT:
            if self._aead is not None:
                raise WireError("plaintext", "plaintext message but a crypto_key is configured")
            if len(data) < _PLAINTEXT_OVERHEAD + _MIN_ENCODING:
                raise WireError("truncated", f"{len(data)} bytes")
            body = data[_PLAINTEXT_OVERHEAD:]
        else:
            raise WireError("version", f"unknown version byte 0x{version:02x}")
        return _decode(body)


class ReplayGuard:
    """Rejects stale, replayed and badly timed verdicts; one per receiving agent.

    ``max_clock_skew``: seconds (finite, >= 0) that a verdict's ``issued_at`` may differ from
    the receiver's clock in either direction (config ``max_clock_skew``, default 30). Keeps the
    highest accepted ``seq`` per (sender node, target): every message is one target's
    verdict, and Serf may deliver a node's events out of order (a verdict for one target
    overtaking another's must not make the other look like a replay). A replay of a
    captured verdict is still refused: the receiver has seen that seq, or a newer one, for
    that target. Raises ``ValueError`` for a negative or non-finite skew.

    **Bounded state.** The guard records whatever :meth:`check` accepts, so its caller
    decides what may be recorded: goavail checks first that the sender is a live Serf
    member and that the target is configured here (anything else is dropped and counted
    before the guard sees it), so the guard holds at most *live members x configured
    targets* entries, plus the floors :meth:`retire` and :meth:`forget_target` leave,
    which live :attr:`floor_lifetime` seconds. The caller prunes a node's entries when
    it leaves or fails (:meth:`retire`) and a target's when a reload removes it
    (:meth:`forget_target`).

    **Replay protection across a leave and a re-join.** Pruning a node's entries could
    let a verdict it sent before it left be replayed after it re-joins. It does not, with
    S = ``max_clock_skew``:

    1. a verdict is accepted only while ``abs(now - issued_at) <= S`` (checked first);
       a sender whose clock is off by more than S has all its verdicts refused, so an
       accepted sender's ``issued_at`` is within S of our clock;
    2. :meth:`retire` (at our time R) keeps one number per node, the highest seq
       accepted from it over all targets, for 2S seconds; until then :meth:`check`
       refuses every verdict of that node whose seq is not above it. A sender's seqs
       only grow (:class:`SeqCounter`: one counter per process, seeded from the clock
       in microseconds), so every verdict we accepted before R has a seq at most that
       floor;
    3. such a verdict was issued before R, so its ``issued_at`` is at most R + S (the
       sender's clock may run S ahead) and the skew check refuses it from R + 2S on,
       when the floor expires.

    So a captured verdict is refused by (2) while it is fresh and by (1) once it is old:
    pruning costs no protection. :meth:`forget_target` does the same per (node, target),
    for a target a reload removes and a later reload may add back. A verdict this agent
    never received (lost, or withheld by an attacker) is no replay to it: as before, it
    is accepted once if it is fresh, and only until the sender's next, newer one. The
    only price is the one :class:`SeqCounter` already names: a re-joined node whose
    wall clock was stepped back across a restart has its verdicts refused (``replay``)
    until the floor expires, at most 2S seconds after it left.
    """

    __slots__ = ("_floors", "_last", "_max_clock_skew")

    def __init__(self, max_clock_skew: float) -> None:
        if not (math.isfinite(max_clock_skew) and max_clock_skew >= 0):
            raise ValueError(f"max_clock_skew must be a finite number >= 0, not {max_clock_skew}")
        self._max_clock_skew = max_clock_skew
        self._last: dict[str, dict[str, int]] = {}
        """node -> target -> highest accepted seq."""
        self._floors: dict[tuple[str, str | None], tuple[int, float]] = {}
        """(retired node, None) or (node, removed target) -> (highest seq accepted, Unix
        time the floor expires)."""

    @property
    def max_clock_skew(self) -> float:
        """The allowed skew, in seconds."""
        return self._max_clock_skew

    def __len__(self) -> int:
        """Number of (node, target) entries held (retirement floors not included)."""
        return sum(len(targets) for targets in self._last.values())

    @property
    def floor_lifetime(self) -> float:
        """Seconds a floor of :meth:`retire` or :meth:`forget_target` lives: twice the
        skew (see the class docstring)."""
        return 2 * self._max_clock_skew

    @property
    def floors(self) -> int:
        """Number of floors held (left by :meth:`retire` and :meth:`forget_target` less
        than :attr:`floor_lifetime` seconds ago)."""
        return len(self._floors)

    def check(self, verdict: Verdict, now: float) -> None:
        """Accept ``verdict`` (recording its seq) or raise :class:`WireError`.

        ``now``: the receiver's Unix time in seconds. Raises ``WireError("skew")`` when
        ``abs(now - issued_at) > max_clock_skew`` (equal is allowed; a non-finite ``now``
        counts as skew), then ``WireError("replay")`` when ``seq`` is not greater than the last
        accepted seq from ``verdict.node`` for ``verdict.target``, or than the floor
        :meth:`retire` left for that node. A rejected verdict changes nothing (an expired
        floor of the node is dropped).
        """
        skew = abs(now - verdict.issued_at)
        if not skew <= self._max_clock_skew:
            raise WireError(
                "skew", f"issued {skew:.3f} s from now, more than {self._max_clock_skew} s"
            )
        node = verdict.node
        if self._floors:
            for key in ((node, None), (node, verdict.target)):
                floor = self._floors.get(key)
                if floor is None:
                    continue
                if now > floor[1]:
                    del self._floors[key]
                elif verdict.seq <= floor[0]:
                    raise WireError(
                        "replay",
                        f"seq {verdict.seq} from {node!r} for {verdict.target}, not above "
                        f"{floor[0]}, the last seq before it was forgotten",
                    )
        targets = self._last.get(node)
        last = None if targets is None else targets.get(verdict.target)
        if last is not None and verdict.seq <= last:
            raise WireError(
                "replay",
                f"seq {verdict.seq} from {node!r} for {verdict.target}, last {last}",
            )
        if targets is None:
            targets = self._last[node] = {}
        targets[verdict.target] = verdict.seq

    def last_seq(self, node: str, target: str) -> int | None:
        """The highest seq accepted from ``node`` for ``target``, or ``None``."""
        targets = self._last.get(node)
        return None if targets is None else targets.get(target)

    def forget(self, node: str) -> None:
        """Drop ``node``'s history (all targets, and its floor); unknown nodes are fine.

        Its next verdicts are then accepted whatever their seq (still subject to the skew
        check). goavail calls :meth:`retire` instead, which keeps replays refused.
        """
        self._last.pop(node, None)
        for key in [k for k in self._floors if k[0] == node]:
            del self._floors[key]

    def retire(self, node: str, now: float) -> None:
        """``node`` left or failed: drop its entries, keeping one floor (its highest seq)
        until ``now + floor_lifetime`` (Unix seconds); see the class docstring for why
        this keeps every capture refused. Expired floors of other nodes go too."""
        self.prune(now)
        seqs = list(self._last.pop(node, {}).values())
        for key in [k for k in self._floors if k[0] == node]:
            seqs.append(self._floors.pop(key)[0])
        if seqs:
            self._floors[(node, None)] = (max(seqs), now + self.floor_lifetime)

    def forget_target(self, target: str, now: float) -> None:
        """Drop every node's entry for ``target`` (a reload removed it), keeping each as
        a floor for that (node, target) until ``now + floor_lifetime`` (Unix seconds), so
        its old verdicts stay refused if a reload adds it back (see the class docstring).
        Expired floors go too."""
        self.prune(now)
        until = now + self.floor_lifetime
        for node in [n for n, targets in self._last.items() if target in targets]:
            targets = self._last[node]
            self._floors[(node, target)] = (targets.pop(target), until)
            if not targets:
                del self._last[node]

    def prune(self, now: float) -> None:
        """Drop retirement floors that expired by ``now`` (Unix seconds)."""
        for key in [k for k, (_, until) in self._floors.items() if now > until]:
            del self._floors[key]


class SeqCounter:
    """This agent's message sequence numbers: ``next()`` returns ``start``, ``start + 1``, ...

    ``start``: unsigned 64-bit int. The agent seeds it with the current time in microseconds
    (``time.time_ns() // 1000``), so the seqs of a restarted agent are still newer than any it
    sent before the restart (it would have to have sent more than one message per microsecond
    of uptime to overtake the clock); otherwise peers would reject it as a replay until their
    :class:`ReplayGuard` forgets it. A wall clock stepped back across a restart has the same
    effect, until the clock catches up or the peers' floor of the node expires (twice
    ``max_clock_skew`` after it left or failed, see :meth:`ReplayGuard.retire`).

    Raises ``TypeError``/``ValueError`` for a bad ``start``; ``next()`` raises
    ``OverflowError`` past 2**64 - 1.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int) -> None:
        if isinstance(start, bool) or not isinstance(start, int):
            raise TypeError("start must be an int")
        if not 0 <= start <= UINT64_MAX:
            raise ValueError(f"start {start} is outside 0..2**64-1")
        self._next = start

    def next(self) -> int:
        """The next seq: strictly greater than every earlier one from this counter."""
        value = self._next
        if value > UINT64_MAX:
            raise OverflowError("seq counter exhausted 64 bits")
        self._next = value + 1
        return value
