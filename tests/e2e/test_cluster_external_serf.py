"""Cluster mode with Serf run by someone else (``serf_rpc_addr``), as in the container where
Serf is its own s6 service: goavail must use the existing agent, authenticate with
``SERF_RPC_AUTH``, and leave it running when it stops.

Two Serf agents and two goavail agents share the test session's private namespace
(loopback only); both goavail agents see the same blackholed target, so they agree.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import GoavailProcess, wait_until, zonefile_toml
from tests.netns import Nft

pytestmark = pytest.mark.e2e

SERF_ADDRS = {"ext1": "127.60.0.1", "ext2": "127.60.0.2"}
TARGETS = ["127.61.0.1", "127.61.0.2"]
ZONE = """\
$ORIGIN example.test.
@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300
@ 3600 IN NS ns1
ns1 3600 IN A 127.0.0.1
www 60 IN A 127.61.0.1
www 60 IN A 127.61.0.2
"""


@pytest.fixture
def serf_agents(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two Serf agents started by the test (not by goavail); yields node -> RPC auth key."""
    procs: list[subprocess.Popen[bytes]] = []
    keys: dict[str, str] = {}
    try:
        for node, addr in SERF_ADDRS.items():
            keys[node] = secrets.token_urlsafe(16)
            config = tmp_path / f"{node}.json"
            config.write_text(json.dumps({"rpc_auth": keys[node]}))
            config.chmod(0o600)
            argv = [
                "serf", "agent", f"-node={node}", f"-bind={addr}:7946",
                f"-rpc-addr={addr}:7373", f"-config-file={config}", "-profile=local",
                "-log-level=warn", "-retry-interval=1s",
            ]  # fmt: skip
            if node != "ext1":
                argv.append(f"-retry-join={SERF_ADDRS['ext1']}:7946")
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        yield keys
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


SYNC_PORTS = {node: 7950 + i for i, node in enumerate(SERF_ADDRS)}


def config(tmp_path: Path, node: str) -> str:
    zone = tmp_path / f"{node}.zone"
    zone.write_text(ZONE)
    members = (
        f'node_name = "{node}"\n'
        "[Members]\n"
        "min_peers_agree = 1\n"
        'crypto_key = "0123456789abcdef"\n'
        f'serf_rpc_addr = "{SERF_ADDRS[node]}:7373"\n'
        # the sync endpoint binds every address unless local_addr is set: both agents
        # share this namespace, so each gets its own port
        f"sync_port = {SYNC_PORTS[node]}\n"
        'announce_interval = "1s"\n'
        'writer_grace = "1s"\n'
    )
    return zonefile_toml(TARGETS, zone, top=members)


def withdrawn_from(zone: Path) -> Callable[[], bool]:
    """A predicate: the blackholed target's record is gone from ``zone``."""
    return lambda: TARGETS[1] not in zone.read_text()


def test_goavail_uses_an_existing_serf_agent(
    tmp_path: Path, serf_agents: dict[str, str], nft: Nft
) -> None:
    agents = [
        GoavailProcess(
            tmp_path,
            config(tmp_path, node),
            args=["--dns-provider", "zonefile", "--no-dry-run"],
            env={"SERF_RPC_AUTH": serf_agents[node]},
            config_name=f"{node}.toml",
        )
        for node in SERF_ADDRS
    ]
    with agents[0], agents[1]:
        a, b = agents
        a.wait_for(r"peer ext2 joined")
        b.wait_for(r"peer ext1 joined")
        a.wait_for(rf"decision for {TARGETS[1]}: up \(votes: ext1\(self\)=up ext2=up\)")
        nft.blackhole(TARGETS[1])
        # both see it down, agree through gossip, and each zone loses the record
        for proc, node in ((a, "ext1"), (b, "ext2")):
            proc.wait_for(rf"decision for {TARGETS[1]}: down \(votes: {node}\(self\)=down")
        for node in SERF_ADDRS:
            wait_until(withdrawn_from(tmp_path / f"{node}.zone"))
        assert not a.matching(r"is not a member of the Serf cluster")
        assert a.stop() == 0
        assert b.stop() == 0
    # goavail did not stop (or make leave) the Serf agents it did not start
    members = subprocess.run(
        ["serf", "members", f"-rpc-addr={SERF_ADDRS['ext2']}:7373",
         f"-rpc-auth={serf_agents['ext2']}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "ext1" in members
    assert "alive" in members.split("ext1", 1)[1].splitlines()[0]


def test_wrong_rpc_auth_is_retried_not_fatal(tmp_path: Path, serf_agents: dict[str, str]) -> None:
    with GoavailProcess(
        tmp_path,
        config(tmp_path, "ext1"),
        args=["--dns-provider", "zonefile"],
        env={"SERF_RPC_AUTH": "wrong"},
        config_name="ext1.toml",
    ) as proc:
        proc.wait_for(r"cannot reach Serf RPC at 127\.60\.0\.1:7373: .*[Aa]uth")
        assert "wrong" not in "".join(proc.matching(r"cannot reach Serf RPC"))
        assert serf_agents["ext1"] not in proc.output
        assert proc.alive
        assert proc.stop() == 0
