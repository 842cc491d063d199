"""``goavail explain``: the document of one name (pure, from agents that are not started),
its text report, and ``GET /api/explain`` through aiohttp's test client."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.cluster.serf_rpc import Member, MemberEvent
from goavail.compose import compose, load_checked
from goavail.config.web import ServerSection
from goavail.dns.model import Record
from goavail.dns.plan import plan_names
from goavail.dns.reconcile import after
from goavail.explain import render
from goavail.options import Options
from goavail.web.explain import explain_document
from goavail.web.server import WebServer
from tests import syncfake
from tests.syncfake import Peers, deliver, notice_event

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
NAME = "api.example.test"
KEY = "0123456789abcdef"
DOWN, UP = ProbeResult(ok=False, error="timeout"), ProbeResult(ok=True, rtt=0.001)

BASE = f"""\
failure_threshold = 1
rise_threshold = 1
port = 9
{{top}}
[[checks]]
id = "web"
type = "tcp"
fall = 2
rise = 1

[[pools]]
name = "web"
addresses = ["{A}", "{B}"]
{{web}}
[[pools]]
name = "spare"
addresses = ["{C}"]

[[names]]
name = "{NAME}"
pools = ["web", "spare"]
{{name}}
[Zonefile]
path = "zone"
origin = "example.test"
"""


def make_agent(tmp_path: Path, top: str = "", web: str = "", name: str = "") -> Agent:
    config = tmp_path / "goavail.toml"
    config.write_text(BASE.format(top=top, web=web, name=name))
    options = Options(config, False, "tcp", "zonefile")
    return compose(load_checked(options), options)


def feed(agent: Agent, target: str, result: ProbeResult, times: int = 2) -> None:
    for _ in range(times):
        agent.checks.checks["web"].on_result(target, result)


def settle(agent: Agent, current: dict[str, list[Record]]) -> None:
    """What a reconcile pass does, without a provider: plan from the effective states
    and the brake, make the changes (or, in dry-run, leave them pending)."""
    reconciler = agent.reconciler
    plan = plan_names(
        reconciler.specs,
        agent.decision.effective,
        current,
        overridden=set(agent.decision.forced),
        held=agent.held(),
    )
    reconciler.explanations = plan.explanations
    reconciler.current = after(current, list(plan.changes))
    reconciler.pending = ()


def records(*addresses: str) -> dict[str, list[Record]]:
    return {NAME: [Record(NAME, "A", a) for a in addresses]}


def row(doc: dict[str, Any], address: str) -> dict[str, Any]:
    return next(r for r in doc["addresses"] if r["address"] == address)


@dataclass
class Case:
    """One scenario: the agent's configuration, what happens to it, and what the
    document must say (per address: substrings of its ``why`` and other fields)."""

    top: str = ""
    web: str = ""
    name: str = ""
    events: Callable[[Agent], None] = lambda agent: None
    current: tuple[str, ...] = (A, B)
    rule: str = ""
    pool: str = ""
    planned: tuple[str, ...] = ()
    why: dict[str, str] = field(default_factory=dict)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)


def _all(state: ProbeResult, *targets: str) -> Callable[[Agent], None]:
    def run(agent: Agent) -> None:
        for target in targets:
            feed(agent, target, state)

    return run


def _then(*steps: Callable[[Agent], None]) -> Callable[[Agent], None]:
    def run(agent: Agent) -> None:
        for step in steps:
            step(agent)

    return run


def _flap(agent: Agent) -> None:
    """A flaps down, up, down, up: damping suppresses it (B and C stay up)."""
    _all(UP, A, B, C)(agent)
    for state in (DOWN, UP, DOWN, UP):
        feed(agent, A, state)


DAMPING = """\
[Damping]
penalty = 1000
half_life = "1h"
suppress = 1500
reuse = 750
max_suppress = "10h"
"""

HELD_IN = ["web", "all targets"]
"""The brake's groups that hold B: its pool and the whole fleet."""

