"""``goavail monitor --dns-provider rfc2136`` end to end: IPv4 and IPv6 targets, a real Knot DNS.

The real process probes two IPv4 targets (127.20.136.0/24) and two IPv6
targets (2001:db8:136::/48, put on the private namespace's loopback) with ICMP
and ICMPv6, and keeps ``www.example.test``'s A and AAAA records on a knotd
started by the test, through TSIG-signed RFC 2136 updates (the secret in
``GOAVAIL_TSIG_SECRET``). Outages are nftables blackholes. Every check of the
zone is a real DNS query to knotd.

What it shows: an AAAA record is withdrawn when its IPv6 target dies; the last
AAAA is never withdrawn because A records remain — the AAAA family fails open
on its own — and the same for A while the AAAA targets are up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import FAST, GoavailProcess, hold, wait_until
from tests.knot import KEY_NAME, KnotServer
from tests.netns import Nft, loopback_addresses

pytestmark = pytest.mark.e2e

ZONE = "example.test"
WWW = f"www.{ZONE}"
A1, A2 = "127.20.136.2", "127.20.136.3"
V6A, V6B = "2001:db8:136::2", "2001:db8:136::3"
UNMANAGED = "127.20.136.250"  # in www's A set, not a target
LIVE = ["--dns-provider", "rfc2136", "--no-dry-run"]


@pytest.fixture
def knot() -> Iterator[KnotServer]:
    with KnotServer(ZONE, records=[f"www 3600 IN A {UNMANAGED}", 'www IN TXT "kept"']) as server:
        yield server


@pytest.fixture
def v6() -> Iterator[list[str]]:
    with loopback_addresses(V6A, V6B) as addresses:
        yield addresses


def config(knot: KnotServer) -> str:
    return (
        FAST
        + 'resync_interval = "1s"\n'
        + 'audit_file = "audit.jsonl"\n'
        + "\n[RFC2136]\n"
        + 'server = "127.0.0.1"\n'
        + f"port = {knot.port}\n"
        + f'zone = "{ZONE}"\n'
        + f'tsig_key_name = "{KEY_NAME}"\n'
        + 'hostnames = ["www"]\n'
        + f"ip_addresses = {json.dumps([A1, A2, V6A, V6B])}\n"
        + "ttl = 60\n"
    )


def test_rfc2136_ipv6_failover_fails_open_per_family(
    tmp_path: Path, knot: KnotServer, v6: list[str], nft: Nft
) -> None:
    env = {"GOAVAIL_TSIG_SECRET": knot.secret}

    def settle(a: set[str], aaaa: set[str], proc: GoavailProcess) -> None:
        def state() -> tuple[set[str], set[str]]:
            return knot.rdatas(WWW, "A"), knot.rdatas(WWW, "AAAA")

        wait_until(
            lambda: state() == (a, aaaa),
            message=lambda: f"www has {state()}, want {(a, aaaa)}:\n{proc.tail()}",
        )

    everything = ({A1, A2, UNMANAGED}, {V6A, V6B})
    audit_file = tmp_path / "audit.jsonl"

    def changes(since: int = 0) -> list[tuple[str, str, str]]:
        lines = audit_file.read_text().splitlines() if audit_file.exists() else []
        return [(r["action"], r["type"], r["address"]) for r in map(json.loads, lines[since:])]

    with GoavailProcess(tmp_path, config(knot), args=LIVE, env=env) as proc:
        settle(*everything, proc)
        # the server shows a change before goavail writes its audit line: wait for all four
        wait_until(lambda: len(changes()) >= 4, message=proc.tail)
        assert sorted(changes()) == sorted(
            ("create", "AAAA" if ":" in a else "A", a) for a in (A1, A2, V6A, V6B)
        )
        assert knot.ttl(WWW, "AAAA") == 60  # a new set: the configured ttl
        assert knot.ttl(WWW, "A") == 3600  # an existing set keeps its ttl

        # one IPv6 target dies: its AAAA goes, nothing else changes
        seen = len(changes())
        nft.blackhole(V6A)
        settle({A1, A2, UNMANAGED}, {V6B}, proc)
        wait_until(lambda: len(changes(seen)) >= 1, message=proc.tail)
        assert changes(seen) == [("delete", "AAAA", V6A)]

        # the last IPv6 target dies too: A records remain, but the AAAA family
        # fails open on its own -> the last AAAA stays and V6A is restored
        seen = len(changes())
        mark = proc.mark()
        nft.blackhole(V6B)
        proc.wait_for(rf"FAIL-OPEN engaged for {WWW} AAAA", since=mark)
        settle(*everything, proc)
        hold(lambda: (knot.rdatas(WWW, "A"), knot.rdatas(WWW, "AAAA")) == everything, 1.0)
        wait_until(lambda: len(changes(seen)) >= 1, message=proc.tail)
        assert changes(seen) == [("create", "AAAA", V6A)]  # never ("delete", V6B)

        # and the other way round: every IPv4 target dead while the IPv6 ones are up
        nft.clear()
        proc.wait_for(rf"fail-open released for {WWW} AAAA", since=mark)
        for target in (V6A, V6B):
            proc.wait_for(rf"target {target} down -> up", since=mark)
        settle(*everything, proc)
        mark = proc.mark()
        nft.blackhole(A1, A2)
        proc.wait_for(rf"FAIL-OPEN engaged for {WWW} A\b", since=mark)
        settle(*everything, proc)
        hold(lambda: (knot.rdatas(WWW, "A"), knot.rdatas(WWW, "AAAA")) == everything, 1.0)
        assert proc.stop() == 0

    assert knot.rdatas(WWW, "TXT") == {'"kept"'}
    assert knot.rdatas(WWW, "A") >= {UNMANAGED}
    assert knot.secret not in proc.output
    audit = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert all(r["provider"] == "rfc2136" and r["outcome"] == "applied" for r in audit)
