"""Start and supervise goavail's own ``serf agent`` child process.

The child gets its secrets (the RPC auth key, made here at random, and the
gossip encryption key) through a JSON config file of mode 0600 in a private
state directory, never on the command line where ``ps`` would show them. It
joins its peers with ``-retry-join`` every 2 s until they answer, logs at
``warn`` level, and its output lines are forwarded to the ``goavail.serf``
logger.

Life cycle: :meth:`SerfAgent.start` spawns the child (own process group) and
waits until its RPC answers; :meth:`SerfAgent.run` supervises it, restarting
it with backoff when it dies; :meth:`SerfAgent.stop` makes it leave the cluster
gracefully, then terminates and reaps it.

Node-name conflicts: when another member claims this node's name, Serf logs
``[ERR] serf: Node name conflicts with another node at ADDR. Names must be
unique!`` and resolves it by a vote; the loser logs ``minority in name conflict
resolution, quitting`` and its agent exits (with two agents of one name both
lose). The output reader spots both lines (:class:`NameConflict`,
``on_name_conflict``); a child that quit over a conflict is started again only
after :data:`NAME_CONFLICT_RETRY` seconds (joining at once would only knock a
member out again), and the conflict counts as resolved once a child has run
:data:`NAME_CONFLICT_CLEAR` seconds without a new one. Checked against serf
0.8.2 (Debian), ``serf/serf.go`` ``handleNodeConflict`` / ``resolveNodeConflict``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from goavail.cluster.serf_rpc import SerfConnectionError, SerfError, SerfRPC, SerfRPCError
from goavail.errors import GoavailError
from goavail.proc import die_with_parent

log = logging.getLogger(__name__)
serf_log = logging.getLogger("goavail.serf")

PROFILES: Final = ("lan", "wan", "local")
"""Serf timing profiles (``-profile``); ``local`` detects failures fastest (loopback tests)."""

RETRY_INTERVAL: Final = "2s"
"""``-retry-interval``: how often the child retries joining peers that did not answer."""

BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 10.0
"""Restart backoff in seconds: 0.5 s, doubling per consecutive failure, at most 10 s.
It starts over once a child has run for at least ``BACKOFF_MAX`` seconds."""

_OUTPUT_LINES: Final = 40
_LEVEL_RE: Final = re.compile(r"\[(ERR|ERROR|WARN|INFO|DEBUG|TRACE)\]")
_LEVELS: Final = {
    "ERR": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG,
}
_INSTALL_HINT: Final = "install it with 'apt-get install serf'"
_CONFLICT_RE: Final = re.compile(r"Node name conflicts with another node at (\S+?)\.? Names must")
_MINORITY_RE: Final = re.compile(r"minority in name conflict resolution")

NAME_CONFLICT_RETRY: Final = 60.0
"""Seconds before a child that quit over a node-name conflict is started again."""
NAME_CONFLICT_CLEAR: Final = 2 * NAME_CONFLICT_RETRY
"""Seconds without a new conflict line after which a conflict counts as resolved (longer
than a retry cycle, so a conflict that recurs at every retry stays reported)."""


@dataclass(frozen=True, slots=True)
class NameConflict:
    """Another Serf member claims this node's name.

    Attributes:
        other: the other member's address ``"host:port"`` as Serf names it, or None.
        serf_quit: this node's Serf lost the conflict resolution and shut down.
    """

    other: str | None
    serf_quit: bool


class SerfAgentError(GoavailError):
    """The serf binary is missing, or the child could not be started or did not answer."""


class SyncPortError(SerfAgentError):
    """The verdict sync port cannot be bound (in use, no permission): cluster mode cannot
    start (a subclass of :class:`SerfAgentError` so that every cluster start-up failure is
    reported the same way)."""


def find_serf(binary: str = "serf") -> str:
    """Full path of the serf binary (a name looked up on PATH, or a path).

    Raises :class:`SerfAgentError` when it does not exist or is not executable.
    """
    path = shutil.which(binary)
    if path is None:
        raise SerfAgentError(f"serf binary {binary!r} not found; {_INSTALL_HINT}")
    return path


def serf_version(binary: str = "serf") -> str:
    """The version the serf binary reports (``serf version``), e.g. ``"0.8.2"``.

    Blocking (runs the binary, at most 10 s). Raises :class:`SerfAgentError`
    when the binary is missing or fails.
    """
    path = find_serf(binary)
    try:
        done = subprocess.run(
            [path, "version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SerfAgentError(f"cannot run {path} version: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SerfAgentError(
            f"{path} version failed (exit {done.returncode}): {done.stderr.strip()}"
        )
    first = lines[0].strip()
    return first.removeprefix("Serf ").removeprefix("v")


def _split_host_port(value: str, what: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port); raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{what} must be host:port, got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{what}: port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_gossip_key(key: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("gossip_key must be base64") from None
    if len(raw) not in (16, 24, 32):
        raise ValueError(f"gossip_key must decode to 16, 24 or 32 bytes, not {len(raw)}")


class SerfAgent:
    """goavail's own ``serf agent`` child: configure, start, supervise, stop.

    * ``node_name``: unique name of this node in the cluster (``-node``).
    * ``bind``: gossip address ``"host:port"`` (``-bind``, TCP and UDP).
    * ``advertise``: address ``"host:port"`` peers should use, if not ``bind``.
    * ``join``: peers' gossip addresses ``"host:port"``, retried every 2 s
      until they answer (``-retry-join``, ``-retry-interval``).
    * ``rpc_addr``: RPC listener ``"host:port"``; default 127.0.0.1 on a free port.
    * ``gossip_key``: base64 key (16, 24 or 32 bytes) encrypting gossip, like
      ``serf keygen`` makes; every member needs the same one.
    * ``serf_binary``: name on PATH or path of the serf binary.
    * ``profile``: Serf timing profile, ``"lan"``, ``"wan"`` or ``"local"``.
    * ``state_dir``: directory for the config file (created 0700); default a
      temporary directory, removed again by :meth:`stop`.
    * ``tags``: member tags other nodes see.
    * ``start_timeout``: seconds :meth:`start` waits for the RPC to answer.
    * ``on_restart``: called (no arguments) after :meth:`run` restarted the
      child, so RPC clients reconnect; :attr:`restarted` is also set then.
    * ``on_name_conflict``: called with a :class:`NameConflict` when another member
      claims this node's name (again when the child quits over it), and with None
      when the conflict is resolved; must return at once.

    Raises ValueError for malformed arguments.
    """

    def __init__(
        self,
        *,
        node_name: str,
        bind: str,
        advertise: str | None = None,
        join: Sequence[str] = (),
        rpc_addr: str | None = None,
        gossip_key: str | None = None,
        serf_binary: str = "serf",
        profile: str = "lan",
        state_dir: Path | None = None,
        tags: Mapping[str, str] | None = None,
        start_timeout: float = 15.0,
        on_restart: Callable[[], None] | None = None,
        on_name_conflict: Callable[[NameConflict | None], None] | None = None,
    ) -> None:
        if not node_name:
            raise ValueError("node_name must not be empty")
        _split_host_port(bind, "bind")
        if advertise is not None:
            _split_host_port(advertise, "advertise")
        for peer in join:
            _split_host_port(peer, "join address")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
        if gossip_key is not None:
            _check_gossip_key(gossip_key)
        if rpc_addr is None:
            self._rpc_host, self._rpc_port = "127.0.0.1", _free_tcp_port("127.0.0.1")
        else:
            self._rpc_host, self._rpc_port = _split_host_port(rpc_addr, "rpc_addr")
        self._node_name = node_name
        self._bind = bind
        self._advertise = advertise
        self._join = tuple(join)
        self._gossip_key = gossip_key
        self._binary = serf_binary
        self._profile = profile
        self._state_dir_arg = state_dir
        self._state_dir: Path | None = None
        self._owns_state_dir = False
        self._tags = dict(tags or {})
        self._start_timeout = start_timeout
        self._on_restart = on_restart
        self._rpc_auth = secrets.token_urlsafe(32)
        self._proc: asyncio.subprocess.Process | None = None
        self._output_task: asyncio.Task[None] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._started_at = 0.0
        self._stop_event = asyncio.Event()  # set by stop(): no (re)start after that
        self._lock = asyncio.Lock()
        self._restarted = asyncio.Event()
        self._restarts = 0
        self._on_name_conflict = on_name_conflict
        self._conflict: NameConflict | None = None
        self._conflict_at = 0.0
        self._conflict_seen = asyncio.Event()
        self._name_conflicts = 0

    def __repr__(self) -> str:
        return f"SerfAgent(node_name={self._node_name!r}, bind={self._bind!r}, pid={self.pid})"

    # -- properties --------------------------------------------------------------

    @property
    def node_name(self) -> str:
        """This node's name in the cluster."""
        return self._node_name

    @property
    def rpc_host(self) -> str:
        """Host of the child's RPC listener (for :meth:`SerfRPC.connect`)."""
        return self._rpc_host

    @property
    def rpc_port(self) -> int:
        """Port of the child's RPC listener."""
        return self._rpc_port

    @property
    def rpc_auth(self) -> str:
        """The RPC auth key of the child (secret: never log it)."""
        return self._rpc_auth

    @property
    def pid(self) -> int | None:
        """Process id of the current child, None before :meth:`start`."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the current child process has not exited."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def restarts(self) -> int:
        """How many times :meth:`run` restarted the child."""
        return self._restarts

    @property
    def restarted(self) -> asyncio.Event:
        """Set after each restart by :meth:`run`; the consumer clears it when it has reconnected."""
        return self._restarted

    @property
    def name_conflict(self) -> NameConflict | None:
        """The node-name conflict in force, or None."""
        return self._conflict

    @property
    def name_conflicts(self) -> int:
        """How many times Serf reported another member with this node's name."""
        return self._name_conflicts

    @property
    def state_dir(self) -> Path | None:
        """Directory holding the config file, once :meth:`start` made it."""
        return self._state_dir

    @property
    def recent_output(self) -> list[str]:
        """The child's last output lines (at most 40), oldest first."""
        return list(self._output)

    def argv(self) -> list[str]:
        """The child's command line (holds no secret; the config file does)."""
        config = (self._state_dir or Path("<state_dir>")) / "serf.json"
        args = [
            self._binary,
            "agent",
            f"-node={self._node_name}",
            f"-bind={self._bind}",
            f"-rpc-addr={_join_host_port(self._rpc_host, self._rpc_port)}",
            f"-config-file={config}",
            f"-profile={self._profile}",
            "-log-level=warn",
        ]
        if self._advertise is not None:
            args.append(f"-advertise={self._advertise}")
        if self._join:
            args += [f"-retry-join={peer}" for peer in self._join]
            args.append(f"-retry-interval={RETRY_INTERVAL}")
        return args

    # -- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the child and wait until its RPC answers (handshake + auth).

        Raises :class:`SerfAgentError` (with the child's last output lines)
        when the binary is missing, the child exits, or its RPC does not
        answer within ``start_timeout`` seconds; the child is reaped then.
        """
        if self.running:
            raise SerfAgentError(f"serf agent {self._node_name!r} is already running")
        self._binary = find_serf(self._binary)
        self._stop_event.clear()
        self._prepare_state_dir()
        async with self._lock:
            await self._spawn_and_wait()

    async def run(self) -> None:
        """Supervise the child until :meth:`stop`: restart it whenever it exits.

        Restarts wait 0.5 s, doubling up to 10 s while restarts keep failing
        or children keep dying young. After each successful restart
        :attr:`restarted` is set and ``on_restart`` called. Call :meth:`start`
        first; cancel the task or call :meth:`stop` to end it.
        """
        if self._proc is None:
            raise SerfAgentError("start() the serf agent before run()")
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_START
        while not self._stop_event.is_set():
            proc = self._proc
            assert proc is not None
            code = await self._wait_child(proc)
            if self._stop_event.is_set():
                return
            await self._drain_output()  # its last lines may say why it quit
            lived = loop.time() - self._started_at
            if lived >= BACKOFF_MAX:
                backoff = BACKOFF_START
            conflict = self._conflict
            first_delay = backoff
            if conflict is not None and conflict.serf_quit:
                first_delay = NAME_CONFLICT_RETRY
                log.error(
                    "serf agent %r quit over a node name conflict (another member at %s "
                    "uses this name); starting it again in %.0f s: give each agent a unique "
                    "node_name",
                    self._node_name,
                    conflict.other or "an unknown address",
                    first_delay,
                )
            log.warning(
                "serf agent %r (pid %d) exited with code %d after %.1f s; restarting in %.1f s%s",
                self._node_name,
                proc.pid,
                code,
                lived,
                backoff,
                self._output_tail(),
            )
            delay = first_delay
            while True:
                if await self._sleep_unless_stopping(delay):
                    return
                delay = backoff = min(backoff * 2, BACKOFF_MAX)
                try:
                    async with self._lock:
                        if self._stop_event.is_set():
                            return
                        await self._spawn_and_wait()
                except SerfAgentError as exc:
                    if self._stop_event.is_set():
                        return
                    log.error("restarting serf agent %r failed: %s", self._node_name, exc)
                    continue
                break
            self._restarts += 1
            log.info("serf agent %r restarted (pid %s)", self._node_name, self.pid)
            self._restarted.set()
            if self._on_restart is not None:
                try:
                    self._on_restart()
                except Exception:
                    log.exception("serf agent on_restart callback failed")

    async def stop(self, grace: float = 3.0, *, leave_timeout: float = 10.0) -> None:
        """Leave the cluster gracefully, then end and reap the child. Idempotent.

        Sends ``leave`` through the RPC (bounded by ``leave_timeout`` seconds)
        so peers see this node ``left`` rather than ``failed``; the agent exits
        by itself after leaving. If it is still running ``grace`` seconds later
        it gets SIGTERM, and SIGKILL after another ``grace`` seconds. Always
        waits for the child to be reaped; removes a temporary state directory.
        A :meth:`run` task returns without restarting.
        """
        self._stop_event.set()
        async with self._lock:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                await self._leave(leave_timeout)
                await self._terminate(proc, grace)
            await self._drain_output()
            if self._owns_state_dir and self._state_dir is not None:
                shutil.rmtree(self._state_dir, ignore_errors=True)
                self._state_dir = None
                self._owns_state_dir = False

    async def __aenter__(self) -> SerfAgent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals ---------------------------------------------------------------

    def _prepare_state_dir(self) -> None:
        if self._state_dir is None:
            if self._state_dir_arg is None:
                self._state_dir = Path(tempfile.mkdtemp(prefix="goavail-serf-"))
                self._owns_state_dir = True
            else:
                self._state_dir = self._state_dir_arg
                self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._state_dir.chmod(0o700)
        config: dict[str, object] = {"rpc_auth": self._rpc_auth}
        if self._gossip_key is not None:
            config["encrypt_key"] = self._gossip_key
        if self._tags:
            config["tags"] = self._tags
        path = self._state_dir / "serf.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(config, fh)

    async def _spawn_and_wait(self) -> None:
        """Spawn a child and wait for its RPC; the caller holds ``_lock``."""
        argv = self.argv()
        self._output.clear()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            raise SerfAgentError(f"cannot start {argv[0]}: {exc}; {_INSTALL_HINT}") from exc
        loop = asyncio.get_running_loop()
        self._proc = proc
        self._started_at = loop.time()
        self._output_task = loop.create_task(self._pump_output(proc), name="serf-output")
        deadline = self._started_at + self._start_timeout
        last_error: SerfError | None = None
        while True:
            if proc.returncode is not None:
                await self._drain_output()
                raise SerfAgentError(
                    f"serf agent {self._node_name!r} exited with code {proc.returncode} "
                    f"during start-up{self._output_tail()}"
                )
            if self._stop_event.is_set():
                await self._terminate(proc, 0.5)
                raise SerfAgentError(f"serf agent {self._node_name!r}: stopped during start-up")
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._terminate(proc, 0.5)
                raise SerfAgentError(
                    f"serf agent {self._node_name!r}: RPC at {self._rpc_host}:{self._rpc_port} "
                    f"did not answer within {self._start_timeout} s ({last_error})"
                    f"{self._output_tail()}"
                )
            try:
                client = await SerfRPC.connect(
                    self._rpc_host, self._rpc_port, self._rpc_auth, timeout=min(2.0, remaining)
                )
            except SerfRPCError as exc:
                await self._terminate(proc, 0.5)
                raise SerfAgentError(
                    f"serf agent {self._node_name!r} refused the RPC: {exc}{self._output_tail()}"
                ) from exc
            except SerfConnectionError as exc:
                last_error = exc
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await proc.wait()
                continue
            await client.close()
            return

    async def _leave(self, limit: float) -> None:
        try:
            client = await SerfRPC.connect(
                self._rpc_host, self._rpc_port, self._rpc_auth, timeout=min(2.0, limit)
            )
        except SerfError as exc:
            log.warning(
                "serf agent %r: no RPC for a graceful leave (%s); peers will see it fail",
                self._node_name,
                exc,
            )
            return
        try:
            async with asyncio.timeout(limit):
                await client.leave()
        except TimeoutError:
            log.warning("serf agent %r: graceful leave took over %s s", self._node_name, limit)
        except SerfError as exc:
            log.warning("serf agent %r: graceful leave failed: %s", self._node_name, exc)
        finally:
            await client.close()

    async def _terminate(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        """Wait ``grace`` s for an exit, then SIGTERM, ``grace`` s, SIGKILL; always reap."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if await _wait_exit(proc, grace):
                return
            _signal_group(proc, sig)
        await proc.wait()

    async def _wait_child(self, proc: asyncio.subprocess.Process) -> int:
        """Wait for ``proc`` to exit; meanwhile clear a name conflict once the child has
        run :data:`NAME_CONFLICT_CLEAR` seconds without a new conflict line."""
        loop = asyncio.get_running_loop()
        while True:
            self._conflict_seen.clear()
            timeout = None
            if self._conflict is not None:
                timeout = self._conflict_at + NAME_CONFLICT_CLEAR - loop.time()
                if timeout <= 0:
                    self._set_conflict(None)
                    continue
            exited = loop.create_task(proc.wait())
            seen = loop.create_task(self._conflict_seen.wait())
            try:
                await asyncio.wait(
                    {exited, seen}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                seen.cancel()
                if not exited.done():
                    exited.cancel()
            if exited.done() and not exited.cancelled():
                return exited.result()

    def _scan_for_conflict(self, line: str) -> None:
        """Spot Serf's node-name conflict lines in one output line of the child."""
        match = _CONFLICT_RE.search(line)
        if match is not None:
            self._name_conflicts += 1
            previous = self._conflict
            self._set_conflict(
                NameConflict(match.group(1), previous is not None and previous.serf_quit)
            )
        elif _MINORITY_RE.search(line):
            previous = self._conflict
            self._set_conflict(NameConflict(previous.other if previous else None, True))

    def _set_conflict(self, conflict: NameConflict | None) -> None:
        if conflict is not None:
            self._conflict_at = asyncio.get_running_loop().time()
            self._conflict_seen.set()
        if conflict == self._conflict:
            return
        self._conflict = conflict
        if conflict is None:
            log.warning(
                "node name conflict of %r resolved: no conflict reported for %.0f s",
                self._node_name,
                NAME_CONFLICT_CLEAR,
            )
        else:
            log.error(
                "NODE NAME CONFLICT: node name %r is also used by the Serf member at %s%s. "
                "Every agent needs its own name: set a unique node_name in one agent's "
                "config (or remove node_name there to get the default "
                "<hostname>@<address>:<port>) and restart that agent",
                self._node_name,
                conflict.other or "an unknown address",
                "; Serf lost the conflict resolution and quit: this agent is out of the cluster"
                if conflict.serf_quit
                else "",
            )
        if self._on_name_conflict is not None:
            try:
                self._on_name_conflict(conflict)
            except Exception:
                log.exception("serf agent on_name_conflict callback failed")

    async def _sleep_unless_stopping(self, delay: float) -> bool:
        """Sleep ``delay`` s; True (at once) when :meth:`stop` was called."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop_event.wait()
        return self._stop_event.is_set()

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        stream = proc.stdout
        assert stream is not None
        secrets_seen = [s for s in (self._rpc_auth, self._gossip_key) if s]
        level = logging.DEBUG  # continuation lines keep the level of the line they continue
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream limit: skip a chunk
                raw = await stream.read(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            if not line.strip():
                continue
            for secret in secrets_seen:
                line = line.replace(secret, "<redacted>")
            self._output.append(line)
            match = _LEVEL_RE.search(line)
            if match:
                level = _LEVELS[match.group(1)]
            elif line.startswith("==>"):  # banner
                level = logging.DEBUG
            serf_log.log(level, "%s: %s", self._node_name, line.strip())
            self._scan_for_conflict(line)

    async def _drain_output(self) -> None:
        task = self._output_task
        if task is None:
            return
        try:
            async with asyncio.timeout(2.0):
                await task
        except TimeoutError:
            task.cancel()
        except (OSError, ValueError) as exc:
            log.debug("reading serf output failed: %s", exc)
        self._output_task = None

    def _output_tail(self) -> str:
        if not self._output:
            return ""
        return "; last output:\n" + "\n".join(self._output)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _wait_exit(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    """True when ``proc`` exited (and was reaped) within ``seconds``."""
    if proc.returncode is not None:
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await proc.wait()
    return proc.returncode is not None


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Signal the child's process group (it leads its own session)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
