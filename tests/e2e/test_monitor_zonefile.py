"""``goavail monitor --dns-provider zonefile`` end to end, the way ``make run`` uses it.

A copy of ``examples/example.test.zone`` (its www addresses moved to this test's
own 127.20.20.0/24) is kept by the real process with a config shaped like
``examples/local.toml`` (relative ``path`` and ``audit_file``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from tests.e2e.harness import (
    REPO,
    GoavailProcess,
    free_port,
    hold,
    http,
    wait_until,
    zonefile_toml,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ORIGIN = "example.test."
A, B, C = "127.20.20.2", "127.20.20.3", "127.20.20.4"
LIVE = ["--dns-provider", "zonefile", "--no-dry-run"]
INITIAL_SERIAL = 2024010100

Rrset = tuple[str, str, int, frozenset[str]]


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    """The example zone copied to ``tmp_path``, www at A and B (C configured but absent)."""
    text = (REPO / "examples" / "example.test.zone").read_text()
    assert "www 60  IN A    127.0.0.2" in text and "www 60  IN A    127.0.0.3" in text
    text = text.replace("IN A    127.0.0.2 ", f"IN A    {A} ").replace(
        "IN A    127.0.0.3 ", f"IN A    {B} "
    )
    path = tmp_path / "example.test.zone"
    path.write_text(text)
    return path


def config() -> str:
    """Like examples/local.toml: relative zone file and audit file, its own addresses."""
    return zonefile_toml([A, B, C], Path("example.test.zone"), top='audit_file = "audit.jsonl"\n')


def load(path: Path) -> dns.zone.Zone:
    """Parse the zone file."""
    return dns.zone.from_text(path.read_text(), ORIGIN, relativize=True)


def www(path: Path) -> set[str]:
    """The addresses of www's A records."""
    rdataset = load(path).get_rdataset("www", dns.rdatatype.A)
    return set() if rdataset is None else {rd.address for rd in rdataset}


def serial(path: Path) -> int:
    """The SOA serial."""
    soa = load(path).get_rdataset("@", dns.rdatatype.SOA)
    assert soa is not None
    value: int = soa[0].serial
    return value


def unmanaged(path: Path) -> set[Rrset]:
    """Every RRset except www's A records and the SOA, with TTL and rdata."""
    out: set[Rrset] = set()
    for name, node in load(path).nodes.items():
        for rdataset in node.rdatasets:
            rtype = dns.rdatatype.to_text(rdataset.rdtype)
            if (str(name), rtype) in (("www", "A"), ("@", "SOA")):
                continue
            texts = frozenset(rd.to_text() for rd in rdataset)
            out.add((str(name), rtype, rdataset.ttl, texts))
    return out


def soa_fields(path: Path) -> tuple[str, ...]:
    """The SOA rdata except the serial."""
    soa = load(path).get_rdataset("@", dns.rdatatype.SOA)
    assert soa is not None
    fields = soa[0].to_text().split()
    return (*fields[:2], *fields[3:])


def settle(path: Path, want: set[str], proc: GoavailProcess) -> None:
    """Wait until www holds exactly ``want``."""
    wait_until(
        lambda: www(path) == want,
        message=lambda: f"www has {sorted(www(path))}, want {sorted(want)}:\n{proc.tail()}",
    )


def test_zonefile_failover(tmp_path: Path, zone_file: Path, nft: Nft) -> None:
    others, soa = unmanaged(zone_file), soa_fields(zone_file)
    assert ("mail", "A", 3600, frozenset({"127.0.0.9"})) in others
    assert {rtype for _, rtype, _, _ in others} >= {"MX", "TXT", "NS", "A"}
    with GoavailProcess(tmp_path, config(), args=LIVE) as proc:
        settle(zone_file, {A, B, C}, proc)  # C is configured and up: added
        after_add = serial(zone_file)
        assert after_add == INITIAL_SERIAL + 1

        nft.blackhole(B)
        settle(zone_file, {A, C}, proc)
        after_remove = serial(zone_file)
        assert after_remove == after_add + 1
        proc.wait_for(rf"zone file .* delete www\.example\.test A {B} \(serial {after_remove}\)")

        nft.clear()
        settle(zone_file, {A, B, C}, proc)
        assert serial(zone_file) == after_remove + 1
        hold(lambda: serial(zone_file) == after_remove + 1, 1.5)  # resyncs write nothing
        assert proc.stop() == 0

    assert unmanaged(zone_file) == others
    assert soa_fields(zone_file) == soa
    text = zone_file.read_text()
    assert text.startswith("; example.test — the zone `make run` serves")  # header kept
    assert "; not a goavail target: never touched" in text  # end-of-line comment kept
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["address"]) for r in audit] == [
        ("create", C),
        ("delete", B),
        ("create", B),
    ]
    assert all(r["provider"] == "zonefile" and r["dry_run"] is False for r in audit)


