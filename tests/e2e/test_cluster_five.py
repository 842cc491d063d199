"""Cluster mode end to end at five agents: real ``goavail monitor`` processes, each with
its own serf child, in five network namespaces on one bridge (see
:mod:`tests.e2e.cluster_net`, :mod:`tests.e2e.cluster_agents`).

``min_peers_agree = 2``: a change needs an agent and two agreeing peers, three of
five. That is the one setting for five agents under which a 2|3 partition leaves
exactly one side able to write: with 1, the two agents of the minority agree on
their own; with 3, the three of the majority cannot.

One cluster serves the whole module (starting five agents is the slow part);
every test leaves it as it found it: all five running and joined, both targets
up and in DNS, no firewall rule. A test that fails has the cluster restarted for
the next one. Timings: probes every 0.5 s (down or up after 2), notices every
1 s, writer_grace 2 s, Serf's ``local`` profile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.cfstub.server import CloudflareStub
from tests.e2e.cluster_agents import (
    FAIL_WAIT,
    GRACE_PAST,
    LISTEN,
    WAIT,
    WWW,
    ZONE,
    Cluster,
    Spec,
    applied,
    decided,
    successful,
)
from tests.e2e.cluster_net import (
    ADDRESSES,
    GATEWAY,
    TARGETS,
    ApiGate,
    Topology,
    node_names,
)
from tests.e2e.conftest import PHASE_REPORTS
from tests.e2e.harness import wait_until, write_requests

pytestmark = pytest.mark.e2e

T1, T2 = TARGETS
SPEC = Spec(
    nodes=node_names(5),
    min_peers_agree=2,
    timing='interval = "500ms"\ntimeout = "400ms"\nfailure_threshold = 2\nrise_threshold = 2\n',
    announce_interval="1s",
    writer_grace="2s",
)
NODES = SPEC.nodes
SHORT_HOLD = 2.0
"""Seconds a "nothing changes" condition must hold here (4 probe intervals, 2 notices)."""
SYNC_PORT = 7947
"""Every agent's sync port (members_port + 1, the default)."""
RECORDS = "/zones/{zone_id}/dns_records"
_HEALTH_POLL = """
import json, sys, time, urllib.error, urllib.request
url, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
last = None
while time.monotonic() < until:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    except OSError as error:
        status, text = 0, json.dumps({"probes": [], "error": str(error)})
    serf = [p for p in json.loads(text)["probes"] if p["name"] == "serf"]
    seen = (status, serf[0]["healthy"], serf[0].get("error")) if serf else (status, None, None)
    if seen != last:
        print(json.dumps(seen), flush=True)
        last = seen
    time.sleep(0.1)
"""
"""Run inside an agent's namespace: polls ``/_health`` every 0.1 s for argv[2] seconds and
prints ``[status, serf probe healthy, serf probe error]`` each time it changes."""
_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as error:
    print(type(error).__name__)
else:
    print("connected")
"""
"""Run inside an agent's namespace: one TCP connect, prints ``connected`` or the error."""


def deletes(cf: CloudflareStub) -> list[str]:
    """Every DELETE of a DNS record the stand-in received: ``<client> <status>``."""
    return [f"{r.remote} {r.status}" for r in cf.requests if r.method == "DELETE"]


def creates(cf: CloudflareStub) -> list[str]:
    """Every record create (POST) the stand-in received: ``<client> <content> <status>``."""
    return [
        f"{r.remote} {(r.body or {}).get('content')} {r.status}"
        for r in cf.requests
        if r.method == "POST" and r.route == RECORDS
    ]


def serf_probe(cluster: Cluster, node: str) -> tuple[int, str | None]:
    """``node``'s ``/_health`` status and its serf probe's comment (error when unhealthy)."""
    status, text = cluster.api(node, "GET", "/_health")
    serf = next(p for p in json.loads(text)["probes"] if p["name"] == "serf")
    return status, serf["error"] or serf["comment"]


