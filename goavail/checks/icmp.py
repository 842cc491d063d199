"""ICMP echo probe engine: one socket per address family, shared by every target.

Two paths share the sockets:

* **Target tables** (the scheduler's path, :meth:`IcmpProbe.submit_batch`): built for
  10,000-50,000 probes per second on one core. A scheduler target list is turned
  once into a :class:`_Table`: target ``i`` gets ICMP sequence number ``i % 65536``
  and an identifier chosen per block of 65,536 targets and per round parity, so a
  reply names its target by itself (no lookup of in-flight probes). The echo
  requests are built once per target and parity; in-flight state is three flat
  arrays (in flight, parity, send time) updated by slice assignment per batch, not
  per probe. On Linux with raw IPv4 sockets a batch goes out with one
  ``sendmmsg(2)`` and replies come in with ``recvmmsg(2)`` (up to 256 per system
  call, through ctypes); elsewhere with ``sendto``/``recv_into`` per packet.
  Timeouts: one deque entry per *batch*, swept by one timer.
* **Single probes** (:meth:`IcmpProbe.submit` and :meth:`IcmpProbe.probe`: IPv6
  targets, unprivileged sockets, ``goavail plan``): sequence numbers from a counter,
  in-flight probes in a dict and a send-order deque (same timeout for all, so send
  order is deadline order: one sweep timer, lazy deletion of answered entries).

A reply counts only when its identifier and sequence number belong to a probe in
flight, it comes from the address that probe was sent to and has our length (raw
sockets; single probes also compare the payload). Table probes alternate between
two identifiers from round to round, so a reply that arrives after its probe
timed out cannot be taken for the reply to the target's next probe (unless the
scheduler skipped a whole round in between: a stall of over one interval).

Privileges: with root or CAP_NET_RAW a SOCK_RAW socket is used and the identifiers
are ours (random). Otherwise an unprivileged ICMP datagram socket ("ping socket")
is used when ``net.ipv4.ping_group_range`` allows it; the kernel then picks the
identifier and only delivers our own replies, so replies are matched by sequence
number and source, through the single-probe path.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import ipaddress
import os
import secrets
import socket
import struct
import time
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from goavail.checks.base import CLOSED, ProbeResult, ProbeSetupError, ResultCallback

_PAYLOAD: Final = b"goavail-echo\x00\x00\x00\x00"  # 16 bytes, even length (checksum words)
_PACKET_LEN: Final = 8 + len(_PAYLOAD)  # ICMP header + payload
_REPLY_LEN_V4: Final = 20 + _PACKET_LEN  # as received on a raw IPv4 socket (no IP options)
_HEADER: Final = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_ID_SEQ: Final = struct.Struct("!HH")
# A raw IPv4 reply without IP options: version/IHL, source address, ICMP type, id, seq.
_REPLY_V4: Final = struct.Struct("!B11xI4xB3xHH")
_SEQ_SPACE: Final = 1 << 16
_SOL_RAW: Final = 255  # Linux SOL_RAW: level of ICMP_FILTER on raw IPv4 ICMP sockets
_ICMP_FILTER: Final = 1
_ICMP6_FILTER: Final = 1
_SO_SNDBUFFORCE: Final = 32  # Linux; like SO_SNDBUF but may exceed wmem_max (needs root)
_SO_RCVBUFFORCE: Final = 33
# Bytes of each socket's queues (kernel memory, used only when a backlog builds up): a
# loopback echo reply takes ~1 KB of receive buffer, so 32 MB hold ~0.6 s of replies at
# 50,000 targets per second while the event loop is held up.
_SOCKET_BUFFER: Final = 32 << 20
_SWEEP_GRANULARITY: Final = 0.010  # seconds; timeouts may be reported this much late
_RECV_BATCH: Final = 256  # datagrams per recvmmsg call
_RECV_SLOT: Final = 128  # bytes per received datagram (IP header <= 60 + ICMP 8 + payload 16)
_MSG_DONTWAIT: Final = 0x40
_ONES: Final = b"\x01" * _SEQ_SPACE

_TIMEOUT: Final = ProbeResult(ok=False, error="timeout")

PING_GROUP_RANGE: Final = "/proc/sys/net/ipv4/ping_group_range"


def _open_socket(family: int, kind: int, proto: int) -> socket.socket:
    """Open a socket; a seam so tests can simulate missing privileges."""
    return socket.socket(family, kind, proto)


@functools.lru_cache(maxsize=1 << 17)
def _parse_target(target: str) -> tuple[int, str]:
    """Return ``(4 or 6, canonical address text)``; raises ValueError if not an IP."""
    ip = ipaddress.ip_address(target)
    return ip.version, str(ip)


def _ones_complement_sum(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of ``data`` (even length), not yet folded."""
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _echo_request(request_type: int, base_sum: int, ident: int, seq: int) -> bytes:
    """Echo request bytes; ``base_sum`` is the checksum sum of type and payload words."""
    s = base_sum + ident + seq
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return _HEADER.pack(request_type, 0, ~s & 0xFFFF, ident, seq) + _PAYLOAD


