"""One notification destination: a bounded queue, a coalescing window, a retrying POST.

An I/O edge. Events are offered with :meth:`Sink.offer`, which never blocks
and never raises: they go into a bounded queue (when it is full the oldest
event is dropped and counted). A worker task per sink waits for the first
event, collects everything that arrives during ``coalesce_window`` seconds and
posts it as ONE message (:func:`goavail.notify.events.render`). At most one
request per sink is in flight; events arriving meanwhile wait for the next
message. So a burst of hundreds of DNS changes makes one message, and a
receiver that hangs only holds up its own queue: probing and DNS writes never
wait on a notification (flipper sends its notifications synchronously, so a
slow chat server stalls its failover).

Each POST has a total deadline of ``timeout`` seconds. Timeouts, connection
errors, HTTP 408, 429 and 5xx are retried up to ``retries`` times with
exponential backoff and equal jitter (:func:`goavail.dns.backoff.backoff_delay`,
1 s doubling to 30 s), waiting at least what a ``Retry-After`` header asks (as
Slack sends with its 429s; at most :data:`MAX_RETRY_AFTER` seconds). Other
answers (400, 403, 404: a revoked or mistyped hook) are not retried.

Webhook URLs carry tokens: logs name the sink (``slack_addr``,
``notifications[0]``) and the URL's host, never the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from goavail.dns.backoff import backoff_delay, parse_retry_after
from goavail.notify.events import Event, SinkType, render

if TYPE_CHECKING:
    import httpx  # imported where used: an agent without notifications never loads it

log = logging.getLogger("goavail.notify")

QUEUE_SIZE = 1000
"""Events a sink keeps while its receiver is slow or down; beyond it the oldest are dropped."""

MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` (seconds) waited for; a longer one is cut to this."""

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
"""Retry backoff of a message, seconds (see :func:`goavail.dns.backoff.backoff_delay`)."""


@dataclass(slots=True)
class SinkStats:
    """Counters of one sink, cumulative since the agent started (kept across reloads).

    Attributes:
        events: events accepted into the queue.
        sent: messages delivered (HTTP 2xx).
        failed: messages given up (retries used up, or an answer not worth retrying).
        retried: POSTs re-sent after a failed attempt.
        dropped: events never sent: dropped from a full queue, or still queued
            when the agent stopped.
    """

    events: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """Where and how one sink posts.

    Attributes:
        name: the configuration key it came from: ``"slack_addr"`` or
            ``"notifications[N]"`` (used in logs and as the metrics label).
        type: ``"slack"``, ``"mattermost"`` or ``"webhook"``.
        url: the webhook URL (secret; never logged, not in ``repr``).
        channel, username: chat overrides, or None.
        timeout: seconds one POST may take in all.
        retries: retries of one message.
        coalesce_window: seconds events are collected into one message.
    """

    name: str
    type: SinkType
    url: str = field(repr=False)
    channel: str | None = None
    username: str | None = None
    timeout: float = 5.0
    retries: int = 3
    coalesce_window: float = 2.0

    @property
    def host(self) -> str:
        """The URL's host, safe to log."""
        return urllib.parse.urlsplit(self.url).hostname or "?"


@dataclass(frozen=True, slots=True)
class _Attempt:
    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    why: str = ""


