"""Helpers for end-to-end tests that run the real ``goavail`` process.

Everything here runs inside the private network namespace of the test session
(see ``tests/conftest.py``): the goavail child inherits it, so its probes and its
calls to the Cloudflare stand-in never leave the namespace.

* :class:`GoavailProcess` writes a config file, starts ``python -m goavail``,
  collects its output lines in a background thread and offers ``wait_for``,
  ``signal`` and ``stop``; as a context manager it always kills and reaps.
* :func:`run_goavail` runs a one-shot command (``validate``, ``plan``, ...).
* :func:`wait_until` polls a predicate (stand-in state, files) with a deadline.
* :func:`cloudflare_toml` / :func:`zonefile_toml` build configs with short
  intervals so the suite stays fast; waits use generous timeouts instead of
  tight timing asserts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal as signals
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from goavail.proc import die_with_parent
from tests.cfstub.server import CloudflareStub

REPO = Path(__file__).resolve().parents[2]
"""The repository root (where ``goavail.toml`` and ``examples/`` live)."""

WAIT = 15.0
"""Default seconds to wait for a log line or a state change."""

STOP_BOUND = 5.0
"""Seconds a SIGTERM'ed goavail may take to exit before it is killed."""

FAST = """\
interval = "200ms"
timeout = "150ms"
failure_threshold = 2
rise_threshold = 2
"""
"""Top-level timing settings that keep a test's failover well under a few seconds."""

_SECRET_ENV_PREFIXES = ("CLOUDFLARE_", "CF_API_", "AWS_", "GOAVAIL_TSIG_")

T = TypeVar("T")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a goavail child: ours minus any DNS credentials, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stub_env(stub: CloudflareStub) -> dict[str, str]:
    """Variables pointing goavail's Cloudflare SDK at the stand-in, with its token."""
    assert stub.token is not None
    return {"CLOUDFLARE_BASE_URL": stub.base_url, "CLOUDFLARE_API_TOKEN": stub.token}


CONSOLE_SCRIPT = Path(sys.executable).with_name("goavail")
"""The installed ``goavail`` console script next to this interpreter (the project's venv)."""


def goavail_argv(*args: str, console_script: bool = False) -> list[str]:
    """``python -m goavail ARGS`` with this interpreter, or the ``goavail`` console script."""
    if console_script:
        return [str(CONSOLE_SCRIPT), *args]
    return [sys.executable, "-m", "goavail", *args]