# -- sendmmsg / recvmmsg through ctypes (Linux, glibc or musl) ---------------------------


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint32))


_MMSG_SIZE: Final = ctypes.sizeof(_Mmsghdr)
_MMSG_LEN_OFFSET: Final = _Mmsghdr.len.offset
_IOVEC_SIZE: Final = ctypes.sizeof(_Iovec)
_U32: Final = struct.Struct("=I")


@functools.cache
def _libc_mmsg() -> tuple[Any, Any] | None:
    """``(sendmmsg, recvmmsg)`` from the C library, or None where they do not exist."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        send, recv = libc.sendmmsg, libc.recvmmsg
    except (OSError, AttributeError):
        return None
    send.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    send.restype = ctypes.c_int
    recv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    recv.restype = ctypes.c_int
    return send, recv


class _Family:
    """The socket of one address family and the precomputed parts of its packets."""

    __slots__ = (
        "base_sum",
        "header_len_in_reply",
        "ident",
        "raw",
        "reply_type",
        "request_type",
        "sock",
        "version",
    )

    def __init__(self, version: int, sock: socket.socket, raw: bool, ident: int) -> None:
        self.version = version
        self.sock = sock
        self.raw = raw
        self.ident = ident
        self.request_type = 8 if version == 4 else 128
        self.reply_type = 0 if version == 4 else 129
        # Raw IPv4 sockets receive the IP header; IPv6 and datagram sockets do not.
        self.header_len_in_reply = version == 4 and raw
        # Checksum of type and payload (the kernel fills in the checksum for ICMPv6 and
        # for datagram sockets, but a correct one is harmless).
        self.base_sum = (self.request_type << 8) + _ones_complement_sum(_PAYLOAD)

    def packet(self, seq: int) -> bytes:
        """Echo request bytes for sequence number ``seq`` with this family's identifier."""
        return _echo_request(self.request_type, self.base_sum, self.ident, seq)


class _Pending:
    """One single probe in flight."""

    __slots__ = ("addr", "callback", "family", "sent", "seq", "target")

    def __init__(
        self,
        target: str,
        addr: str,
        family: _Family,
        callback: ResultCallback,
        seq: int,
        sent: float,
    ) -> None:
        self.target = target
        self.addr = addr
        self.family = family
        self.callback = callback
        self.seq = seq
        self.sent = sent


