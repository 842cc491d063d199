"""A real Route 53 API on loopback for the tests: moto's server, and a fault-injecting proxy.

* :class:`MotoServer` runs ``python -m moto.server`` (``moto[server]``) as a
  subprocess on 127.0.0.1 and a free port; boto3 reaches it through
  ``AWS_ENDPOINT_URL_ROUTE_53``, the variable boto3 itself reads, exactly as an
  operator would point goavail at another endpoint.
* :class:`FaultProxy` is a small aiohttp reverse proxy in front of it (a real
  HTTP server in a background thread). It forwards every request unchanged,
  counts them by operation, and can answer the next N requests itself with
  the errors Route 53 sends: ``400 Throttling``, ``400 PriorRequestNotComplete``
  or ``503 ServiceUnavailable`` (Route 53's REST-XML error body), like the
  Cloudflare stand-in's fault injection. boto3 is never mocked.

Both only ever bind 127.0.0.1 inside the test session's private network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import aiohttp
from aiohttp import web

from goavail.proc import die_with_parent
from tests.netns import in_private_netns

HOST = "127.0.0.1"

Fault = Literal["throttling", "prior-request", "unavailable"]

_ERROR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>00000000-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>
"""

_FAULTS: dict[Fault, tuple[int, str, str, str]] = {
    "throttling": (400, "Sender", "Throttling", "Rate exceeded"),
    "prior-request": (
        400,
        "Sender",
        "PriorRequestNotComplete",
        "The request was rejected because Route 53 was still processing a prior request.",
    ),
    "unavailable": (503, "Receiver", "ServiceUnavailable", "Service Unavailable"),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the namespace is ours alone)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1: start, wait until it answers, reset, stop.

    Use as a context manager. ``url`` is its endpoint; :meth:`reset` forgets
    every hosted zone (moto's ``/moto-api/reset``).

    Raises (from :meth:`start`):
        RuntimeError: outside the private test namespace, or the server did not
            answer within 30 s (the message holds its output).
    """

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        if not in_private_netns():
            raise RuntimeError("refusing to start moto outside the private test namespace")
        self._dir = tempfile.TemporaryDirectory(prefix="goavail-moto-")
        self.port = free_port()
        log = (Path(self._dir.name) / "moto.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            preexec_fn=die_with_parent(),  # no orphan if pytest is killed
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    output = self.output()
                    self.stop()
                    raise RuntimeError(f"moto server did not start:\n{output}") from None
                time.sleep(0.1)

    def output(self) -> str:
        """What the server printed so far."""
        if self._dir is None:
            return ""
        return (Path(self._dir.name) / "moto.log").read_text(errors="replace")

    def reset(self) -> None:
        """Forget every zone and record set."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Terminate (then kill) the server and remove its directory; idempotent."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}
)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` that can fail requests on purpose.

    Args:
        upstream: base URL of the real server, e.g. ``MotoServer.url``.

    ``fail_next(n, fault)`` makes the next ``n`` requests fail with ``fault``
    (they never reach upstream); ``operations`` counts the requests that did
    reach it, by Route 53 operation (``"GET /2013-04-01/hostedzone/{id}/rrset"``
    is counted as ``"ListResourceRecordSets"``). Use as a context manager.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.operations: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def fail_next(self, n: int, fault: Fault = "throttling") -> None:
        """Answer the next ``n`` requests with ``fault`` instead of forwarding them."""
        with self._lock:
            self._faults.extend([fault] * n)

    def clear(self) -> None:
        """Forget pending faults and the operation counts."""
        with self._lock:
            self._faults.clear()
            self.operations.clear()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._next_fault()
        if fault is not None:
            status, kind, code, message = _FAULTS[fault]
            body = _ERROR_XML.format(kind=kind, code=code, message=message)
            return web.Response(status=status, text=body, content_type="text/xml")
        with self._lock:
            self.operations[_operation(request.method, request.path)] += 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=upstream.status, body=payload, headers=out)

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        async def boot() -> None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, HOST, 0)
            await site.start()
            self._runner = runner
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="route53-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _operation(method: str, path: str) -> str:
    """The Route 53 operation of a request (the few goavail uses), else ``METHOD PATH``."""
    parts = path.strip("/").split("/")
    if method == "GET" and parts[-1] == "rrset":
        return "ListResourceRecordSets"
    if method == "POST" and parts[-1] == "rrset":
        return "ChangeResourceRecordSets"
    if method == "GET" and parts[-1] == "hostedzonesbyname":
        return "ListHostedZonesByName"
    if method == "GET" and len(parts) == 3 and parts[1] == "hostedzone":
        return "GetHostedZone"
    return f"{method} {path}"
