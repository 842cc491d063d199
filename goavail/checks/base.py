"""The probe protocol shared by every probe engine (ICMP, TCP, later HTTP and scripts)."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from goavail.errors import GoavailError

log = logging.getLogger("goavail.checks")


class ProbeResult(NamedTuple):
    """Outcome of one probe of one target (a named tuple: cheap to create per reply).

    Attributes:
        ok: True when the target answered in time.
        rtt: round-trip time in seconds when ``ok``, else None.
        error: short human-readable reason when not ``ok`` ("timeout",
            "connection refused", ...), else None.
    """

    ok: bool
    rtt: float | None = None
    error: str | None = None


CLOSED = ProbeResult(ok=False, error="closed")
"""The result of a probe cut short by ``close()``: the engine stopped, not the target."""

ResultCallback = Callable[[str, ProbeResult], None]
"""Called as ``callback(target, result)`` on the event loop when a probe completes."""


class ProbeSetupError(GoavailError):
    """A probe engine cannot start (e.g. no permission to open an ICMP socket).

    The message is meant for the operator and names the fix.
    """


class Probe(Protocol):
    """A probe engine. One instance serves every target of its kind.

    Lifecycle: ``await start()`` once, then any number of ``submit``/``probe``
    calls, then ``await close()``. All methods run on the agent's event loop.
    """

    kind: str
    """Short name used in logs and metrics: "icmp", "tcp"."""

    timeout: float
    """Seconds after which an unanswered probe is reported as failed."""

    async def start(self) -> None:
        """Open sockets. Raises :class:`ProbeSetupError` with an actionable message."""
        ...

    def submit(self, target: str, callback: ResultCallback) -> None:
        """Send one probe to ``target`` (an IP address string) without waiting.

        ``callback(target, result)`` is invoked exactly once, at the latest
        ``timeout`` seconds later (plus scheduling delay). This is the fast path
        used by the scheduler; it must not create a task per probe for ICMP.
        """
        ...

    async def probe(self, target: str) -> ProbeResult:
        """Probe ``target`` once and wait for the result (used by ``goavail plan``)."""
        ...

    async def close(self) -> None:
        """Close sockets; pending probes complete with ``error="closed"``."""
        ...


@runtime_checkable
class BatchProbe(Protocol):
    """A probe engine that can also send a whole slice of a target list at once.

    The scheduler uses :meth:`submit_batch` instead of one :meth:`Probe.submit` per
    target when the engine has it (the ICMP engine: see goavail/checks/icmp.py).
    """

    def submit_batch(
        self,
        targets: Sequence[str],
        start: int,
        end: int,
        round_number: int,
        callback: ResultCallback,
    ) -> None:
        """Probe ``targets[start:end]`` (``0 <= start < end <= len(targets)``) now.

        ``targets`` is passed as the same list object for as long as the targets do
        not change, so the engine may prepare it once; ``round_number`` counts the
        rounds over that list. ``callback(target, result)`` follows once per target,
        as for :meth:`Probe.submit`.
        """
        ...


class TaskProbe(ABC):
    """Base of the engines that run each probe as its own asyncio task (TCP, HTTP(S),
    script): fine where connection set-up or a process dominates the cost (the ICMP
    engine does not use it).

    Subclasses set ``kind`` and ``timeout`` and implement :meth:`probe`; they may
    override :meth:`_ready` (e.g. "the HTTP client exists") and extend :meth:`close`.
    """

    kind: str
    timeout: float

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[ProbeResult]] = set()
        self._closed = False

    async def start(self) -> None:
        """Accept probes again (after :meth:`close`); subclasses open what they need."""
        self._closed = False

    def _ready(self) -> bool:
        """Whether :meth:`submit` may start a probe (False: it completes as closed)."""
        return not self._closed

    def submit(self, target: str, callback: ResultCallback) -> None:
        """Start :meth:`probe` of ``target`` in a task; ``callback(target, result)``
        follows exactly once: the result, ``CLOSED`` when cancelled by :meth:`close`,
        or a failed result naming the exception if the probe itself raised (a bug must
        not leave a target without a result)."""
        loop = asyncio.get_running_loop()
        if not self._ready():
            loop.call_soon(callback, target, CLOSED)
            return
        task = loop.create_task(self.probe(target))
        self._tasks.add(task)

        def done(task: asyncio.Task[ProbeResult]) -> None:
            self._tasks.discard(task)
            callback(target, CLOSED if task.cancelled() else self._result(task))

        task.add_done_callback(done)

    @abstractmethod
    async def probe(self, target: str) -> ProbeResult:
        """Probe ``target`` once and return the result (within ~``timeout`` s)."""

    def _result(self, task: asyncio.Task[ProbeResult]) -> ProbeResult:
        exc = task.exception()
        if exc is None:
            return task.result()
        log.error("%s probe failed unexpectedly", self.kind, exc_info=exc)
        return ProbeResult(ok=False, error=f"internal error: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Cancel the probes in flight; their callbacks get ``error="closed"``."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
