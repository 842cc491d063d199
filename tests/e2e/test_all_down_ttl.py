"""All-down policy and TTL management end to end: the real ``goavail monitor`` on a zone
file, real ICMP to loopback targets inside the test's private network namespace, outages
made with nftables there.

* ``all_down = "fail-closed"`` empties its name when every address is down (loudly:
  log, audit, ``/api/status`` warning, metric) while a fail-open name on the same pool
  keeps its records, and restores the name when an address is up again;
* ``degraded_ttl`` lowers the name's TTL while one address is down and restores it once
  all are up.
"""

from __future__ import annotations

import json
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from tests.e2e.harness import FAST, GoavailProcess, free_port, hold, http, server_toml, wait_until
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ORIGIN = "example.test"
P1, P2 = "127.22.0.1", "127.22.0.2"
LIVE = ["--dns-provider", "zonefile", "--no-dry-run"]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1 hostmaster 2024010100 3600 600 604800 60
@ IN NS ns1
ns1 IN A 127.0.0.53
"""


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    return path


def config(zone: Path, names: str, listen: str | None = None) -> str:
    return (
        FAST
        + 'resync_interval = "1s"\naudit_file = "audit.jsonl"\n'
        + server_toml(listen)
        + f'\n[[pools]]\nname = "eu"\naddresses = ["{P1}", "{P2}"]\n'
        + names
        + "\n[Brake]\nmax_down_share = 1.0\n"  # off: these tests fail a whole pool
        + f'\n[Zonefile]\npath = "{zone}"\norigin = "{ORIGIN}"\nttl = 60\n'
    )


def answer(zone: Path, name: str) -> tuple[set[str], int | None]:
    """The A addresses of ``name`` (relative) in the zone file, and their set's TTL."""
    parsed = dns.zone.from_text(zone.read_text(), ORIGIN + ".", relativize=True)
    rdataset = parsed.get_rdataset(name, dns.rdatatype.A)
    if rdataset is None:
        return set(), None
    return {rd.address for rd in rdataset}, rdataset.ttl


def settle(zone: Path, name: str, want: set[str], ttl: int | None, proc: GoavailProcess) -> None:
    wait_until(
        lambda: answer(zone, name) == (want, ttl),
        message=lambda: f"{name} is {answer(zone, name)}, want {want} at {ttl}:\n{proc.tail()}",
    )


def test_fail_closed_empties_the_name_and_restores_it(tmp_path: Path, zone: Path, nft: Nft) -> None:
    listen = f"127.0.0.1:{free_port()}"
    names = (
        '\n[[names]]\nname = "www.example.test"\npools = ["eu"]\nall_down = "fail-closed"\n'
        '\n[[names]]\nname = "api.example.test"\npools = ["eu"]\n'  # fail-open, the default
    )
    with GoavailProcess(tmp_path, config(zone, names, listen), args=LIVE) as proc:
        settle(zone, "www", {P1, P2}, 60, proc)
        settle(zone, "api", {P1, P2}, 60, proc)
        nft.blackhole(P1)
        settle(zone, "www", {P2}, 60, proc)

        nft.blackhole(P2)  # every address down: www is emptied, api fails open
        proc.wait_for(r"FAIL-CLOSED engaged for www\.example\.test A: every configured address")
        settle(zone, "www", set(), None, proc)
        proc.wait_for(r"FAIL-OPEN engaged for api\.example\.test A")
        settle(zone, "api", {P1, P2}, 60, proc)  # P1 restored by fail-open
        hold(lambda: answer(zone, "www")[0] == set() and answer(zone, "api")[0] == {P1, P2}, 1.5)
        status = http("GET", f"http://{listen}/api/status").json()
        warnings = [w["message"] for w in status["warnings"] if w["kind"] == "fail-closed"]
        assert len(warnings) == 1 and "www.example.test A" in warnings[0], status["warnings"]
        metrics = http("GET", f"http://{listen}/metrics").text
        assert 'goavail_fail_closed{name="www.example.test",type="A"} 1.0' in metrics

        nft.clear()  # both back: www restored, fail-closed released
        settle(zone, "www", {P1, P2}, 60, proc)
        proc.wait_for(r"fail-closed released for www\.example\.test A")
        assert proc.stop() == 0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    closing = [
        r["address"]
        for r in audit
        if r["name"] == "www.example.test" and r["reason"].startswith("fail-closed:")
    ]
    assert closing == [P2]  # P1 went as an ordinary withdrawal, P2 by the policy
    api = [
        r["address"] for r in audit if r["name"] == "api.example.test" and r["action"] == "delete"
    ]
    # api (fail-open) only ever lost P1 (when it went down, and if P2 recovered first):
    # never its last record
    assert api and set(api) == {P1}


def test_degraded_ttl_is_lowered_while_an_address_is_down(
    tmp_path: Path, zone: Path, nft: Nft
) -> None:
    names = '\n[[names]]\nname = "www.example.test"\npools = ["eu"]\ndegraded_ttl = 10\n'
    with GoavailProcess(tmp_path, config(zone, names), args=LIVE) as proc:
        settle(zone, "www", {P1, P2}, 60, proc)
        nft.blackhole(P1)  # one down: withdrawn, and the rest of the name at TTL 10
        settle(zone, "www", {P2}, 10, proc)
        proc.wait_for(rf"DNS update www\.example\.test A {P2} \(TTL 60 -> 10: {P1} is down\)")
        hold(lambda: answer(zone, "www") == ({P2}, 10), 1.0)
        nft.clear()  # all up: the address is back and the TTL restored
        settle(zone, "www", {P1, P2}, 60, proc)
        assert proc.stop() == 0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    updates = [(r["address"], r["ttl"]) for r in audit if r["action"] == "update"]
    assert updates[0] == (P2, 10) and updates[-1][1] == 60, updates
