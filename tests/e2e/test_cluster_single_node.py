"""A ``[Members]`` section without peers on a loopback-only host: a single node, no Serf.

Many single-node files of the Go original carry a ``[Members]`` section with
``min_peers_agree = 0`` and no peers (issue 13). goavail runs such a file as the
original does: as a single node, without starting Serf (which, on a host whose only
interface is loopback, would fail with "No private IP address found").

The agent runs in a network namespace of its own made by ``unshare --net``
(inside the private namespace of the test session): only ``lo``, no other link.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.cluster_net import parent_pid, process_argv
from tests.e2e.harness import GoavailProcess, wait_until, zonefile_toml

pytestmark = pytest.mark.e2e

A, B, C = "127.20.31.2", "127.20.31.3", "127.20.31.4"
LOOPBACK_ONLY = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "goavail-netns"]
"""argv prefix: run goavail in a fresh network namespace holding only ``lo`` (up)."""
ZONE = """\
$ORIGIN example.test.
$TTL 60
@   IN SOA ns1 hostmaster 2024010100 3600 600 86400 60
@   IN NS  ns1
ns1 IN A   127.0.0.53
"""
MEMBERS = """\
[Members]
local_addr = "127.0.0.1:8081"
members_port = 7947
min_peers_agree = 0
crypto_key = "1234567891012345"
"""


def www(path: Path) -> set[str]:
    """The addresses of www's A records in the zone file."""
    found = set()
    for line in path.read_text().splitlines():
        words = line.split()
        if words and words[0] == "www" and "A" in words:
            found.add(words[-1])
    return found


def in_netns(pid: int, *argv: str) -> str:
    """Run ``argv`` in the network namespace of process ``pid``; its stdout."""
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_members_without_peers_runs_as_a_single_node_without_serf(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE + "".join(f"www 60 IN A {a}\n" for a in (A, B)))
    config = zonefile_toml([A, B, C], zone, top=MEMBERS)
    with GoavailProcess(
        tmp_path, config, args=["--dns-provider", "zonefile", "--no-dry-run"], prefix=LOOPBACK_ONLY
    ) as proc:
        proc.wait_for(r"single node: \[Members\] lists no peers")
        pid = proc.pid
        links = [
            line.split(":")[1].strip() for line in in_netns(pid, "ip", "-o", "link").splitlines()
        ]
        assert links == ["lo"], links  # a loopback-only host
        wait_until(lambda: www(zone) == {A, B, C}, message=lambda: proc.tail())  # C added

        # take C down, as seen from inside goavail's own namespace: withdrawn as usual
        in_netns(pid, "nft", "add table inet single")
        in_netns(
            pid,
            "nft",
            "add chain inet single in { type filter hook input priority 0; policy accept; }",
        )
        in_netns(pid, "nft", f"add rule inet single in ip saddr {C} drop")
        wait_until(lambda: www(zone) == {A, B}, message=lambda: proc.tail())

        # no Serf at all: goavail started no serf process (nor any other child)
        serfs = [c for c in descendants(pid) if Path(process_argv(c)[:1][0]).name == "serf"]
        assert serfs == []
        serf_lines = proc.matching(r"cluster mode|goavail\.serf|serf agent|No private IP")
        assert serf_lines == [], proc.tail()
        assert proc.alive
        assert proc.stop() == 0


def descendants(pid: int) -> list[int]:
    """Every living process whose chain of parents leads to ``pid``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        ancestor = parent_pid(int(entry.name))
        while ancestor is not None and ancestor > 1:
            if ancestor == pid:
                if process_argv(int(entry.name)):
                    found.append(int(entry.name))
                break
            ancestor = parent_pid(ancestor)
    return found
