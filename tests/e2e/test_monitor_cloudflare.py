"""``goavail monitor`` end to end against the Cloudflare API stand-in.

The real process runs (``python -m goavail monitor``) with the official SDK
pointed at the stand-in through ``CLOUDFLARE_BASE_URL``. Targets are loopback
addresses of the private test namespace, each test its own 127.20.N.0/24 so
nftables rules never leak between tests; an outage is ``Nft.blackhole``.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cfstub.server import CloudflareStub
from tests.e2e.harness import (
    GoavailProcess,
    a_records,
    addresses_of,
    cloudflare_toml,
    delete_record,
    hold,
    quiet,
    stub_env,
    wait_until,
    write_requests,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

ZONE = "example.com"
WWW = "www.example.com"
LIVE = ["--no-dry-run"]


def seed(stub: CloudflareStub, *addresses: str, name: str = WWW) -> dict[str, str]:
    """Put A records for ``addresses`` at ``name`` in the stand-in; return address -> id."""
    return {a: stub.add_record(ZONE, name, "A", a, ttl=300) for a in addresses}


def seed_unmanaged(stub: CloudflareStub, configured: str) -> list[dict[str, Any]]:
    """Records goavail must never touch; returns them as the stand-in shows them.

    Another name with a configured address, another address on the managed name,
    and TXT, MX and CNAME records.
    """
    stub.add_record(ZONE, f"api.{ZONE}", "A", configured)
    stub.add_record(ZONE, WWW, "A", "127.20.250.1")
    stub.add_record(ZONE, WWW, "TXT", '"managed by goavail"')
    stub.add_record(ZONE, ZONE, "MX", f"mail.{ZONE}")
    stub.add_record(ZONE, f"shop.{ZONE}", "CNAME", WWW)
    return unmanaged(stub)


def unmanaged(stub: CloudflareStub) -> list[dict[str, Any]]:
    """Every record of the zone except the A records of www with a 127.20.1-19 address."""
    return [
        r
        for r in stub.records(ZONE)
        if not (r["name"] == WWW and r["type"] == "A" and r["content"] != "127.20.250.1")
    ]


def converge(stub: CloudflareStub, expected: set[str], proc: GoavailProcess) -> None:
    """Wait until the A records of www hold exactly ``expected``."""
    wait_until(
        lambda: addresses_of(stub, ZONE, WWW) - {"127.20.250.1"} == expected,
        message=lambda: (
            f"www has {sorted(addresses_of(stub, ZONE, WWW))}, want {sorted(expected)}; "
            f"goavail output:\n{proc.tail()}"
        ),
    )


def test_failover_removes_and_restores_records(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b, c = "127.20.1.1", "127.20.1.2", "127.20.1.3"
    seed(stub, a, b)  # c is configured but not in DNS: created once seen up
    others = seed_unmanaged(stub, b)
    config = cloudflare_toml([a, b, c], ttl=120, proxied=True)
    with GoavailProcess(tmp_path, config, args=LIVE, env=stub_env(stub)) as proc:
        converge(stub, {a, b, c}, proc)
        created = a_records(stub, ZONE, WWW)[c]
        assert (created["ttl"], created["proxied"]) == (120, True)

        nft.blackhole(b)
        converge(stub, {a, c}, proc)
        proc.wait_for(rf"target {b} up -> down after 2 consecutive failures")
        assert unmanaged(stub) == others

        mark = proc.mark()
        nft.clear()
        converge(stub, {a, b, c}, proc)
        proc.wait_for(rf"target {b} down -> up", since=mark)
        restored = a_records(stub, ZONE, WWW)[b]
        assert (restored["ttl"], restored["proxied"]) == (120, True)
        assert unmanaged(stub) == others
        assert proc.stop() == 0
    assert unmanaged(stub) == others


def test_all_targets_down_fails_open(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b = "127.20.2.1", "127.20.2.2"
    seed(stub, a, b)
    others = seed_unmanaged(stub, a)
    with GoavailProcess(tmp_path, cloudflare_toml([a, b]), args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {b} unknown -> up")
        nft.blackhole(a)
        converge(stub, {b}, proc)

        nft.blackhole(b)  # now every address is down: a is put back, b is kept
        line = proc.wait_for(r"FAIL-OPEN engaged for www\.example\.com A")
        assert "WARNING" in line and a in line and b in line
        converge(stub, {a, b}, proc)
        proc.wait_for(rf"DNS create www\.example\.com A {a} \(fail-open.*outcome=applied")
        hold(lambda: addresses_of(stub, ZONE, WWW) >= {a, b}, 1.5)  # kept through resyncs

        nft.clear()
        proc.wait_for(r"fail-open released for www\.example\.com A")
        converge(stub, {a, b}, proc)
        assert unmanaged(stub) == others
        assert proc.stop() == 0


def test_unmanaged_records_are_never_touched(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b = "127.20.3.1", "127.20.3.2"
    seed(stub, a, b)
    others = seed_unmanaged(stub, b)
    with GoavailProcess(tmp_path, cloudflare_toml([a, b]), args=LIVE, env=stub_env(stub)) as proc:
        nft.blackhole(b)
        converge(stub, {a}, proc)
        nft.blackhole(a)
        converge(stub, {a, b}, proc)  # fail-open
        nft.clear()
        hold(lambda: unmanaged(stub) == others, 2.5)  # > 2 resyncs
        assert proc.stop() == 0
    # the other name still holds the address that went down, the foreign address is still at www
    assert addresses_of(stub, ZONE, f"api.{ZONE}") == {b}
    assert "127.20.250.1" in addresses_of(stub, ZONE, WWW)
    assert {r["type"] for r in stub.records(ZONE)} == {"A", "TXT", "MX", "CNAME"}
    # deleted by id: only www A records with configured addresses were ever deleted
    deleted = [r.path for r in stub.requests if r.method == "DELETE"]
    assert deleted, "goavail never deleted the down target's record"
    assert all(r["id"] not in p for p in deleted for r in others)


def test_dry_run_makes_no_write_and_audits(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b, c = "127.20.4.1", "127.20.4.2", "127.20.4.3"
    seed(stub, a, b)
    before = stub.records(ZONE)
    config = cloudflare_toml([a, b, c], top='audit_file = "audit.jsonl"\n')
    args = ["--log-format", "json"]  # no --no-dry-run: dry-run is the default
    with GoavailProcess(tmp_path, config, args=args, env=stub_env(stub)) as proc:
        proc.wait_for(r"DRY-RUN: no DNS change will be made")
        proc.wait_for(rf"DNS create www\.example\.com A {c} .*dry_run=true outcome=planned")
        nft.blackhole(b)
        proc.wait_for(rf"DNS delete www\.example\.com A {b} .*dry_run=true outcome=planned")
        time.sleep(1.5)  # a resync or two: the overlay keeps planned changes from repeating
        assert proc.stop() == 0
        logged = [line["audit"] for line in proc.json_lines() if "audit" in line]

    assert write_requests(stub) == 0
    assert stub.count(method="GET") > 0  # it did read
    assert stub.records(ZONE) == before
    audited = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    for records in (logged, audited):
        assert {(r["action"], r["address"]) for r in records} == {("create", c), ("delete", b)}
        assert all(r["dry_run"] is True and r["outcome"] == "planned" for r in records)
        assert all(r["provider"] == "cloudflare" and r["name"] == WWW for r in records)
    assert logged == audited


def test_converges_despite_api_errors(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b, c = "127.20.5.1", "127.20.5.2", "127.20.5.3"
    seed(stub, a, b, c)
    # No periodic resync during the test: after start-up only b's transitions cause
    # requests, so the seeded faults hit the same requests on every run.
    config = cloudflare_toml([a, b, c], resync="60s")
    with GoavailProcess(tmp_path, config, args=LIVE, env=stub_env(stub)) as proc:
        for target in (a, b, c):
            proc.wait_for(rf"target {target} unknown -> up")
        quiet(stub)
        # 60 % of API requests fail (429 with Retry-After, 500, HTML 502/503); the seed
        # makes the sequence of faults the same on every run.
        stub.set_faults(error_rate=0.6, statuses=(429, 500, 502, 503), seed=10)
        stub.clear_log()

        nft.blackhole(b)
        converge(stub, {a, c}, proc)
        nft.clear()
        converge(stub, {a, b, c}, proc)
        recreated = a_records(stub, ZONE, WWW)[b]
        assert (recreated["ttl"], recreated["proxied"]) == (120, False)

        faulted = [r.status for r in stub.requests if r.status >= 429]
        assert len(faulted) >= 3, faulted
        # every fault was retried: within the call (provider) or by a later pass (reconciler)
        retries = proc.matching(r"; retry \d+ in [\d.]+s|DNS not converged \(transient error")
        assert len(retries) >= len(faulted) - 1, (faulted, retries)
        assert proc.stop() == 0


def test_sighup_with_broken_config_keeps_running(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b = "127.20.6.1", "127.20.6.2"
    seed(stub, a, b)
    config = cloudflare_toml([a, b])
    with GoavailProcess(tmp_path, config, args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {b} unknown -> up")
        proc.write_config(config.replace("failure_threshold = 2", "failure_threshold = 0"))
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"reload rejected, still running the previous configuration", since=mark)
        proc.wait_for(r"failure_threshold: must be between 1 and 100, not 0", since=mark)
        assert proc.alive

        nft.blackhole(b)  # the old config (threshold 2) is still in force
        converge(stub, {a}, proc)
        proc.wait_for(rf"target {b} up -> down after 2 consecutive failures", since=mark)
        assert proc.stop() == 0


def test_sighup_with_config_file_gone_keeps_running(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b = "127.20.6.3", "127.20.6.4"
    seed(stub, a, b)
    with GoavailProcess(tmp_path, cloudflare_toml([a, b]), args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {b} unknown -> up")
        proc.config_path.unlink()
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"reload rejected, still running the previous configuration", since=mark)
        proc.wait_for(r"cannot read .*goavail\.toml", since=mark)
        nft.blackhole(b)
        converge(stub, {a}, proc)
        assert proc.stop() == 0


def test_sighup_with_valid_config_adds_target(
    tmp_path: Path, stub: CloudflareStub, nft: Nft
) -> None:
    a, b, c = "127.20.7.1", "127.20.7.2", "127.20.7.3"
    seed(stub, a, b)
    with GoavailProcess(tmp_path, cloudflare_toml([a, b]), args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {b} unknown -> up")
        hold(lambda: c not in addresses_of(stub, ZONE, WWW), 0.6)  # not configured: not added
        proc.write_config(cloudflare_toml([a, b, c]))
        mark = proc.mark()
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"configuration reloaded: 3 targets \(\+1 -0\)", since=mark)
        proc.wait_for(rf"target {c} added", since=mark)
        converge(stub, {a, b, c}, proc)  # c is managed now: created once seen up

        nft.blackhole(c)  # ... and withdrawn when it goes down
        converge(stub, {a, b}, proc)
        assert proc.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_zero_promptly(
    tmp_path: Path, stub: CloudflareStub, sig: signal.Signals
) -> None:
    a = "127.20.8.1"
    seed(stub, a)
    with GoavailProcess(tmp_path, cloudflare_toml([a]), args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {a} unknown -> up")
        start = time.monotonic()
        proc.signal(sig)
        assert proc.wait_exit(5.0) == 0
        assert time.monotonic() - start < 5.0
        proc.wait_for(r"goavail\.agent: stopped$")


def test_sigterm_during_a_hung_api_call_exits_within_bound(
    tmp_path: Path, stub: CloudflareStub
) -> None:
    a = "127.20.8.2"
    stub.set_faults(error_rate=0.0, delay=30.0)  # every API request hangs
    with GoavailProcess(tmp_path, cloudflare_toml([a]), args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(rf"target {a} unknown -> up")
        # the first pass's zone lookup has been waiting on the stand-in since start-up
        assert stub.count() == 0 and proc.alive
        start = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait_exit(5.0) == 0
        assert time.monotonic() - start < 5.0
        assert "Traceback" not in proc.output


def test_api_token_never_in_output(tmp_path: Path, nft: Nft) -> None:
    token = "e2e-Secret-Token-7f3a9c0d1b2e"
    a, b = "127.20.10.1", "127.20.10.2"
    config = cloudflare_toml([a, b], top='audit_file = "audit.jsonl"\n')
    with CloudflareStub(token=token) as stub:
        stub.add_zone(ZONE)
        seed(stub, a, b)
        stub.fail_next(3, 500)  # error messages are logged too
        args = [*LIVE, "--debug", "--log-format", "json"]
        with GoavailProcess(tmp_path, config, args=args, env=stub_env(stub)) as proc:
            proc.wait_for(r"DNS not converged")
            nft.blackhole(b)
            converge(stub, {a}, proc)
            proc.wait_for(rf"probe {a} ok")  # --debug logs every probe
            assert proc.stop() == 0
    output = proc.output
    assert output, "no output at all"
    assert token not in output
    assert token[4:-4] not in output  # not even a fragment
    assert token not in (tmp_path / "audit.jsonl").read_text()


def test_rejected_token_is_reported_without_crashing(tmp_path: Path, stub: CloudflareStub) -> None:
    a = "127.20.10.5"
    seed(stub, a)
    wrong = "wrong-token-0123456789abcdef"
    env = {**stub_env(stub), "CLOUDFLARE_API_TOKEN": wrong}
    with GoavailProcess(tmp_path, cloudflare_toml([a]), args=LIVE, env=env) as proc:
        line = proc.wait_for(r"DNS not converged \(permanent error")
        assert "HTTP 403" in line and "check CLOUDFLARE_API_TOKEN" in line
        proc.wait_for(rf"target {a} unknown -> up")  # probing goes on
        assert proc.stop() == 0
    assert wrong not in proc.output
    assert write_requests(stub) == 0


def test_missing_zone_is_reported_without_crashing(tmp_path: Path, stub: CloudflareStub) -> None:
    a = "127.20.10.6"
    config = cloudflare_toml([a], domain="not-there.example")
    with GoavailProcess(tmp_path, config, args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(r"zone 'not-there\.example' not found")
        proc.wait_for(rf"target {a} unknown -> up")
        assert proc.stop() == 0


def test_json_log_lines_parse(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b = "127.20.10.3", "127.20.10.4"
    seed(stub, a, b)
    args = [*LIVE, "--log-format", "json"]
    with GoavailProcess(tmp_path, cloudflare_toml([a, b]), args=args, env=stub_env(stub)) as proc:
        proc.wait_for(rf'"message": "target {b} unknown -> up')
        nft.blackhole(b)
        converge(stub, {a}, proc)
        # The stand-in has the change as soon as the API call lands; the audit line
        # follows the SDK's answer. Stop only after it.
        proc.wait_for(rf'"message": "DNS delete www\.example\.com A {b}')
        assert proc.stop() == 0
    lines = proc.json_lines()
    assert len(lines) >= 5
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    starts = [line for line in lines if line["message"].startswith("goavail ")]
    assert starts and "starting" in starts[0]["message"]
    assert starts[0]["pid"] == proc.pid  # the process to send SIGHUP to
    down = [line for line in lines if "up -> down" in line["message"]]
    assert down and down[0]["target"] == b and down[0]["state"] == "down"
    audits = [line["audit"] for line in lines if "audit" in line]
    assert [(r["action"], r["address"], r["outcome"]) for r in audits] == [("delete", b, "applied")]


class TcpListener:
    """A TCP server on ``(host, port)`` that accepts and closes connections, in a thread."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        """Stop accepting and close the socket: connections are refused from now on."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[list[TcpListener]]:
    """TCP listeners a test starts; all closed afterwards."""
    started: list[TcpListener] = []
    yield started
    for listener in started:
        listener.close()


