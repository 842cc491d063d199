"""IPv6 targets: ICMPv6 echo over the shared socket and TCP over IPv6, with outages.

The targets are addresses of the documentation prefix 2001:db8::/32 put on the
loopback of the test session's private network namespace (``loopback_addresses``);
a dead host is an nftables blackhole (``ip6 daddr ... drop`` on input), as for
the IPv4 tests. Nothing can leave the namespace. No timing is asserted: a
probe either answers or reports why not.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from goavail.checks.base import ProbeResult
from goavail.checks.icmp import IcmpProbe
from goavail.checks.tcp import TcpProbe
from tests.netns import Nft, loopback_addresses

pytestmark = pytest.mark.netns

TIMEOUT = 0.5
V6 = [f"2001:db8:6::{i}" for i in range(1, 5)]


@pytest.fixture
def v6() -> Iterator[list[str]]:
    with loopback_addresses(*V6) as addresses:
        yield addresses


@pytest.fixture
async def icmp() -> AsyncIterator[IcmpProbe]:
    probe = IcmpProbe(timeout=TIMEOUT)
    await probe.start()
    yield probe
    await probe.close()


async def probe_all(probe: IcmpProbe | TcpProbe, targets: list[str]) -> dict[str, ProbeResult]:
    results = await asyncio.gather(*(probe.probe(t) for t in targets))
    return dict(zip(targets, results, strict=True))


def drop_echo_replies_from(nft: Nft, addr: str) -> None:
    """``addr`` receives the echo request but its reply vanishes on the way out."""
    nft._nft(f"add rule inet {nft.table} out ip6 saddr {addr} icmpv6 type echo-reply drop")


async def test_icmpv6_documentation_addresses_answer_over_one_socket(
    icmp: IcmpProbe, v6: list[str]
) -> None:
    v6_socket = icmp._families[6].sock
    results = await probe_all(icmp, [*v6, "127.0.0.1", "::1"])
    assert all(r.ok and r.rtt is not None and r.error is None for r in results.values()), results
    assert icmp._families[6].sock is v6_socket  # the one shared ICMPv6 socket served them all
    assert set(icmp._families) == {4, 6}


async def test_icmpv6_blackholed_target_times_out_others_answer(
    icmp: IcmpProbe, v6: list[str], nft: Nft
) -> None:
    nft.blackhole(v6[1])
    results = await probe_all(icmp, [*v6, "127.0.0.1"])
    assert results[v6[1]] == ProbeResult(ok=False, error="timeout")
    assert all(results[t].ok for t in [v6[0], *v6[2:], "127.0.0.1"])
    nft.clear()
    assert (await icmp.probe(v6[1])).ok  # back as soon as the rule is gone


async def test_icmpv6_silent_host_and_mixed_families_in_flight(
    icmp: IcmpProbe, v6: list[str], nft: Nft
) -> None:
    drop_echo_replies_from(nft, v6[2])
    nft.blackhole("127.0.0.3")
    targets = [
        t
        for pair in zip(v6, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"], strict=True)
        for t in pair
    ]
    results = await probe_all(icmp, targets)
    down = {t for t, r in results.items() if not r.ok}
    assert down == {v6[2], "127.0.0.3"}
    assert all(results[t].error == "timeout" for t in down)


async def test_icmpv6_forms_of_one_address_are_one_target(icmp: IcmpProbe, v6: list[str]) -> None:
    # configured text is canonicalised by the config; the engine accepts any form too
    long_form = "2001:0db8:0006:0000:0000:0000:0000:0001"
    assert (await icmp.probe(long_form)).ok
    assert (await icmp.probe(long_form.upper())).ok


async def test_icmpv6_unassigned_documentation_address_times_out(icmp: IcmpProbe) -> None:
    # nothing holds it and there is no route: the send fails at once, or nothing answers
    result = await icmp.probe("2001:db8:ffff::1")
    assert not result.ok
    assert result.error in ("timeout", "network is unreachable", "no route to host")


# -- TCP over IPv6 -------------------------------------------------------------------------------


@pytest.fixture
async def listener(v6: list[str]) -> AsyncIterator[int]:
    """A TCP server on v6[0] (only); returns its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, v6[0], 0, family=socket.AF_INET6)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_tcp_over_ipv6(v6: list[str], listener: int, nft: Nft) -> None:
    probe = TcpProbe(listener, timeout=TIMEOUT)
    results = await probe_all(probe, v6[:2])
    assert results[v6[0]].ok and results[v6[0]].rtt is not None
    assert results[v6[1]] == ProbeResult(ok=False, error="connection refused")  # nobody listens
    nft.blackhole(v6[0])
    assert await probe.probe(v6[0]) == ProbeResult(ok=False, error="timeout")
    nft.clear()
    assert (await probe.probe(v6[0])).ok
    await probe.close()


@pytest.fixture
def nft() -> Iterator[Nft]:
    with Nft() as table:
        yield table
