"""Notifications and the heartbeat of the real ``goavail monitor`` process.

Receivers are real HTTP servers on 127.0.0.1 (:mod:`tests.receiver`, served from
a thread); targets are this module's own loopback addresses, taken down with
nftables in the test session's private namespace; DNS is a zone file.

* A receiver that never answers does not delay a failover, nor the stop.
* Slack (``slack_addr`` as a full URL) and webhook messages say what happened,
  dry-run changes as "would remove"; the "stopping" message goes out at SIGTERM.
* Heartbeat GETs arrive at start and periodically; a failing one is logged,
  never fatal.
* SIGHUP applies a new ``[[notifications]]`` entry.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.zone
import pytest

from tests.e2e.harness import GoavailProcess, wait_until, zonefile_toml
from tests.netns import Nft
from tests.receiver import HANG, Receiver, Reply, ThreadedReceiver

pytestmark = pytest.mark.e2e

A, B, C = "127.21.21.2", "127.21.21.3", "127.21.21.4"
NODE = "e2e-agent"
SLACK_TOKEN = "T0E2E/B0E2E/slacksecret42"
BEAT_TOKEN = "ping/heartbeat-secret-42"


def www(path: Path) -> set[str]:
    """The addresses of www's A records in the zone file (none if it does not exist yet)."""
    if not path.exists():
        return set()
    zone = dns.zone.from_text(path.read_text(), "example.test.", relativize=True)
    rdataset = zone.get_rdataset("www", dns.rdatatype.A)
    return set() if rdataset is None else {rd.address for rd in rdataset}


def config(tmp_path: Path, *, top: str = "", tables: str = "") -> str:
    """Fast timings, a zone file in ``tmp_path``, targets A, B and C."""
    top = f'node_name = "{NODE}"\naudit_file = "audit.jsonl"\n' + top
    return zonefile_toml([A, B, C], tmp_path / "example.test.zone", top=top) + tables


def notification(receiver: Receiver, sink_type: str, **keys: str) -> str:
    lines = [f'[[notifications]]\ntype = "{sink_type}"\nurl = "{receiver.url()}"']
    lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    return "\n" + "\n".join(lines) + "\n"


def webhook_events(receiver: Receiver) -> list[dict[str, Any]]:
    return [e for r in receiver.requests for e in r.json["events"]]


def texts(receiver: Receiver) -> str:
    return "\n".join(r.json["text"] for r in receiver.requests)


def test_a_hanging_receiver_does_not_delay_a_failover(tmp_path: Path, nft: Nft) -> None:
    zone = tmp_path / "example.test.zone"
    with ThreadedReceiver(default=HANG) as hook:
        tables = notification(hook, "webhook", timeout="60s", coalesce_window="50ms")
        text = config(tmp_path, top=f'slack_addr = "{hook.url("/slack")}"\n', tables=tables)
        with GoavailProcess(
            tmp_path, text, args=["--dns-provider", "zonefile", "--no-dry-run"]
        ) as p:
            wait_until(lambda: www(zone) == {A, B, C}, message=p.tail)
            # both sinks are stuck on a request that will never be answered
            wait_until(lambda: {r.path for r in hook.requests} == {"/hook", "/slack"})
            nft.blackhole(B)
            wait_until(lambda: www(zone) == {A, C}, message=p.tail)
            p.wait_for(rf"DNS delete www\.example\.test A {B} .*outcome=applied")
            nft.clear()
            wait_until(lambda: www(zone) == {A, B, C}, message=p.tail)
            # the webhook sink is still stuck on its first request: nothing else was sent
            assert [r.path for r in hook.requests].count("/hook") == 1
            assert p.stop() == 0  # within harness.STOP_BOUND despite the hanging requests
            assert p.matching(r"notifications\[0\] \(127\.0\.0\.1\): \d+ event\(s\) not delivered")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["address"]) for r in audit][-2:] == [("delete", B), ("create", B)]


def test_messages_and_heartbeat_in_dry_run(tmp_path: Path, nft: Nft) -> None:
    with (
        ThreadedReceiver() as slack,
        ThreadedReceiver() as hook,
        ThreadedReceiver([Reply(500)]) as beat,
    ):
        top = f'slack_addr = "{slack.url("/services/" + SLACK_TOKEN)}"\n'
        tables = notification(hook, "webhook", coalesce_window="100ms") + (
            f'\n[Heartbeat]\nurl = "{beat.url("/" + BEAT_TOKEN)}"\ninterval = "300ms"\n'
            'timeout = "200ms"\n'
        )
        text = config(tmp_path, top=top, tables=tables)
        with GoavailProcess(tmp_path, text, args=["--dns-provider", "zonefile"]) as p:
            wait_until(lambda: "started in DRY-RUN" in texts(slack), message=p.tail)
            assert texts(slack).startswith(f"[goavail {NODE}] ")
            wait_until(lambda: len(beat.requests) >= 3, message=p.tail)
            assert all((r.method, r.path) == ("GET", "/" + BEAT_TOKEN) for r in beat.requests)
            p.wait_for(r"heartbeat to 127\.0\.0\.1 failed \(HTTP 500\)")

            nft.blackhole(B)
            line = (
                f"DNS (DRY-RUN): would remove www.example.test A {B} at zonefile (target {B} down)"
            )
            wait_until(lambda: line in texts(slack), message=p.tail)
            deletes = wait_until(
                lambda: [e for e in webhook_events(hook) if e.get("action") == "delete"]
            )
            assert deletes == [
                {
                    "kind": "dns_change",
                    "time": deletes[0]["time"],
                    "target": B,
                    "name": "www.example.test",
                    "type": "A",
                    "action": "delete",
                    "reason": f"target {B} down",
                    "dry_run": True,
                    "outcome": "planned",
                    "provider": "zonefile",
                }
            ]
            assert p.alive
            assert p.stop() == 0
        assert f"[goavail {NODE}] goavail " in texts(slack)
        assert texts(slack).rstrip().endswith("stopping")
        assert webhook_events(hook)[-1]["kind"] == "agent_stopped"
        assert all(r.path == "/services/" + SLACK_TOKEN for r in slack.requests)
    assert not (tmp_path / "example.test.zone").exists()  # dry-run: nothing written
    assert SLACK_TOKEN not in p.output
    assert BEAT_TOKEN not in p.output


def test_reload_adds_a_notification(tmp_path: Path, nft: Nft) -> None:
    zone = tmp_path / "example.test.zone"
    with (
        ThreadedReceiver() as hook,
        GoavailProcess(
            tmp_path, config(tmp_path), args=["--dns-provider", "zonefile", "--no-dry-run"]
        ) as p,
    ):
        wait_until(lambda: www(zone) == {A, B, C}, message=p.tail)
        mark = p.mark()
        p.write_config(config(tmp_path, tables=notification(hook, "webhook")))
        p.signal(signal.SIGHUP)
        p.wait_for(r"configuration reloaded", since=mark)
        nft.blackhole(C)
        wait_until(lambda: www(zone) == {A, B}, message=p.tail)
        events = wait_until(lambda: webhook_events(hook), message=p.tail)
        assert [(e["kind"], e["action"], e["target"]) for e in events] == [
            ("dns_change", "delete", C)
        ]
        assert p.stop() == 0
