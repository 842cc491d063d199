"""The sync transport: an HTTP endpoint that answers pulls, and the client that sends them.

aiohttp on both sides (already goavail's HTTP library): the pull is one
``POST /goavail/sync/v2`` whose body is a sealed :class:`~goavail.cluster.sync.PullRequest`
and whose answer is a sealed :class:`~goavail.cluster.sync.StateReply`. What the
bytes mean, and who may ask, is the cluster layer's business (the ``answer``
callable); this module only moves bytes, bounds them and times them out.

Listening: on the host of ``local_addr`` (or every address) at ``sync_port``,
the TCP port beside Serf's ``members_port``; peers learn it from the notices.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp import web

from goavail.cluster.sync import MAX_REPLY_BYTES
from goavail.errors import GoavailError

log = logging.getLogger("goavail.cluster")

T = TypeVar("T")

PATH = "/goavail/sync/v2"
NOTICE_PATH = "/goavail/sync/v2/notice"
"""Where a peer pushes its notices directly (the same sealed bytes as its Serf user event)."""
MAX_REQUEST_BYTES = 4096
"""A pull request is under 300 bytes; anything much larger is refused unread."""


class SyncRefused(GoavailError):
    """Raised by an ``answer`` callable: the request is refused with ``status`` (400, 403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class SyncServer:
    """Answers pulls on ``host:port``.

    Args:
        host: address to listen on ("" or "0.0.0.0": every IPv4 address; "::": every).
        port: TCP port (1-65535).
        answer: ``answer(body, peer_ip)`` -> the reply bytes; raises
            :class:`SyncRefused` to refuse. Runs on the event loop; must not block.
        notice: ``notice(body)``: a notice pushed to :data:`NOTICE_PATH` (answered 204
            whatever it holds: its checks and counters are the caller's). None: no
            such route.

    Raises (from :meth:`start`):
        OSError: the port cannot be bound (in use, no permission).
    """

    def __init__(
        self,
        host: str,
        port: int,
        answer: Callable[[bytes, str], bytes],
        notice: Callable[[bytes], None] | None = None,
    ) -> None:
        self.host = host or "0.0.0.0"
        self.port = port
        self._answer = answer
        self._notice = notice
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post(PATH, self._handle)
        if self._notice is not None:
            app.router.add_post(NOTICE_PATH, self._handle_notice)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle_notice(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request too large\n")
        assert self._notice is not None
        self._notice(body)
        return web.Response(status=204)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            return web.Response(status=413, text="request too large\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request too large\n")
        peer = request.remote or ""
        try:
            reply = self._answer(body, peer)
        except SyncRefused as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        return web.Response(body=reply, content_type="application/octet-stream")


class SyncClient:
    """Sends pulls (one aiohttp session, reused; close it with :meth:`close`).

    Args:
        timeout: seconds for one whole pull (connect, send, read).
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def pull(self, host: str, port: int, body: bytes) -> bytes:
        """POST ``body`` to the peer at ``host:port`` and return its reply bytes.

        Raises:
            SyncError: refused (with the status), too large, timed out, or the
                connection failed.
        """
        return await self._post(host, port, PATH, body, _read_reply)

    async def push(self, host: str, port: int, body: bytes) -> None:
        """POST a sealed notice to the peer at ``host:port`` (:data:`NOTICE_PATH`).

        Raises:
            SyncError: refused, timed out, or the connection failed.
        """
        await self._post(host, port, NOTICE_PATH, body, _no_content)

    async def _post(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        read: Callable[[aiohttp.ClientResponse, str], Awaitable[T]],
    ) -> T:
        """One POST of ``body``; ``read(response, netloc)`` turns the answer into the
        result or raises :class:`SyncError`. Timeouts and connection errors become
        :class:`SyncError` too."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            async with self._session.post(
                f"http://{netloc}{path}",
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            ) as response:
                return await read(response, netloc)
        except TimeoutError:
            raise SyncError(f"{netloc}: no answer within {self._timeout.total:g}s") from None
        except aiohttp.ClientError as exc:
            raise SyncError(f"{netloc}: {exc}") from None

    async def close(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class SyncError(GoavailError):
    """A pull or a push failed (the message says where and why)."""


async def _read_reply(response: aiohttp.ClientResponse, netloc: str) -> bytes:
    """A pull's answer: 200 and at most :data:`MAX_REPLY_BYTES` bytes."""
    if response.status != 200:
        text = (await response.content.read(200)).decode("utf-8", "replace")
        raise SyncError(f"{netloc} answered {response.status}: {text.strip()}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(65536):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise SyncError(f"{netloc} answered more than {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _no_content(response: aiohttp.ClientResponse, netloc: str) -> None:
    """A push's answer: 204."""
    if response.status != 204:
        raise SyncError(f"{netloc} answered {response.status} to a notice")
