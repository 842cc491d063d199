"""Notification sinks and the notifier against real HTTP receivers on 127.0.0.1.

Every test posts through httpx to an aiohttp server (:mod:`tests.receiver`) and
reads back what it received: payload shapes per type, retries after 5xx and a
429 with Retry-After, bounded queues, coalescing of a burst, flushing at stop,
a receiver that never answers, and the notifier's hooks (audit records, fail-open,
quorum, reload).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from goavail.config import Config, load_config
from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record
from goavail.dns.providers.memory import MemoryProvider
from goavail.dns.reconcile import Reconciler
from goavail.health import State
from goavail.notify import Event, Notifier, Sink, SinkSettings
from goavail.notify import events as ev
from goavail.notify.events import SinkType
from tests.receiver import HANG, Receiver, Reply, Request

WWW = "www.example.test"
A1, A2 = "192.0.2.1", "192.0.2.2"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def change_event(i: int, *, dry_run: bool = False) -> Event:
    event = ev.dns_change(
        {
            "time": "2026-01-02T03:04:05.678+00:00",
            "provider": "memory",
            "name": WWW,
            "type": "A",
            "address": f"192.0.2.{i}",
            "action": "delete",
            "reason": f"target 192.0.2.{i} down",
            "dry_run": dry_run,
            "outcome": "planned" if dry_run else "applied",
        }
    )
    assert event is not None
    return event


class Sleeps:
    """Records the delays a sink asks for between retries, and waits a moment only."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)


def make_sink(
    receiver: Receiver,
    sink_type: SinkType = "webhook",
    *,
    window: float = 0.05,
    timeout: float = 2.0,
    retries: int = 3,
    **kwargs: Any,
) -> Sink:
    settings = SinkSettings(
        "notifications[0]",
        sink_type,
        receiver.url(),
        channel=kwargs.pop("channel", None),
        username=kwargs.pop("username", None),
        timeout=timeout,
        retries=retries,
        coalesce_window=window,
    )
    return Sink(settings, agent="agent-1", version="1.0", **kwargs)


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


# -- payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("sink_type", ["slack", "mattermost"])
async def test_chat_payload(client: httpx.AsyncClient, sink_type: SinkType) -> None:
    async with Receiver() as receiver:
        sink = make_sink(receiver, sink_type, channel="#ops", username="goavail-bot")
        sink.start(client)
        sink.offer(change_event(7, dry_run=True))
        (request,) = await receiver.wait_for(lambda r: len(r) == 1)
        await sink.close(2.0)
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "text": "[goavail agent-1] DNS (DRY-RUN): would remove www.example.test A 192.0.2.7 "
        "at memory (target 192.0.2.7 down)",
        "channel": "#ops",
        "username": "goavail-bot",
    }
    assert (sink.stats.events, sink.stats.sent, sink.stats.failed) == (1, 1, 0)


