"""Notification events and message bodies (pure): texts, the three body shapes, the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from goavail.dns.backoff import parse_retry_after  # shared with the DNS providers
from goavail.dns.model import FailOpen
from goavail.notify import events
from goavail.notify.events import Event, render

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def audit(
    action: str = "delete", *, dry_run: bool = False, outcome: str = "applied"
) -> dict[str, Any]:
    return {
        "time": "2026-01-02T03:04:05.678+00:00",
        "provider": "zonefile",
        "name": "www.example.test",
        "type": "A",
        "address": "192.0.2.7",
        "action": action,
        "reason": f"target 192.0.2.7 {'down' if action == 'delete' else 'up'}",
        "dry_run": dry_run,
        "outcome": outcome,
    }


@pytest.mark.parametrize(
    ("action", "dry_run", "outcome", "line"),
    [
        (
            "delete",
            False,
            "applied",
            "DNS: removed www.example.test A 192.0.2.7 at zonefile (target 192.0.2.7 down)",
        ),
        (
            "create",
            False,
            "applied",
            "DNS: added www.example.test A 192.0.2.7 at zonefile (target 192.0.2.7 up)",
        ),
        (
            "delete",
            True,
            "planned",
            "DNS (DRY-RUN): would remove www.example.test A 192.0.2.7 at zonefile "
            "(target 192.0.2.7 down)",
        ),
        (
            "create",
            True,
            "planned",
            "DNS (DRY-RUN): would add www.example.test A 192.0.2.7 at zonefile "
            "(target 192.0.2.7 up)",
        ),
    ],
)
def test_dns_change_lines(action: str, dry_run: bool, outcome: str, line: str) -> None:
    event = events.dns_change(audit(action, dry_run=dry_run, outcome=outcome))
    assert event is not None
    assert events.describe(event) == line
    assert event.to_json() == {
        "kind": "dns_change",
        "time": "2026-01-02T03:04:05.678+00:00",
        "target": "192.0.2.7",
        "name": "www.example.test",
        "type": "A",
        "action": action,
        "reason": audit(action)["reason"],
        "dry_run": dry_run,
        "outcome": outcome,
        "provider": "zonefile",
    }


@pytest.mark.parametrize("outcome", ["already-done", "error"])
def test_changes_not_made_are_not_notified(outcome: str) -> None:
    assert events.dns_change(audit(outcome=outcome)) is None


def test_other_event_lines() -> None:
    case = FailOpen("www.example.test", "A", ("192.0.2.1", "192.0.2.2"))
    engaged = events.fail_open(case, engaged=True, now=NOW)
    assert engaged.kind == "fail_open_engaged"
    assert engaged.time == "2026-01-02T03:04:05.678+00:00"
    assert events.describe(engaged) == (
        "FAIL-OPEN engaged for www.example.test A: every configured address is down; "
        "keeping all of them in DNS (192.0.2.1, 192.0.2.2)"
    )
    released = events.fail_open(case, engaged=False, now=NOW)
    assert events.describe(released) == "fail-open released for www.example.test A"
    unmet = events.quorum(unmet=True, live=0, needed=2, unmet_for=60.04, now=NOW)
    assert unmet.to_json() == {
        "kind": "quorum_unmet",
        "time": "2026-01-02T03:04:05.678+00:00",
        "live_peers": 0,
        "min_peers_agree": 2,
        "unmet_for": 60.0,
    }
    assert events.describe(unmet) == (
        "QUORUM UNMET for 60s: 0 live peer(s), min_peers_agree = 2: no DNS change can be made"
    )
    restored = events.quorum(unmet=False, live=2, needed=2, unmet_for=75.5, now=NOW)
    assert events.describe(restored) == "quorum restored: 2 live peer(s) (was unmet for 75.5s)"
    started = events.agent(
        started=True,
        version="1.2.3",
        dry_run=True,
        provider="cloudflare",
        targets=3,
        names=["www.example.com", "example.com"],
        now=NOW,
    )
    assert events.describe(started) == (
        "goavail 1.2.3 started in DRY-RUN (no DNS change is made): 3 targets, "
        "names www.example.com, example.com, provider cloudflare"
    )
    stopped = events.agent(
        started=False, version="1.2.3", dry_run=False, provider="x", targets=1, names=[], now=NOW
    )
    assert (stopped.kind, events.describe(stopped)) == ("agent_stopped", "goavail 1.2.3 stopping")


def change(i: int) -> Event:
    event = events.dns_change({**audit(), "address": f"192.0.2.{i}", "reason": "down"})
    assert event is not None
    return event


def test_slack_and_mattermost_bodies() -> None:
    one = [change(1)]
    assert render("slack", one, agent="a1", version="1") == {
        "text": "[goavail a1] DNS: removed www.example.test A 192.0.2.1 at zonefile (down)"
    }
    assert render("mattermost", one, agent="a1", version="1", channel="ops", username="bot") == {
        "text": "[goavail a1] DNS: removed www.example.test A 192.0.2.1 at zonefile (down)",
        "channel": "ops",
        "username": "bot",
    }


def test_webhook_body_has_every_event() -> None:
    batch = [change(i) for i in range(1, 31)]
    body = render("webhook", batch, agent="a1", version="9.9", dropped=4)
    assert set(body) == {"agent", "version", "text", "dropped", "events"}
    assert (body["agent"], body["version"], body["dropped"]) == ("a1", "9.9", 4)
    assert [e["target"] for e in body["events"]] == [f"192.0.2.{i}" for i in range(1, 31)]
    assert body["text"].splitlines()[-1] == (
        "(4 earlier event(s) not sent: the notification queue was full)"
    )


def test_text_is_capped() -> None:
    batch = [change(i) for i in range(1, 201)]
    lines = events.text(batch, agent="a1").splitlines()
    assert lines[0] == "[goavail a1] 200 events:"
    assert lines[1] == "• DNS: removed www.example.test A 192.0.2.1 at zonefile (down)"
    assert lines[20] == "• DNS: removed www.example.test A 192.0.2.20 at zonefile (down)"
    assert lines[21:] == ["... and 180 more"]


def test_empty_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        render("slack", [], agent="a", version="1")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("30", 30.0),
        (" 0 ", 0.0),
        ("soon", None),
        ("-5", None),
        ((NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 89.322),
        ((NOW - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    result = parse_retry_after(value, NOW)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_name_conflict_lines() -> None:
    lost = events.name_conflict(node="web1", other="192.0.2.2:7946", serf_quit=True, now=NOW)
    assert lost.to_json() == {
        "kind": "name_conflict",
        "time": "2026-01-02T03:04:05.678+00:00",
        "node": "web1",
        "other": "192.0.2.2:7946",
        "serf_quit": True,
    }
    assert events.describe(lost) == (
        "NODE NAME CONFLICT: node name 'web1' is also used by the node at 192.0.2.2:7946 "
        "(its Serf quit: this agent is out of the cluster); give each agent a unique node_name"
    )
    resolved = events.name_conflict(node="web1", other=None, serf_quit=False, now=NOW)
    assert resolved.kind == "name_conflict_resolved"
    assert events.describe(resolved) == "node name conflict of 'web1' resolved"
