"""Real ``serf agent`` children and the asyncio RPC client, inside the test namespace.

Agents bind to 127.40.0.1-3 port 7946 in the private network namespace of the
test session (see tests/netns.py), so their gossip never leaves it. The
``local`` timing profile keeps failure detection within seconds; every wait
polls against a generous deadline. The ``cluster`` fixture stops, kills and
reaps every child it started, even when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import re
import signal
import stat
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from goavail.cluster.serf_agent import SerfAgent, SerfAgentError, serf_version
from goavail.cluster.serf_rpc import (
    EventStream,
    Member,
    MemberEvent,
    SerfConnectionError,
    SerfRPC,
    SerfRPCError,
    StreamEvent,
    UserEvent,
)

pytestmark = pytest.mark.netns

ADDRS = ("127.40.0.1", "127.40.0.2", "127.40.0.3")
PORT = 7946
NAMES = ("serf-a", "serf-b", "serf-c")
WAIT = 30.0  # seconds: generous deadline for anything gossip has to spread
T = TypeVar("T")


def gossip_key() -> str:
    """A fresh Serf encryption key (what ``serf keygen`` prints)."""
    return base64.b64encode(os.urandom(32)).decode()


async def wait_until(
    check: Callable[[], Awaitable[T | None]], what: str, within: float = WAIT
) -> T:
    """Poll ``check`` every 0.2 s until it returns something truthy; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {within} s waiting for {what} (last: {last!r})")


async def next_event(
    stream: EventStream, match: Callable[[StreamEvent], bool], within: float = WAIT
) -> StreamEvent:
    """The next event of ``stream`` that ``match`` accepts (earlier ones are skipped)."""
    seen: list[StreamEvent] = []
    try:
        async with asyncio.timeout(within):
            async for event in stream:
                if match(event):
                    return event
                seen.append(event)
    except TimeoutError:
        pass
    pytest.fail(f"no matching event within {within} s; saw {seen!r}")


def member_event(kind: str, name: str) -> Callable[[StreamEvent], bool]:
    """Matcher for a ``kind`` membership event that concerns node ``name``."""

    def match(event: StreamEvent) -> bool:
        return (
            isinstance(event, MemberEvent)
            and event.event == kind
            and any(m.name == name for m in event.members)
        )

    return match


async def statuses(client: SerfRPC) -> dict[str, str]:
    """Node name -> status, as the agent behind ``client`` sees the cluster."""
    return {m.name: m.status for m in await client.members()}


def alive_set(names: Sequence[str]) -> Callable[[dict[str, str]], bool]:
    def check(view: dict[str, str]) -> bool:
        return view == dict.fromkeys(names, "alive")

    return check


def process_gone(pid: int) -> bool:
    """True when no process ``pid`` exists (exited and reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def serf_running_in(directory: Path) -> list[str]:
    """Pids of serf processes whose command line names ``directory``."""
    found = subprocess.run(
        ["pgrep", "-f", re.escape(str(directory))], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


class Cluster:
    """Starts serf agents for one test and always cleans them up."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.agents: list[SerfAgent] = []
        self.clients: list[SerfRPC] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.pids: set[int] = set()

    async def start(
        self,
        index: int,
        *,
        join: Sequence[int] = (),
        key: str | None = None,
        supervise: bool = False,
        on_restart: Callable[[], None] | None = None,
    ) -> SerfAgent:
        """Start agent ``index`` (0-2) on ADDRS[index], joining the agents ``join``."""
        agent = SerfAgent(
            node_name=NAMES[index],
            bind=f"{ADDRS[index]}:{PORT}",
            advertise=None,
            join=[f"{ADDRS[i]}:{PORT}" for i in join],
            gossip_key=key,
            profile="local",
            state_dir=self.tmp_path / NAMES[index],
            tags={"role": "test", "index": str(index)},
            on_restart=on_restart,
        )
        self.agents.append(agent)
        await agent.start()
        assert agent.pid is not None
        self.pids.add(agent.pid)
        if supervise:
            self.tasks.append(asyncio.create_task(agent.run()))
        return agent

    async def client(self, agent: SerfAgent) -> SerfRPC:
        """A connected, authenticated RPC client for ``agent``."""
        client = await SerfRPC.connect(agent.rpc_host, agent.rpc_port, agent.rpc_auth)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()
        try:
            await asyncio.gather(
                *(agent.stop(grace=1.0, leave_timeout=3.0) for agent in self.agents),
                return_exceptions=True,
            )
        finally:
            for agent in self.agents:
                if agent.pid is not None:
                    self.pids.add(agent.pid)
            for pid in self.pids:  # last resort: nothing may outlive the test
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        await c.close()