def run_goavail(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    cwd: Path = REPO,
    console_script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot goavail command and return its exit code, stdout and stderr.

    Args:
        args: command-line arguments after ``goavail``.
        env: extra environment variables (credentials are never inherited).
        timeout: seconds before the command is killed (and the test fails).
        cwd: working directory.
        console_script: run the installed ``goavail`` script instead of ``python -m goavail``.
    """
    return subprocess.run(
        goavail_argv(*args, console_script=console_script),
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(
    predicate: Callable[[], T],
    timeout: float = WAIT,
    *,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    Raises:
        AssertionError: the deadline passed; the text is ``message`` (a callable
            is evaluated then, so it can show the state at the time of failure).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"after {timeout:g}s: {text}")
        time.sleep(interval)


def hold(
    predicate: Callable[[], object],
    duration: float,
    *,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition stopped holding",
) -> None:
    """Assert that ``predicate`` stays truthy for ``duration`` seconds.

    Raises:
        AssertionError: the predicate was false at some poll; the text is
            ``message`` (a callable is evaluated then, see :func:`wait_until`).
    """
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not predicate():
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


# -- the goavail process ----------------------------------------------------------------------


class GoavailProcess:
    """A real ``goavail`` process (``python -m goavail``) with its output collected.

    Args:
        workdir: where the config file is written (normally pytest's ``tmp_path``).
        config: TOML text of the config file.
        command: the goavail command, ``"monitor"`` by default.
        args: more command-line arguments (``--config-file`` is added automatically).
        env: extra environment variables; DNS credentials are never inherited.
        config_name: file name of the config inside ``workdir``.
        prefix: argv words put before the goavail command line, e.g.
            ``["ip", "netns", "exec", NAME]`` to run it in a named network namespace
            (the prefix must ``exec`` goavail so that signals reach it).

    stdout and stderr are merged: goavail logs to stderr and prints nothing on
    stdout in ``monitor``, and a merged stream keeps tracebacks in order.
    Use as a context manager: the process is started on entry and always
    killed and reaped on exit.
    """

    def __init__(
        self,
        workdir: Path,
        config: str,
        *,
        command: str = "monitor",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        config_name: str = "goavail.toml",
        prefix: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.prefix = list(prefix)
        self.config_path = workdir / config_name
        self.command = command
        self.args = list(args)
        self.env = child_env(env)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.write_config(config)

    # -- set-up -------------------------------------------------------------------------------

    def write_config(self, text: str) -> None:
        """(Re)write the config file; for a running process, follow with ``signal(SIGHUP)``.

        The text goes to a temporary file that replaces the config atomically, so
        a reload never reads half a file.
        """
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.config_path)

    @property
    def argv(self) -> list[str]:
        """The full command line (``prefix`` included)."""
        return [
            *self.prefix,
            *goavail_argv(self.command, "--config-file", str(self.config_path), *self.args),
        ]

    def start(self) -> Self:
        """Start the process and the thread that reads its output.

        Raises:
            RuntimeError: already started.
        """
        if self._proc is not None:
            raise RuntimeError("goavail already started")
        self._proc = subprocess.Popen(
            self.argv,
            preexec_fn=die_with_parent(),  # no orphan if pytest is killed
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="goavail-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # -- output -------------------------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        """A copy of every output line so far."""
        with self._cond:
            return list(self._lines)

    @property
    def output(self) -> str:
        """Every output line so far, joined."""
        return "\n".join(self.lines)

    def mark(self) -> int:
        """The number of lines so far: pass it as ``since`` to look only at later lines."""
        with self._cond:
            return len(self._lines)

    def tail(self, n: int = 40) -> str:
        """The last ``n`` output lines, for failure messages."""
        return "\n".join(self.lines[-n:])

    def matching(self, pattern: str, *, since: int = 0) -> list[str]:
        """Output lines (from line ``since`` on) in which ``pattern`` (a regex) is found."""
        regex = re.compile(pattern)
        return [line for line in self.lines[since:] if regex.search(line)]

    def wait_for(self, pattern: str, timeout: float = WAIT, *, since: int = 0) -> str:
        """Wait for an output line (from line ``since`` on) matching ``pattern``; return it.

        Raises:
            AssertionError: no such line within ``timeout`` seconds, or the
                process ended first; the message holds the last output lines.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = since
        with self._cond:
            while True:
                for line in self._lines[checked:]:
                    if regex.search(line):
                        return line
                checked = max(checked, len(self._lines))
                reader_done = self._reader is not None and not self._reader.is_alive()
                if reader_done:
                    raise AssertionError(
                        f"goavail exited (rc={self.returncode}) before a line matched "
                        f"{pattern!r}; last output:\n{self._tail_locked()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no line matched {pattern!r} within {timeout:g}s; last output:\n"
                        f"{self._tail_locked()}"
                    )
                self._cond.wait(min(left, 0.2))

    def _tail_locked(self, n: int = 40) -> str:
        return "\n".join(self._lines[-n:])

    def json_lines(self) -> list[dict[str, Any]]:
        """Every output line parsed as JSON (for ``--log-format json``).

        Raises:
            AssertionError: a line is not a JSON object.
        """
        parsed: list[dict[str, Any]] = []
        for line in self.lines:
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"not a JSON line: {line!r} ({exc})") from None
            assert isinstance(value, dict), f"not a JSON object: {line!r}"
            parsed.append(value)
        return parsed

    # -- process control ----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._proc is not None, "goavail not started"
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while running."""
        return None if self._proc is None else self._proc.poll()

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: signals.Signals) -> None:
        """Send ``sig`` to the process."""
        assert self._proc is not None, "goavail not started"
        self._proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own and return its exit code.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        assert self._proc is not None, "goavail not started"
        rc = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return rc

    def stop(self, bound: float = STOP_BOUND) -> int:
        """SIGTERM, then kill if still running after ``bound`` seconds; return the exit code.

        A killed process returns ``-9``, which no test accepts as a clean stop.
        """
        assert self._proc is not None, "goavail not started"
        if self._proc.poll() is None:
            self._proc.send_signal(signals.SIGTERM)
            try:
                return self.wait_exit(bound)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self.wait_exit(10)

    def kill(self) -> None:
        """Kill (if running) and reap the process; idempotent."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(10)
        if self._proc.stdout is not None and self._reader is not None:
            self._reader.join(timeout=5)
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


# -- configs --------------------------------------------------------------------------------


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_toml(listen: str | None) -> str:
    """A ``[Server]`` section: listening on ``listen``, or disabled when None (the default
    of the config helpers: tests that do not look at the HTTP side never bind a port).
    The helpers put it before the DNS section, so lines appended to their text still
    land in the DNS section."""
    if listen is None:
        return "\n[Server]\nenabled = false\n"
    return f"\n[Server]\nlisten = {json.dumps(listen)}\n"


def cloudflare_toml(
    addresses: Sequence[str],
    *,
    domain: str = "example.com",
    hostnames: Sequence[str] = ("www",),
    ttl: int = 120,
    proxied: bool = False,
    resync: str = "1s",
    top: str = "",
    listen: str | None = None,
) -> str:
    """A config with fast timings and a ``[Cloudflare]`` section.

    Args:
        addresses: the targets (127.0.0.0/8 only).
        domain, hostnames, ttl, proxied: the section's keys.
        resync: ``resync_interval``.
        top: more top-level TOML lines (``audit_file = ...``, ``port = ...``).
        listen: ``[Server] listen`` (e.g. ``f"127.0.0.1:{free_port()}"``); None disables
            the HTTP server.
    """
    return (
        FAST
        + f"resync_interval = {json.dumps(resync)}\n"
        + top
        + server_toml(listen)
        + "\n[Cloudflare]\n"
        + f"dns_domain = {json.dumps(domain)}\n"
        + f"hostnames = {_toml_list(hostnames)}\n"
        + f"ip_addresses = {_toml_list(addresses)}\n"
        + f"ttl = {ttl}\n"
        + f"dns_proxied = {'true' if proxied else 'false'}\n"
    )


def zonefile_toml(
    addresses: Sequence[str],
    zone_path: Path,
    *,
    origin: str = "example.test",
    hostnames: Sequence[str] = ("www",),
    ttl: int = 60,
    resync: str = "1s",
    top: str = "",
    listen: str | None = None,
) -> str:
    """A config with fast timings and a ``[Zonefile]`` section (see :func:`cloudflare_toml`)."""
    return (
        FAST
        + f"resync_interval = {json.dumps(resync)}\n"
        + top
        + server_toml(listen)
        + "\n[Zonefile]\n"
        + f"path = {json.dumps(str(zone_path))}\n"
        + f"origin = {json.dumps(origin)}\n"
        + f"hostnames = {_toml_list(hostnames)}\n"
        + f"ip_addresses = {_toml_list(addresses)}\n"
        + f"ttl = {ttl}\n"
    )


# -- the HTTP side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers (case-insensitive names lower-cased) and body text."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)


async def _http(method: str, url: str, body: object, token: str | None, limit: float) -> Reply:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as session,
        session.request(method, url, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, text)


def http(
    method: str, url: str, *, body: object = None, token: str | None = None, timeout: float = 10.0
) -> Reply:
    """One HTTP request with the aiohttp client (``body`` sent as JSON when given).

    Raises:
        aiohttp.ClientError: the server could not be reached.
    """
    return asyncio.run(_http(method, url, body, token, timeout))


def http_ok(url: str) -> bool:
    """True when a GET of ``url`` answers at all (the server is up)."""
    try:
        http("GET", url, timeout=2.0)
    except (aiohttp.ClientError, TimeoutError):
        return False
    return True


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus text exposition: (name, frozenset of labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, or None when absent."""
    return metric_values(text).get((name, frozenset(labels.items())))


# -- the Cloudflare stand-in ------------------------------------------------------------------

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


def write_requests(stub: CloudflareStub) -> int:
    """How many write requests (POST/PATCH/PUT/DELETE) the stand-in has answered."""
    return sum(stub.count(method=m) for m in WRITE_METHODS)


def quiet(stub: CloudflareStub, duration: float = 0.5, timeout: float = WAIT) -> None:
    """Wait until the stand-in has answered no request for ``duration`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        before = stub.count()
        time.sleep(duration)
        if stub.count() == before:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"the stand-in was never quiet for {duration:g}s")


def a_records(stub: CloudflareStub, zone: str, name: str) -> dict[str, dict[str, Any]]:
    """The A records of ``name`` in the stand-in's ``zone``, by address."""
    return {r["content"]: r for r in stub.records(zone) if r["type"] == "A" and r["name"] == name}


def addresses_of(stub: CloudflareStub, zone: str, name: str) -> set[str]:
    """The addresses of the A records of ``name`` in the stand-in's ``zone``."""
    return set(a_records(stub, zone, name))


def delete_record(stub: CloudflareStub, zone: str, record_id: str) -> None:
    """Delete a record behind goavail's back, as an operator in the dashboard would."""
    with stub.state.lock:
        del stub.state.records_by_zone[stub.state.zone_id(zone)][record_id]
