"""The HTTP server of the real ``goavail monitor`` process: endpoints, metrics, overrides.

Each test starts goavail with ``[Server] listen`` on a free port of 127.0.0.1 (in the
private test namespace) and talks to it with the aiohttp client. Targets are
127.21.N.0/24 loopback addresses, an outage is ``Nft.blackhole``, DNS lives in the
Cloudflare stand-in.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.cfstub.server import CloudflareStub
from tests.e2e.harness import (
    GoavailProcess,
    addresses_of,
    cloudflare_toml,
    free_port,
    http,
    http_ok,
    metric,
    run_goavail,
    stub_env,
    wait_until,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ZONE = "example.com"
WWW = "www.example.com"
LIVE = ["--no-dry-run"]
TOKEN = "e2e-admin-token-4f8a9c0d"


def started(proc: GoavailProcess, base: str) -> None:
    """Wait until the server answers and the agent has decided every target."""
    proc.wait_for(r"HTTP server on http://")
    wait_until(lambda: http_ok(base + "/_health"), message=proc.tail)


def records(stub: CloudflareStub) -> set[str]:
    return addresses_of(stub, ZONE, WWW)


def test_endpoints_follow_a_failover_and_reloads(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b = "127.21.1.1", "127.21.1.2"
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    config = cloudflare_toml([a, b], listen=listen)
    env = {**stub_env(stub), "GOAVAIL_ADMIN_TOKEN": TOKEN}
    with GoavailProcess(tmp_path, config, args=LIVE, env=env) as proc:
        started(proc, base)
        wait_until(lambda: records(stub) == {a, b}, message=proc.tail)
        # healthy: 200, the Philae shape
        wait_until(lambda: http("GET", base + "/_health").status == 200, message=proc.tail)
        health = http("GET", base + "/_health")
        assert health.headers["content-type"].startswith("application/json")
        body = health.json()
        assert body["healthy"] is True and body["error"] is None
        assert [p["name"] for p in body["probes"]] == ["config", "probes", "dns"]
        text = http("GET", base + "/metrics").text
        assert metric(text, "goavail_target_up", target=b) == 1.0
        assert metric(text, "goavail_dry_run") == 0.0

        # b goes down: withdrawn, and every endpoint says so
        nft.blackhole(b)
        wait_until(lambda: records(stub) == {a}, message=proc.tail)

        def metrics_show_failover() -> bool:
            text = http("GET", base + "/metrics").text
            return metric(text, "goavail_target_up", target=b) == 0.0 and (
                metric(
                    text,
                    "goavail_dns_changes_total",
                    provider="cloudflare",
                    action="delete",
                    result="applied",
                    dry_run="false",
                )
                == 1.0
            )

        wait_until(metrics_show_failover, message=proc.tail)
        text = http("GET", base + "/metrics").text
        assert metric(text, "goavail_transitions_total", target=b, to="down") == 1.0
        assert (metric(text, "goavail_probes_total", type="icmp", result="failed") or 0) >= 2
        assert metric(text, "goavail_target_state", target=b, state="down") == 1.0
        status = http("GET", base + "/api/status").json()
        assert {t["address"]: t["state"] for t in status["targets"]} == {a: "up", b: "down"}
        assert status["audit"][0]["action"] == "delete" and status["audit"][0]["address"] == b
        assert status["names"][0]["records"] == [{"type": "A", "address": a, "managed": True}]
        assert http("GET", base + "/_health").status == 200  # a target down is not goavail sick

        # a good reload, then a rejected one: counted, and /_health turns 503
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for("configuration reloaded", since=mark)
        proc.write_config("failure_threshold = 0\n")
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for("reload rejected", since=mark)
        text = http("GET", base + "/metrics").text
        assert metric(text, "goavail_config_reloads_total", result="applied") == 1.0
        assert metric(text, "goavail_config_reloads_total", result="rejected") == 1.0
        health = http("GET", base + "/_health")
        assert health.status == 503
        config_probe = health.json()["probes"][0]
        assert config_probe["name"] == "config" and config_probe["healthy"] is False
        assert "failure_threshold" in config_probe["error"]
        assert proc.stop() == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        config = tmp_path / "goavail.toml"
        zone = tmp_path / "zone"
        config.write_text(
            f"""[Zonefile]
