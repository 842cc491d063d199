"""Served-answer verification end to end: the real ``goavail monitor`` and real Knot servers.

* RFC 2136: goavail updates a Knot primary, which NOTIFYs a Knot secondary that
  transfers the zone (IXFR/AXFR) with its queries sent from 127.0.0.2; ``verify``
  names both servers. A withdrawal made while the secondary's transfers are dropped
  (nftables: packets *from* 127.0.0.2) is not propagated: the secondary is reported
  lagging past the limit, by name, in the log, ``/_health`` and ``/api/status``;
  once transfers flow again the secondary serves it, and only then is it reported
  propagated; ``/metrics`` holds the propagation histogram.
* The zone file: goavail writes the file a Knot server loads (``reload_command`` is
  ``knotc zone-reload``); ``verify`` names that server; a withdrawal is propagated
  once Knot serves the new file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import FAST, GoavailProcess, free_port, http, metric, server_toml, wait_until
from tests.knot import KEY_NAME, KnotServer
from tests.knot import free_port as dns_port
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ZONE = "example.test"
WWW = f"www.{ZONE}"
A1, A2 = "127.20.137.2", "127.20.137.3"
VIA = "127.0.0.2"  # the secondary's source address for its transfers
LIMIT = 3  # seconds


@pytest.fixture
def knots() -> Iterator[tuple[KnotServer, KnotServer]]:
    port = dns_port()
    # refresh 2 s, retry 1 s: a secondary cut off from its primary retries soon after
    with (
        KnotServer(ZONE, soa="1 2 1 3600 60", secondaries=[port]) as primary,
        KnotServer(ZONE, primary=primary, via=VIA, port=port) as secondary,
    ):
        yield primary, secondary


def verify_toml(*servers: KnotServer) -> str:
    listed = json.dumps([s.address for s in servers])
    return f'verify = {{ servers = {listed}, limit = "{LIMIT}s", interval = "100ms" }}\n'


def test_rfc2136_withdrawal_is_propagated_only_once_the_secondary_serves_it(
    tmp_path: Path, knots: tuple[KnotServer, KnotServer], nft: Nft
) -> None:
    primary, secondary = knots
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    config = (
        FAST
        + 'resync_interval = "2s"\n'
        + server_toml(listen)
        + "\n[RFC2136]\n"
        + 'server = "127.0.0.1"\n'
        + f"port = {primary.port}\n"
        + f'zone = "{ZONE}"\n'
        + f'tsig_key_name = "{KEY_NAME}"\n'
        + 'hostnames = ["www"]\n'
        + f"ip_addresses = {json.dumps([A1, A2])}\n"
        + verify_toml(primary, secondary)
    )
    env = {"GOAVAIL_TSIG_SECRET": primary.secret}
    args = ["--dns-provider", "rfc2136", "--no-dry-run"]
    with GoavailProcess(tmp_path, config, args=args, env=env) as proc:
        # start-up: both records created, then served by both servers
        proc.wait_for(rf"rfc2136: {re.escape(WWW)} A propagated")
        assert secondary.addresses(WWW) == {A1, A2}
        assert primary.addresses(WWW) == {A1, A2}

        # the secondary stops transferring; A2 dies and is withdrawn at the primary
        nft.block_source(VIA)
        mark = proc.mark()
        nft.blackhole(A2)
        wait_until(lambda: primary.addresses(WWW) == {A1}, message=proc.tail)
        line = proc.wait_for(r"PROPAGATION LAGGING", since=mark, timeout=LIMIT + 20)
        assert secondary.address in line and primary.address not in line
        assert WWW in line and A2 in line  # it still serves the withdrawn address
        assert secondary.addresses(WWW) == {A1, A2}
        assert proc.matching(r"propagated", since=mark) == []

        health = http("GET", f"{base}/_health")
        assert health.status == 503
        probe = next(p for p in health.json()["probes"] if p["name"] == "propagation")
        assert not probe["healthy"] and secondary.address in probe["error"]
        status = http("GET", f"{base}/api/status").json()
        [verified] = status["dns"]["propagation"]
        assert [lag["server"] for lag in verified["lagging"]] == [secondary.address]
        [row] = [n for n in status["names"] if n["name"] == WWW]
        [a] = [p for p in row["propagation"] if p["type"] == "A"]
        assert (a["state"], a["planned"], a["behind"]) == ("lagging", [A1], [secondary.address])
        assert a["servers"][primary.address]["agrees"] is True
        page = http("GET", f"{base}/").text
        assert f"lagging: {secondary.address}" in page

        # transfers flow again: the secondary catches up, and only now is it propagated
        nft.clear()
        nft.blackhole(A2)
        line = proc.wait_for(rf"rfc2136: {re.escape(WWW)} A propagated", since=mark)
        assert secondary.addresses(WWW) == {A1}
        assert secondary.address in line  # the last server to agree
        proc.wait_for(rf"propagation recovered: server {re.escape(secondary.address)}", since=mark)
        wait_until(lambda: http("GET", f"{base}/_health").status == 200, message=proc.tail)

        text = http("GET", f"{base}/metrics").text
        count = metric(text, "goavail_dns_propagation_seconds_count", provider="rfc2136")
        assert count is not None and count >= 2  # the start-up creates, the withdrawal
        assert metric(text, "goavail_dns_lagging_servers", provider="rfc2136") == 0.0
        slow = metric(text, "goavail_dns_propagation_seconds_bucket", provider="rfc2136", le="1.0")
        assert slow is not None and slow < count  # the withdrawal took longer than 1 s
        assert proc.stop() == 0


def test_zonefile_withdrawal_is_propagated_once_knot_serves_the_file(
    tmp_path: Path, nft: Nft
) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(
        f"$ORIGIN {ZONE}.\n$TTL 300\n"
        "@ IN SOA ns1 hostmaster 1 3600 600 604800 60\n"
        "@ IN NS ns1\nns1 IN A 127.0.0.1\n"
        f"www 60 IN A {A1}\nwww 60 IN A {A2}\n"
    )
    with KnotServer(ZONE, zonefile=zone) as knot:
        config = (
            FAST
            + 'resync_interval = "2s"\n'
            + server_toml(None)
            + "\n[Zonefile]\n"
            + f"path = {json.dumps(str(zone))}\n"
            + f'origin = "{ZONE}"\n'
            + 'hostnames = ["www"]\n'
            + f"ip_addresses = {json.dumps([A1, A2])}\n"
            + f"reload_command = {json.dumps(knot.reload_argv())}\n"
            + verify_toml(knot)
        )
        args = ["--dns-provider", "zonefile", "--no-dry-run"]
        with GoavailProcess(tmp_path, config, args=args) as proc:
            proc.wait_for(r"decision for 127\.20\.137\.3: up")
            mark = proc.mark()
            nft.blackhole(A2)
            line = proc.wait_for(rf"zonefile: {re.escape(WWW)} A propagated", since=mark)
            assert knot.address in line
            assert knot.addresses(WWW) == {A1}
            assert proc.matching(r"PROPAGATION LAGGING") == []
            assert proc.stop() == 0
