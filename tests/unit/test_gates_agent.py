"""Flap damping and gated failback in the agent (no root, no network): the gated verdict
the decision stage gets, the status document and page, ``/metrics``, ``POST
/api/failback`` and the ``failback`` and ``[Damping]`` keys of the configuration."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.compose import compose, load_checked
from goavail.config import ConfigError, ServerSection, load_config
from goavail.config.gates import parse_failback
from goavail.events import DampingChanged, FailbackChanged
from goavail.gates import Failback, FailbackMode
from goavail.health import State
from goavail.notify import events as notify_events
from goavail.options import Options
from goavail.web.server import WebServer
from goavail.web.status import status_document

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
TOKEN = "0123456789abcdef0123"
DOWN, UP = ProbeResult(ok=False, error="timeout"), ProbeResult(ok=True, rtt=0.001)

CONFIG = f"""\
failure_threshold = 1
rise_threshold = 1
port = 9

[[pools]]
name = "web"
addresses = ["{A}", "{B}"]

[[pools]]
name = "careful"
addresses = ["{C}"]
failback = "manual"

[[names]]
name = "www.example.test"
pools = ["web", "careful"]

[Zonefile]
path = "zone"
origin = "example.test"

[Damping]
penalty = 1000
half_life = "1m"
suppress = 1500
reuse = 750
max_suppress = "10m"
"""


def make_agent(tmp_path: Path, text: str = CONFIG) -> Agent:
    config = tmp_path / "goavail.toml"
    config.write_text(text)
    options = Options(config, False, "tcp", "zonefile")
    return compose(load_checked(options), options)


def feed(agent: Agent, target: str, result: ProbeResult) -> None:
    check = agent.checks.single_check
    assert check is not None
    check.on_result(target, result)


class Clock:
    """``time.monotonic`` as the agent reads it, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.monotonic()
        monkeypatch.setattr(time, "monotonic", lambda: self.now)  # the agent's clock


def test_damping_keeps_a_flapping_target_withdrawn_until_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    agent = make_agent(tmp_path)
    seen: list[object] = []
    agent.bus.subscribe(seen.append)
    for target in (A, B):
        feed(agent, target, UP)
    feed(agent, A, DOWN)  # penalty 1000
    feed(agent, A, UP)
    assert agent.decision.effective[A] is State.UP
    clock.now += 1
    feed(agent, A, DOWN)  # 1000 * 2**(-1/60) + 1000 > 1500: suppressed
    penalty = 1000 * 2 ** (-1 / 60) + 1000
    (event,) = [e for e in seen if isinstance(e, DampingChanged)]
    assert (event.target, event.suppressed) == (A, True)
    assert event.penalty == pytest.approx(penalty)
    assert event.reuse_in == pytest.approx(60 * math.log2(penalty / 750))
    clock.now += 1
    feed(agent, A, UP)
    assert agent.targets[A].health.state is State.UP  # the checks say up ...
    assert agent.decision.local[A] is State.DOWN  # ... the agent announces down
    assert agent.decision.effective[A] is State.DOWN
    doc = status_document(agent.snapshot())
    row = next(t for t in doc["targets"] if t["address"] == A)
    assert row["damping"]["suppressed"] is True
    assert row["damping"]["reuse_at"] is not None
    assert row["announced"] == "down"
    assert doc["summary"]["suppressed"] == 1
    assert any(w["kind"] == "damping" and A in w["message"] for w in doc["warnings"])
    deadline = agent.gates.deadline(A)
    assert deadline is not None
    clock.now = deadline - 1
    agent._gate_due(A)  # the timer's callback: too early, nothing changes
    assert agent.decision.effective[A] is State.DOWN
    clock.now = deadline + 0.001
    agent._gate_due(A)
    assert agent.decision.effective[A] is State.UP
    assert [e for e in seen if isinstance(e, DampingChanged)][-1].suppressed is False
    assert agent.gate_view(A).suppressed is False


@pytest.fixture
async def served(
    tmp_path: Path,
) -> AsyncIterator[tuple[Agent, TestClient[web.Request, web.Application]]]:
    agent = make_agent(tmp_path)
    server = WebServer(ServerSection(), agent, environ={"GOAVAIL_ADMIN_TOKEN": TOKEN})
    async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
        yield agent, client


