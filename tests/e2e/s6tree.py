"""The repository's s6 service tree (``s6/services``), run under a real ``s6-svscan``.

:class:`S6Tree` copies the tree to a temporary scan directory, unchanged: the run
scripts take their paths and settings from the environment (``GOAVAIL_BIN``,
``GOAVAIL_CONFIG``, ...), which the test gives to ``s6-svscan`` as Docker would to
PID 1, and s6 hands down to every service. What the tree writes to s6-svscan's
stdout and stderr (goavail's lines through its s6-log logger, Serf's lines, the
``.s6-svscan/finish`` line) is collected like :class:`~tests.e2e.harness.GoavailProcess`
collects goavail's output.

Everything runs inside the test session's private network namespace. Clean-up
(:meth:`S6Tree.close`, also on test failure) first asks s6-svscan for a clean
shutdown (``s6-svscanctl -t``), then kills whatever is left: every process whose
working directory is inside the scan directory (s6-supervise, the services and
their children all run there) and s6-svscan itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.e2e.harness import CONSOLE_SCRIPT, REPO, WAIT, child_env, wait_until

TREE = REPO / "s6" / "services"
"""The service tree as the Dockerfile copies it."""

SHUTDOWN = 20.0
"""Seconds a clean shutdown (``s6-svscanctl -t``) may take before the tree is killed."""

CAP_NET_RAW = 13
"""Capability number of CAP_NET_RAW (linux/capability.h)."""

DOCKER_DEFAULT_CAPS = (
    "chown,dac_override,fsetid,fowner,mknod,net_raw,setgid,setuid,setfcap,setpcap,"
    "net_bind_service,sys_chroot,kill,audit_write"
)
"""The capabilities Docker gives a container by default (moby's ``DefaultCapabilities``)."""


class S6Tree:
    """A copy of ``s6/services`` in ``workdir / "services"`` run by ``s6-svscan``.

    Args:
        workdir: a directory of the test's own; the scan directory goes inside it.
        env: environment variables for s6-svscan (and so every service), on top of
            :func:`~tests.e2e.harness.child_env` and ``GOAVAIL_BIN`` (the project's
            ``goavail`` console script).
        prefix: argv words put before ``s6-svscan``, e.g. a ``setpriv`` command line
            that limits its capabilities as a container runtime would (it must
            ``exec`` s6-svscan).

    Use as a context manager: s6-svscan starts on entry; on exit the tree is shut
    down, or killed, see :meth:`close`.
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        *,
        prefix: Sequence[str] = (),
    ) -> None:
        self.scandir = workdir / "services"
        shutil.copytree(TREE, self.scandir, symlinks=True)
        self.env = child_env({"GOAVAIL_BIN": str(CONSOLE_SCRIPT), **(env or {})})
        self.prefix = list(prefix)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    # -- the s6-svscan process ---------------------------------------------------------

    def start(self) -> Self:
        """Start s6-svscan on the scan directory (in a new session), and its output reader."""
        self._proc = subprocess.Popen(
            [*self.prefix, "s6-svscan", str(self.scandir)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="s6-svscan-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def svscan_pid(self) -> int:
        """s6-svscan's process id."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """s6-svscan's exit code (that of ``.s6-svscan/finish``), or None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def shutdown(self, how: str = "svscanctl", timeout: float = SHUTDOWN) -> int:
        """Stop the tree cleanly and return s6-svscan's exit code.

        Args:
            how: ``"svscanctl"`` (``s6-svscanctl -t``) or ``"sigterm"`` (SIGTERM to
                s6-svscan, what ``docker stop`` sends to PID 1).
            timeout: seconds to wait for s6-svscan to exit.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        assert self._proc is not None, "not started"
        if how == "sigterm":
            self._proc.send_signal(signal.SIGTERM)
        else:
            subprocess.run(["s6-svscanctl", "-t", str(self.scandir)], check=True, timeout=10)
        rc = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return rc

    def leftovers(self) -> list[int]:
        """Pids of the processes running in the scan directory (services, s6-supervise)."""
        found: list[int] = []
        root = str(self.scandir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cwd = os.readlink(entry / "cwd")
                if cwd == root or cwd.startswith(root + "/"):
                    found.append(int(entry.name))
        return found

    def close(self) -> None:
        """Shut the tree down cleanly if it still runs, else kill every process of it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.shutdown(timeout=SHUTDOWN)
        for pid in [*self.leftovers(), self._proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- output ------------------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        """A copy of every line s6-svscan's stdout and stderr carried so far."""
        with self._cond:
            return list(self._lines)

    def mark(self) -> int:
        """The number of lines so far: pass it as ``since`` to look only at later lines."""
        with self._cond:
            return len(self._lines)

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines, for failure messages."""
        return "\n".join(self.lines[-n:])

    def matching(self, pattern: str, *, since: int = 0) -> list[str]:
        """Lines (from line ``since`` on) in which ``pattern`` (a regex) is found."""
        regex = re.compile(pattern)
        return [line for line in self.lines[since:] if regex.search(line)]

    def wait_for(self, pattern: str, timeout: float = WAIT, *, since: int = 0) -> str:
        """Wait for a line (from line ``since`` on) matching ``pattern``, and return it.

        Raises:
            AssertionError: none within ``timeout`` seconds; the message holds the last lines.
        """
        found = wait_until(
            lambda: self.matching(pattern, since=since),
            timeout,
            message=lambda: f"no line matched {pattern!r}; last lines:\n{self.tail()}",
        )
        return found[0]

    # -- services ----------------------------------------------------------------------

    def service(self, name: str) -> Path:
        """The directory of service ``name`` (``"goavail"``, ``"goavail/log"``, ``"serf"``)."""
        return self.scandir / name

    def svc(self, *options: str, service: str = "goavail") -> None:
        """Run ``s6-svc OPTIONS`` on a service (``-h``, ``-d``, ``-u``, ``-wd -T ms -d``...)."""
        subprocess.run(
            ["s6-svc", *options, str(self.service(service))],
            check=True,
            capture_output=True,
            timeout=WAIT + 5,
        )

    def status(self, service: str = "goavail") -> dict[str, str]:
        """The service's state from ``s6-svstat -o``: up, wantedup, pid, exitcode, signal.

        Values are s6-svstat's words: ``"true"``/``"false"``, a pid or ``"-1"``, an
        exit code or ``"-1"``, a signal name or ``"NA"``. Empty while s6-supervise
        has not started yet.
        """
        fields = ("up", "wantedup", "pid", "exitcode", "signal")
        done = subprocess.run(
            ["s6-svstat", "-o", ",".join(fields), str(self.service(service))],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            return {}
        return dict(zip(fields, done.stdout.split(), strict=True))

    def pid(self, service: str = "goavail") -> int | None:
        """The pid of the service's process while it is up, else None."""
        state = self.status(service)
        return int(state["pid"]) if state.get("up") == "true" else None

    def wait_up(
        self, service: str = "goavail", *, other_than: int | None = None, timeout: float = WAIT
    ) -> int:
        """Wait until the service is up (with a pid other than ``other_than``); return its pid."""

        def up() -> int | None:
            pid = self.pid(service)
            return pid if pid is not None and pid != other_than else None

        pid = wait_until(
            up,
            timeout,
            message=lambda: f"{service} not up: {self.status(service)}\n{self.tail()}",
        )
        assert pid is not None
        return pid

    def wait_down(self, service: str = "goavail", timeout: float = WAIT) -> dict[str, str]:
        """Wait until the service is down; return its status."""

        def down() -> dict[str, str]:
            state = self.status(service)
            return state if state.get("up") == "false" else {}

        return wait_until(
            down,
            timeout,
            message=lambda: f"{service} not down: {self.status(service)}\n{self.tail()}",
        )


def nobody_can_run(program: Path, *, from_shell: bool) -> bool:
    """Whether user ``nobody`` can run ``program --version`` (the project's goavail).

    ``from_shell=False``: root's ``setpriv`` switches to nobody and execs it, as the
    run script does with ``GOAVAIL_USER``; ``True``: a shell already running as
    nobody execs it, as in a tree run without root. The project's interpreter may
    live where only root may enter (a pyenv under /root); the container's
    /usr/local/bin/goavail never does.
    """
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    command = ["sh", "-c", 'exec "$0" --version', str(program)] if from_shell else [str(program)]
    done = subprocess.run(
        [*drop, *command, *([] if from_shell else ["--version"])],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a dict (``Uid``, ``CapEff``, ``NoNewPrivs``...)."""
    text = Path(f"/proc/{pid}/status").read_text()
    pairs = (line.partition(":") for line in text.splitlines())
    return {key: value.strip() for key, _, value in pairs}


def capabilities(mask: str) -> set[int]:
    """The capability numbers set in a hex mask of ``/proc/PID/status`` (``CapEff``...)."""
    value = int(mask, 16)
    return {bit for bit in range(64) if value >> bit & 1}


def wait_gone(pids: Sequence[int], timeout: float = WAIT) -> None:
    """Wait until none of ``pids`` exists any more (zombies of other parents count as gone)."""

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state == "Z"

    wait_until(lambda: all(gone(p) for p in pids), timeout, message=f"still running: {pids}")


def socket_owners(table: str) -> list[int]:
    """The uids owning the sockets listed in ``/proc/net/<table>`` (``raw``, ``icmp``...)."""
    lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    return [int(line.split()[7]) for line in lines if line.strip()]
