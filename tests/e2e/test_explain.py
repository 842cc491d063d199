"""``goavail explain NAME`` end to end: the real ``goavail monitor`` with a primary and a
backup pool on a zone file, real ICMP to loopback targets inside the test's private
network namespace, nftables making the primary's addresses down; ``goavail explain``
finds the agent from ``-f goavail.toml``'s ``[Server] listen`` and says why the backup
serves: the down addresses, their failing check, the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import GoavailProcess, free_port, run_goavail
from tests.e2e.test_pools import LIVE, ZONE, pools_config, settle
from tests.netns import Nft

pytestmark = pytest.mark.e2e

P1, P2 = "127.21.7.1", "127.21.7.2"  # primary pool "eu"
B1 = "127.21.8.1"  # backup pool "us"
CHECK = '\n[[checks]]\nid = "ping"\ntype = "icmp"\n'


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    return path


def test_explain_names_the_down_addresses_their_check_and_the_backup(
    tmp_path: Path, zone: Path, nft: Nft
) -> None:
    port = free_port()
    text = pools_config(
        zone,
        {"eu": [P1, P2], "us": [B1]},
        {"www.example.test": ["eu", "us"]},
        extra=CHECK,
        listen=f"127.0.0.1:{port}",
    )
    text += "\n[Brake]\nmax_down_share = 1.0\n"  # off: the whole primary fails at once
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        config = str(proc.config_path)
        settle(zone, "www", {P1, P2}, proc)
        nft.blackhole(P1, P2)
        settle(zone, "www", {B1}, proc)

        report = run_goavail("explain", "www.example.test", "-f", config)
        assert report.returncode == 0, report.stderr
        out = report.stdout
        assert "no address of eu is up; us serves" in out, out
        assert f"{P1} is down: check ping failed" in out, out
        assert f"{P2} is down: check ping failed" in out, out
        block = out.split(f"\n{P1} (A, pool eu)\n", 1)[1].split("\n\n", 1)[0]
        assert "check ping" in block and "down" in block and "timeout" in block, block
        assert "not in DNS, not planned: down: withdrawn; us serves" in block, block
        backup = out.split(f"\n{B1} (A, pool us)\n", 1)[1]
        assert "in DNS, planned: up, in us, the pool that serves" in backup, backup

        as_json = run_goavail("explain", "www.example.test", "-f", config, "--json")
        assert as_json.returncode == 0, as_json.stderr
        doc = json.loads(as_json.stdout)
        (provider,) = doc["providers"]
        assert provider["families"][0]["rule"] == "backup"
        assert [r["address"] for r in provider["current"]] == [B1]

        unknown = run_goavail("explain", "nope.example.test", "-f", config)
        assert unknown.returncode == 2 and "is not a name this agent manages" in unknown.stderr
        assert proc.stop() == 0
    gone = run_goavail("explain", "www.example.test", "--url", f"http://127.0.0.1:{port}")
    assert gone.returncode == 1 and "cannot reach the agent" in gone.stderr
