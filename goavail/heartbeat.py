"""The heartbeat: a dead-man switch (after flipper's ``heartbeat``).

With a ``[Heartbeat]`` section, goavail sends ``GET url`` at start and then
every ``interval`` seconds (a fixed rate: a slow answer does not push the next
beat later). A monitoring service (healthchecks.io, UptimeRobot's heartbeat
monitors, a cron monitor) alerts when the GETs stop coming, i.e. when goavail
itself is dead or cut off. An answer other than 2xx, a timeout or a connection
error is logged and counted, never fatal, and not retried: the next beat is the
retry. An I/O edge.

The URL usually carries a token: logs show its host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING

from goavail.config.notifications import HeartbeatSection
from goavail.logs import REDACTOR

if TYPE_CHECKING:
    import httpx  # imported where used: an agent without [Heartbeat] never loads it

log = logging.getLogger("goavail.heartbeat")


class Heartbeat:
    """Sends the heartbeat GETs while :meth:`run` runs.

    Args:
        settings: the ``[Heartbeat]`` section, or None (no heartbeat until a
            reload configures one).

    Attributes (for metrics and the status page):
        ok: GETs answered with 2xx.
        failed: GETs that failed (timeout, connection error, other status).
        last_ok: wall-clock time (Unix seconds) of the last 2xx, or None.
        last_error: text of the last failure, or None after a success.
    """

    def __init__(self, settings: HeartbeatSection | None) -> None:
        self.settings = settings
        self.ok = 0
        self.failed = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._changed = asyncio.Event()
        if settings is not None:
            REDACTOR.add([settings.url.get_secret_value()])

    def reconfigure(self, settings: HeartbeatSection | None) -> None:
        """Apply a reloaded ``[Heartbeat]`` (or its removal). A changed section beats at once."""
        if settings == self.settings:
            return
        if settings is not None:
            REDACTOR.add([settings.url.get_secret_value()])
        self.settings = settings
        log.info(
            "heartbeat %s",
            "off" if settings is None else f"to {_host(settings)} every {settings.interval:g}s",
        )
        self._changed.set()

    async def run(self) -> None:
        """Beat until cancelled. Never raises anything but the cancellation."""
        loop = asyncio.get_running_loop()
        if self.settings is not None:
            log.info("heartbeat to %s every %gs", _host(self.settings), self.settings.interval)
        async with contextlib.AsyncExitStack() as stack:
            client: httpx.AsyncClient | None = None  # created at the first beat
            while True:
                self._changed.clear()
                settings = self.settings
                if settings is None:
                    await self._changed.wait()
                    continue
                if client is None:
                    import httpx

                    client = await stack.enter_async_context(
                        httpx.AsyncClient(follow_redirects=True)
                    )
                started = loop.time()
                await self.beat(client, settings)
                # until the next beat, unless new settings arrive (then beat at once)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(started + settings.interval):
                        await self._changed.wait()

    async def beat(self, client: httpx.AsyncClient, settings: HeartbeatSection) -> bool:
        """Send one GET; count and log the outcome. Returns True on a 2xx answer."""
        import httpx  # loaded with the client: this is a sys.modules look-up

        try:
            async with asyncio.timeout(settings.timeout):
                response = await client.get(
                    settings.url.get_secret_value(), timeout=settings.timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(settings, f"no answer within {settings.timeout:g}s")
        except httpx.HTTPError as exc:
            # transport errors carry the OS error's text, not the URL
            return self._failed(settings, f"{type(exc).__name__}: {exc}")
        if not 200 <= response.status_code < 300:
            return self._failed(settings, f"HTTP {response.status_code}")
        self.ok += 1
        self.last_ok = time.time()
        if self.last_error is not None:
            log.info("heartbeat to %s answered again", _host(settings))
        self.last_error = None
        return True

    def _failed(self, settings: HeartbeatSection, why: str) -> bool:
        self.failed += 1
        self.last_error = why
        log.warning(
            "heartbeat to %s failed (%s); next in %gs", _host(settings), why, settings.interval
        )
        return False


def _host(settings: HeartbeatSection) -> str:
    return urllib.parse.urlsplit(settings.url.get_secret_value()).hostname or "?"
