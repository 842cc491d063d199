"""ICMP and TCP probe engines and the scheduler against loopback targets.

Runs inside the private network namespace of the test session (see tests/netns.py):
every packet goes to 127.0.0.0/8 or ::1 and nothing can leave the machine.
Outages are nftables rules; sysctls changed here are the namespace's own.

Note: a DROP in the OUTPUT hook makes the kernel refuse the send of a raw ICMP
socket with EPERM, so ``Nft.drop`` shows up as an immediate "operation not
permitted" for ICMP. A silent host (request sent, no answer) is simulated by
dropping the kernel's echo reply instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from goavail.checks import icmp as icmp_module
from goavail.checks.base import ProbeResult, ProbeSetupError, ResultCallback
from goavail.checks.icmp import IcmpProbe
from goavail.checks.scheduler import ProbeScheduler
from goavail.checks.tcp import TcpProbe
from tests.netns import Nft

pytestmark = pytest.mark.netns

TIMEOUT = 0.5
MARGIN = 1.0  # seconds of slack for slow CI machines


@contextlib.contextmanager
def sysctl(name: str, value: str) -> Iterator[None]:
    """Set a sysctl of the private namespace for the duration of the block."""
    path = Path("/proc/sys") / name.replace(".", "/")
    old = path.read_text()
    path.write_text(value)
    try:
        yield
    finally:
        path.write_text(old)


def drop_echo_replies_from(nft: Nft, addr: str) -> None:
    """Make ``addr`` a silent host: requests reach it, its echo replies vanish."""
    nft._nft(f"add rule inet {nft.table} out ip saddr {addr} icmp type echo-reply drop")


@pytest.fixture
async def icmp() -> AsyncIterator[IcmpProbe]:
    probe = IcmpProbe(timeout=TIMEOUT)
    await probe.start()
    yield probe
    await probe.close()


async def probe_all(probe: IcmpProbe | TcpProbe, targets: list[str]) -> dict[str, ProbeResult]:
    results = await asyncio.gather(*(probe.probe(t) for t in targets))
    return dict(zip(targets, results, strict=True))


# -- ICMP ------------------------------------------------------------------------------


async def test_icmp_loopback_targets_answer(icmp: IcmpProbe) -> None:
    assert icmp.privileged  # the test session runs as root
    results = await probe_all(icmp, ["127.0.0.1", "127.0.0.2", "127.9.8.7", "::1"])
    for target, result in results.items():
        assert result.ok, target
        assert result.rtt is not None
        assert 0 < result.rtt < TIMEOUT
        assert result.error is None


async def test_icmp_silent_host_times_out_others_stay_ok(icmp: IcmpProbe) -> None:
    targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with Nft() as nft:
        drop_echo_replies_from(nft, "127.0.0.3")
        start = time.monotonic()
        results = await probe_all(icmp, targets)
        elapsed = time.monotonic() - start
    assert results["127.0.0.3"] == ProbeResult(ok=False, error="timeout")
    assert all(results[t].ok for t in targets if t != "127.0.0.3")
    assert TIMEOUT <= elapsed < TIMEOUT + MARGIN


async def test_icmp_firewalled_send_fails_immediately(icmp: IcmpProbe) -> None:
    with Nft() as nft:
        nft.drop("127.0.0.3")
        start = time.monotonic()
        results = await probe_all(icmp, ["127.0.0.2", "127.0.0.3"])
        elapsed = time.monotonic() - start
    assert results["127.0.0.2"].ok
    assert results["127.0.0.3"] == ProbeResult(ok=False, error="operation not permitted")
    assert elapsed < TIMEOUT


async def test_icmp_invalid_target_fails_without_raising(icmp: IcmpProbe) -> None:
    assert await icmp.probe("not-an-ip") == ProbeResult(ok=False, error="invalid IP address")


async def test_icmp_two_thousand_targets_one_socket_one_round(icmp: IcmpProbe) -> None:
    targets = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    results: dict[str, list[ProbeResult]] = defaultdict(list)
    all_in = asyncio.Event()

    def record(target: str, result: ProbeResult) -> None:
        results[target].append(result)
        if len(results) == len(targets):
            all_in.set()

    for target in targets:
        icmp.submit(target, record)
    await asyncio.wait_for(all_in.wait(), TIMEOUT + MARGIN)
    await asyncio.sleep(TIMEOUT)  # a second (duplicate) result would show up by now
    assert sorted(results) == sorted(targets)
    assert all(len(r) == 1 and r[0].ok for r in results.values())
    assert len(icmp._families) == 2  # one IPv4 + one IPv6 socket served everything


async def test_icmp_close_completes_pending_probes(icmp: IcmpProbe) -> None:
    got: list[tuple[str, ProbeResult]] = []
    with sysctl("net.ipv4.icmp_echo_ignore_all", "1"):
        icmp.submit("127.0.0.1", lambda t, r: got.append((t, r)))
        await icmp.close()
    assert got == [("127.0.0.1", ProbeResult(ok=False, error="closed"))]
    assert await icmp.probe("127.0.0.1") == ProbeResult(ok=False, error="closed")


def forged_reply(ident: int, seq: int) -> bytes:
    """An echo reply as the kernel would send it, with our payload."""
    payload = icmp_module._PAYLOAD
    header = struct.pack("!BBHHH", 0, 0, 0, ident, seq)
    words = struct.unpack(f"!{(len(header) + len(payload)) // 2}H", header + payload)
    s = sum(words)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return struct.pack("!BBHHH", 0, 0, ~s & 0xFFFF, ident, seq) + payload


async def test_icmp_ignores_replies_with_wrong_id_seq_or_source(icmp: IcmpProbe) -> None:
    with (
        sysctl("net.ipv4.icmp_echo_ignore_all", "1"),  # only forged replies arrive
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as forger,
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as stranger,
    ):
        forger.bind(("127.0.0.5", 0))  # source address of the replies: the target's
        stranger.bind(("127.0.0.6", 0))
        task = asyncio.create_task(icmp.probe("127.0.0.5"))
        await asyncio.sleep(0.01)
        [seq] = icmp._inflight
        ident = icmp._families[4].ident
        stranger.sendto(forged_reply(ident, seq), ("127.0.0.1", 0))  # wrong source
        forger.sendto(forged_reply(ident ^ 1, seq), ("127.0.0.1", 0))  # wrong identifier
        forger.sendto(forged_reply(ident, seq ^ 1), ("127.0.0.1", 0))  # wrong sequence
        await asyncio.sleep(0.05)
        assert not task.done()
        forger.sendto(forged_reply(ident, seq), ("127.0.0.1", 0))  # the real thing
        result = await asyncio.wait_for(task, TIMEOUT)
    assert result.ok


# -- unprivileged fallback -------------------------------------------------------------


def refuse(*kinds: int) -> object:
    real = icmp_module._open_socket

    def open_socket(family: int, kind: int, proto: int) -> socket.socket:
        if kind in kinds:
            raise PermissionError(1, "Operation not permitted")
        return real(family, kind, proto)

    return open_socket


async def test_icmp_without_privileges_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp_module, "_open_socket", refuse(socket.SOCK_RAW, socket.SOCK_DGRAM))
    probe = IcmpProbe(timeout=TIMEOUT)
    with pytest.raises(ProbeSetupError) as info:
        await probe.start()
    message = str(info.value)
    for fix in ("CAP_NET_RAW", "setcap cap_net_raw+ep", "AmbientCapabilities=CAP_NET_RAW"):
        assert fix in message
    assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in message
    await probe.close()


async def test_icmp_datagram_socket_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icmp_module, "_open_socket", refuse(socket.SOCK_RAW))
    with sysctl("net.ipv4.ping_group_range", "0 2147483647"), Nft() as nft:
        probe = IcmpProbe(timeout=TIMEOUT)
        await probe.start()
        try:
            assert not probe.privileged
            drop_echo_replies_from(nft, "127.0.0.3")
            results = await probe_all(probe, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"])
        finally:
            await probe.close()
    assert results["127.0.0.3"] == ProbeResult(ok=False, error="timeout")
    assert all(results[t].ok for t in ("127.0.0.1", "127.0.0.2", "::1"))


# -- TCP -------------------------------------------------------------------------------


async def _serve(host: str) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def test_tcp_listening_port_ok() -> None:
    for host in ("127.0.0.1", "::1"):
        server, port = await _serve(host)
        async with server:
            result = await TcpProbe(port, timeout=TIMEOUT).probe(host)
        assert result.ok, host
        assert result.rtt is not None
        assert 0 < result.rtt < TIMEOUT


async def test_tcp_closed_port_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free and nobody listens
    result = await TcpProbe(port, timeout=TIMEOUT).probe("127.0.0.1")
    assert result == ProbeResult(ok=False, error="connection refused")


async def test_tcp_dropped_target_times_out_and_close_cancels() -> None:
    server, port = await _serve("0.0.0.0")
    probe = TcpProbe(port, timeout=TIMEOUT)
    got: list[ProbeResult] = []
    async with server:
        with Nft() as nft:
            nft.drop("127.0.0.4")
            start = time.monotonic()
            results = await probe_all(probe, ["127.0.0.2", "127.0.0.4"])
            elapsed = time.monotonic() - start
            probe.submit("127.0.0.4", lambda t, r: got.append(r))
            await asyncio.sleep(0.01)
            await probe.close()
    assert results["127.0.0.2"].ok
    assert results["127.0.0.4"] == ProbeResult(ok=False, error="timeout")
    assert TIMEOUT <= elapsed < TIMEOUT + MARGIN
    assert got == [ProbeResult(ok=False, error="closed")]


# -- scheduler end to end --------------------------------------------------------------


class Recorder:
    """Wraps a probe engine, recording when each target was submitted."""

    def __init__(self, inner: IcmpProbe) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.timeout = inner.timeout
        self.sent: dict[str, list[float]] = defaultdict(list)

    async def start(self) -> None:
        await self.inner.start()

    def submit(self, target: str, callback: ResultCallback) -> None:
        self.sent[target].append(time.monotonic())
        self.inner.submit(target, callback)

    async def probe(self, target: str) -> ProbeResult:
        return await self.inner.probe(target)

    async def close(self) -> None:
        await self.inner.close()


async def run_for(scheduler: ProbeScheduler, seconds: float) -> None:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)
    scheduler.stop()
    await asyncio.wait_for(task, 1.0)


async def test_scheduler_spreads_probes_over_the_interval(icmp: IcmpProbe) -> None:
    interval = 0.5
    targets = [f"127.2.0.{i}" for i in range(1, 201)]
    recorder = Recorder(icmp)
    results: dict[str, list[ProbeResult]] = defaultdict(list)
    scheduler = ProbeScheduler(recorder, interval, lambda t, r: results[t].append(r))
    scheduler.set_targets(targets)
    await run_for(scheduler, 2.0)
    await asyncio.sleep(0.1)  # let the last replies in

    assert sorted(results) == sorted(targets)
    for target in targets:
        assert 3 <= len(results[target]) <= 5, target
        assert all(r.ok for r in results[target]), target
    first_round = sorted(times[0] for times in recorder.sent.values())
    assert first_round[-1] - first_round[0] > 0.6 * interval  # spread, not one burst
    busiest = max(sum(1 for t in first_round if start <= t < start + 0.05) for start in first_round)
    assert busiest < 60  # even spread puts ~20 in any 50 ms


async def test_scheduler_reload_adds_and_removes_targets(icmp: IcmpProbe) -> None:
    interval = 0.2
    old = [f"127.3.0.{i}" for i in range(1, 21)]
    new = [f"127.3.1.{i}" for i in range(1, 21)] + old[:5]
    recorder = Recorder(icmp)
    scheduler = ProbeScheduler(recorder, interval, lambda t, r: None)
    scheduler.set_targets(old)
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.5)
    scheduler.set_targets(new)
    reloaded = time.monotonic()
    await asyncio.sleep(0.7)
    scheduler.stop()
    await asyncio.wait_for(task, 1.0)

    for target in old[5:]:
        assert all(t <= reloaded for t in recorder.sent[target]), target
    for target in new:
        assert len([t for t in recorder.sent[target] if t > reloaded]) >= 2, target