def assert_restored_once(cf: CloudflareStub) -> None:
    """T1 was created (one success; a second agent's create racing it is answered 81058,
    "already exists", which goavail counts as done) and never deleted after that."""
    made = creates(cf)
    assert made and made[0].endswith(" 200"), made
    assert all(c.endswith(" 400") for c in made[1:]), made
    requests = cf.requests
    first = next(i for i, r in enumerate(requests) if r.method == "POST" and r.route == RECORDS)
    assert not [r for r in requests[first:] if r.method == "DELETE"], made


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    """The bridge, the targets and five agent namespaces, for the whole module."""
    with Topology(NODES) as topology:
        yield topology


@pytest.fixture(scope="module")
def cf(net: Topology) -> Iterator[CloudflareStub]:
    """The Cloudflare stand-in, listening on the bridge address."""
    with CloudflareStub(host=GATEWAY) as server:
        yield server


@pytest.fixture(scope="module")
def gate(cf: CloudflareStub) -> Iterator[ApiGate]:
    """Holds chosen agents' requests to the stand-in (nftables in the session namespace)."""
    with ApiGate(cf.port) as held:
        yield held


@pytest.fixture(scope="module")
def five(
    net: Topology, cf: CloudflareStub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The module's cluster (agents started by :func:`cluster` when needed)."""
    group = Cluster(net, cf, tmp_path_factory.mktemp("five"), SPEC)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, five: Cluster, gate: ApiGate) -> Iterator[Cluster]:
    """The five agents, running and joined, both targets up and in www, no firewall rule,
    an empty request log. Restarted from a fresh zone when an agent is missing or the
    previous test failed."""
    gate.release()
    for ns in five.net:
        ns.fw.clear()
    if set(five.procs) != set(NODES) or not all(p.alive for p in five.procs.values()):
        five.close()
        five.cf.reset()
        five.cf.add_zone(ZONE)
        for target in TARGETS:
            five.cf.add_record(ZONE, WWW, "A", target, ttl=120)
        five.start_all(server=True)
    five.wait_dns(set(TARGETS))
    five.cf.clear_faults()
    five.cf.clear_log()
    yield five
    report = request.node.stash.get(PHASE_REPORTS, {}).get("call")
    if report is None or report.failed:
        logs = five.workdir / f"logs-{request.node.name}"
        logs.mkdir(exist_ok=True)
        for node, proc in five.procs.items():
            (logs / f"{node}.log").write_text(proc.output + "\n")
        print(f"every agent's output: {logs}")
        five.close()  # the next test starts from scratch


# -- 1. remove and restore -------------------------------------------------------------------


def test_three_of_five_remove_and_restore_with_one_writer(cluster: Cluster) -> None:
    net = cluster.net
    writes = write_requests(cluster.cf)

    # two of five see T1 down: one agreeing peer is not enough
    net["a"].fw.blackhole(T1)
    net["b"].fw.blackhole(T1)
    cluster.expect("a", rf"no decision yet for {re.escape(T1)}: needs 2 agreeing peer")
    cluster.expect("a", rf"peer b votes {re.escape(T1)} down")
    cluster.expect("b", rf"peer a votes {re.escape(T1)} down")
    cluster.hold_dns(set(TARGETS), SHORT_HOLD, writes=writes)
    for node in NODES:
        assert not cluster[node].matching(rf"decision for {re.escape(T1)}: down"), node

    # a third: one of them writes (a, the lowest agreeing name, at once; b or c after
    # writer_grace when c's vote reaches a later than that); nobody else, once
    net["c"].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect("a", decided(T1, "down", "a", "down", b="down", c="down", d="up", e="up"))
    cluster.hold_dns({T2}, GRACE_PAST)  # a late takeover would show now
    writers = {n: applied(cluster[n], "delete", T1) for n in NODES}
    assert sum(len(lines) for lines in writers.values()) == 1, writers
    (writer,) = (n for n, lines in writers.items() if lines)
    assert writer in ("a", "b", "c")
    assert deletes(cluster.cf) == [f"{ADDRESSES[writer]} 200"], cluster.cf.requests
    for node in ("d", "e"):
        assert not cluster[node].matching(rf"decision for {re.escape(T1)}: down")

    # T1 answers again: restored, and not withdrawn again
    for node in ("a", "b", "c"):
        net[node].fw.heal()
    cluster.wait_dns(set(TARGETS))
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    assert_restored_once(cluster.cf)
    assert successful(cluster.cf, "DELETE") == 1


