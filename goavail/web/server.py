"""The agent's HTTP server (aiohttp): status page, health, metrics, status API, overrides.

Endpoints (``[Server] listen``, default ``127.0.0.1:8080``):

=========================  =======================================================
``GET /``                  status page: server-rendered HTML, no JavaScript, refreshes
                           itself every :data:`REFRESH_SECONDS` seconds
``GET /_health``           goavail's own health, Philae JSON; 200 healthy, 503 not
                           (:mod:`goavail.web.selfcheck`)
``GET /metrics``           Prometheus text format (:mod:`goavail.web.metrics`)
``GET /api/status``        JSON of everything the page shows (:mod:`goavail.web.status`)
``GET /api/explain``       ``?name=NAME``: why the name has its records now, JSON
                           (:mod:`goavail.web.explain`; ``goavail explain NAME``)
``POST /api/overrides``    set a target's maintenance override; needs
                           ``Authorization: Bearer <GOAVAIL_ADMIN_TOKEN>``
``POST /api/failback``     release a recovered target its failback gate holds
                           (``failback = "manual"``); the same token, or, from the
                           status page's form, a ``token`` form field
=========================  =======================================================

Read-only endpoints are open to whoever reaches the listen address. Write endpoints
answer 403 while ``GOAVAIL_ADMIN_TOKEN`` is unset or empty, and 401 to a request
without the right token (compared in constant time, :func:`hmac.compare_digest`).

Lifecycle (as the agent's, after uvicorn's ``server.py``): :meth:`WebServer.start`
binds (a bind failure is a :class:`ServerError` naming the address and the fix),
:meth:`WebServer.run` keeps the probing-round watch of ``/_health`` up to date until
cancelled, :meth:`WebServer.stop` closes the listener and open connections within
:data:`SHUTDOWN_SECONDS`. Pages, JSON and metrics are formatted in a worker thread
from a snapshot taken on the event loop (see :mod:`goavail.web.snapshot`).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

from goavail.config.web import ServerSection
from goavail.decision import Override
from goavail.logs import REDACTOR
from goavail.overrides import check_reason, check_target, parse_mode
from goavail.web import ServerError
from goavail.web.explain import explain_document
from goavail.web.listing import API_DEFAULTS, PAGE_DEFAULTS, IndexCache, Query, parse_query
from goavail.web.metrics import CONTENT_TYPE, AgentMetrics
from goavail.web.page import render_page
from goavail.web.propagation import propagation_check
from goavail.web.selfcheck import (
    DnsCheck,
    ProbeCheck,
    RoundWatch,
    brake_check,
    config_check,
    philae,
    serf_check,
)
from goavail.web.snapshot import Snapshot
from goavail.web.status import status_document

if TYPE_CHECKING:
    from goavail.web.ports import AgentPorts

log = logging.getLogger("goavail.http")

TOKEN_ENV = "GOAVAIL_ADMIN_TOKEN"
"""Environment variable holding the bearer token of the write endpoints."""
REFRESH_SECONDS = 10
"""The status page reloads itself this often."""
SHUTDOWN_SECONDS = 1.0
"""Open connections get this long to finish when the agent stops."""
MIN_TOKEN = 16
"""A shorter admin token is accepted, with a warning."""
MAX_BODY = 64 * 1024
"""Largest request body accepted, bytes (aiohttp's ``client_max_size``); larger: 413."""
MAX_DIGITS = 100
"""Longest number accepted in a JSON body, digits (no field is a number; Python's own
limit, 4,300 digits, would raise while parsing)."""
MAX_PROBLEM = 200
"""A problem line of a 400 answer is cut to this many characters (it may quote the request)."""
MAX_PROBLEMS = 20
"""At most this many problems are listed in a 400 answer."""
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Content-Security-Policy of the status page: no script of any kind may run (the page
needs none), nothing is loaded from elsewhere, its filter form only goes back to the
page itself, and it cannot be framed."""


MAX_NAME_SHOWN = 255
"""Characters of an unknown ``name`` repeated in ``/api/explain``'s 404 (a DNS name's
longest text form)."""


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str, **extra: object) -> web.Response:
    return _json({"error": message, **extra}, status)


class BodyError(ValueError):
    """A request body that is not acceptable JSON; the message is fit for a 400 answer."""


def _no_constant(name: str) -> NoReturn:
    raise BodyError(f"body must be JSON (RFC 8259): {name} is not a JSON value")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise BodyError(f"body must be JSON without numbers of more than {MAX_DIGITS} digits")
    return int(digits)


def parse_body(raw: bytes) -> object:
    """Parse a request body as JSON (RFC 8259: UTF-8, no ``NaN``/``Infinity``).

    The body's size is bounded by the server (:data:`MAX_BODY`); this bounds what is
    left: nesting deeper than the interpreter's recursion limit and integers longer
    than :data:`MAX_DIGITS` are refused, not crashes. A float too large for a double
    (``1e999``) parses as infinity and is refused by the field that gets it.

    Raises:
        BodyError: the body is not acceptable, with a message for the client.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body must be UTF-8 JSON (invalid byte at {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int)
    except RecursionError:
        raise BodyError("body must be JSON nested less deeply") from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"body must be JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _bounded(problems: list[str]) -> list[str]:
    """Problem lines cut to :data:`MAX_PROBLEM` characters, at most :data:`MAX_PROBLEMS`."""
    lines = [p if len(p) <= MAX_PROBLEM else p[: MAX_PROBLEM - 1] + "…" for p in problems]
    if len(lines) > MAX_PROBLEMS:
        more = len(lines) - MAX_PROBLEMS + 1
        lines = [*lines[: MAX_PROBLEMS - 1], f"... and {more} more problems"]
    return lines


class WebServer:
    """The HTTP server of one agent.

    Args:
        settings: ``[Server]`` (read once: a change needs a restart).
        agent: the agent's ports (:class:`goavail.web.ports.AgentPorts`), called on its
            event loop.
        environ: where ``GOAVAIL_ADMIN_TOKEN`` is read (default: the process environment).

    Attributes:
        metrics: the agent's metrics registry (:class:`AgentMetrics`).
        rounds: the probing-round watch behind the ``probes`` health probe.
        port: the port actually bound (after :meth:`start`).
    """

    def __init__(
        self,
        settings: ServerSection,
        agent: AgentPorts,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.agent = agent
        self.listen = settings.listen
        self.host, self.port = settings.host_port()
        token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
        self._token: bytes | None = token.encode() if token else None
        if token:
            REDACTOR.add([token])
            if len(token) < MIN_TOKEN:
                log.warning(
                    "%s is shorter than %d characters: use a long random token "
                    "(e.g. `openssl rand -hex 32`)",
                    TOKEN_ENV,
                    MIN_TOKEN,
                )
        self.metrics = AgentMetrics(agent)
        self.rounds = RoundWatch(time.monotonic())
        self.dns = DnsCheck()
        self._indexes = IndexCache()
        self._runner: web.AppRunner | None = None

    @property
    def admin_api(self) -> bool:
        """True when write endpoints are enabled (a token is set)."""
        return self._token is not None

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/", self.page)
        app.router.add_get("/_health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/api/explain", self.explain)
        app.router.add_post("/api/overrides", self.set_override)
        app.router.add_post("/api/failback", self.failback)
        return app

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Bind ``[Server] listen`` and start serving.

        Raises:
            ServerError: the address cannot be bound (in use, not local, no permission).
        """
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServerError(self._bind_problem(exc)) from None
        self._runner = runner
        log.info(
            "HTTP server on http://%s/ (status page, /_health, /metrics, /api/status); "
            "write endpoints %s",
            self.listen,
            "enabled (bearer token from GOAVAIL_ADMIN_TOKEN)"
            if self.admin_api
            else "disabled (GOAVAIL_ADMIN_TOKEN not set)",
        )

    def _bind_problem(self, exc: OSError) -> str:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            hint = "another program (another goavail?) holds that port"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = "that address is not one of this machine's"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE"
        else:
            hint = "check the address"
        return (
            f"[Server] listen = {self.listen!r}: cannot listen: {reason} ({hint}); "
            "choose another address in [Server] listen, or set [Server] enabled = false"
        )

    async def run(self) -> None:
        """Watch probing rounds for ``/_health`` until cancelled (several times an interval)."""
        while True:
            view = self.agent.health_view()
            self.rounds.observe(time.monotonic(), view.results, view.targets)
            await asyncio.sleep(min(view.interval / 2, 1.0))

    async def stop(self) -> None:
        """Stop listening and close connections (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- read-only endpoints --------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        """``GET /_health``: Philae JSON, 200 when healthy, 503 when not."""
        view = self.agent.health_view()
        started = time.perf_counter_ns()
        config = config_check(view)
        config = ProbeCheck(
            config.name,
            config.healthy,
            config.comment,
            config.error,
            time.perf_counter_ns() - started,
        )
        started = time.perf_counter_ns()
        probes = self.rounds.check(time.monotonic(), view.interval, view.targets)
        probes = ProbeCheck(
            probes.name,
            probes.healthy,
            probes.comment,
            probes.error,
            time.perf_counter_ns() - started,
        )
        checks = [config, probes]
        started = time.perf_counter_ns()
        serf = serf_check(view)
        if serf is not None:
            checks.append(
                ProbeCheck(
                    serf.name,
                    serf.healthy,
                    serf.comment,
                    serf.error,
                    time.perf_counter_ns() - started,
                )
            )
        brake = brake_check(view)
        if brake is not None:
            checks.append(brake)
        checks.append(await self.dns.check(view))
        if view.propagation is not None:
            started = time.perf_counter_ns()
            found = propagation_check(view.propagation(), time.monotonic())
            if found is not None:
                checks.append(
                    ProbeCheck(
                        found.name,
                        found.healthy,
                        found.comment,
                        found.error,
                        time.perf_counter_ns() - started,
                    )
                )
        answer = philae(checks)
        return _json(answer, 200 if answer["healthy"] else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the agent's registry in the Prometheus text format."""
        snap = self.agent.snapshot(admin_api=self.admin_api)
        body = await asyncio.to_thread(self.metrics.render, snap)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    def _query(
        self, request: web.Request, snap: Snapshot, defaults: Query
    ) -> tuple[Query, list[str]]:
        """The request's filters, order and page (:func:`goavail.web.listing.parse_query`)."""
        publication = snap.publication
        pools = publication.pools if publication is not None else ("targets",)
        return parse_query(request.query, pools, defaults)

    def _document(self, snap: Snapshot, query: Query) -> dict[str, Any]:
        """The status document of ``snap`` for ``query`` (in a worker thread; the index
        of the configuration is built once per configuration)."""
        publication = snap.publication
        if publication is None:
            return status_document(snap, query)
        index = self._indexes.get(publication.specs, publication.pools, publication.targets)
        if len(index.targets) != len(snap.raw_targets):  # targets not all the publication's
            return status_document(snap, query)
        return status_document(snap, query, index)

    async def status(self, request: web.Request) -> web.Response:
        """``GET /api/status``: the status document; the page's query parameters
        (``name``, ``pool``, ``state``, ``order``, ``page``, ``names_page``,
        ``per_page``) filter and page it; without them it lists everything, targets in
        configuration order. 400 listing the problems of unacceptable parameters."""
        snap = self.agent.snapshot(admin_api=self.admin_api)
        query, problems = self._query(request, snap, API_DEFAULTS)
        if problems:
            return _error(400, "invalid query", problems=_bounded(problems))
        text = await asyncio.to_thread(
            lambda: json.dumps(self._document(snap, query), indent=2, ensure_ascii=False) + "\n"
        )
        return web.Response(text=text, content_type="application/json")

    async def explain(self, request: web.Request) -> web.Response:
        """``GET /api/explain?name=NAME``: why ``NAME`` has exactly its records now
        (:func:`goavail.web.explain.explain_document`). 400 without a name, 404 naming
        the managed names' count for a name that is not managed."""
        name = request.query.get("name", "").strip()
        if not name:
            return _error(400, "give the name to explain: /api/explain?name=NAME")
        snap = self.agent.snapshot(admin_api=self.admin_api)
        doc = await asyncio.to_thread(explain_document, snap, name)
        if doc is None:
            shown = REDACTOR.redact(name[:MAX_NAME_SHOWN])
            return _error(
                404,
                f"{shown!r} is not a name this agent manages ({len(snap.names)} managed "
                "names: see /api/status)",
            )
        return _json(doc)

    async def page(self, request: web.Request) -> web.Response:
        """``GET /``: the status page, filtered and paged by the query parameters (see
        :meth:`status`); unacceptable ones are shown and ignored (status 400)."""
        snap = self.agent.snapshot(admin_api=self.admin_api)
        query, problems = self._query(request, snap, PAGE_DEFAULTS)
        html = await asyncio.to_thread(
            lambda: render_page(
                self._document(snap, query),
                refresh=REFRESH_SECONDS,
                query=query,
                problems=_bounded(problems),
            )
        )
        return web.Response(
            text=html,
            status=400 if problems else 200,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
        )

    # -- write endpoints ------------------------------------------------------------

    def _refuse(self, request: web.Request, token: str | None = None) -> web.Response | None:
        """None when the request carries the admin token (its bearer header, or
        ``token``: a form's field), else the answer refusing it."""
        if self._token is None:
            return _error(403, f"write endpoints are disabled: set {TOKEN_ENV} to enable them")
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token):
            return None
        if token is not None and hmac.compare_digest(token.strip().encode(), self._token):
            return None
        return web.Response(
            text=json.dumps({"error": "missing or wrong bearer token"}) + "\n",
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="goavail"'},
        )

    async def set_override(self, request: web.Request) -> web.Response:
        """``POST /api/overrides`` with ``{"target": ADDRESS, "mode": "up"|"down"|"auto",
        "reason": TEXT}``: set (or clear, with ``auto``) this agent's override.

        Answers 200 with the target's override state, 400 listing the problems of the
        request (also for a body that is not JSON, see :func:`parse_body`), 401/403
        without the token, 413 for a body over :data:`MAX_BODY` bytes, 500 when the
        overrides file cannot be written (nothing changed then).
        """
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            body: Any = parse_body(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body must be at most {MAX_BODY} bytes")
        except BodyError as exc:
            return _error(400, f'{exc}; expected {{"target": ..., "mode": ..., "reason": ...}}')
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        problems: list[str] = []
        unknown = sorted(set(body) - {"target", "mode", "reason"})
        problems.extend(f"{key}: unknown field" for key in unknown)
        target = mode = None
        reason = ""
        raw_target = body.get("target")
        if not isinstance(raw_target, str):
            problems.append("target: required, an IP address")
        else:
            try:
                target = check_target(raw_target)
            except ValueError as exc:
                problems.append(f"target: {exc}")
            else:
                if not self.agent.has_target(target):
                    problems.append(f"target: {target} is not a configured target")
        raw_mode = body.get("mode")
        if not isinstance(raw_mode, str):  # parse_mode would quote any value (repr)
            problems.append("mode: required, one of up, down, auto")
        else:
            try:
                mode = parse_mode(raw_mode)
            except ValueError as exc:
                problems.append(f"mode: {exc}")
        try:
            reason = check_reason(body.get("reason", ""))
        except ValueError as exc:
            problems.append(f"{exc}")
        if problems or target is None or mode is None:
            return _error(400, "invalid request", problems=_bounded(problems))
        try:
            outcome = self.agent.set_override(target, mode, reason)
        except OSError as exc:
            log.error("override of %s not applied: cannot write overrides file: %s", target, exc)
            return _error(500, f"cannot write the overrides file, nothing changed: {exc}")
        entry = outcome.entry
        if not outcome.persisted:
            log.warning(
                "override of %s set through the API lives in memory only: set overrides_file "
                "to keep overrides across restarts",
                target,
            )
        return _json(
            {
                "target": target,
                "override": entry.as_dict() if entry else {"mode": Override.AUTO.value},
                "in_force": outcome.in_force.value,
                "effective": outcome.effective.value,
                "persisted": outcome.persisted,
            }
        )

    async def failback(self, request: web.Request) -> web.Response:
        """``POST /api/failback``: release a target its failback gate holds (see
        :mod:`goavail.gates`), audited.

        Two forms of request:

        * JSON ``{"target": ADDRESS, "reason": TEXT, "source": "api"|"cli"}`` with
          ``Authorization: Bearer <token>`` (the API, ``goavail failback``): answers
          200 with ``{"target", "released", "announced", "suppressed", "gate"}``
          (``released`` false: its gate
          was not closed; nothing changed), 400 listing the problems, 401/403 without
          the token, 413 for a body over :data:`MAX_BODY` bytes;
        * a form (``application/x-www-form-urlencoded``: ``target``, ``token``, optional
          ``reason``) from the status page's button (the page has no script, so the
          token is typed into the form): answers 303 to the page's target row, or the
          same error answers.
        """
        form = request.content_type == "application/x-www-form-urlencoded"
        try:
            if form:
                fields = await request.post()
                body: Any = {k: v for k, v in fields.items() if isinstance(v, str)}
                token = body.pop("token", "")
            else:
                body = parse_body(await request.read())
                token = None
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body must be at most {MAX_BODY} bytes")
        except BodyError as exc:
            return _error(400, f'{exc}; expected {{"target": ..., "reason": ...}}')
        refused = self._refuse(request, token)
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        known = {"target", "reason"} if form else {"target", "reason", "source"}
        problems = [f"{key}: unknown field" for key in sorted(set(body) - known)]
        source = "page" if form else body.get("source", "api")
        if source not in ("api", "cli", "page"):
            problems.append("source: one of api, cli (who asked, for the audit record)")
        target = None
        raw_target = body.get("target")
        if not isinstance(raw_target, str):
            problems.append("target: required, an IP address")
        else:
            try:
                target = check_target(raw_target)
            except ValueError as exc:
                problems.append(f"target: {exc}")
            else:
                if not self.agent.has_target(target):
                    problems.append(f"target: {target} is not a configured target")
        reason = ""
        try:
            reason = check_reason(body.get("reason", ""))
        except ValueError as exc:
            problems.append(f"{exc}")
        if problems or target is None:
            return _error(400, "invalid request", problems=_bounded(problems))
        outcome = self.agent.release_failback(target, reason, str(source))
        if form:
            raise web.HTTPSeeOther(f"/#target-{target}")
        return _json(
            {
                "target": target,
                "released": outcome.released,
                "announced": outcome.published.value,
                "suppressed": outcome.suppressed,
                "gate": outcome.gate,
            }
        )
