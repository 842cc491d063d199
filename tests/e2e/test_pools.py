"""Pools end to end: the real ``goavail monitor`` with ``[[pools]]`` and ``[[names]]`` on a
zone file, real ICMP to loopback targets inside the test's private network namespace.

* a backup pool takes over when every primary address is down, and hands back once the
  primary is up again;
* a target in two pools is probed once and serves both names;
* the mass-withdrawal brake holds withdrawals beyond its share when half a pool fails at
  once, says so in the log, and releases when the targets recover.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from tests.cfstub.server import CloudflareStub
from tests.e2e.harness import (
    FAST,
    GoavailProcess,
    addresses_of,
    free_port,
    hold,
    http,
    server_toml,
    stub_env,
    wait_until,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ORIGIN = "example.test"
P1, P2 = "127.21.0.1", "127.21.0.2"  # primary
B1, B2 = "127.21.1.1", "127.21.1.2"  # backup
FLEET = [f"127.21.2.{i}" for i in range(1, 9)]  # 8 targets for the brake
LIVE = ["--dns-provider", "zonefile", "--no-dry-run"]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1 hostmaster 2024010100 3600 600 604800 60
@ IN NS ns1
ns1 IN A 127.0.0.53
"""


def toml_list(items: list[str]) -> str:
    return json.dumps(items)


def pools_config(
    zone: Path,
    pools: dict[str, list[str]],
    names: dict[str, list[str]],
    extra: str = "",
    listen: str | None = None,
) -> str:
    text = FAST + 'resync_interval = "1s"\naudit_file = "audit.jsonl"\n' + extra
    text += server_toml(listen)
    for name, addresses in pools.items():
        text += f'\n[[pools]]\nname = "{name}"\naddresses = {toml_list(addresses)}\n'
    for name, members in names.items():
        text += f'\n[[names]]\nname = "{name}"\npools = {toml_list(members)}\n'
    text += f'\n[Zonefile]\npath = "{zone}"\norigin = "{ORIGIN}"\nttl = 60\n'
    return text


def addresses(zone: Path, name: str) -> set[str]:
    """The A record addresses of ``name`` (relative) in the zone file."""
    parsed = dns.zone.from_text(zone.read_text(), ORIGIN + ".", relativize=True)
    rdataset = parsed.get_rdataset(name, dns.rdatatype.A)
    return set() if rdataset is None else {rd.address for rd in rdataset}


def settle(zone: Path, name: str, want: set[str], proc: GoavailProcess) -> None:
    wait_until(
        lambda: addresses(zone, name) == want,
        message=lambda: (
            f"{name} has {sorted(addresses(zone, name))}, want {sorted(want)}:\n" + proc.tail()
        ),
    )


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    return path


def test_a_backup_pool_takes_over_and_hands_back(tmp_path: Path, zone: Path, nft: Nft) -> None:
    text = (
        pools_config(
            zone,
            {"eu": [P1, P2], "us": [B1, B2]},
            {"www.example.test": ["eu", "us"], "api.example.test": ["us"]},
        )
        + "\n[Brake]\nmax_down_share = 1.0\n"
    )  # off: this test fails most targets at once
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone, "www", {P1, P2}, proc)  # the primary serves
        settle(zone, "api", {B1, B2}, proc)  # B1, B2 probed once, serving both names
        assert len(proc.matching(rf"target {B1} unknown -> up")) == 1

        nft.blackhole(P1)
        settle(zone, "www", {P2}, proc)  # one primary address left: no takeover
        hold(lambda: addresses(zone, "www") == {P2}, 1.0)

        nft.blackhole(P2)  # the whole primary down: the backup takes over
        settle(zone, "www", {B1, B2}, proc)
        proc.wait_for(rf"create www\.example\.test A {B1}.*up in us: no address of eu is up")

        nft.blackhole(B2)  # the backup loses one: it keeps the other
        settle(zone, "www", {B1}, proc)
        settle(zone, "api", {B1}, proc)

        nft.clear()
        nft.blackhole(P2, B2)  # P1 back: the primary serves again, the backup goes
        settle(zone, "www", {P1}, proc)
        proc.wait_for(rf"delete www\.example\.test A {B1}.*eu serves www\.example\.test")
        settle(zone, "api", {B1}, proc)  # api's own pool is untouched by www's handback

        nft.blackhole(P1, B1)  # nothing up anywhere: fail-open keeps the primary
        proc.wait_for(r"FAIL-OPEN engaged for www\.example\.test A")
        settle(zone, "www", {P1, P2}, proc)
        settle(zone, "api", {B1, B2}, proc)  # its own pool fails open too
        assert proc.stop() == 0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    www = [(r["action"], r["address"]) for r in audit if r["name"] == "www.example.test"]
    # make before break at the takeover: both backups created before the primary goes
    takeover = www.index(("create", B1))
    assert ("delete", P2) in www[takeover:]


