"""The container's s6 tree (``s6/services``) under real s6: supervision proven, not assumed.

Each test copies the tree unchanged to a temporary scan directory and runs
``s6-svscan`` on it with the environment a ``docker run -e ...`` would give PID 1
(see :mod:`tests.e2e.s6tree`): goavail keeps a zone file (the zonefile provider,
no cloud account needed) for loopback targets of its own, and outages are
nftables blackholes in the test session's private network namespace.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.deploy import healthcheck_argv
from tests.e2e.harness import (
    CONSOLE_SCRIPT,
    WAIT,
    free_port,
    hold,
    http,
    wait_until,
    zonefile_toml,
)
from tests.e2e.s6tree import (
    CAP_NET_RAW,
    DOCKER_DEFAULT_CAPS,
    S6Tree,
    capabilities,
    nobody_can_run,
    proc_status,
    socket_owners,
    wait_gone,
)
from tests.netns import Nft

pytestmark = pytest.mark.e2e

A, B, C, D = "127.66.0.2", "127.66.0.3", "127.66.0.4", "127.66.0.5"
NOBODY = 65534
ZONE = """\
$ORIGIN example.test.
@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 300
@ 3600 IN NS ns1
ns1 3600 IN A 127.0.0.1
www 60 IN A 127.66.0.2
"""


def www(zone: Path) -> set[str]:
    """The addresses of www's A records in the zone file."""
    found = set()
    for line in zone.read_text().splitlines():
        words = line.split()
        if len(words) == 5 and words[0] == "www" and words[3] == "A":
            found.add(words[4])
    return found


def settle(zone: Path, want: set[str], tree: S6Tree) -> None:
    """Wait until www holds exactly ``want``."""
    wait_until(
        lambda: www(zone) == want,
        message=lambda: f"www has {sorted(www(zone))}, want {sorted(want)}:\n{tree.tail()}",
    )