def test_zonefile_reload_command(tmp_path: Path, zone_file: Path, nft: Nft) -> None:
    log = tmp_path / "reloads.log"
    command = json.dumps(["sh", "-c", f'echo "$0" >> {log}', "reloaded"])
    text = config() + f"reload_command = {command}\n"
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone_file, {A, B, C}, proc)
        wait_until(lambda: log.exists() and log.read_text() == "reloaded\n", message=proc.tail)
        nft.blackhole(A)
        settle(zone_file, {B, C}, proc)
        wait_until(lambda: log.read_text() == "reloaded\n" * 2, message=proc.tail)
        assert proc.stop() == 0


def test_zonefile_fail_open(tmp_path: Path, zone_file: Path, nft: Nft) -> None:
    others = unmanaged(zone_file)
    with GoavailProcess(tmp_path, config(), args=LIVE) as proc:
        settle(zone_file, {A, B, C}, proc)
        nft.blackhole(A)
        settle(zone_file, {B, C}, proc)

        nft.blackhole(B, C)  # every address down: A is restored, B and C kept
        line = proc.wait_for(r"FAIL-OPEN engaged for www\.example\.test A")
        assert all(address in line for address in (A, B, C))
        settle(zone_file, {A, B, C}, proc)
        hold(lambda: www(zone_file) == {A, B, C}, 1.5)
        assert proc.stop() == 0
    assert unmanaged(zone_file) == others


def test_zonefile_dry_run_leaves_the_file_alone(tmp_path: Path, zone_file: Path, nft: Nft) -> None:
    before = zone_file.read_bytes()
    args = ["--dns-provider", "zonefile"]  # dry-run is the default
    with GoavailProcess(tmp_path, config(), args=args) as proc:
        proc.wait_for(rf"DNS create www\.example\.test A {C} .*dry_run=true outcome=planned")
        nft.blackhole(A)
        proc.wait_for(rf"DNS delete www\.example\.test A {A} .*dry_run=true outcome=planned")
        time.sleep(1.2)  # a resync
        assert proc.stop() == 0
    assert zone_file.read_bytes() == before
    assert not proc.matching(r"zone file .* \(serial \d+\)")


def test_a_zone_the_parser_refuses_is_a_failed_pass_not_a_crash(
    tmp_path: Path, zone_file: Path, nft: Nft
) -> None:
    """A second SOA at another name makes dnspython raise a plain ValueError: goavail
    keeps probing and serving, /_health says why, and DNS converges once it is fixed."""
    listen = f"127.0.0.1:{free_port()}"
    text = zonefile_toml(
        [A, B, C], Path("example.test.zone"), top='audit_file = "audit.jsonl"\n', listen=listen
    )
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone_file, {A, B, C}, proc)
        good = zone_file.read_text()
        zone_file.write_text(zone_file.read_text() + "sub 3600 IN SOA ns1 host 1 2 3 4 5\n")
        nft.blackhole(B)  # a change to make while the file cannot be parsed
        proc.wait_for(r"not a valid zone for example\.test.*non-origin SOA")

        def dns_probe() -> dict[str, object]:
            probes = http("GET", f"http://{listen}/_health").json()["probes"]
            found: dict[str, object] = next(p for p in probes if p["name"] == "dns")
            return found

        wait_until(lambda: dns_probe()["healthy"] is False, message=proc.tail)
        assert "non-origin SOA" in str(dns_probe()["error"])
        assert proc.alive
        zone_file.write_text(good)
        # a permanent error waits at the longest backoff (15-30 s); a reload (SIGHUP)
        # is how an operator says "fixed, try now"
        proc.signal(signal.SIGHUP)
        settle(zone_file, {A, C}, proc)
        wait_until(lambda: dns_probe()["healthy"] is True, message=proc.tail)
        assert proc.alive
        assert proc.stop() == 0
