"""``[[checks]]`` and ``hooks_dir`` end to end: the real ``goavail monitor`` with the zone
file provider, HTTPS servers on loopback addresses presenting certificates of a test CA,
nftables for dead hosts, and hooks that record how they were called (or hang).
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.zone
import pytest

from tests.appserver import AppServer, Behaviour, ThreadedAppServer
from tests.e2e.harness import (
    GoavailProcess,
    free_port,
    hold,
    run_goavail,
    wait_until,
    zonefile_toml,
)
from tests.netns import Nft
from tests.tlsca import TestCA

pytestmark = pytest.mark.e2e

A, B, C = "127.21.0.2", "127.21.0.3", "127.21.0.4"
HOST = "app.goavail.test"
TLS_PORT = 18444
LIVE = ["--dns-provider", "zonefile", "--no-dry-run"]


def www(zone: Path) -> set[str]:
    """The addresses of www's A records in the zone file."""
    if not zone.exists():
        return set()
    parsed = dns.zone.from_text(zone.read_text(), "example.test.", relativize=True)
    rdataset = parsed.get_rdataset("www", dns.rdatatype.A)
    return set() if rdataset is None else {rd.address for rd in rdataset}


def settle(zone: Path, want: set[str], proc: GoavailProcess, timeout: float = 15.0) -> None:
    wait_until(
        lambda: www(zone) == want,
        timeout,
        message=lambda: f"www has {sorted(www(zone))}, want {sorted(want)}:\n{proc.tail()}",
    )


def write_hook(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def record_hook(directory: Path, name: str, log: Path) -> Path:
    """A hook appending a JSON line of its arguments and GOAVAIL_* environment to ``log``."""
    return write_hook(
        directory,
        name,
        "python3 - \"$@\" <<'EOF'\n"
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('GOAVAIL_')}\n"
        "env['has_token'] = 'CLOUDFLARE_API_TOKEN' in os.environ\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'hook': os.path.basename(sys.argv[0]) or 'hook',\n"
        "                        'args': sys.argv[1:], 'env': env}) + '\\n')\n"
        "EOF\n",
    )


def entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    directory = tmp_path / "ca"
    directory.mkdir()
    return TestCA(directory)