async def test_webhook_payload(client: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        sink = make_sink(receiver, "webhook")
        sink.start(client)
        sink.offer(change_event(7))
        (request,) = await receiver.wait_for(lambda r: len(r) == 1)
        await sink.close(2.0)
    assert request.json == {
        "agent": "agent-1",
        "version": "1.0",
        "text": "[goavail agent-1] DNS: removed www.example.test A 192.0.2.7 at memory "
        "(target 192.0.2.7 down)",
        "dropped": 0,
        "events": [
            {
                "kind": "dns_change",
                "time": "2026-01-02T03:04:05.678+00:00",
                "target": "192.0.2.7",
                "name": WWW,
                "type": "A",
                "action": "delete",
                "reason": "target 192.0.2.7 down",
                "dry_run": False,
                "outcome": "applied",
                "provider": "memory",
            }
        ],
    }


# -- retries ---------------------------------------------------------------------------------


async def test_retries_after_5xx_then_delivers(client: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    async with Receiver([Reply(500), Reply(503), Reply(502)]) as receiver:
        sink = make_sink(receiver, retries=3, sleep=sleeps, jitter=lambda: 0.0)
        sink.start(client)
        sink.offer(change_event(1))
        requests = await receiver.wait_for(lambda r: len(r) == 4)
        await until(lambda: sink.stats.sent == 1)
        await sink.close(2.0)
    assert len({r.body for r in requests}) == 1  # the same message each time
    assert (sink.stats.sent, sink.stats.retried, sink.stats.failed) == (1, 3, 0)
    assert sleeps.delays == [0.5, 1.0, 2.0]  # equal jitter of 1 s doubling, jitter 0


async def test_429_retry_after_is_honoured(client: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    script = [
        Reply(429, {"Retry-After": "7"}, "rate_limited"),
        Reply(429, {"Retry-After": "3600"}, "rate_limited"),
    ]
    async with Receiver(script) as receiver:
        sink = make_sink(receiver, "slack", sleep=sleeps, jitter=lambda: 0.0, max_retry_after=20)
        sink.start(client)
        sink.offer(change_event(1))
        await receiver.wait_for(lambda r: len(r) == 3)
        await until(lambda: sink.stats.sent == 1)
        await sink.close(2.0)
    # waited what the server asked (more than the 0.5 s backoff), a huge value cut to the cap
    assert sleeps.delays == [7.0, 20.0]
    assert (sink.stats.sent, sink.stats.retried) == (1, 2)


async def test_client_errors_are_not_retried(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "goavail.notify")
    async with Receiver(default=Reply(404, body="no_service")) as receiver:
        sink = make_sink(receiver, "slack")
        sink.start(client)
        sink.offer(change_event(1))
        await until(lambda: sink.stats.failed == 1)
        await sink.close(2.0)
        assert len(receiver.requests) == 1
    assert sink.stats.retried == 0
    message = caplog.messages[-1]
    assert (
        "notifications[0] (127.0.0.1) failed after 1 attempt(s): HTTP 404 'no_service'" in message
    )
    assert receiver.url() not in caplog.text  # the URL is a secret; the host is not


async def test_retries_are_bounded(client: httpx.AsyncClient) -> None:
    async with Receiver(default=Reply(500)) as receiver:
        sink = make_sink(receiver, retries=2, sleep=Sleeps())
        sink.start(client)
        sink.offer(change_event(1))
        await until(lambda: sink.stats.failed == 1)
        await sink.close(2.0)
        assert len(receiver.requests) == 3
    assert (sink.stats.sent, sink.stats.retried) == (0, 2)


async def test_connection_refused_is_retried_and_counted(client: httpx.AsyncClient) -> None:
    receiver = await Receiver().start()
    await receiver.close()  # nothing listens on its port any more
    sink = make_sink(receiver, retries=1, sleep=Sleeps())
    sink.start(client)
    sink.offer(change_event(1))
    await until(lambda: sink.stats.failed == 1)
    await sink.close(2.0)
    assert (sink.stats.sent, sink.stats.retried, sink.stats.failed) == (0, 1, 1)


async def test_a_receiver_that_never_answers_times_out(client: httpx.AsyncClient) -> None:
    async with Receiver(default=HANG) as receiver:
        sink = make_sink(receiver, timeout=0.3, retries=1, sleep=Sleeps())
        sink.start(client)
        sink.offer(change_event(1))
        await until(lambda: sink.stats.failed == 1)
        assert len(receiver.requests) == 2
        # the sink is free again: the next event is posted
        sink.offer(change_event(2))
        await receiver.wait_for(lambda r: len(r) == 3)
        await sink.close(0.2)
    assert sink.stats.retried == 1


# -- coalescing and the bounded queue --------------------------------------------------------


async def test_a_burst_is_one_message(client: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        hook = make_sink(receiver, "webhook", window=0.3)
        chat = make_sink(receiver, "slack", window=0.3)
        for sink in (hook, chat):
            sink.start(client)
        for i in range(200):
            hook.offer(change_event(i))
            chat.offer(change_event(i))
        await until(lambda: hook.stats.sent == 1 and chat.stats.sent == 1)
        await hook.close(2.0)
        await chat.close(2.0)
        requests = receiver.requests
    assert len(requests) == 2
    bodies = {("events" in r.json): r.json for r in requests}
    assert [e["target"] for e in bodies[True]["events"]] == [f"192.0.2.{i}" for i in range(200)]
    lines = bodies[False]["text"].splitlines()
    assert lines[0] == "[goavail agent-1] 200 events:"
    assert len(lines) == 22 and lines[-1] == "... and 180 more"
    assert hook.stats.events == 200 and hook.stats.sent == 1


async def test_events_during_a_send_go_in_the_next_message(client: httpx.AsyncClient) -> None:
    async with Receiver([HANG]) as receiver:
        sink = make_sink(receiver, timeout=0.5, retries=0, queue_size=10)
        sink.start(client)
        sink.offer(change_event(0))
        await receiver.wait_for(lambda r: len(r) == 1)  # hangs
        for i in range(1, 26):
            sink.offer(change_event(i))  # never blocks; only the 10 newest are kept
        assert sink.queued == 10
        assert sink.stats.dropped == 15
        requests = await receiver.wait_for(lambda r: len(r) == 2)
        await until(lambda: sink.stats.sent == 1)
        await sink.close(2.0)
    body = requests[1].json
    assert [e["target"] for e in body["events"]] == [f"192.0.2.{i}" for i in range(16, 26)]
    assert body["dropped"] == 15
    assert (sink.stats.events, sink.stats.failed, sink.stats.dropped) == (26, 1, 15)


# -- stop ------------------------------------------------------------------------------------


async def test_close_sends_at_once(client: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        sink = make_sink(receiver, window=3600)  # would wait an hour
        sink.start(client)
        sink.offer(change_event(1))
        async with asyncio.timeout(5):
            await sink.close(5.0)
        assert len(receiver.requests) == 1
    assert sink.stats.sent == 1
    sink.offer(change_event(2))  # after close: dropped, never raises
    assert sink.stats.dropped == 1


async def test_close_gives_up_on_a_hanging_receiver(client: httpx.AsyncClient) -> None:
    async with Receiver(default=HANG) as receiver:
        sink = make_sink(receiver, timeout=30, window=0.01)
        sink.start(client)
        sink.offer(change_event(1))
        await receiver.wait_for(lambda r: len(r) == 1)
        sink.offer(change_event(2))
        async with asyncio.timeout(5):  # bounded by the deadline, not the 30 s timeout
            await sink.close(0.3)
    assert (sink.stats.sent, sink.stats.dropped) == (0, 2)  # in flight + queued


# -- the notifier ----------------------------------------------------------------------------


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "goavail.toml"
    path.write_text(text)
    return load_config(path)


def entry(url: str, sink_type: str = "webhook", window: str = "50ms") -> str:
    return f'[[notifications]]\ntype = "{sink_type}"\nurl = "{url}"\ncoalesce_window = "{window}"\n'


def kinds(requests: list[Request]) -> list[str]:
    return [e["kind"] for r in requests for e in r.json["events"]]


async def test_every_sink_gets_every_event(tmp_path: Path) -> None:
    async with Receiver() as slack, Receiver() as mm, Receiver() as hook:
        text = (
            f'slack_addr = "{slack.url("/services/T0/B0/X")}"\n'
            + entry(mm.url(), "mattermost")
            + entry(hook.url())
        )
        notifier = Notifier(config(tmp_path, text), agent="a1", version="2.0")
        await notifier.start()
        notifier.agent_event(
            started=True, dry_run=False, provider="zonefile", targets=2, names=[WWW]
        )
        await notifier.close(5.0)
    assert set(notifier.stats) == {"slack_addr", "notifications[0]", "notifications[1]"}
    assert all(s.sent == 1 for s in notifier.stats.values())
    (s,) = slack.requests
    assert s.path == "/services/T0/B0/X"
    assert s.json == {
        "text": f"[goavail a1] goavail 2.0 started: 2 targets, names {WWW}, provider zonefile"
    }
    assert mm.requests[0].json == s.json
    (h,) = hook.requests
    assert h.json["events"][0]["kind"] == "agent_started"
    assert h.json["events"][0]["names"] == [WWW]


@pytest.mark.parametrize("dry_run", [True, False])
async def test_dns_changes_through_the_audit_log(tmp_path: Path, dry_run: bool) -> None:
    async with Receiver() as receiver:
        notifier = Notifier(config(tmp_path, entry(receiver.url(), "slack")), agent="a1")
        await notifier.start()
        audit = AuditLog(on_record=notifier.audit_record)
        provider = MemoryProvider(dry_run=dry_run, audit=audit, records=[Record(WWW, "A", A1)])
        outcomes = await provider.apply(
            [
                Change("delete", Record(WWW, "A", A1), f"target {A1} down"),
                Change("create", Record(WWW, "A", A2), f"target {A2} up"),
            ]
        )
        assert all(o.ok for o in outcomes)
        if not dry_run:  # an "already-done" outcome changed nothing: not notified
            await provider.apply([Change("create", Record(WWW, "A", A2), "again")])
            assert audit.recent[-1]["outcome"] == "already-done"
        await notifier.close(5.0)
    texts = [r.json["text"] for r in receiver.requests]
    if dry_run:
        assert texts == [
            "[goavail a1] 2 events:\n"
            f"• DNS (DRY-RUN): would remove {WWW} A {A1} at memory (target {A1} down)\n"
            f"• DNS (DRY-RUN): would add {WWW} A {A2} at memory (target {A2} up)"
        ]
    else:
        assert texts == [
            "[goavail a1] 2 events:\n"
            f"• DNS: removed {WWW} A {A1} at memory (target {A1} down)\n"
            f"• DNS: added {WWW} A {A2} at memory (target {A2} up)"
        ]


async def test_a_broken_listener_never_fails_a_dns_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(entry: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    provider = MemoryProvider(dry_run=False, audit=AuditLog(on_record=broken))
    (outcome,) = await provider.apply([Change("create", Record(WWW, "A", A1), "up")])
    assert outcome.ok
    assert {r.content for r in provider.store.values()} == {A1}
    assert "audit listener failed" in caplog.text


async def test_fail_open_engaged_and_released(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        notifier = Notifier(config(tmp_path, entry(receiver.url())), agent="a1")
        await notifier.start()
        provider = MemoryProvider(
            dry_run=False, audit=AuditLog(), records=[Record(WWW, "A", a) for a in (A1, A2)]
        )
        decisions = {A1: State.DOWN, A2: State.DOWN}
        rec = Reconciler(
            provider,
            names=[WWW],
            addresses=[A1, A2],
            decisions=decisions,
            ttl=60,
            proxied=None,
            resync_interval=60.0,
            on_fail_open=notifier.fail_open,
        )
        await rec.reconcile_once()
        await rec.reconcile_once()  # still engaged: not told twice
        decisions[A2] = State.UP
        await rec.reconcile_once()
        await notifier.close(5.0)
    events = [e for r in receiver.requests for e in r.json["events"]]
    assert [(e["kind"], e["name"], e["type"], e["kept"]) for e in events] == [
        ("fail_open_engaged", WWW, "A", [A1, A2]),
        ("fail_open_released", WWW, "A", [A1, A2]),
    ]


async def test_quorum_alert_after_a_while_and_restored(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        text = 'quorum_alert_after = "300ms"\n' + entry(receiver.url())
        notifier = Notifier(config(tmp_path, text), agent="a1")
        await notifier.start()
        # a short loss of quorum (shorter than quorum_alert_after) is not notified
        notifier.quorum(True, 0, 1)
        notifier.quorum(False, 1, 1)
        # a long one is, once, and its end too
        notifier.quorum(True, 0, 2)
        notifier.quorum(True, 1, 2)  # a peer came back, still short of 2
        await until(lambda: notifier.quorum_alerts == 1)
        notifier.quorum(True, 1, 2)
        notifier.quorum(False, 2, 2)
        await notifier.close(5.0)
    events = [e for r in receiver.requests for e in r.json["events"]]
    assert [(e["kind"], e["live_peers"], e["min_peers_agree"]) for e in events] == [
        ("quorum_unmet", 1, 2),
        ("quorum_restored", 2, 2),
    ]
    assert events[0]["unmet_for"] >= 0.3
    assert notifier.quorum_alerts == 1


async def test_reconfigure_keeps_unchanged_sinks_and_replaces_others(tmp_path: Path) -> None:
    async with Receiver() as a, Receiver() as b, Receiver() as c:
        notifier = Notifier(config(tmp_path, entry(a.url()) + entry(b.url())), agent="a1")
        await notifier.start()
        kept = notifier.sinks["notifications[0]"]
        notifier.emit(change_event(1))
        await until(lambda: len(a.requests) == 1 and len(b.requests) == 1)
        notifier.reconfigure(config(tmp_path, entry(a.url()) + entry(c.url())))
        assert notifier.sinks["notifications[0]"] is kept
        notifier.emit(change_event(2))
        await notifier.close(5.0)
    assert [len(r.requests) for r in (a, b, c)] == [2, 1, 1]
    assert c.requests[0].json["events"][0]["target"] == "192.0.2.2"
    assert notifier.stats["notifications[1]"].sent == 2  # counters carry over a reload


async def test_no_sinks_no_work(tmp_path: Path) -> None:
    notifier = Notifier(config(tmp_path, ""), agent="a1")
    await notifier.start()
    notifier.agent_event(started=True, dry_run=True, provider="x", targets=0, names=[])
    notifier.audit_record({"outcome": "applied"})
    await notifier.close(1.0)
    assert notifier.sinks == {} and notifier.stats == {}