async def test_three_agents_join_and_user_events_reach_the_others(cluster: Cluster) -> None:
    a = await cluster.start(0)
    b = await cluster.start(1, join=[0])
    c = await cluster.start(2, join=[0, 1])
    clients = [await cluster.client(agent) for agent in (a, b, c)]
    for client in clients:
        await wait_until(functools.partial(_alive_view, client, NAMES), "all alive")

    members = {m.name: m for m in await clients[1].members()}
    for i, name in enumerate(NAMES):
        assert members[name] == Member(
            name=name,
            addr=ADDRS[i],
            port=PORT,
            tags={"role": "test", "index": str(i)},
            status="alive",
        )

    streams = [await clients[i].stream("user,member-join") for i in (1, 2)]
    payload = b"\x00\xff\xfe goavail \x80\xc3(" + bytes(range(256))
    await clients[0].user_event("goavail-test", payload)
    for stream in streams:
        event = await next_event(stream, lambda e: isinstance(e, UserEvent))
        assert isinstance(event, UserEvent)
        assert (event.name, event.payload, event.coalesce) == ("goavail-test", payload, False)
        assert event.ltime >= 0
        await stream.aclose()
        assert [e async for e in stream] == []  # a closed stream ends the iteration

    # the connection still works after the streams were stopped
    assert len(await clients[2].members()) == 3


async def _alive_view(client: SerfRPC, names: Sequence[str]) -> dict[str, str] | None:
    view = await statuses(client)
    return view if alive_set(names)(view) else None


async def test_rpc_auth_and_secrets(cluster: Cluster) -> None:
    key = gossip_key()
    a = await cluster.start(0, key=key)

    with pytest.raises(SerfRPCError) as refused:
        await SerfRPC.connect(a.rpc_host, a.rpc_port, "not-the-key")
    assert refused.value.error == "Invalid authentication token"
    assert "not-the-key" not in str(refused.value)

    anonymous = await SerfRPC.connect(a.rpc_host, a.rpc_port, None)
    try:
        with pytest.raises(SerfRPCError, match="Authentication required"):
            await anonymous.members()
    finally:
        await anonymous.close()

    client = await cluster.client(a)
    assert [m.name for m in await client.members()] == [NAMES[0]]

    # secrets are in a 0600 file in a 0700 directory, not on the command line
    assert a.pid is not None and a.state_dir is not None
    cmdline = (await asyncio.to_thread(Path(f"/proc/{a.pid}/cmdline").read_bytes)).decode()
    assert a.rpc_auth not in cmdline and key not in cmdline
    assert stat.S_IMODE(a.state_dir.stat().st_mode) == 0o700
    config = a.state_dir / "serf.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert a.rpc_auth in config.read_text()

    # a second agent on the same gossip address cannot start: a clear error
    clash = SerfAgent(node_name="clash", bind=f"{ADDRS[0]}:{PORT}", profile="local")
    with pytest.raises(SerfAgentError, match="exited with code"):
        await clash.start()
    assert clash.pid is not None and process_gone(clash.pid)


async def test_missing_binary_and_version() -> None:
    assert re.match(r"\d+\.\d+", serf_version())
    with pytest.raises(SerfAgentError, match="apt-get install serf"):
        serf_version("/nonexistent/serf")
    agent = SerfAgent(node_name="x", bind=f"{ADDRS[0]}:{PORT}", serf_binary="no-such-serf")
    with pytest.raises(SerfAgentError, match="apt-get install serf"):
        await agent.start()


