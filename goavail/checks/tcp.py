"""TCP connect probe engine: a target is up when a TCP handshake to ip:port completes."""

from __future__ import annotations

import asyncio
import errno
import os
import time

from goavail.checks.base import CLOSED, ProbeResult, ResultCallback

_ERRORS: dict[int, str] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timeout",
}


def error_text(exc: OSError) -> str:
    """Short lower-case reason for a failed connect ("connection refused", ...)."""
    if isinstance(exc, TimeoutError) and exc.errno is None:
        return "timeout"
    if exc.errno is not None:
        return _ERRORS.get(exc.errno) or os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


class TcpProbe:
    """TCP connect probe engine implementing :class:`goavail.checks.base.Probe`.

    Args:
        port: TCP port to connect to on every target (1-65535).
        timeout: seconds the handshake may take before the probe fails with
            ``error="timeout"``.

    Targets are IPv4 or IPv6 address strings. A successful probe's ``rtt`` is the
    connect time in seconds; the connection is closed at once. Each probe runs as
    its own task (fine for TCP: connection set-up dominates the cost).
    """

    kind = "tcp"

    def __init__(self, port: int, timeout: float = 1.0) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, not {port}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.port = port
        self.timeout = timeout
        self._tasks: set[asyncio.Task[ProbeResult]] = set()
        self._closed = False

    async def start(self) -> None:
        """Nothing to open: TCP probes need no privileges."""
        self._closed = False

    def submit(self, target: str, callback: ResultCallback) -> None:
        """Start a connect to ``target``; ``callback(target, result)`` follows once."""
        if self._closed:
            asyncio.get_running_loop().call_soon(callback, target, CLOSED)
            return
        task = asyncio.get_running_loop().create_task(self.probe(target))
        self._tasks.add(task)

        def done(task: asyncio.Task[ProbeResult]) -> None:
            self._tasks.discard(task)
            callback(target, CLOSED if task.cancelled() else task.result())

        task.add_done_callback(done)

    async def probe(self, target: str) -> ProbeResult:
        """Connect to ``target``:port once and return the result (within ~``timeout`` s)."""
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                _reader, writer = await asyncio.open_connection(target, self.port)
        except OSError as exc:  # includes TimeoutError from asyncio.timeout
            return ProbeResult(ok=False, error=error_text(exc))
        rtt = time.monotonic() - start
        writer.close()
        return ProbeResult(ok=True, rtt=rtt)

    async def close(self) -> None:
        """Cancel probes in flight; their callbacks get ``error="closed"``."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["TcpProbe", "error_text"]
