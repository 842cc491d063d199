"""Running operators' programs (script checks, hooks) with a hard deadline.

An I/O edge. Every program runs in a new session (so in its own process group),
with stdin from /dev/null and stdout and stderr going to one pipe of which only
the last :data:`OUTPUT_LIMIT` bytes are kept (a chatty program cannot fill
memory or disk). At the deadline the whole process group is killed with
SIGKILL, so the program's children die with it; when the program exits by
itself, whatever it left running in its process group is killed too (a program
that wants something to outlive it must start it in a session of its own, e.g.
with ``setsid``). The environment is not inherited: only the variables in
:data:`PASSED_ENV` are passed on, so goavail's credentials
(``CLOUDFLARE_API_TOKEN``, ...) never reach an operator's program.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

OUTPUT_LIMIT = 4096
"""Bytes of a program's output (stdout and stderr, merged) that are kept: the last ones."""

READ_GRACE = 0.5
"""Seconds the output pipe may stay open after the program's process group was killed
(a grandchild in a session of its own may hold it); then reading stops."""

PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
"""Variables of goavail's own environment that programs get (when set)."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH given to programs when goavail itself has none."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a program ended.

    Attributes:
        returncode: the exit status; negative ``-N``: killed by signal N (by us at
            the deadline when ``timed_out``).
        timed_out: the deadline passed and the process group was killed.
        output: the last :data:`OUTPUT_LIMIT` bytes of stdout + stderr, decoded
            as UTF-8 (invalid bytes replaced).
        duration: seconds from start to exit.
    """

    returncode: int
    timed_out: bool
    output: str
    duration: float

    @property
    def ok(self) -> bool:
        """True when the program exited with status 0 before the deadline."""
        return self.returncode == 0 and not self.timed_out

    def last_line(self, limit: int = 200) -> str:
        """The last non-empty output line, at most ``limit`` characters ("" if none)."""
        for line in reversed(self.output.splitlines()):
            line = line.strip()
            if line:
                return line if len(line) <= limit else line[: limit - 1] + "…"
        return ""

    def describe(self) -> str:
        """Short text: ``"timeout"``, ``"exit status 2"`` or ``"killed by SIGSEGV"``."""
        if self.timed_out:
            return "timeout"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exit status {self.returncode}"


def program_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a program: :data:`PASSED_ENV` from ours, then ``extra``."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra)
    return env


class _Tail(asyncio.Protocol):
    """Keeps the last ``limit`` bytes read from a pipe; ``closed`` resolves at EOF."""

    def __init__(self, limit: int, closed: asyncio.Future[None]) -> None:
        self.limit = limit
        self.data = bytearray()
        self.closed = closed

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > 2 * self.limit:
            del self.data[: -self.limit]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        return bytes(self.data[-self.limit :]).decode("utf-8", errors="replace")


def kill_group(pgid: int) -> None:
    """SIGKILL every process of process group ``pgid``; nothing if it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    time_limit: float,
    output_limit: int = OUTPUT_LIMIT,
) -> RunResult:
    """Run ``argv`` to its end, or kill its process group after ``time_limit`` seconds.

    Cancelling the caller kills the process group too (and reaps the program)
    before the cancellation propagates.

    Args:
        argv: the program and its arguments (the program is looked up in the
            ``PATH`` of ``env`` when it has no ``/``).
        env: the complete environment (see :func:`program_env`).
        time_limit: seconds (> 0) before the process group is killed.
        output_limit: bytes of output kept (the last ones).

    Raises:
        OSError: the program cannot be started (not found, not executable, ...).
    """
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            env=dict(env),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    closed: asyncio.Future[None] = loop.create_future()
    tail = _Tail(output_limit, closed)
    transport, _ = await loop.connect_read_pipe(lambda: tail, os.fdopen(read_fd, "rb", 0))
    timed_out = False
    try:
        try:
            async with asyncio.timeout(time_limit):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        duration = time.monotonic() - started
    finally:
        kill_group(proc.pid)  # the deadline, a cancellation, or what the program left behind
        try:
            await proc.wait()
            await asyncio.wait({closed}, timeout=READ_GRACE)
        finally:
            transport.close()
    assert proc.returncode is not None
    return RunResult(proc.returncode, timed_out, tail.text(), duration)


_PR_SET_PDEATHSIG = 1  # Linux prctl(2) option


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent dies (Linux).

    For long-lived children (goavail's Serf agent, the benchmark's and the tests'
    servers): without it a SIGKILL'ed parent leaves them running as orphans.
    ``PR_SET_PDEATHSIG`` (prctl(2)) fires when the *thread* that spawned the child
    exits, so spawn from a long-lived thread; a parent that died before ``prctl`` ran
    is caught by the ``getppid`` check. libc is loaded here, before the fork. Returns
    None where prctl is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


__all__ = [
    "OUTPUT_LIMIT",
    "PASSED_ENV",
    "RunResult",
    "die_with_parent",
    "kill_group",
    "program_env",
    "run_program",
]
