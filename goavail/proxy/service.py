"""The proxy at run time: the listener, the selection of the primary, the connections.

An I/O edge around :class:`~goavail.proxy.select.Selector` (pure). One asyncio task
accepts, one selects, one per connection relays (:mod:`goavail.proxy.relay`), and,
with ``[Proxy] checks``, a :class:`~goavail.checks.multi.CheckSet` judges the
backends. The *gate* (an :class:`asyncio.Event`) is open only while a primary is
serving: it closes the moment the primary is lost, and opens again only once a new
primary passed the connect and the check script and every trigger has run, so no
connection reaches a backend in between (flopsy's rule). Connections accepted while
it is closed wait for it (at most ``max_connections`` at once; the rest wait in the
kernel's listen backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from goavail.checks.multi import CheckSet
from goavail.config.checks import CheckSection
from goavail.config.proxy import ProxySection
from goavail.config.values import split_host_port
from goavail.errors import SetupError
from goavail.health import State
from goavail.proc import program_env, run_program
from goavail.proxy.relay import relay, resolve_mode
from goavail.proxy.select import Phase, Selector, candidates, failback_target
from goavail.web.snapshot import BackendView, ProxyView

log = logging.getLogger("goavail.proxy")

FDS_PER_CONNECTION = 6
"""File descriptors one relayed connection holds: two sockets and, on the splice path,
a pipe (two fds) per direction."""


def trigger_programs(path: Path | None) -> list[Path]:
    """The trigger programs of ``on_failover``: the file itself, or a directory's regular
    files in name order (names starting with ``.`` skipped, as run-parts does); empty
    when ``path`` is None or does not exist (a missing directory is no trigger)."""
    if path is None:
        return []
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path] if path.exists() else []


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``wanted`` (at most the hard limit);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


@dataclass(slots=True)
class _Counters:
    total: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    active: dict[str, int] = field(default_factory=dict)

    def up(self, n: int) -> None:
        self.bytes_up += n

    def down(self, n: int) -> None:
        self.bytes_down += n


class Proxy:
    """One ``[Proxy]``: accept on its address, relay to the primary, fail over.

    Args:
        settings: the validated section (flags merged in).
        checks: the ``[[checks]]`` entries its ``checks`` name (resolved), in order;
            empty: no checks judge the backends.

    Lifecycle: ``await start()`` (binds; raises :class:`SetupError`), ``await run()``
    until cancelled, ``await close()``.

    Attributes:
        selector: the current :class:`Selector` value.
        verdicts: backend -> the checks' combined state (only with checks).
        mode: the relay in use (``"splice"`` or ``"stream"``).
    """

    def __init__(self, settings: ProxySection, checks: Sequence[CheckSection] = ()) -> None:
        self.settings = settings
        self.hosts = list(settings.hosts)
        self.mode = resolve_mode(settings.relay)
        self.selector = Selector()
        self.counters = _Counters(active=dict.fromkeys(self.hosts, 0))
        self.started_at = time.time()
        self.selecting_since: float | None = time.monotonic()
        self.last_failover: float | None = None
        self.last_selection_seconds: float | None = None
        self._gate = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()  # the first selection
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._listener: socket.socket | None = None
        self._connections: dict[asyncio.Task[None], str] = {}
        self._address_of = {host: split_host_port(host) for host in self.hosts}
        self._by_address = {address: host for host, (address, _) in self._address_of.items()}
        self.checkset: CheckSet | None = None
        if checks:
            self.checkset = CheckSet(
                list(checks), list(self._by_address), self._on_verdict, single=False
            )
        self.verdicts: dict[str, State] = {}

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually bound (after :meth:`start`)."""
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    async def start(self) -> None:
        """Bind the listen address and start the checks.

        Raises:
            SetupError: the address cannot be bound, or a check engine cannot start.
        """
        host, port = self.settings.listen_address()
        need = self.settings.max_connections * FDS_PER_CONNECTION + 64
        if (limit := raise_fd_limit(need)) < need:
            log.warning(
                "proxy: max_connections = %d needs about %d file descriptors, the limit is "
                "%d: raise it (ulimit -n, LimitNOFILE=) or lower max_connections",
                self.settings.max_connections,
                need,
                limit,
            )
        self._listener = _listen(host, port)
        if self.checkset is not None:
            try:
                await self.checkset.start()
            except Exception:
                self._listener.close()
                raise

    async def run(self) -> None:
        """Accept, select and judge until cancelled; connections are cancelled with it."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._select_loop())
                group.create_task(self._accept_loop())
                if self.checkset is not None:
                    group.create_task(self.checkset.run())
        finally:
            await self._cancel_connections(list(self._connections))

    async def close(self) -> None:
        """Close the listener and the check engines (idempotent)."""
        if self._listener is not None:
            self._listener.close()
        if self.checkset is not None:
            await self.checkset.close()

    # -- the checks' verdicts -----------------------------------------------------------

    def _on_verdict(self, address: str, old: State, new: State, why: str) -> None:
        host = self._by_address.get(address)
        if host is None:
            return
        self.verdicts[host] = new
        log.info("proxy: backend %s is %s (%s)", host, new, why)
        if new is State.DOWN:
            self._report_lost(host, f"judged down by the checks ({why})")
        elif new is State.UP and self.settings.failback:
            target = failback_target(self.hosts, self.selector.primary, self.verdicts)
            if target is not None and self.selector.phase is Phase.SERVING:
                log.warning("proxy: failback from %s to %s", self.selector.primary, target)
                self.selector = self.selector.switch(target)
                self._close_gate()

    def _report_lost(self, host: str, reason: str) -> None:
        before = self.selector
        self.selector = before.lost(host, reason)
        if self.selector is not before:
            log.warning(
                "proxy: primary %s lost: %s; no new connection until a new one", host, reason
            )
            self._close_gate()

    def _close_gate(self) -> None:
        self._gate.clear()
        self.selecting_since = time.monotonic()
        self._lost.set()

    # -- selection ----------------------------------------------------------------------

    async def _select_loop(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            previous = self.selector.primary
            while True:
                chosen = await self._select_round()
                if chosen is not None:
                    break
                self.selector, delay = self.selector.round_failed(self.settings.max_backoff)
                log.error(
                    "proxy: no backend can be the primary (%s); next round in %.2fs",
                    ", ".join(self.hosts),
                    delay,
                )
                await asyncio.sleep(delay)
            self.selector = self.selector.selected(chosen)
            log.warning("proxy: %s selected as the primary", chosen)
            await self._run_triggers(chosen, previous)
            if self.selector.phase is not Phase.SERVING or self._lost.is_set():
                continue  # lost again while the triggers ran: select once more
            started = self.selecting_since
            if started is not None:
                self.last_selection_seconds = time.monotonic() - started
            self.selecting_since = None
            if previous is not None and previous != chosen:
                self.last_failover = time.time()
                self._drain(previous)
            self._gate.set()

    async def _select_round(self) -> str | None:
        """The first candidate that accepts a connection and passes the check, or None."""
        for host in candidates(self.hosts, self.verdicts):
            try:
                sock = await self._connect(host)
            except OSError as exc:
                log.info("proxy: %s discarded: cannot connect (%s)", host, _reason(exc))
                continue
            sock.close()
            if await self._check(host):
                return host
        return None

    async def _check(self, host: str) -> bool:
        argv = self.settings.check
        if argv is None:
            return True
        env = program_env({"GOAVAIL_TARGET": host})
        try:
            result = await run_program(
                [*argv, host], env=env, time_limit=self.settings.check_timeout
            )
        except OSError as exc:
            log.error("proxy: %s discarded: cannot run the check %s: %s", host, argv[0], exc)
            return False
        if result.ok:
            return True
        line = result.last_line()
        log.info(
            "proxy: %s discarded: the check %s%s",
            host,
            result.describe(),
            f": {line}" if line else "",
        )
        return False

    async def _run_triggers(self, host: str, previous: str | None) -> None:
        """Every trigger with ``host`` as its argument, one after the other; a failure
        (non-zero exit, timeout, cannot run) is a warning and the next one runs."""
        env = program_env({"GOAVAIL_PROXY_PRIMARY": host, "GOAVAIL_PROXY_PREVIOUS": previous or ""})
        for program in trigger_programs(self.settings.on_failover):
            try:
                result = await run_program(
                    [str(program), host], env=env, time_limit=self.settings.trigger_timeout
                )
            except OSError as exc:
                log.warning("proxy: trigger %s cannot run: %s", program, exc)
                continue
            if result.ok:
                log.info("proxy: trigger %s ran for %s", program, host)
            else:
                line = result.last_line()
                log.warning(
                    "proxy: trigger %s failed for %s: %s%s",
                    program,
                    host,
                    result.describe(),
                    f": {line}" if line else "",
                )

    # -- connections --------------------------------------------------------------------

    async def _connect(self, host: str) -> socket.socket:
        address, port = self._address_of[host]
        loop = asyncio.get_running_loop()
        try:
            ip = ipaddress.ip_address(address)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            infos: list[tuple[socket.AddressFamily, tuple[str, int]]] = [(family, (address, port))]
        except ValueError:
            resolved = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
            infos = [(info[0], (str(info[4][0]), int(info[4][1]))) for info in resolved]
        error: OSError = OSError(f"{address} has no address")
        for family, sockaddr in infos:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    await loop.sock_connect(sock, sockaddr)
            except OSError as exc:  # TimeoutError included
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._gate.wait()
            await self._slots.acquire()
            try:
                client, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                self._slots.release()
                log.error("proxy: accept failed: %s", exc)
                await asyncio.sleep(0.1)  # e.g. EMFILE: let connections finish
                continue
            except BaseException:
                self._slots.release()
                raise
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.counters.total += 1
            task = loop.create_task(self._serve(client))
            self._connections[task] = ""
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._connections.pop(task, None)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("proxy: a connection ended with an error: %s", exc)

    async def _serve(self, client: socket.socket) -> None:
        """Connect ``client`` to the primary (waiting for one) and relay until it ends."""
        task = asyncio.current_task()
        assert task is not None
        backend: socket.socket | None = None
        host = ""
        try:
            for _ in range(len(self.hosts) + 1):
                await self._gate.wait()
                primary = self.selector.primary
                assert primary is not None
                host = primary
                try:
                    backend = await self._connect(host)
                except OSError as exc:
                    self._report_lost(host, f"refused a connection ({_reason(exc)})")
                    continue
                break
            if backend is None:
                self.counters.refused += 1
                client.close()
                return
        except BaseException:
            client.close()
            raise
        self._connections[task] = host
        self.counters.active[host] += 1
        try:
            await relay(
                client,
                backend,
                mode=self.mode,
                upstream=self.counters.up,
                downstream=self.counters.down,
            )
        finally:
            self.counters.active[host] -= 1

    def _drain(self, old: str) -> None:
        """Connections to the former primary ``old``: closed after ``drain`` seconds, or
        left to finish."""
        drain = self.settings.drain
        tasks = [t for t, host in self._connections.items() if host == old]
        if drain is None or not tasks:
            if tasks:
                log.info("proxy: %d connections to %s left to finish", len(tasks), old)
            return
        log.info("proxy: %d connections to %s close in %.1fs", len(tasks), old, drain)

        def expire() -> None:
            live = [t for t in tasks if not t.done()]
            if live:
                log.warning("proxy: drain time over: closing %d connections to %s", len(live), old)
            for t in live:
                t.cancel()

        asyncio.get_running_loop().call_later(drain, expire)

    async def _cancel_connections(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the view -----------------------------------------------------------------------

    def view(self) -> ProxyView:
        """What the status page, ``/api/status`` and ``/metrics`` show (no I/O)."""
        selector = self.selector
        serving = self._gate.is_set()
        since = self.selecting_since
        host, port = self.settings.listen_address()
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return ProxyView(
            listen=listen,
            relay=self.mode,
            phase=str(Phase.SERVING if serving else Phase.SELECTING),
            primary=selector.primary if serving else None,
            selections=selector.selections,
            failovers=selector.failovers,
            selecting_for=None if since is None else max(0.0, time.monotonic() - since),
            last_failover=self.last_failover,
            last_selection_seconds=self.last_selection_seconds,
            active=sum(self.counters.active.values()),
            waiting=len(self._connections) - sum(self.counters.active.values()),
            total=self.counters.total,
            refused=self.counters.refused,
            bytes_up=self.counters.bytes_up,
            bytes_down=self.counters.bytes_down,
            max_connections=self.settings.max_connections,
            backends=tuple(
                BackendView(
                    address=h,
                    primary=serving and h == selector.primary,
                    verdict=str(self.verdicts.get(h, State.UNKNOWN)) if self.checkset else "",
                    active=self.counters.active[h],
                )
                for h in self.hosts
            ),
        )


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on ``host:port`` (``::`` accepts IPv4 too, and
    falls back to ``0.0.0.0`` where IPv6 is off).

    Raises:
        SetupError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        if host != "::":
            raise
        family, host = socket.AF_INET, "0.0.0.0"
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise SetupError(
            f"proxy: cannot listen on {host}:{port}: {reason} (choose another port or "
            "address: -p/--port, -b/--bind, [Proxy] port/listen)"
        ) from None
    return sock


__all__ = ["FDS_PER_CONNECTION", "Proxy", "raise_fd_limit", "trigger_programs"]
