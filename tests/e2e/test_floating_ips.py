"""Floating IPs end to end: the real ``goavail monitor`` with a floating-IP-only file (no
DNS section), real ICMP checks of the servers' addresses (loopback, in the test's private
network namespace), and the Hetzner Cloud API stand-in reached through the ``hcloud``
SDK (``HCLOUD_ENDPOINT``).

* a server's check fails: its floating IP moves to a healthy server (the log names the
  move; the bound ``fall x interval + timeout + one action`` is the design, the test
  waits for the move without timing it);
* it recovers: its canonical floating IP comes back;
* every server down: nothing moves;
* half the API's requests fail: the plan still converges;
* ``/api/status`` and ``/metrics`` show the floating IPs, their targets and the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    FAST,
    GoavailProcess,
    free_port,
    hold,
    http,
    metric,
    run_goavail,
    wait_until,
)
from tests.hcloudstub import HcloudStub
from tests.netns import Nft

pytestmark = pytest.mark.e2e

LB = ["127.16.2.1", "127.16.2.2", "127.16.2.3"]
CANONICAL = {"ip0": "lb0", "ip1": "lb1", "ip2": "lb2"}


@pytest.fixture
def hcloud() -> Iterator[HcloudStub]:
    with HcloudStub(action_seconds=0.3) as stub:
        for i, address in enumerate(LB):
            stub.state.add_server(f"lb{i}", address, role="lb", resource_index=str(i))
        stub.state.add_server("db0", "127.16.2.9", role="db")
        for i in range(3):
            stub.state.add_floating_ip(
                f"ip{i}", f"203.0.113.{20 + i}", service="web", resource_index=str(i)
            )
        yield stub


def config(listen: str) -> str:
    return (
        FAST
        + 'audit_file = "audit.jsonl"\n'
        + f"\n[Server]\nlisten = {json.dumps(listen)}\n"
        + '\n[[floating_ips]]\nid = "web"\nserver_selector = "role=lb"\n'
        + 'floating_ip_selector = "service=web"\npoll_interval = "1s"\n'
    )


def settle(
    stub: HcloudStub, want: dict[str, str], proc: GoavailProcess, timeout: float = 20.0
) -> None:
    wait_until(
        lambda: stub.state.targets() == want,
        timeout,
        message=lambda: f"targets {stub.state.targets()}, want {want}:\n" + proc.tail(80),
    )


def test_floating_ips_follow_health(tmp_path: Path, hcloud: HcloudStub, nft: Nft) -> None:
    listen = f"127.0.0.1:{free_port()}"
    with GoavailProcess(tmp_path, config(listen), args=["--no-dry-run"], env=hcloud.env()) as proc:
        settle(hcloud, CANONICAL, proc)
        assert hcloud.state.token not in proc.output

        nft.blackhole(LB[0])  # lb0 fails: ip0 goes to another healthy server
        wait_until(
            lambda: hcloud.state.targets()["ip0"] in ("lb1", "lb2"),
            20.0,
            message=lambda: f"{hcloud.state.targets()}\n{proc.tail()}",
        )
        proc.wait_for(r"FLOATING IP ip0 \(203\.0\.113\.20\) lb0 -> lb[12] .*server lb0 is down")
        assert {k: v for k, v in hcloud.state.targets().items() if k != "ip0"} == {
            "ip1": "lb1",
            "ip2": "lb2",
        }

        reply = http("GET", f"http://{listen}/api/status")
        assert reply.status == 200, proc.tail()
        doc = reply.json()
        group = doc["floating_ips"][0]
        assert group["id"] == "web" and not group["dry_run"]
        assert {s["name"]: s["state"] for s in group["servers"]} == {
            "lb0": "down",
            "lb1": "up",
            "lb2": "up",
        }
        assert {ip["name"]: ip["planned"] for ip in group["floating_ips"]}["ip0"] != "lb0"
        moved_to = hcloud.state.targets()["ip0"]
        assert moved_to is not None
        wait_until(  # once goavail has read the API again
            lambda: (
                metric(
                    http("GET", f"http://{listen}/metrics").text,
                    "goavail_floating_ip_target",
                    group="web",
                    floating_ip="ip0",
                    address="203.0.113.20",
                    server=moved_to,
                )
                == 1.0
            ),
            message=proc.tail,
        )

        nft.clear()  # lb0 recovers: its canonical IP comes back
        settle(hcloud, CANONICAL, proc)

        # every server down: once the last one is down, nothing moves (the checks see
        # them fall one after the other, so the first may move before the last falls)
        nft.blackhole(*LB)
        proc.wait_for(r"every server is down: all are considered healthy", timeout=20.0)
        frozen, assigns = hcloud.state.targets(), len(hcloud.state.assigns)
        hold(lambda: hcloud.state.targets() == frozen, 3.0)
        assert len(hcloud.state.assigns) == assigns

        nft.clear()
        settle(hcloud, CANONICAL, proc)
        wait_until(
            lambda: (
                {
                    s["state"]
                    for s in http("GET", f"http://{listen}/api/status").json()["floating_ips"][0][
                        "servers"
                    ]
                }
                == {"up"}
            ),
            20.0,
            message=proc.tail,
        )
        # half the API's answers fail (5xx: the SDK retries 429 itself, see the unit tests)
        hcloud.state.set_error_rate(0.5, (500, 503))
        nft.blackhole(LB[1])
        wait_until(
            lambda: hcloud.state.targets()["ip1"] in ("lb0", "lb2"),
            60.0,
            message=lambda: f"{hcloud.state.targets()}\n{proc.tail()}",
        )
        nft.clear()
        settle(hcloud, CANONICAL, proc, timeout=60.0)
        hcloud.state.set_error_rate(0.0)
        assert proc.matching(r"floating IPs web: .*retrying in")
        assert proc.stop() == 0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    moves = [(r["floating_ip"], r["to"]) for r in audit if r.get("outcome") == "applied"]
    assert moves[:3] == [("ip0", "lb0"), ("ip1", "lb1"), ("ip2", "lb2")]


def test_dry_run_only_records(tmp_path: Path, hcloud: HcloudStub) -> None:
    listen = f"127.0.0.1:{free_port()}"
    with GoavailProcess(tmp_path, config(listen), env=hcloud.env()) as proc:
        proc.wait_for(r"FLOATING IP ip2 .* -> lb2 .*dry_run=true outcome=planned", timeout=20.0)
        hold(lambda: hcloud.state.count("POST", "/v1/floating_ips") == 0, 2.0)
        assert proc.stop() == 0


def test_plan_shows_the_moves_and_validate_accepts_a_file_without_dns(
    tmp_path: Path, hcloud: HcloudStub, nft: Nft
) -> None:
    path = tmp_path / "goavail.toml"
    path.write_text(config(f"127.0.0.1:{free_port()}"))
    checked = run_goavail("validate", "--config-file", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "floating IP group(s) web" in checked.stdout
    nft.blackhole(LB[1])
    done = run_goavail("plan", "--config-file", str(path), "--detailed-exitcode", env=hcloud.env())
    assert done.returncode == 2, done.stdout + done.stderr  # changes pending
    assert "  server lb1 127.16.2.2 fsn1: down" in done.stdout
    assert "  ip0 203.0.113.20: unassigned -> lb0 (canonical target (resource_index 0))" in (
        done.stdout
    )
    assert "  ip1 203.0.113.21: unassigned -> lb0 " in done.stdout  # least loaded, by name
    as_json = run_goavail("plan", "--config-file", str(path), "--json", env=hcloud.env())
    doc = json.loads(as_json.stdout)
    assert [m["to"] for m in doc["floating_ips"][0]["moves"]] == ["lb0", "lb0", "lb2"]
    assert hcloud.state.count("POST", "/v1/floating_ips") == 0
    assert hcloud.state.token not in done.stdout + done.stderr


def test_a_missing_token_is_a_setup_error(tmp_path: Path) -> None:
    path = tmp_path / "goavail.toml"
    path.write_text(config(f"127.0.0.1:{free_port()}"))
    done = run_goavail("monitor", "--config-file", str(path))
    assert done.returncode == 2
    assert "HCLOUD_TOKEN" in done.stderr and "Traceback" not in done.stderr
