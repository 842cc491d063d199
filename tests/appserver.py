"""Real HTTP and HTTPS application servers for check tests (aiohttp on loopback addresses).

:class:`AppServer` serves one port on several 127.0.0.0/8 addresses (one per
target), plain or with TLS. How it answers is set per address at any time
(:class:`Behaviour`: status, body, delay), so a test can break one target's
application while its address keeps answering ping. Every request is recorded
with the address it reached, its ``Host`` header and (TLS) the SNI name.

* :class:`AppServer` runs in the caller's event loop (``async with``).
* :class:`ThreadedAppServer` runs one in a background thread, for end-to-end
  tests whose body is synchronous (``with``).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one address answers: ``status`` and ``body`` after ``delay`` seconds."""

    status: int = 200
    body: str = "ok"
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Seen:
    """One request: the local ``address`` it reached, ``method``, ``path``, ``host``
    (the Host header) and ``sni`` (the TLS server name the client sent, or None)."""

    address: str
    method: str
    path: str
    host: str
    sni: str | None


class AppServer:
    """An HTTP(S) server on ``port`` of each of ``addresses``.

    Args:
        addresses: loopback addresses to bind (127.0.0.0/8 only).
        port: the TCP port (the same on every address).
        ssl_context: a server context (see ``tests/tlsca.py``) for HTTPS, or None.
        default: the behaviour of addresses without one of their own.
    """

    def __init__(
        self,
        addresses: list[str],
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        default: Behaviour | None = None,
    ) -> None:
        for address in addresses:
            assert address.startswith("127."), "test servers bind loopback addresses only"
        self.addresses = addresses
        self.port = port
        self.ssl_context = ssl_context
        self.default = default or Behaviour()
        self.behaviour: dict[str, Behaviour] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._sni: dict[int, str | None] = {}
        if ssl_context is not None:
            ssl_context.sni_callback = self._on_sni

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self._sni[id(sslobj)] = name

    def set(self, address: str, behaviour: Behaviour) -> None:
        """Answer requests to ``address`` this way from now on (thread-safe)."""
        with self._lock:
            self.behaviour[address] = behaviour

    @property
    def seen(self) -> list[Seen]:
        """A copy of every request so far (safe from any thread)."""
        with self._lock:
            return list(self._seen)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        address = sockname[0] if sockname else "?"
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        sni = self._sni.get(id(sslobj)) if sslobj is not None else None
        with self._lock:
            self._seen.append(Seen(address, request.method, request.path_qs, request.host, sni))
            behaviour = self.behaviour.get(address, self.default)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        return web.Response(status=behaviour.status, text=behaviour.body)

    async def start(self) -> Self:
        """Bind every address and serve."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        for address in self.addresses:
            site = web.TCPSite(
                self._runner, address, self.port, ssl_context=self.ssl_context, reuse_address=True
            )
            await site.start()
        return self

    async def close(self) -> None:
        """Stop serving (idempotent)."""
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


class ThreadedAppServer:
    """An :class:`AppServer` served from a background thread; ``with`` gives the server."""

    def __init__(self, server: AppServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="app", daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        return self.server

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
