"""Script probe engine: a target is up when an operator's program exits with status 0
(flopsy's check scripts, with a deadline).

The program is run as ``command... <target>``: the target's address is its last
argument, and it is in the environment as ``GOAVAIL_TARGET`` (with
``GOAVAIL_CHECK``, the check's id, and ``GOAVAIL_TIMEOUT``, the deadline in
seconds). At the deadline its whole process group is killed (see
:mod:`goavail.proc`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from goavail.checks.base import ProbeResult, TaskProbe
from goavail.proc import program_env, run_program


class ScriptProbe(TaskProbe):
    """Script probe engine implementing :class:`goavail.checks.base.Probe`.

    Args:
        command: argv of the program (non-empty); the target is appended.
        timeout: seconds the program may run before its process group is killed
            and the probe fails with ``error="timeout"``.
        check_id: the check's id, passed as ``GOAVAIL_CHECK``.

    A successful probe's ``rtt`` is the program's run time in seconds. A failed
    one's ``error`` is ``"exit status N"`` (or ``"killed by SIGNAME"``,
    ``"timeout"``, ``"cannot run ...: reason"``) followed by the last line the
    program printed, if any. Each probe runs as its own task and process.
    """

    kind = "script"

    def __init__(self, command: Sequence[str], timeout: float = 1.0, *, check_id: str = "") -> None:
        if not command or not command[0]:
            raise ValueError("command must name a program")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        super().__init__()
        self.command = list(command)
        self.timeout = timeout
        self.check_id = check_id

    async def probe(self, target: str) -> ProbeResult:
        """Run the program once for ``target`` and return the result (within ~``timeout`` s)."""
        env = program_env(
            {
                "GOAVAIL_TARGET": target,
                "GOAVAIL_CHECK": self.check_id,
                "GOAVAIL_TIMEOUT": f"{self.timeout:g}",
            }
        )
        try:
            result = await run_program([*self.command, target], env=env, time_limit=self.timeout)
        except OSError as exc:
            reason = exc.strerror.lower() if exc.strerror else str(exc)
            return ProbeResult(ok=False, error=f"cannot run {self.command[0]}: {reason}")
        if result.ok:
            return ProbeResult(ok=True, rtt=result.duration)
        line = result.last_line()
        return ProbeResult(
            ok=False, error=f"{result.describe()}: {line}" if line else result.describe()
        )


def command_problem(command: Sequence[str], path: str | None = None) -> str | None:
    """Why ``command`` cannot be run here, or None (for start-up checks).

    Args:
        command: argv; only ``command[0]`` is looked at.
        path: the ``PATH`` used to find a program named without ``/`` (default:
            the one :func:`goavail.proc.program_env` gives programs).
    """
    program = command[0]
    if "/" in program:
        if not os.path.isfile(program):
            return f"{program!r} does not exist or is not a file"
        if not os.access(program, os.X_OK):
            return f"{program!r} is not executable"
        return None
    if shutil.which(program, path=path or program_env({})["PATH"]) is None:
        return f"{program!r} not found in PATH"
    return None


__all__ = ["ScriptProbe", "command_problem"]