async def test_manual_failback_waits_for_the_operator(
    served: tuple[Agent, TestClient[web.Request, web.Application]],
) -> None:
    agent, client = served
    seen: list[object] = []
    agent.bus.subscribe(seen.append)
    feed(agent, C, UP)
    assert agent.decision.effective[C] is State.UP  # never down: published at once
    answer = await client.post(
        "/api/failback", json={"target": C}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert (await answer.json())["released"] is False  # nothing to release
    feed(agent, C, DOWN)
    feed(agent, C, UP)
    assert agent.decision.effective[C] is State.DOWN
    assert FailbackChanged(C, True) in seen
    status = await (await client.get("/api/status")).json()
    row = next(t for t in status["targets"] if t["address"] == C)
    assert row["failback"] == {
        "setting": "manual",
        "gate": "operator",
        "until": None,
        "released_by": "",
    }
    assert status["summary"]["awaiting_failback"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert "goavail_failback_waiting_targets 1.0" in metrics
    assert "goavail_damping_suppressed_targets 0.0" in metrics
    page = await (await client.get("/")).text()
    assert 'action="/api/failback"' in page and f'value="{C}"' in page

    refused = await client.post("/api/failback", json={"target": C})
    assert refused.status == 401
    bad = await client.post(
        "/api/failback",
        json={"target": "192.0.2.99", "x": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status == 400
    assert (await bad.json())["problems"] == [
        "x: unknown field",
        "target: 192.0.2.99 is not a configured target",
    ]
    wrong = await client.post("/api/failback", data={"target": C, "token": "nope"})
    assert wrong.status == 401
    assert agent.decision.effective[C] is State.DOWN

    form = await client.post(
        "/api/failback", data={"target": C, "token": TOKEN}, allow_redirects=False
    )
    assert form.status == 303 and form.headers["Location"] == f"/#target-{C}"
    assert agent.decision.effective[C] is State.UP
    assert FailbackChanged(C, False, released_by="page") in seen
    record = agent.audit.recent[-1]
    assert (record["action"], record["target"], record["source"]) == ("failback", C, "page")
    page = await (await client.get("/")).text()
    assert f"{C} released" in page


def test_failback_after_a_time_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    agent = make_agent(tmp_path, CONFIG.replace('failback = "manual"', 'failback = "after 30s"'))
    feed(agent, C, DOWN)
    feed(agent, C, UP)
    assert agent.decision.effective[C] is State.DOWN
    assert agent.gates.deadline(C) == pytest.approx(clock.now + 30)
    row = status_document(agent.snapshot())["targets"][2]
    assert row["failback"]["gate"] == "waiting" and row["failback"]["until"] is not None
    clock.now += 30
    agent._gate_due(C)
    assert agent.decision.effective[C] is State.UP


async def test_reload_keeps_the_gates_and_applies_new_settings(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    feed(agent, C, DOWN)
    feed(agent, C, UP)
    assert agent.decision.effective[C] is State.DOWN
    (tmp_path / "goavail.toml").write_text(CONFIG.replace('failback = "manual"', ""))
    assert await agent.reload()
    assert agent.decision.effective[C] is State.UP  # auto now: published at once


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", Failback()),
        ("MANUAL", Failback(FailbackMode.MANUAL)),
        ("5m", Failback(FailbackMode.AFTER, 300)),
        ("after 5m", Failback(FailbackMode.AFTER, 300)),
        ("after = 90s", Failback(FailbackMode.AFTER, 90)),
        (120, Failback(FailbackMode.AFTER, 120)),
    ],
)
def test_failback_values(value: object, expected: Failback) -> None:
    assert parse_failback(value) == expected


@pytest.mark.parametrize("value", ["sometimes", "after", "0s", "2d", True, ["auto"]])
def test_failback_values_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_failback(value)


def test_config_problems_with_their_key_paths(tmp_path: Path) -> None:
    text = (
        CONFIG.replace('failback = "manual"', 'failback = "later"')
        .replace("suppress = 1500", "suppress = 700")
        .replace('half_life = "1m"', 'half_life = "0s"')
    )
    path = tmp_path / "goavail.toml"
    path.write_text(text + '\n[[notifications]]\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = "\n".join(caught.value.problems)
    assert "pools[1].failback: expected 'auto', 'manual'" in problems
    assert "Damping.half_life" in problems


def test_ceiling_below_suppress_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "goavail.toml"
    path.write_text(CONFIG.replace('max_suppress = "10m"', 'max_suppress = "30s"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(p.startswith("Damping.max_suppress: too short") for p in caught.value.problems)


def test_the_strictest_failback_of_a_shared_target(tmp_path: Path) -> None:
    text = (
        CONFIG
        + f"""
[[pools]]
name = "shared"
addresses = ["{A}"]
failback = "after 2m"

[[names]]
name = "api.example.test"
pools = ["shared"]
failback = "after 1m"
"""
    )
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.failback_settings() == {
        A: Failback(FailbackMode.AFTER, 120),
        C: Failback(FailbackMode.MANUAL),
    }
    assert config.damping_settings() is not None


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "kind", "text"),
    [
        (
            notify_events.damping(
                target=A, suppressed=True, penalty=1988.5, reuse_in=84.4, now=NOW
            ),
            "target_suppressed",
            f"DAMPING: {A} flaps (penalty 1988): kept out of DNS for about 84s even while up",
        ),
        (
            notify_events.damping(target=A, suppressed=False, penalty=740, reuse_in=None, now=NOW),
            "target_reused",
            f"damping: {A} is no longer suppressed",
        ),
        (
            notify_events.failback(
                target=C, waiting=True, wait_seconds=None, released_by="", now=NOW
            ),
            "failback_waiting",
            f"FAILBACK: {C} is up again, kept out of DNS until an operator releases it "
            "(goavail failback)",
        ),
        (
            notify_events.failback(
                target=C, waiting=True, wait_seconds=29.6, released_by="", now=NOW
            ),
            "failback_waiting",
            f"FAILBACK: {C} is up again, kept out of DNS for 30s more",
        ),
        (
            notify_events.failback(
                target=C, waiting=False, wait_seconds=None, released_by="cli", now=NOW
            ),
            "failback_released",
            f"failback: {C} released by cli",
        ),
    ],
)
def test_notifications(event: notify_events.Event, kind: str, text: str) -> None:
    assert event.kind == kind
    assert notify_events.describe(event) == text
