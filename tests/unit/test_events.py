"""The event bus: the agent publishes typed events once; the notifier and the hooks
subscribe (no network: the agent is composed, not started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.compose import compose, load_checked
from goavail.dns.model import FailClosed, FailOpen
from goavail.events import (
    AgentEvent,
    AuditRecorded,
    Bus,
    FailClosedChanged,
    FailOpenChanged,
    QuorumChanged,
)
from goavail.hooks import HookEvent
from goavail.notify.events import Event, describe
from goavail.options import Options

CASE = FailOpen("www.example.test", "A", ("192.0.2.1",))


def test_every_subscriber_gets_every_event_in_subscription_order() -> None:
    bus, seen = Bus(), []
    bus.subscribe(lambda event: seen.append(("first", event)))
    bus.subscribe(lambda event: seen.append(("second", event)))
    event = QuorumChanged(unmet=True, live=0, needed=1)
    bus.publish(event)
    assert seen == [("first", event), ("second", event)]


def test_the_agent_publishes_and_the_notifier_and_the_hooks_receive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "goavail.toml"
    config.write_text(
        'failure_threshold = 2\n[Zonefile]\npath = "zone"\norigin = "example.test"\n'
        'hostnames = ["www"]\nip_addresses = ["192.0.2.1"]\n'
    )
    options = Options(config, dry_run=True, probe_type="ip", provider="zonefile")
    agent = compose(load_checked(options), options)
    published: list[AgentEvent] = []
    agent.bus.subscribe(published.append)
    notified: list[tuple[FailOpen, bool]] = []
    hooked: list[tuple[FailOpen, bool]] = []
    monkeypatch.setattr(agent.notifier, "fail_open", lambda c, e: notified.append((c, e)))
    monkeypatch.setattr(agent.hooks, "fail_open", lambda c, e: hooked.append((c, e)))

    agent.on_fail_open(CASE, True)

    assert published == [FailOpenChanged(CASE, True)]
    assert notified == hooked == [(CASE, True)]
    agent.on_audit_record({"action": "create"})
    assert published[-1] == AuditRecorded({"action": "create"})


def test_fail_closed_reaches_the_notifier_and_the_hooks_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engaged by the first provider, released by the last: one event each way, and the
    notification and the hook event say what happened."""
    config = tmp_path / "goavail.toml"
    config.write_text(
        '[Zonefile]\npath = "zone"\norigin = "example.test"\n'
        'hostnames = ["www"]\nip_addresses = ["192.0.2.1"]\nall_down = "fail-closed"\n'
    )
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    options = Options(config, dry_run=False, probe_type="ip", provider="zonefile")
    agent = compose(load_checked(options), options)
    agent.hooks.directory = hooks
    published: list[AgentEvent] = []
    agent.bus.subscribe(published.append)
    emitted: list[Event] = []
    monkeypatch.setattr(agent.notifier, "emit", emitted.append)
    offered: list[HookEvent] = []
    monkeypatch.setattr(agent.hooks, "offer", offered.append)
    closed = FailClosed("www.example.test", "A", ("192.0.2.1",))

    agent.on_fail_closed(closed, True, "zonefile")
    agent.on_fail_closed(closed, True, "route53")
    agent.on_fail_closed(closed, False, "zonefile")
    assert published == [FailClosedChanged(closed, True)]
    agent.on_fail_closed(closed, False, "route53")
    assert published == [FailClosedChanged(closed, True), FailClosedChanged(closed, False)]

    assert [e.kind for e in emitted] == ["fail_closed_engaged", "fail_closed_released"]
    assert describe(emitted[0]) == (
        "FAIL-CLOSED engaged for www.example.test A: every configured address is down "
        "(192.0.2.1) and all_down = fail-closed: all withdrawn, the name answers NODATA for A"
    )
    assert [(h.action, h.target, h.name) for h in offered] == [
        ("fail_closed_engaged", "192.0.2.1", "www.example.test"),
        ("fail_closed_released", "192.0.2.1", "www.example.test"),
    ]