CASES = {
    "backup serving": Case(
        events=_then(_all(DOWN, A, B), _all(UP, C)),
        rule="backup",
        pool="spare",
        planned=(C,),
        why={A: "down: withdrawn; spare serves", C: "up, in spare, the pool that serves"},
        fields={A: {"own": "down", "effective": "down", "announced": "down"}},
    ),
    "fail-open": Case(
        events=_all(DOWN, A, B, C),
        rule="fail-open",
        pool="web",
        planned=(A, B),
        why={A: "kept by fail-open", C: "down: withdrawn; web serves"},
    ),
    "fail-closed": Case(
        name='all_down = "fail-closed"',
        events=_all(DOWN, A, B, C),
        rule="fail-closed",
        planned=(),
        why={A: "fail-closed withdraws every down address", C: "fail-closed"},
    ),
    "a damped target": Case(
        top=DAMPING,
        events=_flap,
        rule="primary",
        pool="web",
        planned=(B,),
        why={A: "down: withdrawn", C: "up, but spare is a backup and web, before it, serves"},
        fields={A: {"own": "up", "announced": "down", "effective": "down"}},
    ),
    "a manual failback waiting": Case(
        web='failback = "manual"',
        events=_then(_all(UP, A, B, C), _all(DOWN, A), _all(UP, A)),
        rule="primary",
        pool="web",
        planned=(B,),
        why={A: "down: withdrawn", B: "up, in web, the pool that serves"},
        fields={A: {"own": "up", "announced": "down"}},
    ),
    "a braked target": Case(
        top="[Brake]\nmax_down_share = 0.5\nmin_targets = 2\n",
        events=_then(_all(UP, C), _all(DOWN, A), _all(DOWN, B)),
        rule="backup",
        pool="spare",
        planned=(B, C),
        why={A: "down: withdrawn", B: "the brake holds it in DNS"},
        fields={B: {"effective": "down", "brake": {"held": True, "groups": HELD_IN}}},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_document_says_why(tmp_path: Path, case: Case) -> None:
    agent = make_agent(tmp_path, case.top, case.web, case.name)
    case.events(agent)
    settle(agent, records(*case.current))
    doc = explain_document(agent.snapshot(), NAME.upper() + ".")  # any spelling
    assert doc is not None
    (provider,) = doc["providers"]
    (family,) = provider["families"]
    assert (family["type"], family["rule"], family["pool"]) == ("A", case.rule, case.pool)
    assert [r["address"] for r in provider["planned"]] == list(case.planned)
    assert [r["address"] for r in doc["addresses"]] == [A, B, C]  # priority order
    for address, text in case.why.items():
        (answer,) = row(doc, address)["answer"]
        assert text in answer["why"], answer
        assert answer["planned"] is (address in case.planned)
    for address, wanted in case.fields.items():
        got = row(doc, address)
        assert {k: got[k] for k in wanted} == wanted
    assert any(family["because"] in s for s in doc["summary"])
    report = render(doc)
    assert family["because"] in report and all(a in report for a in (A, B, C))


def test_checks_thresholds_and_last_results(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, web="failure_threshold = 3\nrise_threshold = 2")
    feed(agent, A, DOWN, times=3)
    feed(agent, C, UP, times=1)
    settle(agent, records(A))
    doc = explain_document(agent.snapshot(), NAME)
    assert doc is not None
    (check,) = row(doc, A)["checks"]
    assert (check["id"], check["fall"], check["rise"], check["state"]) == ("web", 3, 2, "down")
    assert check["failures"] == 3 and check["last"] == {
        "ok": False,
        "rtt_seconds": None,
        "error": "timeout",
    }
    assert check["what"] == "tcp connect to <target>:9"
    (spare,) = row(doc, C)["checks"]
    assert (spare["fall"], spare["rise"]) == (2, 1)  # the check's own: spare sets none
    assert f"{A} is down: check web failed 3 time(s) in a row (timeout)." in doc["summary"]
    assert "single node" in row(doc, A)["decided"] and row(doc, A)["votes"] is None


def test_a_dry_run_shows_the_pending_changes(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    agent.options = dataclasses.replace(agent.options, dry_run=True)
    _all(DOWN, A, B)(agent)
    _all(UP, C)(agent)
    settle(agent, records(A, B))
    reconciler = agent.reconciler
    plan = plan_names(reconciler.specs, agent.decision.effective, records(A, B))
    reconciler.current, reconciler.pending = records(A, B), plan.changes
    doc = explain_document(agent.snapshot(), NAME)
    assert doc is not None and doc["dry_run"] is True
    (provider,) = doc["providers"]
    assert [r["address"] for r in provider["current"]] == [A, B]
    assert [r["address"] for r in provider["planned"]] == [C]
    assert {(p["action"], p["address"]) for p in provider["pending"]} == {
        ("create", C),
        ("delete", A),
        ("delete", B),
    }
    (answer,) = row(doc, A)["answer"]
    assert (answer["in_dns"], answer["planned"]) == (True, False)
    assert any("3 change(s) pending (dry-run" in s for s in doc["summary"])


async def test_a_cluster_vote_missing(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        f'node_name = "a"\n[Members]\npeers = ["198.51.100.2:7946", "198.51.100.3:7946"]\n'
        f'min_peers_agree = 2\ncrypto_key = "{KEY}"\n',
    )
    cluster = agent.cluster
    assert cluster is not None
    cluster._on_member_event(
        MemberEvent(
            "member-join",
            [
                Member("b", "198.51.100.2", 7946, {}, "alive"),
                Member("c", "198.51.100.3", 7946, {}, "alive"),
            ],
        )
    )
    peers = Peers(KEY.encode(), cluster.event)
    cluster.sync.client = peers
    cluster.member_addr["b"] = syncfake.address("b")
    notice = peers.vote("b", A, "down", "auto", at=time.time())
    await deliver(cluster, notice_event(notice, KEY.encode(), cluster.event))
    feed(agent, A, DOWN)
    settle(agent, records(A, B))
    doc = explain_document(agent.snapshot(), NAME)
    assert doc is not None and doc["mode"] == "cluster"
    got = row(doc, A)
    assert got["votes"] == {"b": "down", "c": None}
    assert got["quorum"] == {"needed": 2, "agreeing": 1, "met": False, "missing": ["c"]}
    assert got["decision"] == "unknown"
    assert "no vote yet from c" in got["decided"] and "the decision stays unknown" in got["decided"]
    assert "b=down c=none" in render(doc)


def test_an_unknown_name_has_no_document(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    assert explain_document(agent.snapshot(), "nope.example.test") is None


async def test_the_handler(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    _all(DOWN, A, B)(agent)
    _all(UP, C)(agent)
    settle(agent, records(A, B))
    server = WebServer(ServerSection(), agent, environ={})
    async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
        answer = await client.get("/api/explain", params={"name": NAME})
        assert answer.status == 200 and answer.content_type == "application/json"
        doc = await answer.json()
        assert doc["name"] == NAME and doc["providers"][0]["families"][0]["rule"] == "backup"
        missing = await client.get("/api/explain")
        assert missing.status == 400 and "name" in (await missing.json())["error"]
        unknown = await client.get("/api/explain", params={"name": "nope.example.test"})
        assert unknown.status == 404
        assert (
            "'nope.example.test' is not a name this agent manages"
            in (await unknown.json())["error"]
        )