path = "{zone}"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["127.21.2.1"]

[Server]
listen = "127.0.0.1:{port}"
"""
        )
        result = run_goavail("monitor", "-f", str(config), "-p", "zonefile")
    assert result.returncode == 1, result.stderr
    assert f"[Server] listen = '127.0.0.1:{port}': cannot listen: " in result.stderr
    assert "in use" in result.stderr and "[Server] enabled = false" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_provider_makes_health_503(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    nobody = free_port()  # nothing listens there: connection refused
    env = {
        "CLOUDFLARE_BASE_URL": f"http://127.0.0.1:{nobody}/client/v4",
        "CLOUDFLARE_API_TOKEN": "unused-token-value",
    }
    with GoavailProcess(tmp_path, cloudflare_toml(["127.21.3.1"], listen=listen), env=env) as p:
        started(p, base)
        wait_until(lambda: http("GET", base + "/_health").status == 503, message=p.tail)
        body = http("GET", base + "/_health").json()
        dns = {probe["name"]: probe for probe in body["probes"]}["dns"]
        assert dns["healthy"] is False and dns["error"]
        assert body["error"].startswith("prober error: ")
        assert "unused-token-value" not in json.dumps(body)


def test_overrides_from_file_api_and_sighup(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b, c = "127.21.4.1", "127.21.4.2", "127.21.4.3"
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(f'"{a}" = {{ mode = "down", reason = "planned maintenance" }}\n')
    config = cloudflare_toml(
        [a, b, c],
        listen=listen,
        top='overrides_file = "overrides.toml"\naudit_file = "audit.jsonl"\n',
    )
    env = {**stub_env(stub), "GOAVAIL_ADMIN_TOKEN": TOKEN}
    with GoavailProcess(tmp_path, config, args=LIVE, env=env) as proc:
        started(proc, base)
        # a is healthy, but drained by the file: never published
        wait_until(lambda: records(stub) == {b, c}, message=proc.tail)
        url = base + "/api/overrides"
        assert http("POST", url, body={"target": a, "mode": "auto"}).status == 401
        assert http("POST", url, body={"target": a, "mode": "auto"}, token="nope").status == 401
        assert records(stub) == {b, c}
        reply = http("POST", url, body={"target": a, "mode": "auto"}, token=TOKEN)
        assert reply.status == 200, reply.text
        assert reply.json()["in_force"] == "auto"
        wait_until(lambda: records(stub) == {a, b, c}, message=proc.tail)
        assert "127.21.4.1" not in overrides.read_text()  # the API wrote the file
        # keep c although it fails: an "up" override, set in the file, applied on SIGHUP
        overrides.write_text(f'"{c}" = "up"\n')
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for("configuration reloaded", since=mark)
        nft.blackhole(c)
        proc.wait_for(rf"target {c} up -> down", since=mark)
        text = http("GET", base + "/metrics").text
        assert metric(text, "goavail_target_override", target=c, mode="up") == 1.0
        assert records(stub) == {a, b, c}
        status = http("GET", base + "/api/status").json()
        target_c = {t["address"]: t for t in status["targets"]}[c]
        assert (target_c["state"], target_c["effective"]) == ("down", "up")
        assert proc.stop() == 0
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    changes = [
        (r["target"], r["previous"], r["mode"], r["source"])
        for r in audit
        if r["action"] == "override"
    ]
    assert changes == [
        (a, "auto", "down", "file"),
        (a, "down", "auto", "api"),
        (c, "auto", "up", "file"),
    ]