def test_the_brake_holds_a_mass_withdrawal(tmp_path: Path, zone: Path, nft: Nft) -> None:
    listen = f"127.0.0.1:{free_port()}"
    text = (
        pools_config(zone, {"fleet": FLEET}, {"www.example.test": ["fleet"]}, listen=listen)
        + "\n[Brake]\nmax_down_share = 0.5\nmin_targets = 4\n"
    )
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone, "www", set(FLEET), proc)
        nft.blackhole(*FLEET[:2])  # 2 of 8: within the share, withdrawn
        settle(zone, "www", set(FLEET[2:]), proc)

        nft.blackhole(*FLEET[2:6])  # 6 of 8 at once: only 4 (50 %) may go
        line = proc.wait_for(r"BRAKE: 6 of 8 targets of fleet are down at once")
        wait_until(
            lambda: len(addresses(zone, "www")) == 4,
            message=lambda: f"www has {sorted(addresses(zone, 'www'))}\n{proc.tail()}",
        )
        held = set(addresses(zone, "www")) - set(FLEET[6:])
        assert len(held) == 2 and held <= set(FLEET[2:6])
        assert all(address in line for address in held)
        hold(lambda: len(addresses(zone, "www")) == 4, 1.5)  # resyncs keep holding
        health = http("GET", f"http://{listen}/_health")
        assert health.status == 503
        brake = {p["name"]: p for p in health.json()["probes"]}["brake"]
        assert not brake["healthy"] and "6 of 8 targets of fleet down at once" in brake["error"]
        metrics = http("GET", f"http://{listen}/metrics").text
        assert 'goavail_brake_held_targets{group="fleet"} 2.0' in metrics
        status = http("GET", f"http://{listen}/api/status").json()
        assert any(w["kind"] == "brake" for w in status["warnings"])

        nft.clear()  # all back: restored, the brake released
        settle(zone, "www", set(FLEET), proc)
        proc.wait_for(r"BRAKE released")
        brake = {p["name"]: p for p in http("GET", f"http://{listen}/_health").json()["probes"]}
        assert brake["brake"]["healthy"]
        assert proc.stop() == 0


def test_pools_in_two_zones_at_cloudflare(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    """Names in two zones of one Cloudflare account (the stand-in, driven through the
    official SDK): each zone is read with one listing per pass, a backup pool takes over
    in one zone while the other zone's name keeps its own pool."""
    stub.add_zone("example.org")
    e1, e2, u1 = "127.21.3.1", "127.21.3.2", "127.21.4.1"
    text = (
        FAST
        + 'resync_interval = "1s"\n'
        + server_toml(None)
        + f'\n[[pools]]\nname = "eu"\naddresses = {toml_list([e1, e2])}\n'
        + f'\n[[pools]]\nname = "us"\naddresses = {toml_list([u1])}\n'
        + '\n[[names]]\nname = "www.example.com"\npools = ["eu", "us"]\n'
        + '\n[[names]]\nname = "app.example.com"\npools = ["eu", "us"]\n'
        + '\n[[names]]\nname = "www.example.org"\npools = ["us"]\n'
        + '\n[Cloudflare]\ndns_domain = "example.com"\nzones = ["example.org"]\nttl = 120\n'
    )
    live = ["--dns-provider", "cloudflare", "--no-dry-run"]
    with GoavailProcess(tmp_path, text, args=live, env=stub_env(stub)) as proc:

        def com() -> set[str]:
            return addresses_of(stub, "example.com", "www.example.com")

        def org() -> set[str]:
            return addresses_of(stub, "example.org", "www.example.org")

        wait_until(lambda: com() == {e1, e2} and org() == {u1}, message=proc.tail)
        mark = len(stub.requests)
        time.sleep(2.5)  # two resyncs at least
        reads = [
            r
            for r in stub.requests[mark:]
            if r.method == "GET" and r.route == "/zones/{zone_id}/dns_records"
        ]
        com_id, org_id = stub.state.zone_id("example.com"), stub.state.zone_id("example.org")
        com_reads = [r for r in reads if r.path.split("/")[2] == com_id]
        org_reads = [r for r in reads if r.path.split("/")[2] == org_id]
        # example.com (two names): one listing of its A records per pass, no name filter;
        # example.org (one name): one request per pass either way (read by name)
        assert len(com_reads) >= 2 and abs(len(com_reads) - len(org_reads)) <= 1, reads
        assert not [r for r in com_reads if any(k.startswith("name") for k, _ in r.query)]
        assert all(("type", "A") in r.query for r in com_reads), com_reads
        nft.blackhole(e1, e2)  # eu down: us takes over www.example.com
        wait_until(lambda: com() == {u1} and org() == {u1}, message=proc.tail)
        nft.clear()
        wait_until(lambda: com() == {e1, e2}, message=proc.tail)
        assert org() == {u1}
        assert proc.stop() == 0
