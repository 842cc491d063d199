"""The heartbeat against real HTTP receivers on 127.0.0.1: GETs at start and every
interval, failures counted and logged but never fatal, reconfiguration on reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from pydantic import SecretStr

from goavail.config import HeartbeatSection
from goavail.heartbeat import Heartbeat
from tests.receiver import HANG, Receiver, Reply


def section(url: str, interval: float = 0.2, timeout: float = 0.1) -> HeartbeatSection:
    return HeartbeatSection(url=SecretStr(url), interval=interval, timeout=timeout)


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


def last_error(heartbeat: Heartbeat) -> str | None:
    """Read ``last_error`` (a call, so mypy does not keep an earlier narrowing)."""
    return heartbeat.last_error


@asynccontextmanager
async def running(heartbeat: Heartbeat) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(heartbeat.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_beats_at_start_and_every_interval() -> None:
    async with Receiver() as receiver:
        heartbeat = Heartbeat(section(receiver.url("/ping/abc"), interval=0.2))
        async with running(heartbeat):
            requests = await receiver.wait_for(lambda r: len(r) >= 4)
    assert all((r.method, r.path) == ("GET", "/ping/abc") for r in requests)
    assert heartbeat.ok >= 4 and heartbeat.failed == 0
    assert heartbeat.last_ok is not None and heartbeat.last_error is None


async def test_failures_are_counted_logged_and_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "goavail.heartbeat")
    token = "/ping/secret-uuid-1234"
    async with Receiver([Reply(500), HANG]) as receiver:
        heartbeat = Heartbeat(section(receiver.url(token), interval=0.2, timeout=0.1))
        async with running(heartbeat) as task:
            await until(lambda: heartbeat.failed == 2)
            assert heartbeat.last_error == "no answer within 0.1s"
            await until(lambda: heartbeat.ok >= 1)
            assert not task.done()
            assert last_error(heartbeat) is None
    failures = [m for m in caplog.messages if "failed" in m]
    assert failures[0] == "heartbeat to 127.0.0.1 failed (HTTP 500); next in 0.2s"
    assert failures[1] == "heartbeat to 127.0.0.1 failed (no answer within 0.1s); next in 0.2s"
    assert "heartbeat to 127.0.0.1 answered again" in caplog.messages
    assert token not in caplog.text


async def test_connection_refused_is_a_failure() -> None:
    receiver = await Receiver().start()
    await receiver.close()
    heartbeat = Heartbeat(section(receiver.url(), interval=0.1, timeout=0.1))
    async with running(heartbeat) as task:
        await until(lambda: heartbeat.failed >= 2)
        assert not task.done()
    assert heartbeat.ok == 0
    assert heartbeat.last_error is not None and heartbeat.last_error.startswith("ConnectError")


async def test_reconfigure_switches_url_and_turns_off() -> None:
    async with Receiver() as old, Receiver() as new:
        heartbeat = Heartbeat(None)  # no [Heartbeat] at start
        async with running(heartbeat):
            heartbeat.reconfigure(section(old.url(), interval=30))
            await old.wait_for(lambda r: len(r) == 1)
            heartbeat.reconfigure(section(new.url(), interval=30))  # beats at once
            await new.wait_for(lambda r: len(r) == 1)
            heartbeat.reconfigure(section(new.url(), interval=30))  # unchanged: no extra beat
            heartbeat.reconfigure(None)
            await asyncio.sleep(0.3)
        assert (len(old.requests), len(new.requests)) == (1, 1)
    assert heartbeat.ok == 2
