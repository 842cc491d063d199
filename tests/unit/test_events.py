"""The event bus: the agent publishes typed events once; the notifier and the hooks
subscribe (no network: the agent is composed, not started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.compose import compose, load_checked
from goavail.dns.model import FailOpen
from goavail.events import AgentEvent, AuditRecorded, Bus, FailOpenChanged, QuorumChanged
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