def test_http_check_down_removes_the_record_while_ping_answers(
    tmp_path: Path, ca: TestCA, nft: Nft
) -> None:
    zone, hooks, log = tmp_path / "example.test.zone", tmp_path / "hooks.d", tmp_path / "hooks.log"
    hooks.mkdir()
    record_hook(hooks, "10-record", log)
    leaf = ca.issue(HOST)
    top = f"""audit_file = "audit.jsonl"
hooks_dir = "hooks.d"
node_name = "agent-e2e"

[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "app"
type = "https"
port = {TLS_PORT}
host = "{HOST}"
path = "/health"
body_contains = "ok"
ca_file = "{ca.pem_path}"
timeout = "150ms"
"""
    server = AppServer([A, B, C], TLS_PORT, ssl_context=leaf.server_context())
    listen = f"127.0.0.1:{free_port()}"
    text = zonefile_toml([A, B, C], Path(zone.name), top=top, listen=listen)
    env = {"CLOUDFLARE_API_TOKEN": "SECRET-TOKEN-NEVER-PASSED"}
    with ThreadedAppServer(server), GoavailProcess(tmp_path, text, args=LIVE, env=env) as proc:
        proc.wait_for(r"2 checks per target")
        proc.wait_for(rf"check app: https GET https://<target>:{TLS_PORT}/health \(Host and SNI")
        settle(zone, {A, B, C}, proc)
        assert {s.sni for s in server.seen} == {HOST}
        assert {s.host for s in server.seen} == {HOST}

        # B's application answers 503 while B still answers ping: B leaves DNS
        mark = proc.mark()
        server.set(B, Behaviour(status=503, body="down for maintenance"))
        settle(zone, {A, C}, proc)
        proc.wait_for(
            rf"check app: target {B} up -> down after 2 consecutive failures, "
            r"last error: status 503 \(expected 2xx\)",
            since=mark,
        )
        proc.wait_for(rf"target {B} up -> down: check app down: .*\(ping=up app=down\)", since=mark)
        assert not proc.matching(rf"check ping: target {B} up -> down", since=mark)
        # /api/status shows why: the failing check, its error and its run of failures
        with urllib.request.urlopen(f"http://{listen}/api/status", timeout=10) as answer:
            shown = {t["address"]: t for t in json.load(answer)["targets"]}[B]
        assert (shown["state"], shown["check"]) == ("down", "app")
        assert shown["last_error"] == "status 503 (expected 2xx)"
        assert shown["failures"] >= 2
        assert [(c["id"], c["state"]) for c in shown["checks"]] == [("ping", "up"), ("app", "down")]
        wait_until(lambda: len(entries(log)) >= 4, message=proc.tail)  # 3 creates, 1 delete
        delete = [
            e for e in entries(log) if e["args"] == ["delete", B, "www.example.test", "false"]
        ]
        assert len(delete) == 1
        assert delete[0]["env"] == {
            "GOAVAIL_ACTION": "delete",
            "GOAVAIL_TARGET": B,
            "GOAVAIL_NAME": "www.example.test",
            "GOAVAIL_RECORD_TYPE": "A",
            "GOAVAIL_DRY_RUN": "false",
            "GOAVAIL_REASON": f"target {B} down",
            "GOAVAIL_OUTCOME": "applied",
            "GOAVAIL_PROVIDER": "zonefile",
            "GOAVAIL_NODE": "agent-e2e",
            "has_token": False,
        }

        # a dead host (no ping, no HTTPS) goes too; and B's application recovers
        nft.blackhole(C)
        server.set(B, Behaviour())
        settle(zone, {A, B}, proc)
        nft.clear()
        settle(zone, {A, B, C}, proc)
        # The zone file shows a change before its audit record is written: stop only
        # after all 7 records (3 creates, delete B, delete C, create B, create C).
        audit_file = tmp_path / "audit.jsonl"
        wait_until(lambda: len(audit_file.read_text().splitlines()) >= 7, message=proc.tail)
        assert proc.stop() == 0

    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    changes = [(r["action"], r["address"]) for r in audit]
    assert sorted(changes[:3]) == [("create", A), ("create", B), ("create", C)]
    assert changes[3] == ("delete", B)
    assert sorted(changes[4:]) == [("create", B), ("create", C), ("delete", C)]
    hooked = [(e["args"][0], e["args"][1]) for e in entries(log)]
    assert sorted(hooked) == sorted(changes)  # one hook run per change made