async def test_leave_is_seen_as_left_and_stop_reaps(cluster: Cluster) -> None:
    a = await cluster.start(0)
    b = await cluster.start(1, join=[0])
    watcher = await cluster.client(a)
    await wait_until(lambda: _alive_view(watcher, NAMES[:2]), "both members alive")
    stream = await watcher.stream("member-leave,member-failed")

    b_pid = b.pid
    assert b_pid is not None and b.state_dir is not None
    await b.stop()
    assert not b.running and process_gone(b_pid)
    assert serf_running_in(b.state_dir) == []

    event = await next_event(stream, member_event("member-leave", NAMES[1]))
    assert isinstance(event, MemberEvent)
    assert [(m.name, m.status) for m in event.members] == [(NAMES[1], "left")]
    assert (await statuses(watcher))[NAMES[1]] == "left"

    await b.stop()  # idempotent
    a_pid = a.pid
    assert a_pid is not None and a.state_dir is not None
    await a.stop()
    assert process_gone(a_pid) and serf_running_in(a.state_dir) == []
    await asyncio.wait_for(watcher.wait_closed(), WAIT)


async def test_killed_agent_is_seen_as_failed(cluster: Cluster) -> None:
    a = await cluster.start(0)
    b = await cluster.start(1, join=[0])
    watcher = await cluster.client(a)
    b_client = await cluster.client(b)
    await wait_until(lambda: _alive_view(watcher, NAMES[:2]), "both members alive")
    stream = await watcher.stream("member-failed,member-leave")
    b_stream = await b_client.stream("user")

    assert b.pid is not None
    os.kill(b.pid, signal.SIGKILL)

    # b's RPC connection is gone: the client says so, its stream raises
    await asyncio.wait_for(b_client.wait_closed(), WAIT)
    assert isinstance(b_client.close_reason, SerfConnectionError)
    with pytest.raises(SerfConnectionError):
        await anext(b_stream)
    with pytest.raises(SerfConnectionError):
        await b_client.members()

    event = await next_event(stream, lambda e: isinstance(e, MemberEvent))
    assert event == MemberEvent(event="member-failed", members=[_only(event, NAMES[1])])
    assert (await statuses(watcher))[NAMES[1]] == "failed"
    assert not b.running and b.restarts == 0  # nobody supervises b


def _only(event: StreamEvent, name: str) -> Member:
    assert isinstance(event, MemberEvent) and len(event.members) == 1
    member = event.members[0]
    assert member.name == name and member.status == "failed"
    return member


async def test_supervised_agent_restarts_and_rejoins(cluster: Cluster) -> None:
    restarts: list[int] = []
    a = await cluster.start(0)
    b = await cluster.start(1, join=[0], supervise=True, on_restart=lambda: restarts.append(1))
    watcher = await cluster.client(a)
    await wait_until(lambda: _alive_view(watcher, NAMES[:2]), "both members alive")

    old_pid = b.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    await asyncio.wait_for(b.restarted.wait(), WAIT)
    assert b.restarts == 1 and restarts == [1]
    assert b.pid is not None and b.pid != old_pid and b.running
    cluster.pids.add(b.pid)
    assert process_gone(old_pid)

    b_client = await cluster.client(b)  # same RPC address and key after the restart
    await wait_until(lambda: _alive_view(b_client, NAMES[:2]), "b rejoined (its view)")
    await wait_until(lambda: _alive_view(watcher, NAMES[:2]), "b alive again (a's view)")

    supervisor = cluster.tasks[0]
    await b.stop()
    await asyncio.wait_for(supervisor, WAIT)  # stop() ends the supervision, no restart
    assert b.restarts == 1 and not b.running


async def test_gossip_encryption(cluster: Cluster) -> None:
    key = gossip_key()
    a = await cluster.start(0, key=key)
    b = await cluster.start(1, join=[0], key=key)
    c = await cluster.start(2, join=[0], key=gossip_key())
    a_client, b_client, c_client = [await cluster.client(x) for x in (a, b, c)]
    await wait_until(lambda: _alive_view(a_client, NAMES[:2]), "a and b joined (a's view)")
    await wait_until(lambda: _alive_view(b_client, NAMES[:2]), "a and b joined (b's view)")

    # c keeps retrying every 2 s; give it a few rounds, then it must still be alone
    await wait_until(lambda: _failed_join_logged(c), "c logging a failed join")
    await asyncio.sleep(4.5)
    assert NAMES[2] not in await statuses(a_client)
    assert NAMES[2] not in await statuses(b_client)
    assert await statuses(c_client) == {NAMES[2]: "alive"}


async def _failed_join_logged(agent: SerfAgent) -> list[str]:
    return [line for line in agent.recent_output if "join" in line.lower()]
