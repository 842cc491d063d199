"""ICMP echo probe engine: one socket per address family, shared by every target.

Design (built for tens of thousands of probes per second on one core):

* One non-blocking socket per family (IPv4, IPv6), read through ``loop.add_reader``;
  every wake-up drains all queued datagrams.
* In-flight probes live in a dict keyed by the 16-bit ICMP sequence number and in a
  FIFO deque in send order. The timeout is the same for every probe, so send order is
  deadline order: ONE timer sweeps expired probes from the deque head and re-arms for
  the next deadline (no timer or task per probe). Answered probes stay in the deque
  until their deadline passes and are skipped then (lazy deletion).
* Echo requests are built from precomputed parts; the checksum is finished
  incrementally from a precomputed partial sum.
* A reply counts only when its sequence number is in flight, it comes from the
  address that probe was sent to, and (raw sockets) it carries our identifier and
  payload.

Privileges: with root or CAP_NET_RAW a SOCK_RAW socket is used and the identifier is
ours (random). Otherwise an unprivileged ICMP datagram socket ("ping socket") is used
when ``net.ipv4.ping_group_range`` allows it; the kernel then picks the identifier and
only delivers our own replies, so replies are matched by sequence number and source.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections import deque
from typing import Final

from goavail.checks.base import CLOSED, ProbeResult, ProbeSetupError, ResultCallback

_PAYLOAD: Final = b"goavail-echo\x00\x00\x00\x00"  # 16 bytes, even length (checksum words)
_HEADER: Final = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_ID_SEQ: Final = struct.Struct("!HH")
_SEQ_SPACE: Final = 1 << 16
_SOL_RAW: Final = 255  # Linux SOL_RAW: level of ICMP_FILTER on raw IPv4 ICMP sockets
_ICMP_FILTER: Final = 1
_ICMP6_FILTER: Final = 1
_SO_SNDBUFFORCE: Final = 32  # Linux; like SO_SNDBUF but may exceed wmem_max (needs root)
_SO_RCVBUFFORCE: Final = 33
_SOCKET_BUFFER: Final = 16 << 20  # bytes; a burst of 20,000 loopback replies needs ~16 MB
_SWEEP_GRANULARITY: Final = 0.005  # seconds; timeouts may be reported this much late

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
        # Checksum of everything but the sequence number (the kernel fills in the
        # checksum for ICMPv6 and for datagram sockets, but a correct one is harmless).
        self.base_sum = (self.request_type << 8) + ident + _ones_complement_sum(_PAYLOAD)

    def packet(self, seq: int) -> bytes:
        """Echo request bytes for sequence number ``seq``."""
        s = self.base_sum + seq
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return _HEADER.pack(self.request_type, 0, ~s & 0xFFFF, self.ident, seq) + _PAYLOAD


class _Pending:
    """One probe in flight."""

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


class IcmpProbe:
    """ICMP echo ("ping") probe engine implementing :class:`goavail.checks.base.Probe`.

    Args:
        timeout: seconds after which an unanswered echo request is reported as
            ``ProbeResult(ok=False, error="timeout")``. Results of answered probes
            carry ``rtt`` in seconds.

    Targets are IPv4 or IPv6 address strings. At most 65,536 probes can be in flight
    at once (16-bit sequence numbers); beyond that a probe fails immediately with
    ``error="too many probes in flight"``.
    """

    kind = "icmp"

    def __init__(self, timeout: float = 1.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._families: dict[int, _Family] = {}
        self._v6_error: str | None = None
        self._inflight: dict[int, _Pending] = {}
        self._order: deque[_Pending] = deque()
        self._next_seq = secrets.randbelow(_SEQ_SPACE)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def privileged(self) -> bool:
        """True when raw sockets are in use, False for unprivileged datagram sockets."""
        fam = self._families.get(4)
        return fam is not None and fam.raw

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
        ident = secrets.randbelow(_SEQ_SPACE) if raw else 0
        fam = _Family(version, sock, raw, ident)
        self._families[version] = fam
        self._loop.add_reader(sock.fileno(), self._on_readable, fam)

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

    # -- event-loop callbacks -------------------------------------------------------

    def _on_readable(self, fam: _Family) -> None:
        """Drain every queued datagram of ``fam``'s socket and complete matched probes."""
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
            entry.callback(entry.target, ProbeResult(ok=True, rtt=now - entry.sent))

    def _arm(self, deadline: float) -> None:
        assert self._loop is not None
        delay = max(deadline - time.monotonic(), _SWEEP_GRANULARITY)
        self._timer = self._loop.call_later(delay, self._sweep)

    def _sweep(self) -> None:
        """Fail every probe whose deadline has passed, then re-arm for the next one."""
        self._timer = None
        order = self._order
        inflight = self._inflight
        horizon = time.monotonic() - self.timeout  # probes sent at or before this expired
        try:
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
        finally:
            if order and not self._closed:
                self._arm(order[0].sent + self.timeout)

    def _fail_soon(self, target: str, callback: ResultCallback, reason: str) -> None:
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(callback, target, ProbeResult(ok=False, error=reason))


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
