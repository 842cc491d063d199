"""A stateful Hetzner Cloud API stand-in served over HTTP (aiohttp), driven by the
official ``hcloud`` SDK in the tests (its ``api_endpoint``, goavail's ``HCLOUD_ENDPOINT``).

It serves the part of https://docs.hetzner.cloud/ that floating-IP failover uses:

* ``GET /v1/servers`` and ``GET /v1/floating_ips`` with ``label_selector`` filtering
  (:mod:`goavail.fip.selector`'s grammar: ``k=v``, ``k!=v``, ``k``, ``!k``,
  ``k in (a,b)``, ``k notin (a,b)``) and pagination (``page``, ``per_page``, ``meta``);
* ``POST /v1/floating_ips/{id}/actions/assign`` (``{"server": id}``): an action that is
  ``running`` for ``action_seconds`` and then ``success``; the assignment takes effect
  when the action finishes;
* ``GET /v1/actions/{id}``;
* faults: :meth:`StubState.fail_next` (the next n requests answer ``status``) and
  :meth:`StubState.set_error_rate` (a share of requests answer 500/503/429 at random,
  seeded); an unknown token answers 401.

Every request is logged (``requests``); tests change the state directly
(:meth:`StubState.reassign` is a manual re-assignment: drift).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from goavail.fip.selector import matches, parse_selector

DEFAULT_TOKEN = "hcloud-test-token-0123456789"
_ERRORS = {
    429: ("rate_limit_exceeded", "limit of 3600 requests per hour reached"),
    500: ("server_error", "internal server error"),
    502: ("bad_gateway", "bad gateway"),
    503: ("unavailable", "service unavailable"),
}
JSON = dict[str, Any]


@dataclass
class StubServer:
    id: int
    name: str
    ipv4: str
    location: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self, floating: list[int]) -> JSON:
        loc = {"id": hash(self.location) % 1000, "name": self.location}
        return {
            "id": self.id,
            "name": self.name,
            "status": "running",
            "labels": dict(self.labels),
            "created": "2024-01-01T00:00:00+00:00",
            "public_net": {
                "ipv4": {"id": self.id + 10000, "ip": self.ipv4, "blocked": False, "dns_ptr": ""},
                "ipv6": None,
                "floating_ips": floating,
                "firewalls": [],
            },
            "datacenter": {"id": 1, "name": f"{self.location}-dc1", "location": loc},
            "location": loc,
        }


@dataclass
class StubFloatingIp:
    id: int
    name: str
    ip: str
    home_location: str
    labels: dict[str, str] = field(default_factory=dict)
    server: int | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "description": None,
            "ip": self.ip,
            "type": "ipv6" if ":" in self.ip else "ipv4",
            "server": self.server,
            "dns_ptr": [],
            "home_location": {"id": hash(self.home_location) % 1000, "name": self.home_location},
            "blocked": False,
            "protection": {"delete": False},
            "labels": dict(self.labels),
            "created": "2024-01-01T00:00:00+00:00",
        }


@dataclass
class StubAction:
    id: int
    ip: int
    server: int
    started: float
    finishes: float
    status: str = "running"

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "command": "assign_floating_ip",
            "status": self.status,
            "progress": 100 if self.status != "running" else 50,
            "started": "2024-01-01T00:00:00+00:00",
            "finished": None if self.status == "running" else "2024-01-01T00:00:01+00:00",
            "resources": [
                {"id": self.ip, "type": "floating_ip"},
                {"id": self.server, "type": "server"},
            ],
            "error": None,
        }


class StubState:
    """The stand-in's state; thread-safe (the tests change it from another thread).

    Args:
        token: the accepted ``Authorization: Bearer`` token.
        action_seconds: how long an assign action runs before it succeeds.
        seed: seed of the random error injection.
    """

    def __init__(
        self, *, token: str = DEFAULT_TOKEN, action_seconds: float = 0.3, seed: int = 16
    ) -> None:
        self.token = token
        self.action_seconds = action_seconds
        self.lock = threading.Lock()
        self.servers: dict[int, StubServer] = {}
        self.floating_ips: dict[int, StubFloatingIp] = {}
        self.actions: dict[int, StubAction] = {}
        self.requests: list[tuple[str, str, int]] = []
        """``(method, path with query, status)`` of every request."""
        self.assigns: list[tuple[int, int]] = []
        """``(floating IP id, server id)`` of every assign action that succeeded."""
        self._fail: list[int] = []
        self._error_rate = 0.0
        self._error_statuses: tuple[int, ...] = (500, 503, 429)
        self._random = random.Random(seed)
        self._next_id = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- set-up and inspection (tests) ------------------------------------------------

    def add_server(self, name: str, ipv4: str, location: str = "fsn1", **labels: str) -> int:
        with self.lock:
            sid = self._id()
            self.servers[sid] = StubServer(sid, name, ipv4, location, dict(labels))
            return sid

    def add_floating_ip(
        self, name: str, ip: str, location: str = "fsn1", server: int | None = None, **labels: str
    ) -> int:
        with self.lock:
            fid = self._id()
            self.floating_ips[fid] = StubFloatingIp(fid, name, ip, location, dict(labels), server)
            return fid

    def reassign(self, ip: int, server: int | None) -> None:
        """Re-assign a floating IP at once, as an operator would in the console."""
        with self.lock:
            self.floating_ips[ip].server = server

    def targets(self) -> dict[str, str | None]:
        """Floating IP name -> the name of the server it targets (None: unassigned);
        finishes every action whose time has come first."""
        with self.lock:
            self._finish_due(time.monotonic())
            return {
                f.name: self.servers[f.server].name if f.server in self.servers else None
                for f in self.floating_ips.values()
            }

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` (429, 500, 502 or 503)."""
        with self.lock:
            self._fail.extend([status] * n)

    def set_error_rate(self, rate: float, statuses: tuple[int, ...] = (500, 503, 429)) -> None:
        """Answer a share ``rate`` of requests with one of ``statuses`` (seeded random)."""
        with self.lock:
            self._error_rate = rate
            self._error_statuses = statuses

    def count(self, method: str, prefix: str, status: int | None = None) -> int:
        """How many requests ``method`` on a path starting with ``prefix`` were made."""
        with self.lock:
            return sum(
                1
                for m, p, s in self.requests
                if m == method and p.startswith(prefix) and (status is None or s == status)
            )

    # -- the API -----------------------------------------------------------------------

    def _finish_due(self, now: float) -> None:
        for action in self.actions.values():
            if action.status == "running" and now >= action.finishes:
                ip, server = self.floating_ips.get(action.ip), self.servers.get(action.server)
                if ip is None or server is None:
                    action.status = "error"
                    continue
                ip.server = server.id
                action.status = "success"
                self.assigns.append((ip.id, server.id))

    def fault(self) -> int | None:
        with self.lock:
            if self._fail:
                return self._fail.pop(0)
            if self._error_rate and self._random.random() < self._error_rate:
                return self._random.choice(self._error_statuses)
            return None

    def list(self, kind: str, query: dict[str, str]) -> JSON:
        selector = query.get("label_selector")
        try:
            wanted = parse_selector(selector) if selector else ()
        except ValueError as exc:
            raise _ApiError(400, "invalid_input", str(exc)) from None
        page = int(query.get("page", "1"))
        per_page = min(int(query.get("per_page", "25")), 50)
        with self.lock:
            self._finish_due(time.monotonic())
            if kind == "servers":
                floating: dict[int, list[int]] = {}
                for f in self.floating_ips.values():
                    if f.server is not None:
                        floating.setdefault(f.server, []).append(f.id)
                items = [
                    s.to_json(floating.get(s.id, []))
                    for s in sorted(self.servers.values(), key=lambda s: s.id)
                    if matches(wanted, s.labels)
                ]
            else:
                items = [
                    f.to_json()
                    for f in sorted(self.floating_ips.values(), key=lambda f: f.id)
                    if matches(wanted, f.labels)
                ]
        total = len(items)
        last = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return {
            kind: chunk,
            "meta": {
                "pagination": {
                    "page": page,
                    "per_page": per_page,
                    "previous_page": page - 1 if page > 1 else None,
                    "next_page": page + 1 if page < last else None,
                    "last_page": last,
                    "total_entries": total,
                }
            },
        }

    def assign(self, ip_id: int, body: Any) -> JSON:
        server_id = body.get("server") if isinstance(body, dict) else None
        with self.lock:
            if ip_id not in self.floating_ips:
                raise _ApiError(404, "not_found", f"floating IP {ip_id} not found")
            if server_id not in self.servers:
                raise _ApiError(422, "invalid_input", f"server {server_id!r} not found")
            now = time.monotonic()
            action = StubAction(self._id(), ip_id, server_id, now, now + self.action_seconds)
            self.actions[action.id] = action
            return {"action": action.to_json()}

    def action(self, action_id: int) -> JSON:
        with self.lock:
            self._finish_due(time.monotonic())
            action = self.actions.get(action_id)
            if action is None:
                raise _ApiError(404, "not_found", f"action {action_id} not found")
            return {"action": action.to_json()}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def build_app(state: StubState) -> web.Application:
    """The aiohttp application serving ``state`` under ``/v1``."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        status = 0
        try:
            if request.headers.get("Authorization") != f"Bearer {state.token}":
                response: web.StreamResponse = _error(401, "unauthorized", "unable to authenticate")
            elif (fault := state.fault()) is not None:
                code, message = _ERRORS[fault]
                response = _error(fault, code, message)
            else:
                try:
                    response = await handler(request)
                except _ApiError as exc:
                    response = _error(exc.status, exc.code, exc.message)
            status = response.status
            return response
        finally:
            with state.lock:
                state.requests.append((request.method, request.path_qs, status))

    async def servers(request: web.Request) -> web.Response:
        return web.json_response(state.list("servers", dict(request.query)))

    async def floating_ips(request: web.Request) -> web.Response:
        return web.json_response(state.list("floating_ips", dict(request.query)))

    async def assign(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(state.assign(int(request.match_info["id"]), body), status=201)

    async def action(request: web.Request) -> web.Response:
        return web.json_response(state.action(int(request.match_info["id"])))

    app = web.Application(middlewares=[guard])
    app.router.add_get("/v1/servers", servers)
    app.router.add_get("/v1/floating_ips", floating_ips)
    app.router.add_post("/v1/floating_ips/{id}/actions/assign", assign)
    app.router.add_get("/v1/actions/{id}", action)
    app.router.add_get("/v1/floating_ips/actions/{id}", action)
    return app


class HcloudStub:
    """The stand-in, served from a background thread with its own event loop.

    Use as a context manager; :attr:`endpoint` is the SDK's ``api_endpoint``.
    """

    def __init__(self, *, host: str = "127.0.0.1", **state: Any) -> None:
        self.host = host
        self.port = 0
        self.state = StubState(**state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def env(self) -> dict[str, str]:
        """``HCLOUD_TOKEN`` and ``HCLOUD_ENDPOINT`` for a goavail child."""
        return {"HCLOUD_TOKEN": self.state.token, "HCLOUD_ENDPOINT": self.endpoint}

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        async def boot() -> None:
            runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
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
        self._thread = threading.Thread(target=run, name="hcloudstub", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            raise errors[0]
        return self.endpoint

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