def test_a_hanging_hook_does_not_delay_the_next_dns_change(tmp_path: Path, nft: Nft) -> None:
    zone, hooks = tmp_path / "example.test.zone", tmp_path / "hooks.d"
    started, pids = tmp_path / "started", tmp_path / "pids"
    hooks.mkdir()
    # every event's hook hangs far longer than the test waits for DNS
    write_hook(hooks, "10-hangs", f'echo "$1 $2" >> {started}\necho $$ >> {pids}\nsleep 300\n')
    top = 'hooks_dir = "hooks.d"\nhook_timeout = "60s"\n'
    text = zonefile_toml([A, B, C], Path(zone.name), top=top)
    with GoavailProcess(tmp_path, text, args=LIVE) as proc:
        settle(zone, {A, B, C}, proc)  # three creates: the first one's hook now hangs
        wait_until(lambda: started.exists(), message=proc.tail)
        nft.blackhole(A)
        settle(zone, {B, C}, proc)
        nft.blackhole(B)
        settle(zone, {C}, proc)  # well within the hook's 60 s: DNS never waited for it
        # the hook of the first create is still hanging; no other event got its turn
        hold(lambda: len(started.read_text().splitlines()) == 1, 0.5)
        first_hook = int(pids.read_text().split()[0])
        assert os.path.exists(f"/proc/{first_hook}")
        assert proc.stop() == 0  # the stop deadline kills the hanging hook
    proc.wait_for(r"hooks: \d+ event\(s\) not handled at stop")
    wait_until(lambda: not _alive(first_hook), message="the hanging hook survived goavail")


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_checks_and_hooks_reload(tmp_path: Path, nft: Nft) -> None:
    """SIGHUP: a check added by a reload takes effect, a broken reload keeps the old one."""
    zone, script = tmp_path / "example.test.zone", tmp_path / "check.sh"
    flag = tmp_path / "maintenance"
    script.write_text(f'#!/bin/sh\n[ ! -e "{flag}.$1" ]\n')
    script.chmod(0o755)
    plain = zonefile_toml([A, B], Path(zone.name))
    with GoavailProcess(tmp_path, plain, args=LIVE) as proc:
        settle(zone, {A, B}, proc)
        (tmp_path / f"maintenance.{A}").touch()  # not checked yet: nothing happens
        checks = f'[[checks]]\nid = "maint"\ntype = "script"\ncommand = ["{script}"]\n'
        mark = proc.mark()
        proc.write_config(zonefile_toml([A, B], Path(zone.name), top=checks))
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"configuration reloaded: .*checks now maint", since=mark)
        settle(zone, {B}, proc)
        proc.wait_for(rf"check maint: target {A} unknown -> down", since=mark)

        # a reload naming a program that does not exist is rejected as a whole
        mark = proc.mark()
        bad = checks.replace(str(script), str(tmp_path / "missing.sh"))
        proc.write_config(zonefile_toml([A, B], Path(zone.name), top=bad))
        proc.signal(signal.SIGHUP)
        proc.wait_for(r"reload rejected", since=mark)
        proc.wait_for(r"checks\[0\]\.command\[0\]: .*missing\.sh' does not exist", since=mark)
        (tmp_path / f"maintenance.{A}").unlink()  # the old check still runs
        settle(zone, {A, B}, proc)
        assert proc.stop() == 0


def test_validate_and_plan_with_checks(tmp_path: Path) -> None:
    down, up = "127.21.1.2", "127.21.1.3"
    script = write_hook(
        tmp_path, "db.sh", f'[ "$1" != "{down}" ] || {{ echo "lagging"; exit 1; }}\n'
    )
    checks = f"""
[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "db"
type = "script"
command = ["{script}"]
fall = 1
rise = 1
"""
    config = tmp_path / "goavail.toml"
    config.write_text(zonefile_toml([down, up], Path("example.test.zone"), top=checks))
    result = run_goavail("validate", "-f", str(config), "-p", "zonefile")
    assert result.returncode == 0, result.stderr
    assert "OK — 2 target(s), names www.example.test, provider zonefile, checks ping, db" in (
        result.stdout
    )

    result = run_goavail("plan", "-f", str(config), "-p", "zonefile", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    targets = {t["address"]: (t["state"], t["last_error"]) for t in plan["targets"]}
    assert targets == {down: ("down", "db: exit status 1: lagging"), up: ("up", None)}
    assert [(c["action"], c["address"]) for c in plan["changes"]] == [("create", up)]
    assert not (tmp_path / "example.test.zone").exists()  # plan writes nothing

    bad = tmp_path / "bad.toml"
    bad.write_text(
        zonefile_toml([up], Path("z.zone"), top='[[checks]]\nid = "x"\ntype = "http"\npath = "x"\n')
    )
    result = run_goavail("validate", "-f", str(bad), "-p", "zonefile")
    assert result.returncode == 2
    assert "checks[0].path: 'x' must start with '/'" in result.stderr
    assert "Traceback" not in result.stderr
