"""A real HTTP receiver for notification and heartbeat tests (aiohttp on 127.0.0.1).

It records every request (method, path, headers, body, parsed JSON) and answers
from a script: each :class:`Reply` in ``script`` answers one request, in order,
then ``default`` answers the rest. A reply can be a status with headers and a
body, or ``hang=True``: the request is accepted and never answered (until the
receiver closes), like a chat server that has stopped responding.

* :class:`Receiver` runs in the caller's event loop (``async with``).
* :class:`ThreadedReceiver` runs one in a background thread with its own loop,
  for end-to-end tests whose test body is synchronous (``with``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Reply:
    """How the receiver answers one request.

    Attributes:
        status: HTTP status.
        headers: response headers (e.g. ``{"Retry-After": "1"}``).
        body: response body text.
        hang: never answer (the connection stays open until the receiver closes).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    hang: bool = False


HANG = Reply(hang=True)


@dataclass(frozen=True, slots=True)
class Request:
    """One request as received: ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Receiver:
    """A scripted, recording HTTP server on ``host`` (an ephemeral port).

    Args:
        script: replies for the first requests, in order.
        default: the reply once the script is used up.
        host: the address to bind (127.0.0.0/8 only).
    """

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.script: deque[Reply] = deque(script)
        self.default = default or Reply()
        self.host = host
        self.port = 0
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> list[Request]:
        """A copy of every request received so far (safe from any thread)."""
        with self._lock:
            return list(self._requests)

    def url(self, path: str = "/hook") -> str:
        """``http://host:port/path``."""
        return f"http://{self.host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self._requests.append(
                Request(request.method, request.path, dict(request.headers), body, time.monotonic())
            )
            reply = self.script.popleft() if self.script else self.default
        if reply.hang:
            assert self._release is not None
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        return web.Response(status=reply.status, headers=reply.headers, text=reply.body)

    async def start(self) -> Self:
        """Bind and serve; afterwards :meth:`url` is valid."""
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Release hung requests and stop serving (idempotent)."""
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for(
        self,
        predicate: Callable[[list[Request]], bool],
        within: float = 10.0,
    ) -> list[Request]:
        """Wait (in the event loop) until ``predicate(requests)`` holds; return the requests.

        Raises:
            AssertionError: not within ``within`` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            requests = self.requests
            if predicate(requests):
                return requests
            if time.monotonic() >= deadline:
                raise AssertionError(f"after {within:g}s, receiver got {len(requests)} request(s)")
            await asyncio.sleep(0.02)


class ThreadedReceiver:
    """A :class:`Receiver` served from a background thread (for synchronous tests).

    Use as a context manager; ``receiver`` is the running :class:`Receiver`.
    """

    def __init__(self, script: Iterable[Reply] = (), *, default: Reply | None = None) -> None:
        self.receiver = Receiver(script, default=default)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(timeout=10)
        return self.receiver

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
