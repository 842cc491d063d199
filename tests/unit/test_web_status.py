"""The status document, the page and the Philae answer, from agents that are not started."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.cluster.serf_rpc import Member, MemberEvent
from goavail.compose import compose, load_checked
from goavail.config.web import ServerSection
from goavail.decision import Override
from goavail.dns.model import Record
from goavail.logs import REDACTOR
from goavail.options import Options
from goavail.web import page
from goavail.web.listing import Query
from goavail.web.selfcheck import ROUNDS, ProbeCheck, RoundWatch, philae
from goavail.web.server import WebServer
from goavail.web.status import status_document
from tests import syncfake
from tests.syncfake import Peers, deliver, notice_event

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
KEY = "0123456789abcdef"


def feed(agent: Agent, target: str, result: ProbeResult) -> None:
    """One result of the --type probe (the check it stands for)."""
    check = agent.checks.single_check
    assert check is not None
    check.on_result(target, result)


def make_agent(tmp_path: Path, top: str = "", addresses: tuple[str, ...] = (A, B, C)) -> Agent:
    config = tmp_path / "goavail.toml"
    quoted = ", ".join(f'"{a}"' for a in addresses)
    config.write_text(
        f"""\
failure_threshold = 1
rise_threshold = 1
port = 9
{top}
[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = [{quoted}]
"""
    )
    options = Options(config, False, "tcp", "zonefile")
    return compose(load_checked(options), options)


# --------------------------------------------------------------------------- Philae


def test_philae_answer() -> None:
    healthy = philae([ProbeCheck("config", True, "ok", None, 5)])
    assert healthy == {
        "healthy": True,
        "probes": [
            {"name": "config", "healthy": True, "comment": "ok", "error": None, "duration": 5}
        ],
        "error": None,
    }
    sick = philae(
        [ProbeCheck("a", False, "error", "boom"), ProbeCheck("b", False, "error", "bang")]
    )
    assert sick["healthy"] is False
    assert sick["error"] == "prober error: probe a: boom, probe b: bang"


def test_philae_answer_is_redacted() -> None:
    REDACTOR.add(["s3cr3t-token-value"])
    answer = philae([ProbeCheck("dns", False, "error", "401 for s3cr3t-token-value")])
    assert "s3cr3t" not in str(answer)


def test_round_watch() -> None:
    watch = RoundWatch(start=100.0)
    assert watch.check(100.0 + ROUNDS * 2.0, 2.0, 3).healthy  # grace after start
    assert not watch.check(100.1 + ROUNDS * 2.0, 2.0, 3).healthy
    watch.observe(101.0, results=2, targets=3)  # not a full round yet
    assert watch.rounds == 0
    watch.observe(102.0, results=3, targets=3)
    assert watch.rounds == 1 and watch.last_round_at == 102.0
    watch.observe(103.0, results=5, targets=3)
    assert watch.rounds == 1
    check = watch.check(102.0 + 6.5, 2.0, 3)
    assert not check.healthy and "no full probing round for 6.5s" in (check.error or "")
    assert watch.check(200.0, 2.0, 0).healthy  # nothing to probe is not a failure


# --------------------------------------------------------------------------- status document


async def test_cluster_view_with_votes_and_quorum(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        f'node_name = "a"\n[Members]\npeers = ["198.51.100.2:7946"]\nmin_peers_agree = 1\n'
        f'crypto_key = "{KEY}"\n',
    )
    cluster = agent.cluster
    assert cluster is not None
    cluster._on_member_event(
        MemberEvent("member-join", [Member("b", "198.51.100.2", 7946, {}, "alive")])
    )
    peers = Peers(KEY.encode(), cluster.event)
    cluster.sync.client = peers
    cluster.member_addr["b"] = syncfake.address("b")
    for target, override in [(A, "auto"), (B, "auto"), (C, "down")]:
        notice = peers.vote("b", target, "up", override, at=time.time())
        await deliver(cluster, notice_event(notice, KEY.encode(), cluster.event))
    feed(agent, A, ProbeResult(ok=True, rtt=0.001))
    feed(agent, B, ProbeResult(ok=False, error="timeout"))  # only we see B down
    doc = status_document(agent.snapshot())
    targets = {t["address"]: t for t in doc["targets"]}
    assert targets[A]["votes"] == {"b": "up"} and targets[A]["quorum_met"] is True
    assert targets[A]["effective"] == "up"
    assert targets[B]["state"] == "down" and targets[B]["quorum_met"] is False
    assert targets[B]["decision"] == "unknown"  # not decided alone
    assert targets[C]["override"] == {"mode": "down", "local": None, "peers": {"b": "down"}}
    assert targets[C]["effective"] == "down"
    gossip = doc["cluster"]["gossip"]
    assert gossip["accepted"] == 3 and gossip["pulls"] == 3 and "pull_failed" not in gossip
    kinds = [w["kind"] for w in doc["warnings"]]
    assert "quorum" in kinds and "override" in kinds and "gossip" in kinds  # not connected
    html = page.render_page(doc)
    assert "Vote of b" in html and "✖ unmet" in html and "(peer b: down)" in html


CHECKS = """
[[checks]]
id = "ping"
type = "icmp"
fall = 2
[[checks]]
id = "web"
type = "tcp"
fall = 3
rise = 2
"""


async def test_with_checks_a_target_shows_the_deciding_checks_error_and_run(
    tmp_path: Path,
) -> None:
    agent = make_agent(tmp_path, CHECKS)
    ping, web = agent.checks.checks["ping"], agent.checks.checks["web"]
    ok, refused = ProbeResult(ok=True, rtt=0.002), ProbeResult(ok=False, error="refused")
    for _ in range(2):
        ping.on_result(A, ok)
        ping.on_result(B, ok)
        web.on_result(B, ok)
    for _ in range(4):
        web.on_result(A, refused)  # web DOWN after 3, a 4th failure since
    web.on_result(B, refused)  # B still up: 1 failure of 3
    ping.on_result(C, ProbeResult(ok=False, error="timeout"))  # C unknown, ping 1 of 2
    doc = status_document(agent.snapshot())
    targets = {t["address"]: t for t in doc["targets"]}

    down = targets[A]
    assert (down["state"], down["check"]) == ("down", "web")
    assert (down["failures"], down["successes"], down["last_error"]) == (4, 0, "refused")
    assert down["last_rtt_seconds"] is None
    assert down["checks"] == [
        {
            "id": "ping",
            "state": "up",
            "successes": 2,
            "failures": 0,
            "last_rtt_seconds": 0.002,
            "last_error": None,
        },
        {
            "id": "web",
            "state": "down",
            "successes": 0,
            "failures": 4,
            "last_rtt_seconds": None,
            "last_error": "refused",
        },
    ]
    # an UP target: the check closest to going down
    up = targets[B]
    assert (up["state"], up["check"], up["failures"], up["last_error"]) == (
        "up",
        "web",
        1,
        "refused",
    )
    # an unknown target: the unknown check with the most failures
    unknown = targets[C]
    assert (unknown["state"], unknown["check"], unknown["failures"]) == ("unknown", "ping", 1)
    assert unknown["last_error"] == "timeout"
    assert [w for w in doc["warnings"] if w["kind"] == "down"]

    html = page.render_page(doc)
    row = html[html.index(f'id="target-{A}"') :]
    row = row[: row.index("</tr>")]
    assert "4 failed in a row" in row and '<span class="mono">web</span>: refused' in row
    assert 'title="ping: up, 2 ok in a row; web: down, 4 failed in a row"' in row


async def test_two_down_checks_the_longer_run_decides(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, CHECKS)
    ping, web = agent.checks.checks["ping"], agent.checks.checks["web"]
    for _ in range(3):
        web.on_result(A, ProbeResult(ok=False, error="refused"))
    for _ in range(5):
        ping.on_result(A, ProbeResult(ok=False, error="timeout"))
    target = status_document(agent.snapshot())["targets"][0]
    assert (target["state"], target["check"], target["failures"], target["last_error"]) == (
        "down",
        "ping",
        5,
        "timeout",
    )


def test_without_checks_the_single_probe_shows(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    feed(agent, A, ProbeResult(ok=False, error="timeout"))
    target = status_document(agent.snapshot())["targets"][0]
    assert (target["state"], target["failures"], target["last_error"]) == ("down", 1, "timeout")
    assert (target["check"], target["checks"]) == (None, [])


def test_dry_run_fail_open_and_pending(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.options = Options(agent.options.config_path, True, "tcp", "zonefile")
    doc = status_document(agent.snapshot())
    assert doc["warnings"][0]["kind"] == "dry-run"
    assert doc["summary"]["unknown"] == 3
    html = page.render_page(doc)
    assert "DRY-RUN" in html and "? UNKNOWN" in html


def test_page_lists_problems_first_and_pages_the_rest(tmp_path: Path) -> None:
    addresses = tuple(f"192.0.2.{i}" for i in (1, 2, 3, 4, 5, 6, 10))
    agent = make_agent(tmp_path, addresses=addresses)
    for address in addresses:
        feed(agent, address, ProbeResult(ok=address != "192.0.2.5", rtt=0.001))
    agent.overrides.set("192.0.2.6", Override.DOWN)  # drained: withdrawn, so listed early
    # two hours on: no transition is recent any more, so only problems come first
    snap = dataclasses.replace(agent.snapshot(), wall=time.time() + 7200)
    query = Query(per_page=3, page=2)
    doc = status_document(snap, query)
    # 5 (down) and 6 (drained) first, by address; then the rest by address (10 after 4)
    assert [t["address"] for t in doc["targets"]] == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
    assert doc["listing"]["targets"] == {
        "total": 7,
        "matched": 7,
        "page": 2,
        "pages": 3,
        "first": 4,
        "last": 6,
    }
    assert doc["targets"][0]["pools"] == ["Zonefile"]
    assert doc["targets"][0]["names"] == ["www.example.test"]
    first = status_document(snap, Query(per_page=3))["targets"]
    assert [t["address"] for t in first] == ["192.0.2.5", "192.0.2.6", "192.0.2.1"]
    html = page.render_page(doc, query=query)
    assert 'href="?per_page=3&amp;page=3#targets" rel="next"' in html
    assert 'href="?per_page=3#targets" rel="first"' in html  # page 1 is the default
    assert f"Targets 4{DASH}6 of 7" in html and "page 2 of 3" in html
    # the API's default: every target in configuration order, every name
    everything = status_document(snap)
    assert [t["address"] for t in everything["targets"]] == list(addresses)
    assert [n["name"] for n in everything["names"]] == ["www.example.test"]
    name = everything["names"][0]
    assert name["answer"] == "none" and name["serving"] == [] and not name["differs"]
    assert [(p["name"], p["role"], p["up"], p["down"]) for p in name["pools"]] == [
        ("Zonefile", "primary", 5, 2)
    ]


def test_audit_records_are_redacted_and_escaped(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    REDACTOR.add(["another-s3cret-value"])
    agent.overrides.set(A, Override.DOWN, "<i>why</i> another-s3cret-value")
    doc = status_document(agent.snapshot())
    assert doc["audit"][0]["reason"] == "<i>why</i> ***"
    html = page.render_page(doc)
    assert "&lt;i&gt;why&lt;/i&gt; ***" in html and "another-s3cret" not in html


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.4, "0s"), (59, "59s"), (61, "1m 01s"), (3725, "1h 02m"), (90000, "1d 01h")],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert page.duration(seconds) == text


# --------------------------------------------------------------------------- filters and pages


Pooled = tuple[Agent, TestClient[web.Request, web.Application]]
"""The agent of :func:`pooled` and a client of its HTTP handlers."""
DASH = "\N{EN DASH}"
"""Between the first and the last row of a page ("Targets 1-100 of ...")."""

POOLED = f"""\
failure_threshold = 1
rise_threshold = 1
port = 9

[[pools]]
name = "web"
addresses = ["{A}", "{B}"]

[[pools]]
name = "spare"
addresses = ["{C}"]

[[names]]
name = "api.example.test"
pools = ["web", "spare"]

[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}"]
"""


@pytest.fixture
async def pooled(
    tmp_path: Path,
) -> AsyncIterator[Pooled]:
    """An agent (not started) whose primary pool ``web`` is down and whose backup
    ``spare`` serves ``api.example.test``, behind its real HTTP handlers."""
    config = tmp_path / "goavail.toml"
    config.write_text(POOLED)
    options = Options(config, False, "tcp", "zonefile")
    agent = compose(load_checked(options), options)
    feed(agent, A, ProbeResult(ok=False, error="timeout"))
    feed(agent, B, ProbeResult(ok=False, error="refused"))
    feed(agent, C, ProbeResult(ok=True, rtt=0.001))
    agent.reconciler.current = {
        "api.example.test": [Record("api.example.test", "A", C)],
        "www.example.test": [Record("www.example.test", "A", A)],
    }
    server = WebServer(ServerSection(), agent, environ={})
    async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
        yield agent, client


async def test_api_default_lists_everything_in_configuration_order(
    pooled: Pooled,
) -> None:
    _, client = pooled
    answer = await client.get("/api/status")
    doc = await answer.json()
    assert [t["address"] for t in doc["targets"]] == [A, B, C]
    assert doc["listing"]["query"]["per_page"] is None
    assert doc["listing"]["pools"] == ["Zonefile", "spare", "web"]
    api, www = doc["names"]
    assert (api["name"], api["answer"], api["serving"], api["differs"]) == (
        "api.example.test",
        "backup",
        ["spare"],
        True,
    )
    assert api["marks"] == ["backup spare serves instead of the primary"]
    assert [(p["name"], p["role"], p["serving"], p["down"], p["up"]) for p in api["pools"]] == [
        ("web", "primary", False, 2, 0),
        ("spare", "backup", True, 0, 1),
    ]
    assert (www["answer"], www["differs"]) == ("primary", False)
    targets = {t["address"]: t for t in doc["targets"]}
    assert targets[A]["pools"] == ["Zonefile", "web"]
    assert targets[A]["names"] == ["api.example.test", "www.example.test"]
    assert doc["summary"]["names"] == 2 and doc["summary"]["names_differing"] == 1


@pytest.mark.parametrize(
    ("query", "targets", "names", "matched"),
    [
        ("state=down", [A, B], ["api.example.test", "www.example.test"], 2),
        ("pool=spare", [C], ["api.example.test"], 1),
        ("name=www", [A], ["www.example.test"], 1),
        ("state=differs", [A, B, C], ["api.example.test"], 3),
        ("state=down&per_page=1&page=2", [B], ["api.example.test"], 2),  # names: page 1
        ("order=status", [A, B, C], ["api.example.test", "www.example.test"], 3),
    ],
)
async def test_api_filters_and_pages(
    pooled: Pooled,
    query: str,
    targets: list[str],
    names: list[str],
    matched: int,
) -> None:
    _, client = pooled
    answer = await client.get("/api/status?" + query)
    assert answer.status == 200
    doc = await answer.json()
    assert [t["address"] for t in doc["targets"]] == targets
    assert [n["name"] for n in doc["names"]] == names
    assert doc["listing"]["targets"]["matched"] == matched
    assert doc["listing"]["targets"]["total"] == 3
    assert doc["summary"]["targets"] == 3  # the summary counts the whole fleet


async def test_api_refuses_bad_parameters(
    pooled: Pooled,
) -> None:
    _, client = pooled
    answer = await client.get("/api/status?state=sideways&page=-1&pool=gone")
    assert answer.status == 400
    assert (await answer.json())["problems"] == [
        "pool: 'gone' is not a configured pool",
        "state: 'sideways' is not one of up, down, unknown, overridden, changed, held, differs",
        "page: must be at least 1, got -1",
    ]


async def test_page_filters_pages_and_shows_the_backup_serving(
    pooled: Pooled,
) -> None:
    _, client = pooled
    answer = await client.get("/?state=down&per_page=1")
    assert answer.status == 200
    assert "form-action 'self'" in answer.headers["Content-Security-Policy"]
    html = await answer.text()
    assert '<form class="filters" method="get"' in html
    assert '<option value="down" selected>down</option>' in html
    assert '<option value="spare">spare</option>' in html
    assert f'id="target-{A}"' in html and f'id="target-{B}"' not in html  # one per page
    assert 'href="?state=down&amp;per_page=1&amp;page=2#targets" rel="next"' in html
    assert f"Targets 1{DASH}1 of 2 matching (3 in all)" in html
    assert "⚠ backup spare serves instead of the primary" in html
    assert 'id="name-api.example.test" class="row-differs"' in html
    assert "clear filters" in html
    second = await (await client.get("/?state=down&per_page=1&page=2")).text()
    assert f'id="target-{B}"' in second and 'rel="prev"' in second


async def test_page_shows_bad_parameters_and_ignores_them(
    pooled: Pooled,
) -> None:
    _, client = pooled
    answer = await client.get("/?state=%3Cb%3E&per_page=2")
    assert answer.status == 400
    html = await answer.text()
    assert "⚠ filter" in html and "&#39;&lt;b&gt;&#39; is not one of" in html
    assert all(f'id="target-{a}"' in html for a in (A, B))  # per_page=2 kept, state ignored
