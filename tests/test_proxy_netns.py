"""The failover proxy (goavail/proxy/) against real TCP servers on 127.x addresses, with
real check and trigger scripts, in the test session's private network namespace.

The order of events is read from one log file that the check script, the triggers
and the backends append to: a backend writes ``conn <backend>`` when a relayed
client's first line arrives (the selection's own connect sends nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from goavail.config import CheckSection, ProxySection
from goavail.proxy.relay import SPLICE_AVAILABLE
from goavail.proxy.service import Proxy

pytestmark = pytest.mark.netns

A, B = "127.0.0.2:7001", "127.0.0.3:7001"
LISTEN = ("127.0.0.1", 7000)
MODES = ["splice", "stream"] if SPLICE_AVAILABLE else ["stream"]


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def clear(log: Path) -> None:
    log.write_text("")


def running_pid(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


class Backend:
    """A line server on ``host:port``: answers each client's first line with its own
    address, after logging ``conn <address>``; :meth:`stop` kills it (and its
    connections)."""

    def __init__(self, address: str, log: Path) -> None:
        self.address = address
        self.log = log
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Backend:
        host, port = self.address.rsplit(":", 1)
        self.server = await asyncio.start_server(self._client, host, int(port))
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            line = await reader.readline()
            if line:
                with self.log.open("a") as f:
                    f.write(f"conn {self.address}\n")
                writer.write(self.address.encode() + b"\n")
                await writer.drain()
                await reader.read()  # until the client's FIN
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()


async def ask() -> str:
    """One client through the proxy: the backend that answered."""
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection(*LISTEN)
        try:
            writer.write(b"hello\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    checks: list[CheckSection] | None = None, **settings: Any
) -> AsyncIterator[Proxy]:
    section = ProxySection.model_validate(
        {"listen": f"{LISTEN[0]}:{LISTEN[1]}", "hosts": [A, B], **settings}
        | ({"checks": [c.id for c in checks]} if checks else {})
    )
    proxy = Proxy(section, checks or [])
    await proxy.start()
    task = asyncio.create_task(proxy.run())
    try:
        await until(lambda: proxy.view().phase == "serving")
        yield proxy
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxy.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


@pytest.fixture
def triggers(tmp_path: Path, log: Path) -> Path:
    directory = tmp_path / "triggers.d"
    directory.mkdir()
    script(directory / "10-log", f'echo "trigger $1" >> {log}\n')
    script(directory / "20-fails", "echo 'cannot reach the pager' >&2\nexit 3\n")
    script(directory / "30-log-again", f'echo "trigger-2 $1" >> {log}\n')
    return directory


async def test_failover_relays_to_the_next_backend_only_after_check_and_triggers(
    tmp_path: Path, log: Path, triggers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    check = script(tmp_path / "check", f'echo "check $1" >> {log}\nsleep 0.2\nexit 0\n')
    backend_a, backend_b = await Backend(A, log).start(), await Backend(B, log).start()
    caplog.set_level(logging.INFO, logger="goavail.proxy")
    async with running(check=[str(check)], on_failover=str(triggers)) as proxy:
        assert await ask() == A
        assert lines(log) == [f"check {A}", f"trigger {A}", f"trigger-2 {A}", f"conn {A}"]
        clear(log)
        await backend_a.stop()  # the primary dies
        answers = await asyncio.gather(*(ask() for _ in range(5)))
        assert answers == [B] * 5
        events = lines(log)
        assert events[:3] == [f"check {B}", f"trigger {B}", f"trigger-2 {B}"], events
        assert events[3:] == [f"conn {B}"] * 5  # none before the check and the triggers
        view = proxy.view()
        assert (view.primary, view.failovers, view.selections) == (B, 1, 2)
        assert view.backends[1].primary and not view.backends[0].primary
    # the failing trigger was a warning, and the next trigger still ran
    failed = [r for r in caplog.records if "20-fails failed" in r.getMessage()]
    assert [r.levelname for r in failed] == ["WARNING", "WARNING"]
    assert "exit status 3: cannot reach the pager" in failed[-1].getMessage()
    await backend_b.stop()


async def test_a_hanging_check_is_timed_out_and_counts_as_failed(
    tmp_path: Path, log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "check.pid"
    check = script(
        tmp_path / "check",
        f'if [ "$1" = "{A}" ]; then echo $$ > {pid_file}; exec sleep 600; fi\nexit 0\n',
    )
    backends = [await Backend(A, log).start(), await Backend(B, log).start()]
    caplog.set_level(logging.INFO, logger="goavail.proxy")
    async with running(check=[str(check)], check_timeout=0.5) as proxy:
        assert proxy.view().primary == B
        assert await ask() == B
    assert any(f"{A} discarded: the check timeout" in r.getMessage() for r in caplog.records)
    hung = int(pid_file.read_text())
    assert not running_pid(hung)  # killed with its process group, and reaped
    for backend in backends:
        await backend.stop()


async def test_the_old_primary_coming_back_does_not_take_over(log: Path) -> None:
    backend_a, backend_b = await Backend(A, log).start(), await Backend(B, log).start()
    async with running() as proxy:
        assert await ask() == A
        await backend_a.stop()
        assert await ask() == B
        backend_a = await Backend(A, log).start()  # back
        assert [await ask() for _ in range(3)] == [B] * 3
        assert proxy.view().failovers == 1
        await backend_b.stop()  # only when B fails does A serve again
        assert await ask() == A
        assert proxy.view().failovers == 2
    await backend_a.stop()


def tcp_check(**extra: Any) -> CheckSection:
    return CheckSection.model_validate(
        {"id": "port", "type": "tcp", "port": 7001, "interval": 0.2, "timeout": 0.2,
         "fall": 2, "rise": 2, **extra}
    )  # fmt: skip


async def test_with_checks_and_failback_the_earlier_backend_returns(log: Path) -> None:
    backend_a, backend_b = await Backend(A, log).start(), await Backend(B, log).start()
    async with running(checks=[tcp_check()], failback=True) as proxy:
        await until(lambda: proxy.verdicts.get(A) is not None and str(proxy.verdicts[A]) == "up")
        assert await ask() == A
        await backend_a.stop()
        # the checks judge A down (fall = 2) and the proxy fails over without a client
        await until(lambda: proxy.view().primary == B)
        assert await ask() == B
        backend_a = await Backend(A, log).start()
        await until(lambda: proxy.view().primary == A)  # rise = 2, then failback
        assert await ask() == A
        assert proxy.view().failovers == 2
    await backend_a.stop()
    await backend_b.stop()


async def test_one_failed_probe_does_not_fail_over(tmp_path: Path, log: Path) -> None:
    flag = tmp_path / "fail-once"
    probe = script(
        tmp_path / "probe",
        f'if [ "$1" = 127.0.0.2 ] && [ -e {flag} ]; then rm -f {flag}; exit 1; fi\nexit 0\n',
    )
    check = CheckSection.model_validate(
        {"id": "flappy", "type": "script", "command": [str(probe)], "interval": 0.3,
         "timeout": 0.3, "fall": 3, "rise": 1}
    )  # fmt: skip
    backends = [await Backend(A, log).start(), await Backend(B, log).start()]
    async with running(checks=[check]) as proxy:
        await until(lambda: str(proxy.verdicts.get(A)) == "up")
        flag.touch()
        await until(lambda: not flag.exists())  # A's probe failed once
        await asyncio.sleep(0.5)  # a few more rounds, all passing
        assert (proxy.view().primary, proxy.view().selections) == (A, 1)
        assert await ask() == A
    for backend in backends:
        await backend.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_half_close_each_direction_keeps_flowing(mode: str) -> None:
    """The client's FIN reaches the backend while the backend's answer still flows back,
    and the other way round."""
    got: list[bytes] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # until the client's FIN arrives through the proxy
        if not request:  # the selection's own connect
            writer.close()
            return
        got.append(request)
        for i in range(50):  # answer long after the FIN
            writer.write(b"%d:" % i + request[::-1] * 100)
            await writer.drain()
        writer.write_eof()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(backend, "127.0.0.2", 7001)
    async with running(relay=mode):
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection(*LISTEN)
            writer.write(b"abc" * 10_000)
            writer.write_eof()  # half-close: we are done sending
            answer = await reader.read()  # still flows
            writer.close()
    expected = b"".join(b"%d:" % i + (b"abc" * 10_000)[::-1] * 100 for i in range(50))
    assert got == [b"abc" * 10_000]
    assert answer == expected
    server.close()

    # the backend half-closes first; the client keeps sending and the backend still reads
    received: list[bytes] = []

    async def early_fin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(b"banner\n")
            writer.write_eof()
            if data := await reader.read():
                received.append(data)
        writer.close()

    server = await asyncio.start_server(early_fin, "127.0.0.2", 7001)
    async with running(relay=mode):
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection(*LISTEN)
            assert await reader.read() == b"banner\n"  # the FIN arrived
            for _ in range(100):
                writer.write(b"x" * 10_000)
                await writer.drain()
            writer.write_eof()
            await until(lambda: bool(received))
            writer.close()
    assert received == [b"x" * 1_000_000]
    server.close()


async def test_drain_closes_connections_to_the_former_primary(log: Path) -> None:
    backend_a, backend_b = await Backend(A, log).start(), await Backend(B, log).start()
    async with running(drain=0.3) as proxy:
        reader, writer = await asyncio.open_connection(*LISTEN)
        writer.write(b"hello\n")
        assert await reader.readline() == (A + "\n").encode()
        # A stops accepting, but the established connection lives on
        assert backend_a.server is not None
        backend_a.server.close()
        assert await ask() == B
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed by the drain deadline
        writer.close()
        assert proxy.view().backends[0].active == 0
    await backend_a.stop()
    await backend_b.stop()


async def test_the_connection_limit_holds_the_rest_in_the_backlog(log: Path) -> None:
    backends = [await Backend(A, log).start(), await Backend(B, log).start()]
    async with running(max_connections=2) as proxy:
        held = [await asyncio.open_connection(*LISTEN) for _ in range(2)]
        for reader, writer in held:
            writer.write(b"hello\n")
            assert await reader.readline() == (A + "\n").encode()
        third: asyncio.Task[str] = asyncio.ensure_future(ask())
        await asyncio.sleep(0.3)
        assert not third.done()  # the kernel completed its handshake; the proxy waits
        assert (proxy.view().active, proxy.view().total) == (2, 2)
        held[0][1].close()
        assert await third == A
    for _, writer in held:
        writer.close()
    for backend in backends:
        await backend.stop()
