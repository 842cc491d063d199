"""TCP connect probe engine: a target is up when a TCP handshake to ip:port completes."""

from __future__ import annotations

import asyncio
import errno
import os
import time

from goavail.checks.base import ProbeResult, TaskProbe

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


class TcpProbe(TaskProbe):
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
        super().__init__()
        self.port = port
        self.timeout = timeout

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


__all__ = ["TcpProbe", "error_text"]
