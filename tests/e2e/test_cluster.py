"""Cluster mode end to end: three real ``goavail monitor`` agents, each with its own serf.

Every agent runs in its own network namespace on a bridge inside the private
namespace of the test session (see :mod:`tests.e2e.cluster_net`); the
Cloudflare stand-in listens on the bridge, the targets 198.51.100.1 and .2 are
addresses of the private namespace. What one agent sees is changed with
nftables rules in its own namespace only (``blackhole``); a partition drops the
traffic between agents silently, on arrival, as a cut link would. One topology
serves the whole module; every test starts fresh agents on a fresh zone and
stops them (and kills any serf left behind) after.

All agents use ``min_peers_agree = 1``: a change needs this agent and one more.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from goavail.cluster.sync import Notice, Sealer, sync_event_name
from tests.cfstub.server import CloudflareStub
from tests.e2e.cluster_agents import (
    FAIL_WAIT,
    GRACE_PAST,
    HOLD,
    KEY,
    WAIT,
    WWW,
    ZONE,
    Cluster,
    applied,
    decided,
    successful,
    undecided,
)
from tests.e2e.cluster_net import (
    ADDRESSES,
    GATEWAY,
    KEY_ENV,
    NODES,
    SERF_PORT,
    TARGETS,
    Topology,
    helper_argv,
)
from tests.e2e.harness import REPO, metric, wait_until, write_requests

pytestmark = pytest.mark.e2e

T1, T2 = TARGETS
WRONG_KEY = "not-the-cluster-key-0123456789ab"
REPLAY = r"gossip message rejected \(replay\)"
REPLAY_WAIT = 8.0
"""Seconds one replayed event is given to be rejected by every receiver."""


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    """The bridge, the targets and the three agent namespaces, for the whole module."""
    with Topology() as topology:
        yield topology


@pytest.fixture(scope="module")
def cf(net: Topology) -> Iterator[CloudflareStub]:
    """The Cloudflare stand-in, listening on the bridge address."""
    with CloudflareStub(host=GATEWAY) as server:
        yield server


@pytest.fixture
def cluster(net: Topology, cf: CloudflareStub, tmp_path: Path) -> Iterator[Cluster]:
    """A fresh zone holding both targets at www, clean firewalls, and no agent yet."""
    cf.reset()
    cf.add_zone(ZONE)
    for target in TARGETS:
        cf.add_record(ZONE, WWW, "A", target, ttl=120)
    for ns in net:
        ns.fw.clear()
    group = Cluster(net, cf, tmp_path)
    try:
        yield group
    finally:
        group.close()


# -- 1. one vantage point alone --------------------------------------------------------------


def test_one_agent_seeing_a_target_down_changes_nothing(cluster: Cluster) -> None:
    cluster.start_all()
    writes = write_requests(cluster.cf)

    cluster.net["a"].fw.blackhole(T1)
    cluster.expect("a", rf"target {re.escape(T1)} up -> down", WAIT)
    cluster.expect("a", undecided(T1, "a", "down", b="up", c="up"), WAIT)
    cluster.expect("b", rf"peer a votes {re.escape(T1)} down", WAIT)
    cluster.expect("c", rf"peer a votes {re.escape(T1)} down", WAIT)
    cluster.hold_dns(set(TARGETS), HOLD, writes=writes)
    for node in NODES:
        assert not cluster[node].matching(r"outcome=applied"), cluster.tails()
        assert not cluster[node].matching(rf"decision for {re.escape(T1)}: down")


# -- 2. two of three agree ---------------------------------------------------------------------


def test_two_of_three_remove_and_restore_with_one_writer(cluster: Cluster) -> None:
    cluster.start_all()
    c = cluster["c"]
    cluster.cf.clear_log()

    cluster.net["a"].fw.blackhole(T1)
    cluster.net["b"].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect("a", decided(T1, "down", "a", "down", b="down", c="up"), WAIT)
    cluster.expect("b", decided(T1, "down", "b", "down", a="down", c="up"), WAIT)
    cluster.hold_dns({T2}, GRACE_PAST)  # a late takeover would show now
    writers = {n: applied(cluster[n], "delete", T1) for n in NODES}
    assert sum(len(lines) for lines in writers.values()) == 1, writers
    assert writers["a"], "a, the lowest agreeing node name, is the designated writer"
    assert successful(cluster.cf, "DELETE") == 1
    assert not c.matching(rf"decision for {re.escape(T1)}: down"), c.tail()

    marks = {n: cluster[n].mark() for n in NODES}
    cluster.net["a"].fw.clear()
    cluster.net["b"].fw.clear()
    cluster.wait_dns(set(TARGETS))
    cluster.expect("a", rf"decision for {re.escape(T1)}: up", WAIT, since=marks["a"])
    cluster.expect("b", rf"decision for {re.escape(T1)}: up", WAIT, since=marks["b"])
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    creators = {n: applied(cluster[n], "create", T1, marks[n]) for n in NODES}
    assert sum(len(lines) for lines in creators.values()) == 1, creators
    assert successful(cluster.cf, "POST") == 1


# -- 3. a partitioned agent -------------------------------------------------------------------


def test_partitioned_agent_never_changes_dns_alone(cluster: Cluster) -> None:
    cluster.start_all()
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    net = cluster.net
    marks = {n: cluster[n].mark() for n in NODES}

    net.partition("a")
    for node in ("b", "c"):
        cluster.expect(
            node,
            r"peer a gone \(member-failed\): its votes are dropped",
            FAIL_WAIT,
            since=marks[node],
        )
    cluster.expect("a", r"QUORUM UNMET: 0 live peer", FAIL_WAIT, since=marks["a"])
    gone = {n: cluster[n].mark() for n in NODES}

    # a alone sees T1 down: nothing happens
    writes = write_requests(cluster.cf)
    net["a"].fw.blackhole(T1)
    cluster.expect("a", undecided(T1, "a", "down"), since=marks["a"])
    cluster.hold_dns(set(TARGETS), HOLD, writes=writes)

    # everyone sees T1 down: b and c decide together without a; a does nothing
    net["b"].fw.blackhole(T1)
    net["c"].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect("b", decided(T1, "down", "b", "down", c="down"), since=marks["b"])
    cluster.expect("c", decided(T1, "down", "c", "down", b="down"), since=marks["c"])
    cluster.hold_dns({T2}, GRACE_PAST)

    # a alone sees T1 up again (its old decision is "up"): it must not restore it
    net["a"].fw.heal()
    cluster.expect("a", rf"target {re.escape(T1)} down -> up", since=marks["a"])
    cluster.hold_dns({T2}, HOLD)

    # everyone sees T1 up: b and c restore it; a, still cut off, keeps out
    net["b"].fw.heal()
    net["c"].fw.heal()
    cluster.wait_dns(set(TARGETS))
    cluster.hold_dns(set(TARGETS), GRACE_PAST)
    assert not a.matching(r"outcome=applied"), a.tail()
    assert not a.matching(r"decision for .*: down"), a.tail()
    for node in ("b", "c"):
        assert not cluster[node].matching(r"peer a votes", since=gone[node]), cluster.tails()
    assert len(applied(b, "delete", T1) + applied(c, "delete", T1)) == 1, cluster.tails()
    assert len(applied(b, "create", T1) + applied(c, "create", T1)) == 1, cluster.tails()


# -- 4. an agent killed mid-run ---------------------------------------------------------------


def test_killed_agent_votes_are_dropped_and_the_rest_decide(cluster: Cluster) -> None:
    cluster.start_all()
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    net = cluster.net

    net["a"].fw.blackhole(T1)
    cluster.expect("b", rf"peer a votes {re.escape(T1)} down", WAIT)
    cluster.expect("c", rf"peer a votes {re.escape(T1)} down", WAIT)
    serf_a = cluster.serf_of("a")
    assert serf_a.ppid == a.pid

    marks = {n: cluster[n].mark() for n in NODES}
    a.kill()  # SIGKILL: no leave, no clean-up
    # goavail's serf child must not outlive it (else "a" would stay alive in the cluster)
    wait_until(
        lambda: not net["a"].serf_children(),
        WAIT,
        message=lambda: f"serf of a outlives goavail: {net['a'].serf_children()}",
    )
    for node in ("b", "c"):
        cluster.expect(
            node,
            r"peer a gone \(member-failed\): its votes are dropped",
            FAIL_WAIT,
            since=marks[node],
        )
    gone = {n: cluster[n].mark() for n in NODES}

    # b alone sees T1 down; a's last vote (down) must not count any more
    writes = write_requests(cluster.cf)
    net["b"].fw.blackhole(T1)
    cluster.expect("b", undecided(T1, "b", "down", c="up"), WAIT, since=gone["b"])
    cluster.hold_dns(set(TARGETS), HOLD, writes=writes)

    # b and c agree: removed without a
    net["c"].fw.blackhole(T1)
    cluster.wait_dns({T2})
    cluster.expect("b", decided(T1, "down", "b", "down", c="down"), WAIT, since=gone["b"])
    assert not b.matching(r"\(votes: .*\ba=", since=gone["b"]), b.tail()
    cluster.hold_dns({T2}, GRACE_PAST)
    assert len(applied(b, "delete", T1) + applied(c, "delete", T1)) == 1, cluster.tails()


# -- 5. the wrong key ---------------------------------------------------------------------------


def test_agent_with_wrong_key_is_rejected_and_has_no_effect(cluster: Cluster) -> None:
    cluster.start("a")
    cluster.start("b")
    cluster.start("c", key=WRONG_KEY)
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    for node in ("a", "b"):
        cluster.wait_ready(node, voters=("a", "b"))  # c is a live Serf member, never a voter
    for node in NODES:
        cluster.expect(node, r"gossip message rejected \(tag\)")

    # c and a see T1 down: c's votes are rejected, so a has no agreeing peer
    writes = write_requests(cluster.cf)
    cluster.net["c"].fw.blackhole(T1)
    cluster.net["a"].fw.blackhole(T1)
    cluster.expect("a", undecided(T1, "a", "down", b="up"), WAIT)
    cluster.expect("c", undecided(T1, "c", "down"), WAIT)
    cluster.hold_dns(set(TARGETS), HOLD, writes=writes)
    for proc in (a, b):
        assert not proc.matching(r"peer c votes"), proc.tail()
    assert not c.matching(r"peer . votes"), c.tail()
    for proc in (a, b, c):
        assert not proc.matching(rf"decision for {re.escape(T1)}: down"), proc.tail()


# -- 6. a replayed verdict ----------------------------------------------------------------------


def test_replayed_verdict_is_rejected(cluster: Cluster) -> None:
    """A captured notice of a's "T1 down" version, replayed after a recovered, is refused
    (older than what its peers hold) and changes no vote: votes only come from pulls,
    whose fresh nonces no capture can answer."""
    cluster.start_all(debug=True)  # --debug: every rejected message is logged
    net = cluster.net
    serf = cluster.serf_of("a")
    event = sync_event_name(None)
    rpc = ["--rpc", serf.rpc, "--auth-file", str(serf.config_file), "--event", event]

    # capture a sealed notice of a's, once b holds a's "T1 down"
    net["a"].fw.blackhole(T1)
    cluster.expect("b", rf"peer a votes {re.escape(T1)} down")
    captured = subprocess.run(
        helper_argv(net["a"], "capture", *rpc, "--node", "a"),
        cwd=REPO,
        env={**os.environ, KEY_ENV: KEY},
        capture_output=True,
        text=True,
        timeout=WAIT + 10,
        check=True,
    ).stdout.strip()
    notice = Notice.open(Sealer(KEY.encode(), event), base64.b64decode(captured))
    assert notice.node == "a" and notice.version >= 1

    # a recovers (a newer version says up); b now sees T1 down: one more "down" would decide
    mark = cluster["b"].mark()
    net["a"].fw.heal()
    cluster.expect("b", rf"peer a votes {re.escape(T1)} up", since=mark)
    net["b"].fw.blackhole(T1)
    cluster.expect("b", undecided(T1, "b", "down", a="up", c="up"), since=mark)

    marks = {n: cluster[n].mark() for n in NODES}
    writes = write_requests(cluster.cf)

    # Serf sometimes hands an event to one member only seconds later: replay (each
    # send is one more replay) until both receivers have rejected one, 3 sends at most
    def unrejected() -> set[str]:
        return {n for n in ("b", "c") if not cluster[n].matching(REPLAY, since=marks[n])}

    for _ in range(3):
        subprocess.run(
            helper_argv(net["a"], "send", *rpc, "--payload", captured),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not unrejected(), REPLAY_WAIT)
        if not unrejected():
            break
    pending = unrejected()
    assert not pending, f"no replay rejection logged by {sorted(pending)}\n" + cluster.tails()
    cluster.hold_dns(set(TARGETS), HOLD, writes=writes)
    for node in ("b", "c"):
        proc = cluster[node]
        assert not proc.matching(rf"peer a votes {re.escape(T1)} down", since=marks[node])
        assert not proc.matching(rf"decision for {re.escape(T1)}: down"), proc.tail()


# -- 7. a restarted agent -----------------------------------------------------------------------


def test_restarted_agent_converges_through_reannouncement(cluster: Cluster) -> None:
    cluster.start_all()
    b = cluster["b"]
    net = cluster.net

    # b sees T1 down while a is away: the new a can only learn it from b's announcements
    mark_b = b.mark()
    assert cluster["a"].stop() == 0
    cluster.expect("b", r"peer a gone \(member-leave\)", FAIL_WAIT, since=mark_b)
    net["b"].fw.blackhole(T1)
    cluster.expect("b", undecided(T1, "b", "down", c="up"), WAIT, since=mark_b)
    assert cluster.dns() == set(TARGETS)

    net["a"].fw.blackhole(T1)
    a = cluster.start("a")
    cluster.expect("b", r"peer a joined", FAIL_WAIT, since=mark_b)
    cluster.expect("a", r"peer b joined", FAIL_WAIT)
    cluster.expect("a", rf"peer b votes {re.escape(T1)} down", WAIT)
    cluster.expect("b", rf"peer a votes {re.escape(T1)} down", WAIT, since=mark_b)
    cluster.wait_dns({T2})
    cluster.hold_dns({T2}, GRACE_PAST)
    writers = applied(a, "delete", T1) + applied(b, "delete", T1)
    assert len(writers) == 1, cluster.tails()


def test_override_is_announced_and_honoured_by_peers(cluster: Cluster) -> None:
    for node in NODES:
        cluster.start(node, server=True)
    for node in NODES:
        cluster.wait_ready(node)
    cluster.wait_dns(set(TARGETS))

    # drain T1 on agent a only: b and c learn it with a's verdicts and honour it
    status, text = cluster.api(
        "a", "POST", "/api/overrides", {"target": T1, "mode": "down", "reason": "maintenance"}
    )
    assert status == 200, text
    for node in ("b", "c"):
        cluster.expect(node, rf"peer a holds its override of {re.escape(T1)} \(down\)")
    cluster.wait_dns({T2})
    cluster.hold_dns({T2}, GRACE_PAST)  # nobody puts it back

    status, text = cluster.api("b", "GET", "/api/status")
    assert status == 200
    doc = json.loads(text)
    t1 = {t["address"]: t for t in doc["targets"]}[T1]
    assert t1["override"] == {"mode": "down", "local": None, "peers": {"a": "down"}}
    assert (t1["state"], t1["effective"]) == ("up", "down")
    assert t1["votes"] == {"a": "up", "c": "up"}  # a's vote stays honest: T1 answers
    assert doc["cluster"]["live_peers"] == ["a", "c"]
    status, page = cluster.api("b", "GET", "/")
    assert status == 200 and "(peer a: down)" in page and "Vote of c" in page
    status, text = cluster.api("b", "GET", "/_health")
    health = json.loads(text)
    assert status == 200 and [p["name"] for p in health["probes"]] == [
        "config",
        "probes",
        "serf",
        "dns",
    ]
    status, text = cluster.api("c", "GET", "/metrics")
    assert metric(text, "goavail_target_override", target=T1, mode="down") == 1.0
    assert metric(text, "goavail_peers", status="alive") == 2.0
    assert (metric(text, "goavail_gossip_messages_total", result="accepted", reason="") or 0) > 0
    assert metric(text, "goavail_gossip_messages_total", result="rejected", reason="tag") == 0

    # only a can lift it; then T1 is back
    status, _ = cluster.api("b", "POST", "/api/overrides", {"target": T1, "mode": "auto"})
    assert status == 200  # b holds no override of its own: nothing changes
    cluster.hold_dns({T2}, 1.0)
    status, _ = cluster.api("a", "POST", "/api/overrides", {"target": T1, "mode": "auto"})
    assert status == 200
    cluster.expect("c", rf"peer a cleared its override of {re.escape(T1)}")
    cluster.wait_dns(set(TARGETS))


# -- node names ------------------------------------------------------------------------------


def test_two_agents_with_one_node_name_is_a_loud_error(cluster: Cluster) -> None:
    """Cloned hosts, one explicit node_name: Serf's conflict resolution shuts their Serf
    down; each agent says so (naming the other and the fix) and is unhealthy."""
    cluster.start("a", server=True, name="same")
    cluster.start("b", server=True, name="same")
    for node, other in (("a", "b"), ("b", "a")):
        cluster.expect(
            node,
            r"NODE NAME CONFLICT: node name 'same' is also used by the Serf member at "
            + re.escape(f"{ADDRESSES[other]}:{SERF_PORT}")
            + r".*set a unique node_name",
            timeout=WAIT,
        )
    for node in ("a", "b"):
        status, text = cluster.api(node, "GET", "/_health")
        health = json.loads(text)
        assert status == 503, text
        serf = next(p for p in health["probes"] if p["name"] == "serf")
        assert not serf["healthy"]
        assert (
            "node name conflict: node name 'same' is also used by the Serf member at"
            in (serf["error"])
        )
        status, text = cluster.api(node, "GET", "/metrics")
        assert metric(text, "goavail_cluster_name_conflict") == 1.0
        assert (metric(text, "goavail_cluster_name_conflicts_total") or 0) >= 1