class _Table:
    """One scheduler target list, prepared for the batch path.

    Index ``i`` of the list is target ``i``. ``runs`` cuts ``[0, n)`` into
    ``(start, end, fast)`` pieces: fast pieces are IPv4 targets sent from the
    precomputed packets of this table; the others (IPv6, invalid, or no raw IPv4
    socket) go through :meth:`IcmpProbe.submit` one by one.
    """

    def __init__(
        self,
        targets: Sequence[str],
        fam: _Family | None,
        idents: list[tuple[int, int]],
        mmsg: bool,
    ) -> None:
        n = len(targets)
        self.src = targets  # identity key; the scheduler never mutates its lists
        self.n = n
        self.targets = list(targets)
        self.callback: ResultCallback | None = None
        self.inflight = bytearray(n)
        self.parity = bytearray(n)
        self.sent = array("d", bytes(8 * n))
        self.source = array("I", bytes(4 * n))  # IPv4 address as a big-endian int
        self.idents = idents  # per block: (ident of even rounds, ident of odd rounds)
        self.live_batches = 0  # batches of this table not swept yet
        fast = bytearray(n)  # 1: an IPv4 address this table sends to itself
        if fam is not None:
            for i, target in enumerate(targets):
                try:  # strict dotted quad, as ipaddress; not cached (saves ~100 B per target)
                    packed = socket.inet_pton(socket.AF_INET, target)
                except OSError:
                    continue
                fast[i] = 1
                self.source[i] = int.from_bytes(packed, "big")
        self.runs: list[tuple[int, int, bool]] = []
        start = 0
        for i in range(1, n + 1):
            if i == n or fast[i] != fast[start]:
                self.runs.append((start, i, bool(fast[start])))
                start = i
        self.any_fast = any(fast)
        # Per parity: the echo request of every target (slow ones get unused bytes).
        self.packets: list[list[bytes]] = []
        if fam is not None and self.any_fast:
            for parity in (0, 1):
                self.packets.append(
                    [
                        _echo_request(
                            fam.request_type, fam.base_sum, idents[i >> 16][parity], i & 0xFFFF
                        )
                        for i in range(n)
                    ]
                )
        self.addrs: list[tuple[str, int]] = []  # sendto addresses (without mmsg)
        self._buffers: list[Any] = []  # ctypes buffers the message arrays point into
        self.msgs: list[Any] = []  # per parity: an array of n mmsghdr
        if mmsg and self.any_fast:
            self._build_messages(fast)
            self.packets = []  # the messages point into their own copy
        elif self.any_fast:
            self.addrs = [(t, 0) for t in self.targets]

    def _build_messages(self, fast: bytearray) -> None:
        n = self.n
        names = ctypes.create_string_buffer(16 * n)
        for i in range(n):
            if fast[i]:
                struct.pack_into(
                    "=HH4s8x", names, 16 * i, socket.AF_INET, 0, self.source[i].to_bytes(4, "big")
                )
        names_at = ctypes.addressof(names)
        self._buffers.append(names)
        for parity in (0, 1):
            joined = b"".join(self.packets[parity])
            packets = ctypes.create_string_buffer(joined, len(joined))
            iovs = (_Iovec * n)()
            msgs = (_Mmsghdr * n)()
            packets_at, iovs_at = ctypes.addressof(packets), ctypes.addressof(iovs)
            for i in range(n):
                iov = iovs[i]
                iov.base = packets_at + _PACKET_LEN * i
                iov.len = _PACKET_LEN
                hdr = msgs[i].hdr
                hdr.name = names_at + 16 * i
                hdr.namelen = 16
                hdr.iov = iovs_at + _IOVEC_SIZE * i
                hdr.iovlen = 1
            self._buffers += [packets, iovs]
            self.msgs.append(msgs)