class Sink:
    """A notification destination with its own queue and worker task.

    Args:
        settings: where and how to post.
        agent: this agent's node name (in every message).
        version: goavail's version (webhook body).
        stats: counters to add to (a reloaded sink keeps its predecessor's).
        queue_size: events kept before the oldest are dropped.
        max_retry_after: see :data:`MAX_RETRY_AFTER`.
        backoff_base, backoff_cap: retry backoff, seconds.
        jitter: random numbers in [0, 1) for the backoff.
        sleep: waits between retries (``asyncio.sleep``; tests record the delays).

    Call :meth:`start` (in the event loop) to start the worker, :meth:`close` to
    flush and stop it.
    """

    def __init__(
        self,
        settings: SinkSettings,
        *,
        agent: str,
        version: str,
        stats: SinkStats | None = None,
        queue_size: int = QUEUE_SIZE,
        max_retry_after: float = MAX_RETRY_AFTER,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.version = version
        self.stats = stats if stats is not None else SinkStats()
        self.max_retry_after = max_retry_after
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._jitter = jitter
        self._sleep = sleep
        self._queue: deque[Event] = deque(maxlen=queue_size)
        self._unreported = 0  # dropped since the last message, told in the next one
        self._inflight = 0
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Events waiting for the next message."""
        return len(self._queue)

    def offer(self, event: Event) -> None:
        """Queue ``event`` for the next message. Never blocks, never raises.

        When the queue is full the oldest event is dropped (and counted).
        Events offered after :meth:`close` began are dropped.
        """
        if self._closing.is_set() and self._task is None:
            self.stats.dropped += 1
            return
        if len(self._queue) == self._queue.maxlen:
            self.stats.dropped += 1
            self._unreported += 1
        self._queue.append(event)
        self.stats.events += 1
        self._wake.set()

    def start(self, client: httpx.AsyncClient) -> None:
        """Start the worker task, posting through ``client`` (must run in the event loop)."""
        if self._task is not None:
            return
        self._client = client
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"notify-{self.settings.name}"
        )

    async def close(self, deadline: float) -> None:
        """Send what is queued (at once, without waiting for the window), then stop.

        Gives up after ``deadline`` seconds: the worker is cancelled and events
        not delivered are counted as dropped. Never raises (but propagates the
        cancellation of the caller).
        """
        self._closing.set()
        self._wake.set()
        task = self._task
        if task is None:
            self._abandon()
            return
        try:
            await asyncio.wait({task}, timeout=deadline)
        finally:  # also when the caller is cancelled: never leave the worker behind
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._task = None
            self._abandon()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "notifications to %s stopped on an error: %r",
                self.settings.name,
                task.exception(),
            )

    def _abandon(self) -> None:
        lost = len(self._queue) + self._inflight
        if lost:
            self.stats.dropped += lost
            log.warning(
                "notifications to %s (%s): %d event(s) not delivered at stop",
                self.settings.name,
                self.settings.host,
                lost,
            )
        self._queue.clear()
        self._inflight = 0

    # -- the worker ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing.is_set():
                # coalescing window: collect what else arrives (cut short by close)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.coalesce_window):
                        await self._closing.wait()
            self._wake.clear()
            if self._queue:
                batch = list(self._queue)
                self._queue.clear()
                dropped, self._unreported = self._unreported, 0
                self._inflight = len(batch)
                try:
                    await self._deliver(batch, dropped)
                except Exception:  # a bug here must not silence this sink for good
                    self.stats.failed += 1
                    log.exception("notification to %s failed", self.settings.name)
                self._inflight = 0
            if self._closing.is_set() and not self._queue:
                return

    async def _deliver(self, batch: list[Event], dropped: int) -> bool:
        """Post one message carrying ``batch``; True when delivered."""
        s = self.settings
        body = render(
            s.type,
            batch,
            agent=self.agent,
            version=self.version,
            dropped=dropped,
            channel=s.channel,
            username=s.username,
        )
        attempt = 0
        while True:
            result = await self._post(body)
            if result.ok:
                self.stats.sent += 1
                if attempt:
                    log.info("notification to %s delivered after %d retries", s.name, attempt)
                return True
            if not result.retryable or attempt >= s.retries:
                self.stats.failed += 1
                log.warning(
                    "notification to %s (%s) failed after %d attempt(s): %s; "
                    "%d event(s) not delivered",
                    s.name,
                    s.host,
                    attempt + 1,
                    result.why,
                    len(batch),
                )
                return False
            attempt += 1
            delay = backoff_delay(
                attempt, self._jitter(), base=self.backoff_base, cap=self.backoff_cap
            )
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self.max_retry_after))
            self.stats.retried += 1
            log.info(
                "notification to %s (%s): %s; retry %d of %d in %.1fs",
                s.name,
                s.host,
                result.why,
                attempt,
                s.retries,
                delay,
            )
            await self._sleep(delay)

    async def _post(self, body: dict[str, Any]) -> _Attempt:
        import httpx  # loaded with the client: this is a sys.modules look-up

        s = self.settings
        assert self._client is not None
        try:
            async with asyncio.timeout(s.timeout):
                response = await self._client.post(s.url, json=body, timeout=s.timeout)
        except (TimeoutError, httpx.TimeoutException):
            return _Attempt(False, retryable=True, why=f"no answer within {s.timeout:g}s")
        except httpx.HTTPError as exc:
            # the text of a transport error is the OS error, not the URL
            return _Attempt(False, retryable=True, why=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return _Attempt(True)
        snippet = " ".join(response.text.split())[:120]
        return _Attempt(
            False,
            retryable=status in (408, 429) or status >= 500,
            retry_after=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
            why=f"HTTP {status}" + (f" {snippet!r}" if snippet else ""),
        )