def test_tcp_probe_follows_the_listener(
    tmp_path: Path, stub: CloudflareStub, listeners: list[TcpListener]
) -> None:
    a, b = "127.20.9.1", "127.20.9.2"
    listeners.append(TcpListener(a))
    port = listeners[0].port
    listeners.append(TcpListener(b, port))
    seed(stub, a)  # b is created once its listener is seen
    config = cloudflare_toml([a, b], top=f"port = {port}\n")
    args = [*LIVE, "--type", "tcp"]
    with GoavailProcess(tmp_path, config, args=args, env=stub_env(stub)) as proc:
        proc.wait_for(r"probe tcp every")
        converge(stub, {a, b}, proc)

        listeners[1].close()  # connection refused on b:port
        converge(stub, {a}, proc)
        proc.wait_for(rf"target {b} up -> down")

        listeners.append(TcpListener(b, port))
        converge(stub, {a, b}, proc)
        assert proc.stop() == 0


def test_resync_repairs_hand_edits(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b, c = "127.20.12.1", "127.20.12.2", "127.20.12.3"
    ids = seed(stub, a, b, c)
    with GoavailProcess(
        tmp_path, cloudflare_toml([a, b, c]), args=LIVE, env=stub_env(stub)
    ) as proc:
        proc.wait_for(rf"target {b} unknown -> up")
        proc.wait_for(rf"target {c} unknown -> up")
        nft.blackhole(c)
        converge(stub, {a, b}, proc)

        mark = proc.mark()
        delete_record(stub, ZONE, ids[b])  # an up target's record deleted by hand ...
        stub.add_record(ZONE, WWW, "A", c)  # ... and a down target's record added by hand
        converge(stub, {a, b}, proc)  # no probe changed: only the resync can do that
        proc.wait_for(rf"DNS create www\.example\.com A {b} .*outcome=applied", since=mark)
        proc.wait_for(rf"DNS delete www\.example\.com A {c} .*outcome=applied", since=mark)
        assert not proc.matching(r"->", since=mark), "a target changed state meanwhile"
        assert proc.stop() == 0


def test_original_sample_key_names(tmp_path: Path, stub: CloudflareStub, nft: Nft) -> None:
    a, b = "127.20.11.1", "127.20.11.2"
    stub.add_record(ZONE, f"test.{ZONE}", "A", b, ttl=300)
    # the Go original's keys: integer interval, [Cloudflare] with dns_proxied
    config = f"""\
failure_threshold = 2
interval = 1
port = 8000

[Cloudflare]
dns_proxied = true
dns_domain = "{ZONE}"
hostnames = ["test"]
ip_addresses = ["{a}", "{b}"]
"""
    name = f"test.{ZONE}"
    with GoavailProcess(tmp_path, config, args=LIVE, env=stub_env(stub)) as proc:
        proc.wait_for(r"probe icmp every 1s \(timeout 1s\), down after 2 failures")
        wait_until(lambda: a in addresses_of(stub, ZONE, name), message=proc.tail)
        created = a_records(stub, ZONE, name)[a]
        assert (created["proxied"], created["ttl"]) == (True, 1)  # dns_proxied; ttl "automatic"

        nft.blackhole(b)
        wait_until(lambda: addresses_of(stub, ZONE, name) == {a}, message=proc.tail)
        assert proc.stop() == 0