# -- 2. Serf killed under a running agent ------------------------------------------------------


def test_serf_killed_under_an_agent_is_restarted_and_its_votes_count_again(
    cluster: Cluster,
) -> None:
    """kill -9 of a's serf child (a is the designated writer): goavail restarts it and
    reconnects, /_health says so meanwhile, nothing is written; then a decision that
    needs a's vote is made, so a's votes count again."""
    net = cluster.net
    a = cluster["a"]
    old = cluster.serf_of("a")
    assert old.ppid == a.pid
    url = f"http://{LISTEN}/_health"
    poll = subprocess.Popen(
        [*net["a"].exec_prefix, sys.executable, "-c", _HEALTH_POLL, url, str(WAIT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        writes = write_requests(cluster.cf)
        mark = a.mark()
        os.kill(old.pid, signal.SIGKILL)
        cluster.expect("a", r"Serf RPC connection lost", since=mark)
        cluster.expect("a", rf"serf agent 'a' \(pid {old.pid}\) exited", since=mark)
        cluster.expect("a", r"serf agent 'a' restarted", since=mark)
        new = cluster.serf_of("a")
        assert new.pid != old.pid and new.ppid == a.pid
        wait_until(
            lambda: serf_probe(cluster, "a") == (200, "connected; 4 live peer(s), 2 needed"),
            WAIT,
            message=cluster.tails,
        )
        cluster.hold_dns(set(TARGETS), 0.5, writes=writes)  # and nothing was written
    finally:
        poll.terminate()
        out = poll.communicate(timeout=10)[0]
    seen = [tuple(json.loads(line)) for line in out.splitlines()]
    assert (503, False, "not connected to Serf's RPC") in seen, seen
    assert seen[-1][:2] == (200, True), seen

    # a's vote is needed: d alone with e is one agreeing peer short without it
    marks = cluster.marks()
    for node in ("a", "d", "e"):
        net[node].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect(
        "d",
        decided(T1, "down", "d", "down", a="down", b="up", c="up", e="down"),
        since=marks["d"],
    )
    cluster.hold_dns({T2}, GRACE_PAST)
    (delete,) = deletes(cluster.cf)  # by a, or by d or e after writer_grace
    assert delete in {f"{ADDRESSES[n]} 200" for n in ("a", "d", "e")}, delete
    for node in ("a", "d", "e"):
        net[node].fw.heal()
    cluster.wait_dns(set(TARGETS))
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    assert_restored_once(cluster.cf)


# -- 3. the writer killed in the middle of a failover ----------------------------------------


def test_writer_killed_mid_failover_the_change_lands_once(cluster: Cluster, gate: ApiGate) -> None:
    """a, the designated writer, has decided T1 down but its write has not reached the
    API (its requests are held, as on a slow path) when it is killed with SIGKILL: the
    others take over and T1's record is deleted exactly once, never re-created."""
    net = cluster.net
    a = cluster["a"]
    gate.hold(ADDRESSES["a"])
    marks = cluster.marks()
    # a sees T1 down first (so it agrees, as the lowest name, when the others do), then
    # three more: three remain to agree once a is gone
    net["a"].fw.blackhole(T1)
    for node in ("b", "c", "d"):
        cluster.expect(node, rf"peer a votes {re.escape(T1)} down", since=marks[node])
    for node in ("b", "c", "d"):
        net[node].fw.blackhole(T1)
    cluster.expect("a", rf"decision for {re.escape(T1)}: down", since=marks["a"])
    assert cluster.dns() == set(TARGETS) and not cluster.writes_from("a")
    a.kill()  # SIGKILL: no leave, its held request dies with it
    wait_until(lambda: not net["a"].serf_children(), WAIT, message="a's serf outlives it")
    gate.release()

    cluster.wait_dns({T2})
    cluster.hold_dns({T2}, GRACE_PAST)  # no re-create, no second delete
    assert not cluster.writes_from("a")
    assert len(deletes(cluster.cf)) == 1, deletes(cluster.cf)
    assert successful(cluster.cf, "DELETE") == 1
    assert creates(cluster.cf) == []
    writers = [n for n in ("b", "c", "d", "e") if applied(cluster[n], "delete", T1, marks[n])]
    assert len(writers) == 1, cluster.tails()

    # T1 answers again: b to e restore it once; then a (a new process) rejoins
    for node in ("a", "b", "c", "d"):
        net[node].fw.heal()
    cluster.wait_dns(set(TARGETS))
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    assert_restored_once(cluster.cf)
    marks = cluster.marks()
    cluster.start("a", server=True)
    cluster.wait_ready("a")
    for node in ("b", "c", "d", "e"):
        cluster.expect(node, r"peer a joined", FAIL_WAIT, since=marks[node])


# -- 4. a 2|3 partition -------------------------------------------------------------------------


def test_partition_two_three_minority_never_writes_majority_does(cluster: Cluster) -> None:
    """{a, b} | {c, d, e}: a and b (a is the usual writer) keep one peer each, short of
    min_peers_agree = 2; c, d and e agree among themselves. The partition drops every
    packet between the sides: Serf's and the sync port's alike."""
    net = cluster.net
    minority, majority = ("a", "b"), ("c", "d", "e")
    marks = cluster.marks()
    net.split(minority, majority)
    for node in majority:
        for lost in minority:
            cluster.expect(
                node, rf"peer {lost} gone \(member-failed\)", FAIL_WAIT, since=marks[node]
            )
    for node in minority:
        cluster.expect(node, r"QUORUM UNMET: 1 live peer", FAIL_WAIT, since=marks[node])
    connect = [*net["c"].exec_prefix, sys.executable, "-c", _CONNECT]
    for port in (SYNC_PORT, 7946):
        probe = subprocess.run(
            [*connect, ADDRESSES["a"], str(port), "1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert probe.stdout.strip() != "connected", (
            f"c reaches a's port {port} across the partition"
        )
    gone = cluster.marks()

    # everyone sees T1 down: only the majority decides and writes (c, its lowest name,
    # or d or e after writer_grace)
    for node in NODES:
        net[node].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect("c", decided(T1, "down", "c", "down", d="down", e="down"), since=gone["c"])
    for node in minority:  # at most one agreeing peer (the other), two needed
        cluster.expect(
            node, rf"no decision yet for {re.escape(T1)}: needs 2 agreeing peer", since=gone[node]
        )
    cluster.hold_dns({T2}, GRACE_PAST)
    (delete,) = deletes(cluster.cf)
    assert delete in {f"{ADDRESSES[n]} 200" for n in majority}, delete

    # T1 is back for everyone: the majority restores it; the minority still writes nothing
    for node in NODES:
        net[node].fw.heal()
    cluster.wait_dns(set(TARGETS))
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    assert_restored_once(cluster.cf)
    assert {c.split()[0] for c in creates(cluster.cf)} <= {ADDRESSES[n] for n in majority}
    for node in minority:
        assert cluster.writes_from(node) == [], cluster.writes_from(node)
        assert not cluster[node].matching(r"outcome=applied", since=gone[node])
        assert not cluster[node].matching(rf"decision for {re.escape(T1)}: down", since=gone[node])
    # Serf takes up to its reconnect interval to merge the sides again: the next test
    # gets a fresh cluster rather than waiting for it
    cluster.close()