class Site:
    """A config file and the zone file it keeps, in ``workdir``."""

    def __init__(self, workdir: Path, targets: list[str], top: str = "") -> None:
        self.config = workdir / "goavail.toml"
        self.zone = workdir / "example.test.zone"
        self.zone.write_text(ZONE)
        self.write(targets, top)

    def write(self, targets: list[str], top: str = "", listen: str | None = None) -> None:
        """(Re)write the config file atomically, for ``targets``; the HTTP server listens
        on ``listen``, or is off (None)."""
        tmp = self.config.with_name("goavail.toml.tmp")
        tmp.write_text(zonefile_toml(targets, self.zone, top=top, listen=listen))
        os.replace(tmp, self.config)

    def break_config(self) -> None:
        """Replace the config file by one with two invalid values."""
        tmp = self.config.with_name("goavail.toml.tmp")
        text = zonefile_toml([A, "not-an-address"], self.zone)
        tmp.write_text(text.replace("failure_threshold = 2", "failure_threshold = 0"))
        os.replace(tmp, self.config)

    def env(self, **more: str) -> dict[str, str]:
        """The container environment for this site: zonefile provider, DNS writes on."""
        return {
            "GOAVAIL_CONFIG": str(self.config),
            "GOAVAIL_PROVIDER": "zonefile",
            "GOAVAIL_NO_DRY_RUN": "1",
            **more,
        }


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Targets A, B, C; the zone starts with www at A only."""
    return Site(tmp_path, [A, B, C])


def test_goavail_runs_logged_and_is_restarted_after_kill_9(
    tmp_path: Path, site: Site, nft: Nft
) -> None:
    logdir = tmp_path / "logs"
    with S6Tree(tmp_path, site.env(GOAVAIL_LOG_DIR=str(logdir))) as tree:
        pid = tree.wait_up()
        settle(site.zone, {A, B, C}, tree)
        tree.wait_for(r"goavail\.agent: goavail .* starting: 3 targets, .*provider zonefile, ")
        assert not tree.matching(r"DRY-RUN")

        # goavail's stdout and stderr are the pipe s6-svscan keeps to its s6-log logger,
        # which copies every line to stdout (the container log) and to GOAVAIL_LOG_DIR
        logger = tree.wait_up("goavail/log")
        pipe = os.readlink(f"/proc/{logger}/fd/0")
        assert pipe.startswith("pipe:")
        assert os.readlink(f"/proc/{pid}/fd/1") == pipe == os.readlink(f"/proc/{pid}/fd/2")
        assert Path(f"/proc/{logger}/exe").resolve().name == "s6-log"
        wait_until(lambda: "starting: 3 targets" in (logdir / "current").read_text())
        # the Serf service is off by default (goavail starts its own when it needs one)
        tree.wait_for(r"serf/run: not enabled")
        assert tree.wait_down("serf")["wantedup"] == "false"

        nft.blackhole(B)
        settle(site.zone, {A, C}, tree)

        since = tree.mark()
        os.kill(pid, 9)
        tree.wait_for(r"goavail/finish: goavail was killed by signal 9", since=since)
        restarted = tree.wait_up(other_than=pid, timeout=10)  # "within a few seconds"
        tree.wait_for(r"goavail .* starting: 3 targets", since=since)
        # the new process converges again: B is still down (kept out), then comes back
        tree.wait_for(rf"decision for {B}: down", since=since)
        assert www(site.zone) == {A, C}
        nft.clear()
        settle(site.zone, {A, B, C}, tree)
        assert tree.pid() == restarted

        assert tree.shutdown() == 0
    assert "decision for 127.66.0.3: down" in (logdir / "current").read_text()


def test_dry_run_is_the_default(tmp_path: Path, site: Site) -> None:
    env = site.env()
    del env["GOAVAIL_NO_DRY_RUN"]
    before = site.zone.read_text()
    with S6Tree(tmp_path, env) as tree:
        tree.wait_for(r"starting: .*\(DRY-RUN: no DNS change will be made\)")
        tree.wait_for(rf"DNS create www\.example\.test A {B} .*dry_run=true outcome=planned")
        assert tree.shutdown() == 0
    assert site.zone.read_text() == before


def test_reload_through_s6_and_a_rejected_reload(tmp_path: Path, site: Site, nft: Nft) -> None:
    with S6Tree(tmp_path, site.env()) as tree:
        pid = tree.wait_up()
        settle(site.zone, {A, B, C}, tree)

        site.write([A, B, C, D])
        since = tree.mark()
        tree.svc("-h")  # SIGHUP
        tree.wait_for(r"SIGHUP: reloading", since=since)
        tree.wait_for(r"configuration reloaded: 4 targets \(\+1 -0\)", since=since)
        settle(site.zone, {A, B, C, D}, tree)

        site.break_config()
        since = tree.mark()
        tree.svc("-h")
        tree.wait_for(r"reload rejected, still running the previous configuration", since=since)
        tree.wait_for(r"not-an-address", since=since)
        # still the same process, still running the previous configuration
        assert tree.pid() == pid
        nft.blackhole(D)
        settle(site.zone, {A, B, C}, tree)
        assert tree.pid() == pid
        assert tree.shutdown() == 0


def test_svc_down_stops_goavail_gracefully_and_up_restarts_it(tmp_path: Path, site: Site) -> None:
    with S6Tree(tmp_path, site.env()) as tree:
        pid = tree.wait_up()
        settle(site.zone, {A, B, C}, tree)
        since = tree.mark()
        tree.svc("-wd", "-T", str(int(WAIT * 1000)), "-d")  # SIGTERM + SIGCONT, wait until down
        state = tree.status()
        assert (state["up"], state["exitcode"], state["wantedup"]) == ("false", "0", "false")
        tree.wait_for(r"goavail\.agent: stopped", since=since)
        assert not tree.matching(r"goavail/finish", since=since)  # exit 0: nothing to report
        wait_gone([pid])

        tree.svc("-u")
        tree.wait_up(other_than=pid)
        tree.wait_for(r"starting: 3 targets", since=since)
        assert tree.shutdown() == 0


@pytest.mark.parametrize("how", ["svscanctl", "sigterm"])
def test_svscan_shutdown_stops_everything_and_runs_finish(
    tmp_path: Path, site: Site, how: str
) -> None:
    with S6Tree(tmp_path, site.env()) as tree:
        tree.wait_up()
        tree.wait_up("goavail/log")
        settle(site.zone, {A, B, C}, tree)
        since = tree.mark()
        assert tree.shutdown(how) == 0
        lines = tree.lines[since:]
        # goavail stopped on its own (exit 0), its logger flushed it, finish said so last
        assert any("goavail.agent: stopped" in line for line in lines), tree.tail()
        assert lines[-1] == "s6-svscan: supervision tree stopped; goavail's last exit: exit code 0"
        assert tree.leftovers() == []


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("config", r"- Zonefile\.ip_addresses\[1\]: 'not-an-address' is not a valid"),
        ("env", r"goavail/run: GOAVAIL_NO_DRY_RUN must be 1 or 0, not 'maybe'; not starting"),
    ],
)
def test_invalid_configuration_is_not_restarted_in_a_loop(
    tmp_path: Path, site: Site, breakage: str, message: str
) -> None:
    env = site.env()
    if breakage == "config":
        site.break_config()
    else:
        env["GOAVAIL_NO_DRY_RUN"] = "maybe"
    with S6Tree(tmp_path, env) as tree:
        tree.wait_for(message)
        tree.wait_for(r"goavail/finish: goavail exited 2 \(invalid configuration\): not restarting")
        tree.wait_down()

        # s6-supervise reports the service down while ./finish still runs; it turns
        # wantedup off once finish has exited 125, so wait for that, not for "down"
        def kept_down() -> dict[str, str]:
            state = tree.status()
            return state if state.get("wantedup") == "false" else {}

        state = wait_until(
            kept_down, message=lambda: f"goavail still wanted up: {tree.status()}\n{tree.tail()}"
        )
        assert (state["up"], state["exitcode"], state["wantedup"]) == ("false", "2", "false")
        # s6 keeps it down: no second attempt (one would come within a second)
        hold(lambda: len(tree.matching(r"goavail/finish: goavail exited 2")) == 1, 2.0)
        assert tree.pid() is None
        if breakage == "config":  # fixed, then brought up by hand, it runs
            site.write([A, B, C])
            tree.svc("-u")
            settle(site.zone, {A, B, C}, tree)
        assert tree.shutdown() == 0
        assert tree.lines[-1].endswith(
            "goavail's last exit: exit code " + ("0" if breakage == "config" else "2")
        )


def test_serf_as_its_own_service(tmp_path: Path, site: Site, nft: Nft) -> None:
    key = secrets.token_urlsafe(16)
    rpc = "127.66.1.1:7373"
    serf = {
        "SERF_ENABLE": "1",
        "SERF_NODE": "s6-node",
        "SERF_BIND": "127.66.1.1:7946",
        "SERF_RPC_ADDR": rpc,
        "SERF_RPC_AUTH": key,
        "SERF_PROFILE": "local",
    }
    members = (
        'node_name = "s6-node"\n'
        "[Members]\n"
        "min_peers_agree = 0\n"
        'crypto_key = "0123456789abcdef"\n'
        f'serf_rpc_addr = "{rpc}"\n'
    )
    site.write([A, B, C], top=members)
    with S6Tree(tmp_path, site.env(**serf)) as tree:
        agent = tree.wait_up("serf")
        goavail = tree.wait_up()
        tree.wait_for(r"cluster mode: node s6-node, .*serf 127\.66\.1\.1:7373")
        settle(site.zone, {A, B, C}, tree)
        nft.blackhole(C)
        settle(site.zone, {A, B}, tree)
        assert not tree.matching(r"is not a member of the Serf cluster|cannot reach Serf RPC")

        # one Serf agent: the service's (goavail started none), its key not on its command line
        serfs = [p for p in tree.leftovers() if Path(f"/proc/{p}/exe").resolve().name == "serf"]
        assert serfs == [agent], tree.tail()
        assert key not in Path(f"/proc/{agent}/cmdline").read_text()
        assert key not in "\n".join(tree.lines)
        listed = subprocess.run(
            ["serf", "members", f"-rpc-addr={rpc}", f"-rpc-auth={key}"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
        assert listed.split()[:3] == ["s6-node", "127.66.1.1:7946", "alive"]
        assert goavail == tree.pid()

        since = tree.mark()
        assert tree.shutdown() == 0
        tree.wait_for(r"Gracefully shutting down agent", since=since)  # it left the cluster


# -- privileges --------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temporary directory another user can enter (pytest's ``tmp_path`` is private)."""
    with tempfile.TemporaryDirectory(prefix="goavail-s6-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def test_goavail_runs_as_an_unprivileged_user_with_net_raw_only(shared_dir: Path, nft: Nft) -> None:
    """The container's set-up: root s6-svscan with Docker's default capabilities."""
    if not nobody_can_run(CONSOLE_SCRIPT, from_shell=False):
        pytest.skip(f"user nobody cannot run {CONSOLE_SCRIPT} on this machine")
    data = shared_dir / "data"
    data.mkdir()
    site = Site(data, [A, B, C])
    os.chown(data, NOBODY, NOBODY)  # the zone file is rewritten with a rename
    prefix = ["setpriv", f"--bounding-set=-all,+{DOCKER_DEFAULT_CAPS.replace(',', ',+')}", "--"]
    with S6Tree(shared_dir, site.env(GOAVAIL_USER="nobody"), prefix=prefix) as tree:
        pid = tree.wait_up()
        settle(site.zone, {A, B, C}, tree)
        status = proc_status(pid)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert status["Gid"].split() == [str(NOBODY)] * 4
        assert capabilities(status["CapEff"]) == {CAP_NET_RAW}
        assert capabilities(status["CapAmb"]) == {CAP_NET_RAW}
        assert status["NoNewPrivs"] == "1"
        assert NOBODY in socket_owners("raw")  # raw ICMP sockets, opened as nobody
        logger = proc_status(tree.wait_up("goavail/log"))
        assert logger["Uid"].split()[0] == str(NOBODY)
        assert capabilities(logger["CapEff"]) == set()

        nft.blackhole(A)
        settle(site.zone, {B, C}, tree)
        tree.svc("-wd", "-T", str(int(WAIT * 1000)), "-d")
        assert tree.status()["exitcode"] == "0"
        assert tree.shutdown() == 0


def test_smallest_capability_set_documented_for_docker_run(shared_dir: Path) -> None:
    """``--cap-drop ALL --cap-add NET_RAW --cap-add SETUID --cap-add SETGID --cap-add KILL``.

    goavail is replaced by a stand-in that records what it was given, because the
    project's interpreter may live where only root can read (the container's is in
    /usr/local); the run scripts are what is under test here.
    """
    stand_in = shared_dir / "goavail"
    stand_in.write_text("#!/bin/sh\nexec sleep 300\n")
    stand_in.chmod(0o755)
    env = {"GOAVAIL_BIN": str(stand_in), "GOAVAIL_USER": "nobody", "SERF_ENABLE": "1",
           "SERF_BIND": "127.66.2.1:7946", "SERF_RPC_ADDR": "127.66.2.1:7373",
           "SERF_PROFILE": "local"}  # fmt: skip
    prefix = ["setpriv", "--bounding-set=-all,+net_raw,+setuid,+setgid,+kill", "--"]
    with S6Tree(shared_dir, env, prefix=prefix) as tree:
        pid = tree.wait_up()
        wait_until(lambda: Path(f"/proc/{pid}/exe").resolve().name == "sleep", message=tree.tail)
        status = proc_status(pid)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert capabilities(status["CapEff"]) == {CAP_NET_RAW}
        assert status["NoNewPrivs"] == "1"
        serf = tree.wait_up("serf")
        assert proc_status(serf)["Uid"].split() == [str(NOBODY)] * 4
        assert capabilities(proc_status(serf)["CapEff"]) == set()
        tree.wait_for(r"Serf agent running")
        # s6 (root, with KILL) can still stop processes that now belong to another user
        tree.svc("-wd", "-T", str(int(WAIT * 1000)), "-d")
        tree.svc("-wd", "-T", str(int(WAIT * 1000)), "-d", service="serf")
        assert tree.shutdown() == 0
        assert tree.leftovers() == []


def test_whole_tree_as_an_unprivileged_user(shared_dir: Path, nft: Nft) -> None:
    """``docker run --user 10001``: no root at all; unprivileged ICMP sockets."""
    if not nobody_can_run(CONSOLE_SCRIPT, from_shell=True):
        pytest.skip(
            f"user nobody cannot run {CONSOLE_SCRIPT} from a shell on this machine "
            f"(its interpreter {Path(sys.executable).resolve()} is not reachable for other users)"
        )
    data = shared_dir / "data"
    data.mkdir()
    site = Site(data, [A, B, C])
    unprivileged = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    env = site.env(GOAVAIL_USER="ignored-when-not-root")
    tree = S6Tree(shared_dir, env, prefix=unprivileged)
    for path in [data, site.zone, site.config, *tree.scandir.rglob("*"), tree.scandir]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    ping_range = Path("/proc/sys/net/ipv4/ping_group_range")
    old = ping_range.read_text()
    ping_range.write_text(f"{NOBODY} {NOBODY}")  # the private namespace's own setting
    try:
        with tree:
            pid = tree.wait_up()
            settle(site.zone, {A, B, C}, tree)
            assert proc_status(pid)["Uid"].split() == [str(NOBODY)] * 4
            assert NOBODY in socket_owners("icmp")  # ping sockets, no raw socket
            assert NOBODY not in socket_owners("raw")
            nft.blackhole(C)
            settle(site.zone, {A, B}, tree)
            assert tree.shutdown() == 0
            assert tree.lines[-1].endswith("goavail's last exit: exit code 0")
    finally:
        ping_range.write_text(old)


# -- /_health and the image's HEALTHCHECK ------------------------------------------------------


def health(url: str) -> tuple[int, dict[str, Any]]:
    """GET ``url``: (status, JSON body), or (0, {}) when nothing answers."""
    try:
        reply = http("GET", url, timeout=3.0)
    except (aiohttp.ClientError, TimeoutError):
        return 0, {}
    return reply.status, reply.json()


def test_goavail_serves_health_and_the_dockerfile_healthcheck_agrees(
    tmp_path: Path, site: Site
) -> None:
    """Under s6, goavail serves ``/_health``, and the image's HEALTHCHECK command reads it:
    healthy once running, unhealthy after a rejected reload (goavail runs on, but not the
    file on disk), healthy again after a good one, unhealthy when goavail is down."""
    listen = f"127.66.3.1:{free_port('127.66.3.1')}"
    url = f"http://{listen}/_health"
    site.write([A, B, C], listen=listen)
    healthcheck = healthcheck_argv()
    check_env = {**os.environ, "GOAVAIL_HEALTH_URL": url}

    def healthcheck_rc() -> int:
        done = subprocess.run(healthcheck, env=check_env, capture_output=True, timeout=10)
        return done.returncode

    def answer(status: int) -> dict[str, Any]:
        got, body = health(url)
        return body if got == status else {}

    with S6Tree(tmp_path, site.env()) as tree:
        pid = tree.wait_up()
        settle(site.zone, {A, B, C}, tree)
        body = wait_until(lambda: answer(200), message=tree.tail)  # 503 until a full round
        assert body["healthy"] is True
        assert {p["name"] for p in body["probes"]} >= {"config", "probes", "dns"}
        assert healthcheck_rc() == 0

        site.break_config()
        tree.svc("-h")
        body = wait_until(lambda: answer(503), message=tree.tail)
        assert [p["name"] for p in body["probes"] if not p["healthy"]] == ["config"]
        assert healthcheck_rc() == 1  # Docker: 1 = unhealthy
        assert tree.pid() == pid

        site.write([A, B, C], listen=listen)
        tree.svc("-h")
        wait_until(lambda: answer(200), message=tree.tail)
        assert healthcheck_rc() == 0

        tree.svc("-wd", "-T", str(int(WAIT * 1000)), "-d")
        assert health(url) == (0, {})
        assert healthcheck_rc() == 1
        assert tree.shutdown() == 0