class IcmpProbe:
    """ICMP echo ("ping") probe engine implementing :class:`goavail.checks.base.Probe`
    and :class:`goavail.checks.base.BatchProbe`.

    Args:
        timeout: seconds after which an unanswered echo request is reported as
            ``ProbeResult(ok=False, error="timeout")``. Results of answered probes
            carry ``rtt`` in seconds.
        batch_syscalls: use ``sendmmsg``/``recvmmsg`` for table probes (None: when
            the C library has them; False forces one system call per packet).

    Targets are IPv4 or IPv6 address strings. Single probes: at most 65,536 can be
    in flight at once (16-bit sequence numbers); beyond that one fails immediately
    with ``error="too many probes in flight"``. Table probes have no such limit
    (one identifier pair per 65,536 targets).
    """

    kind = "icmp"

    def __init__(self, timeout: float = 1.0, *, batch_syscalls: bool | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        mmsg = _libc_mmsg()
        if batch_syscalls and mmsg is None:
            raise ValueError("sendmmsg/recvmmsg are not available in this C library")
        self._mmsg = mmsg if batch_syscalls is not False else None
        self._families: dict[int, _Family] = {}
        self._v6_error: str | None = None
        self._inflight: dict[int, _Pending] = {}
        self._order: deque[_Pending] = deque()
        self._next_seq = secrets.randbelow(_SEQ_SPACE)
        self._table: _Table | None = None
        self._by_ident: dict[int, tuple[_Table, int, int]] = {}  # ident -> table, base, parity
        self._batches: deque[tuple[float, _Table, int, int]] = deque()  # sent, table, start, end
        self._recv: _RecvArrays | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def privileged(self) -> bool:
        """True when raw sockets are in use, False for unprivileged datagram sockets."""
        fam = self._families.get(4)
        return fam is not None and fam.raw

    @property
    def batch_syscalls(self) -> bool:
        """True when table probes use ``sendmmsg``/``recvmmsg``."""
        return self._mmsg is not None

    async def start(self) -> None:
        """Open the IPv4 socket (and the IPv6 one when the host has IPv6).

        Raises:
            ProbeSetupError: neither a raw nor a datagram ICMP socket may be opened;
                the message names both fixes (CAP_NET_RAW, or the sysctl).
        """
        self._loop = asyncio.get_running_loop()
        sock, raw = self._open(socket.AF_INET, socket.IPPROTO_ICMP)
        self._add_family(4, sock, raw)
        try:
            sock6, raw6 = self._open(socket.AF_INET6, socket.IPPROTO_ICMPV6)
        except OSError as exc:  # IPv6 disabled on this host
            self._v6_error = f"IPv6 unavailable: {_error_text(exc)}"
        except ProbeSetupError:  # IPv4 works, IPv6 not allowed: serve IPv4 only
            self._v6_error = "IPv6 unavailable: no permission for an ICMPv6 socket"
        else:
            self._add_family(6, sock6, raw6)

    def _open(self, family: int, proto: int) -> tuple[socket.socket, bool]:
        """Open a raw socket, else an ICMP datagram socket; return it and whether raw."""
        try:
            return _open_socket(family, socket.SOCK_RAW, proto), True
        except PermissionError:
            pass
        try:
            return _open_socket(family, socket.SOCK_DGRAM, proto), False
        except PermissionError as exc:
            raise ProbeSetupError(_permission_message()) from exc

    def _add_family(self, version: int, sock: socket.socket, raw: bool) -> None:
        assert self._loop is not None
        sock.setblocking(False)
        for force, plain in (
            (_SO_RCVBUFFORCE, socket.SO_RCVBUF),
            (_SO_SNDBUFFORCE, socket.SO_SNDBUF),
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, _SOCKET_BUFFER)
            except OSError:  # EPERM without CAP_NET_ADMIN: capped at the sysctl maximum
                sock.setsockopt(socket.SOL_SOCKET, plain, _SOCKET_BUFFER)
        if raw and version == 4:
            # Kernel-side filter: pass echo replies (type 0) only, not our own requests.
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF & ~1))
        elif raw:
            words = [0xFFFFFFFF] * 8
            words[129 >> 5] &= ~(1 << (129 & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
        ident = self._new_ident() if raw else 0
        fam = _Family(version, sock, raw, ident)
        self._families[version] = fam
        if raw and version == 4:
            if self._mmsg is not None:
                self._recv = _RecvArrays()
            self._loop.add_reader(sock.fileno(), self._on_readable_v4)
        else:
            self._loop.add_reader(sock.fileno(), self._on_readable, fam)

    def _new_ident(self, taken: frozenset[int] = frozenset()) -> int:
        """A random identifier not used by a family, a live table or ``taken``."""
        used = set(self._by_ident) | {f.ident for f in self._families.values()} | taken
        while True:
            ident = secrets.randbelow(_SEQ_SPACE)
            if ident not in used:
                return ident

    # -- the batch (table) path ----------------------------------------------------------

    def submit_batch(
        self,
        targets: Sequence[str],
        start: int,
        end: int,
        round_number: int,
        callback: ResultCallback,
    ) -> None:
        """Probe ``targets[start:end]`` now; ``callback(target, result)`` follows for each.

        ``targets`` is the scheduler's current target list, passed as the same object
        every time (a new list object means new targets: it is prepared once, in
        O(len(targets))). ``round_number`` counts the rounds of that list (0, 1, ...).
        A target whose previous probe is still in flight has it reported as timed out
        first (``timeout <= interval``, so it had its time). Never raises for a bad
        target or a send error (see :meth:`submit`).
        """
        table = self._table
        if table is None or table.src is not targets:
            table = self._new_table(targets)
        table.callback = callback
        parity = round_number & 1
        for run_start, run_end, fast in table.runs:
            a, b = max(start, run_start), min(end, run_end)
            if a >= b:
                continue
            if not fast or self._closed:
                for i in range(a, b):
                    self.submit(table.targets[i], callback)
                continue
            if table.inflight.find(1, a, b) != -1:
                self._expire_early(table, a, b)
            now = time.monotonic()
            table.sent[a:b] = array("d", (now,)) * (b - a)
            table.parity[a:b] = (b"\x01" if parity else b"\x00") * (b - a)
            table.inflight[a:b] = _ONES[: b - a] if b - a <= _SEQ_SPACE else b"\x01" * (b - a)
            failed = self._send_table(table, parity, a, b)
            self._batches.append((now, table, a, b))
            table.live_batches += 1
            for i, reason in failed:
                table.inflight[i] = 0
                self._fail_soon(table.targets[i], callback, reason)
            if self._timer is None:
                self._arm(now + self.timeout)

    def _new_table(self, targets: Sequence[str]) -> _Table:
        """Prepare ``targets``; the previous table stays until its probes are answered."""
        old = self._table
        fam = self._families.get(4)
        usable = fam if fam is not None and fam.raw and not self._closed else None
        idents: list[tuple[int, int]] = []
        taken: frozenset[int] = frozenset()
        if usable is not None:
            for _block in range(-(-len(targets) // _SEQ_SPACE)):
                even = self._new_ident(taken)
                odd = self._new_ident(taken | {even})
                taken |= {even, odd}
                idents.append((even, odd))
        table = _Table(targets, usable, idents, self._mmsg is not None)
        for block, (even, odd) in enumerate(idents):
            self._by_ident[even] = (table, block << 16, 0)
            self._by_ident[odd] = (table, block << 16, 1)
        self._table = table
        if old is not None and old.live_batches == 0:
            self._retire(old)
        return table

    def _retire(self, table: _Table) -> None:
        """Forget a replaced table's identifiers once none of its probes is in flight."""
        for even, odd in table.idents:
            self._by_ident.pop(even, None)
            self._by_ident.pop(odd, None)

    def _send_table(self, table: _Table, parity: int, a: int, b: int) -> list[tuple[int, str]]:
        """Send the echo requests of targets ``a..b-1``; return ``(index, reason)`` of failures."""
        fam = self._families[4]
        failed: list[tuple[int, str]] = []
        if self._mmsg is not None:
            sendmmsg = self._mmsg[0]
            fd = fam.sock.fileno()
            base = ctypes.addressof(table.msgs[parity])
            pos = a
            while pos < b:
                sent = sendmmsg(fd, base + _MMSG_SIZE * pos, b - pos, 0)
                if sent > 0:
                    pos += sent
                    continue
                err = ctypes.get_errno()
                if sent < 0 and err == errno.EINTR:
                    continue
                # The first message failed (a firewall's EPERM, no route, a full send
                # buffer): that probe fails, the rest of the batch still goes out.
                failed.append((pos, os.strerror(err).lower() if err else "send failed"))
                pos += 1
            return failed
        sendto = fam.sock.sendto
        packets = table.packets[parity]
        addrs = table.addrs
        for i in range(a, b):
            try:
                sendto(packets[i], addrs[i])
            except OSError as exc:
                failed.append((i, _error_text(exc)))
        return failed

    def _expire_early(self, table: _Table, a: int, b: int) -> None:
        """Report probes of ``a..b-1`` still in flight as timed out (a new probe follows)."""
        self._drain()
        self._sweep_batches(time.monotonic())
        inflight, callback = table.inflight, table.callback
        i = inflight.find(1, a, b)
        while i != -1:
            inflight[i] = 0
            if callback is not None:
                callback(table.targets[i], _TIMEOUT)
            i = inflight.find(1, i + 1, b)

    # -- the single-probe path -----------------------------------------------------------

    def submit(self, target: str, callback: ResultCallback) -> None:
        """Send one echo request to ``target``; ``callback(target, result)`` follows.

        Never raises for a bad target or a send error: those complete the probe
        (soon, not from inside this call) with ``ok=False`` and the reason.
        """
        try:
            version, addr = _parse_target(target)
        except ValueError:
            self._fail_soon(target, callback, "invalid IP address")
            return
        fam = self._families.get(version)
        if fam is None:
            if self._closed or self._loop is None:
                reason = "closed" if self._closed else "not started"
            else:
                reason = self._v6_error or "IPv6 unavailable"
            self._fail_soon(target, callback, reason)
            return
        inflight = self._inflight
        if len(inflight) >= _SEQ_SPACE:
            self._fail_soon(target, callback, "too many probes in flight")
            return
        seq = self._next_seq
        while seq in inflight:
            seq = (seq + 1) & 0xFFFF
        self._next_seq = (seq + 1) & 0xFFFF
        try:
            fam.sock.sendto(fam.packet(seq), (addr, 0))
        except OSError as exc:
            self._fail_soon(target, callback, _error_text(exc))
            return
        entry = _Pending(target, addr, fam, callback, seq, time.monotonic())
        inflight[seq] = entry
        self._order.append(entry)
        if self._timer is None:
            self._arm(entry.sent + self.timeout)

    async def probe(self, target: str) -> ProbeResult:
        """Probe ``target`` once and return its result (after at most ~``timeout`` s)."""
        future: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()

        def done(_target: str, result: ProbeResult) -> None:
            if not future.done():
                future.set_result(result)

        self.submit(target, done)
        return await future

    async def close(self) -> None:
        """Close the sockets; probes still in flight complete with ``error="closed"``."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fam in self._families.values():
            if self._loop is not None:
                self._loop.remove_reader(fam.sock.fileno())
            fam.sock.close()
        self._families.clear()
        pending = list(self._inflight.values())
        self._inflight.clear()
        self._order.clear()
        for entry in pending:
            entry.callback(entry.target, CLOSED)
        tables = {id(t): t for _sent, t, _a, _b in self._batches}
        self._batches.clear()
        self._table = None
        self._by_ident.clear()
        for table in tables.values():
            inflight, callback = table.inflight, table.callback
            i = inflight.find(1)
            while i != -1:
                inflight[i] = 0
                if callback is not None:
                    callback(table.targets[i], CLOSED)
                i = inflight.find(1, i + 1)

    # -- event-loop callbacks -----------------------------------------------------------

    def _drain(self) -> None:
        """Read every reply already queued before anything is declared timed out.

        After the event loop was held up (a long callback, a busy thread holding the
        GIL) replies that arrived in time wait in the socket's queue; without this
        they would be read only after their probes were failed. Such a reply counts
        (its RTT is measured when it is read, so it may exceed the timeout): a late
        success is harmless, a false failure could withdraw a healthy address.
        """
        for fam in list(self._families.values()):
            if fam.raw and fam.version == 4:
                self._on_readable_v4()
            else:
                self._on_readable(fam)

    def _on_readable_v4(self) -> None:
        """Drain the raw IPv4 socket: table replies by identifier, the rest by sequence."""
        fam = self._families.get(4)
        if fam is None:
            return
        if self._recv is not None:
            self._drain_mmsg(fam)
        else:
            self._drain_plain_v4(fam)

    def _drain_mmsg(self, fam: _Family) -> None:
        assert self._mmsg is not None
        assert self._recv is not None
        recvmmsg = self._mmsg[1]
        arrays = self._recv
        msgs, buf, lengths = arrays.msgs, arrays.view, arrays.lengths
        fd = fam.sock.fileno()
        by_ident = self._by_ident
        unpack_reply = _REPLY_V4.unpack_from
        unpack_len = _U32.unpack_from
        while True:
            count = recvmmsg(fd, msgs, _RECV_BATCH, _MSG_DONTWAIT, None)
            if count <= 0:
                return  # EAGAIN: drained (or a queued error: nothing to match)
            now = time.monotonic()
            for j in range(count):
                off = _RECV_SLOT * j
                length = unpack_len(lengths, _MMSG_SIZE * j + _MMSG_LEN_OFFSET)[0]
                vihl, source, kind, ident, seq = unpack_reply(buf, off)
                if vihl != 0x45 or length != _REPLY_LEN_V4:
                    self._match_raw_v4(fam, bytes(buf[off : off + min(length, _RECV_SLOT)]), now)
                    continue
                entry = by_ident.get(ident)
                if entry is not None and kind == 0:
                    table, base, parity = entry
                    i = base + seq
                    if (
                        i < table.n
                        and table.inflight[i]
                        and table.parity[i] == parity
                        and table.source[i] == source
                    ):
                        table.inflight[i] = 0
                        callback = table.callback
                        if callback is not None:
                            callback(table.targets[i], ProbeResult(True, now - table.sent[i]))
                    continue
                if ident == fam.ident:
                    self._match_raw_v4(fam, bytes(buf[off : off + min(length, _RECV_SLOT)]), now)
            if count < _RECV_BATCH:
                return

    def _drain_plain_v4(self, fam: _Family) -> None:
        sock = fam.sock
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued socket error: nothing to match; wake again later
                return
            self._match_raw_v4(fam, data, time.monotonic())

    def _match_raw_v4(self, fam: _Family, data: bytes, now: float) -> None:
        """Match one datagram of the raw IPv4 socket (any IP header length)."""
        if len(data) < 20:
            return
        off = (data[0] & 0x0F) << 2
        if len(data) != off + _PACKET_LEN or data[off] != 0:
            return
        ident, seq = _ID_SEQ.unpack_from(data, off + 4)
        source = int.from_bytes(data[12:16], "big")
        entry = self._by_ident.get(ident)
        if entry is not None:
            table, base, parity = entry
            i = base + seq
            if (
                i < table.n
                and table.inflight[i]
                and table.parity[i] == parity
                and table.source[i] == source
            ):
                table.inflight[i] = 0
                if table.callback is not None:
                    table.callback(table.targets[i], ProbeResult(True, now - table.sent[i]))
            return
        if ident != fam.ident or data[off + 8 :] != _PAYLOAD:
            return
        pending = self._inflight.get(seq)
        if (
            pending is None
            or pending.family is not fam
            or pending.addr != socket.inet_ntoa(data[12:16])
        ):
            return
        del self._inflight[seq]
        pending.callback(pending.target, ProbeResult(True, now - pending.sent))

    def _on_readable(self, fam: _Family) -> None:
        """Drain ``fam``'s socket (IPv6, or a datagram socket) and complete single probes."""
        sock = fam.sock
        inflight = self._inflight
        reply_type = fam.reply_type
        check_ident = fam.raw
        ident = fam.ident
        while True:
            try:
                data, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued socket error: nothing to match; wake again later
                return
            now = time.monotonic()
            off = (data[0] & 0x0F) << 2 if fam.header_len_in_reply else 0
            if len(data) < off + 8 or data[off] != reply_type:
                continue
            reply_ident, seq = _ID_SEQ.unpack_from(data, off + 4)
            if check_ident and (reply_ident != ident or data[off + 8 :] != _PAYLOAD):
                continue
            entry = inflight.get(seq)
            if entry is None or entry.family is not fam or entry.addr != source[0]:
                continue
            del inflight[seq]
            entry.callback(entry.target, ProbeResult(True, now - entry.sent))

    def _arm(self, deadline: float) -> None:
        assert self._loop is not None
        delay = max(deadline - time.monotonic(), _SWEEP_GRANULARITY)
        self._timer = self._loop.call_later(delay, self._sweep)

    def _sweep(self) -> None:
        """Fail every probe whose deadline has passed, then re-arm for the next one."""
        self._timer = None
        self._drain()
        now = time.monotonic()
        try:
            self._sweep_batches(now)
            self._sweep_single(now - self.timeout)
        finally:
            if not self._closed:
                deadlines = []
                if self._order:
                    deadlines.append(self._order[0].sent)
                if self._batches:
                    deadlines.append(self._batches[0][0])
                if deadlines:
                    self._arm(min(deadlines) + self.timeout)

    def _sweep_batches(self, now: float) -> None:
        """Report table probes sent at or before ``now - timeout`` and unanswered."""
        batches = self._batches
        horizon = now - self.timeout
        while batches and batches[0][0] <= horizon:
            sent_at, table, a, b = batches.popleft()
            table.live_batches -= 1
            inflight, sent, callback = table.inflight, table.sent, table.callback
            i = inflight.find(1, a, b)
            while i != -1:
                if sent[i] <= sent_at:  # not re-sent since (a newer probe has its own batch)
                    inflight[i] = 0
                    if callback is not None:
                        callback(table.targets[i], _TIMEOUT)
                i = inflight.find(1, i + 1, b)
            if table.live_batches == 0 and table is not self._table:
                self._retire(table)

    def _sweep_single(self, horizon: float) -> None:
        order = self._order
        inflight = self._inflight
        while order:
            entry = order[0]
            if inflight.get(entry.seq) is not entry:  # answered (or seq reused)
                order.popleft()
                continue
            if entry.sent > horizon:
                break
            order.popleft()
            del inflight[entry.seq]
            entry.callback(entry.target, _TIMEOUT)

    def _fail_soon(self, target: str, callback: ResultCallback, reason: str) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(callback, target, ProbeResult(ok=False, error=reason))


class _RecvArrays:
    """``recvmmsg`` arrays: _RECV_BATCH headers, each with one _RECV_SLOT-byte buffer."""

    __slots__ = ("buf", "iovs", "lengths", "msgs", "view")

    def __init__(self) -> None:
        self.buf = ctypes.create_string_buffer(_RECV_BATCH * _RECV_SLOT)
        self.iovs = (_Iovec * _RECV_BATCH)()
        self.msgs = (_Mmsghdr * _RECV_BATCH)()
        buf_at, iovs_at = ctypes.addressof(self.buf), ctypes.addressof(self.iovs)
        for j in range(_RECV_BATCH):
            self.iovs[j].base = buf_at + _RECV_SLOT * j
            self.iovs[j].len = _RECV_SLOT
            self.msgs[j].hdr.iov = iovs_at + _IOVEC_SIZE * j
            self.msgs[j].hdr.iovlen = 1
        self.view = memoryview(self.buf).cast("B")  # the received bytes
        self.lengths = memoryview(self.msgs).cast("B")  # to read each msg_len


def _error_text(exc: OSError) -> str:
    """Short lower-case reason for a socket error ("no route to host", ...)."""
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _permission_message() -> str:
    try:
        with open(PING_GROUP_RANGE, encoding="ascii") as f:
            current = " ".join(f.read().split())
    except OSError:
        current = "unreadable"
    return (
        "cannot open an ICMP socket: raw ICMP sockets need root or CAP_NET_RAW, and "
        f"unprivileged ICMP sockets are not allowed for group {os.getegid()} by "
        f'net.ipv4.ping_group_range (currently "{current}"). Fix one of: '
        "run as root or grant CAP_NET_RAW (e.g. `setcap cap_net_raw+ep <python binary>`, "
        "or systemd `AmbientCapabilities=CAP_NET_RAW`); or allow ping sockets with "
        '`sysctl -w net.ipv4.ping_group_range="0 2147483647"`.'
    )


__all__ = ["IcmpProbe"]
