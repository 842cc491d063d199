"""Flap damping and gated failback end to end: the real ``goavail monitor`` on a zone file,
real ICMP to loopback targets inside the test's private network namespace, nftables
making a target flap.

* damping: a target that goes down twice within seconds is suppressed: once its checks
  say up again it stays out of the zone until its penalty has decayed to the reuse
  limit, then it is published again;
* ``failback = "manual"``: a recovered target stays out of the zone until
  ``goavail failback TARGET`` releases it through the agent's API (audited).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import GoavailProcess, free_port, http, run_goavail, wait_until
from tests.e2e.test_pools import LIVE, ZONE, addresses, pools_config, settle
from tests.netns import Nft

pytestmark = pytest.mark.e2e

D1, D2 = "127.21.5.1", "127.21.5.2"  # damping
M1, M2 = "127.21.6.1", "127.21.6.2"  # manual failback
TOKEN = "e2e-gates-admin-token-7c1d"

DAMPING = """
[Damping]
penalty = 1000
half_life = "10s"
suppress = 1500
reuse = 750
max_suppress = "60s"
"""
"""Two flaps within a few seconds pass ``suppress``; the suppression then lasts at least
``half_life * log2(1500 / 750)`` = 10 s from the second flap (enough to look), and about
13 s after two quick flaps."""


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    return path


def target_row(url: str, address: str) -> dict[str, object]:
    doc = http("GET", f"{url}/api/status").json()
    rows: list[dict[str, object]] = doc["targets"]
    return next(row for row in rows if row["address"] == address)


def test_damping_keeps_a_flapping_target_withdrawn_then_reuses_it(
    tmp_path: Path, zone: Path, nft: Nft
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    text = pools_config(
        zone, {"web": [D1, D2]}, {"www.example.test": ["web"]}, listen=f"127.0.0.1:{port}"
    )
    with GoavailProcess(tmp_path, text + DAMPING, args=LIVE) as proc:
        settle(zone, "www", {D1, D2}, proc)
        nft.blackhole(D1)  # flap 1: penalty 1000, below suppress
        settle(zone, "www", {D2}, proc)
        nft.clear()
        settle(zone, "www", {D1, D2}, proc)
        mark = proc.mark()
        nft.blackhole(D1)  # flap 2: above suppress
        proc.wait_for(rf"DAMPING: target {D1} suppressed", since=mark)
        settle(zone, "www", {D2}, proc)
        nft.clear()
        proc.wait_for(rf"target {D1} down -> up", since=mark)
        row = target_row(url, D1)
        assert row["state"] == "up"  # the checks say up ...
        assert row["announced"] == "down"  # ... the agent keeps it withdrawn
        damping = row["damping"]
        assert isinstance(damping, dict) and damping["suppressed"] is True
        assert damping["penalty"] > 1500 * 2 ** (-1)  # decayed a little since the flap
        assert addresses(zone, "www") == {D2}
        metrics = http("GET", f"{url}/metrics").text
        assert "goavail_damping_suppressed_targets 1.0" in metrics
        # the penalty decays to the reuse limit: published again
        proc.wait_for(rf"damping: target {D1} reused", timeout=40, since=mark)
        settle(zone, "www", {D1, D2}, proc)
        assert target_row(url, D1)["announced"] == "up"


def test_manual_failback_waits_for_goavail_failback(tmp_path: Path, zone: Path, nft: Nft) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    text = pools_config(
        zone,
        {"web": [M1, M2]},
        {"www.example.test": ["web"]},
        listen=f"127.0.0.1:{port}",
    )
    text = text.replace(
        '[[names]]\nname = "www.example.test"\n',
        '[[names]]\nname = "www.example.test"\nfailback = "manual"\n',
    )
    env = {"GOAVAIL_ADMIN_TOKEN": TOKEN}
    with GoavailProcess(tmp_path, text, args=LIVE, env=env) as proc:
        settle(zone, "www", {M1, M2}, proc)  # never down: published at once
        nft.blackhole(M1)
        settle(zone, "www", {M2}, proc)
        nft.clear()
        proc.wait_for(rf"FAILBACK: target {M1} is up again but stays withdrawn")
        row = target_row(url, M1)
        assert row["state"] == "up" and row["announced"] == "down"
        assert row["failback"] == {
            "setting": "manual",
            "gate": "operator",
            "until": None,
            "released_by": "",
        }
        assert addresses(zone, "www") == {M2}

        refused = run_goavail("failback", M1, "--url", url, env={"GOAVAIL_ADMIN_TOKEN": "wrong"})
        assert refused.returncode == 1 and "401" in refused.stderr
        assert addresses(zone, "www") == {M2}

        released = run_goavail("failback", M1, "--url", url, "--reason", "checked by hand", env=env)
        assert released.returncode == 0, released.stderr
        assert f"{M1} released: announced up" in released.stdout
        settle(zone, "www", {M1, M2}, proc)
        records = [
            json.loads(line)
            for line in (tmp_path / "audit.jsonl").read_text().splitlines()
            if line.strip()
        ]
        assert any(
            r["action"] == "failback"
            and r["target"] == M1
            and r["source"] == "cli"
            and r["reason"] == "checked by hand"
            for r in records
        )
        again = run_goavail("failback", M1, "--url", url, env=env)
        assert again.returncode == 0 and "nothing to release" in again.stdout
        wait_until(
            lambda: (
                target_row(url, M1)["failback"]
                == {"setting": "manual", "gate": "open", "until": None, "released_by": ""}
            )
        )
