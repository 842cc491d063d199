"""Checks per pool end to end: the real ``goavail monitor`` on a zone file, two pools
judged by their own checks (ICMP for one, a TCP connect for the other) on loopback
targets inside the test's private network namespace, nftables to fail one protocol.

* each check probes only its pools' targets, a target in both pools once per check
  (counted by nftables);
* blocking TCP withdraws only the TCP-judged pool's target; the shared target, judged by
  both checks, is withdrawn from both names (the worst of its checks);
* ``goavail validate``, ``goavail plan`` and ``/api/status`` say which checks judge which
  target (and ``plan`` probes each target only with those).
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    FAST,
    GoavailProcess,
    free_port,
    http,
    run_goavail,
    server_toml,
    wait_until,
)
from tests.e2e.test_pools import LIVE, ZONE, addresses, settle, toml_list
from tests.netns import Nft

pytestmark = pytest.mark.e2e

A1 = "127.22.0.1"  # pool "ping" only
W1, W2 = "127.22.1.1", "127.22.1.2"  # pool "web" only
SH = "127.22.2.1"  # in both pools


class _Accept(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # accept and close: a TCP connect check passes
        return


@pytest.fixture
def port() -> Iterator[int]:
    """A TCP port that accepts connections at every loopback address (0.0.0.0 in the
    private namespace, which holds only ``lo``)."""
    number = free_port()
    server = socketserver.ThreadingTCPServer(("0.0.0.0", number), _Accept)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="tcp-accept", daemon=True)
    thread.start()
    try:
        yield number
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def config(zone: Path, port: int, listen: str) -> str:
    return (
        FAST
        + 'resync_interval = "1s"\n'
        + server_toml(listen)
        + '\n[[checks]]\nid = "ping"\ntype = "icmp"\n'
        + f'\n[[checks]]\nid = "web"\ntype = "tcp"\nport = {port}\nfall = 3\n'
        + f'\n[[pools]]\nname = "ping"\naddresses = {toml_list([A1, SH])}\nchecks = ["ping"]\n'
        + f'\n[[pools]]\nname = "web"\naddresses = {toml_list([W1, W2, SH])}\nchecks = ["web"]\n'
        + '\n[[names]]\nname = "ping.example.test"\npools = ["ping"]\n'
        + '\n[[names]]\nname = "web.example.test"\npools = ["web"]\n'
        + "\n[Brake]\nmax_down_share = 1.0\n"  # off: only the checks decide here
        + f'\n[Zonefile]\npath = "{zone}"\norigin = "example.test"\nttl = 60\n'
    )


def test_pools_are_judged_by_their_own_checks(tmp_path: Path, port: int, nft: Nft) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE)
    listen = f"127.0.0.1:{free_port()}"
    text = config(zone, port, listen)

    (tmp_path / "goavail.toml").write_text(text)
    shown = run_goavail("validate", "-f", str(tmp_path / "goavail.toml"))
    assert shown.returncode == 0, shown.stderr
    assert "  pool ping: 2 target(s) judged by ping (fall 2, rise 2)" in shown.stdout
    assert "  pool web: 3 target(s) judged by web (fall 3, rise 3)" in shown.stdout
    assert (
        f"  target {SH} (pools ping, web): judged by ping (fall 2, rise 2), web (fall 3, rise 3)"
        in shown.stdout
    )

    planned = run_goavail("plan", "-f", str(tmp_path / "goavail.toml"), "--json")
    assert planned.returncode == 0, planned.stderr
    rows = {t["address"]: t for t in json.loads(planned.stdout)["targets"]}
    assert {a: (t["state"], t["checks"], t["probes"]) for a, t in rows.items()} == {
        A1: ("up", ["ping"], 2),  # ping's max(fall, rise) probes
        SH: ("up", ["ping", "web"], 5),  # ping's 2 and web's 3
        W1: ("up", ["web"], 3),
        W2: ("up", ["web"], 3),
    }

    for address in (A1, W1, SH):
        nft.tally(f"icmp {address}", address, Nft.ECHO_REQUEST)
        nft.tally(f"tcp {address}", address, Nft.syn(port))
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone, "ping", {A1, SH}, proc)
        settle(zone, "web", {W1, W2, SH}, proc)

        # each check probes its own pools' targets, the shared one once per check
        def rounds() -> dict[str, int]:
            counts = nft.tallies()  # ten rounds of each check, or {} (falsy: wait on)
            return counts if min(counts["icmp " + A1], counts["tcp " + W1]) >= 10 else {}

        counts = wait_until(rounds, message=lambda: f"{nft.tallies()}\n{proc.tail()}")
        assert counts["icmp " + W1] == 0 and counts["tcp " + A1] == 0
        assert abs(counts["icmp " + SH] - counts["icmp " + A1]) <= 2, counts
        assert abs(counts["tcp " + SH] - counts["tcp " + W1]) <= 2, counts

        status = http("GET", f"http://{listen}/api/status").json()
        judged = {t["address"]: [c["id"] for c in t["checks"]] for t in status["targets"]}
        assert judged == {A1: ["ping"], SH: ["ping", "web"], W1: ["web"], W2: ["web"]}

        # the TCP service fails on W2: only the web pool's target goes
        nft.block_tcp(port, W2)
        settle(zone, "web", {W1, SH}, proc)
        proc.wait_for(rf"target {W2} up -> down: check web down")
        assert addresses(zone, "ping") == {A1, SH}

        # and on the shared target: judged by both checks, it leaves both names
        nft.block_tcp(port, SH)
        settle(zone, "web", {W1}, proc)
        settle(zone, "ping", {A1}, proc)
        line = proc.wait_for(rf"target {SH} up -> down: check web down")
        assert "ping=up web=down" in line

        nft.clear()
        settle(zone, "web", {W1, W2, SH}, proc)
        settle(zone, "ping", {A1, SH}, proc)
        assert not proc.matching(rf"target ({A1}|{W1}) up -> down")
        assert proc.stop() == 0
