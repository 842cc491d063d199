"""The HTTP side of ``goavail proxy``: status page, ``/api/status``, ``/metrics``, ``/_health``.

It reads the proxies only through :class:`~goavail.web.ports.ProxySource` (a
:class:`~goavail.web.snapshot.ProxySnapshot` value), like the agent's server reads
the agent. The document, the metric families and the page are pure functions of
that value; :class:`ProxyWebServer` binds ``[Server] listen`` (or
``--status-listen``).

Metrics (``goavail_proxy_`` prefix, label ``listen``; docs/proxy.md lists them):
``primary`` (gauge, 1 on the serving primary, label ``backend`` too),
``serving``, ``failovers_total``, ``selections_total``, ``connections_active``,
``connections_waiting``, ``connections_total``, ``connections_refused_total``,
``bytes_total`` (label ``direction``: ``up`` to the backend, ``down`` to the
client), ``last_selection_seconds``, ``backend_up`` (with checks).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Iterator
from typing import Any

import jinja2
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from goavail.web.ports import ProxySource
from goavail.web.snapshot import ProxySnapshot, ProxyView
from goavail.web.status import rfc3339

log = logging.getLogger("goavail.web")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _proxy(view: ProxyView) -> dict[str, Any]:
    return {
        "listen": view.listen,
        "relay": view.relay,
        "phase": view.phase,
        "primary": view.primary,
        "selections": view.selections,
        "failovers": view.failovers,
        "selecting_for_seconds": view.selecting_for,
        "last_failover": None if view.last_failover is None else rfc3339(view.last_failover),
        "last_selection_seconds": view.last_selection_seconds,
        "connections": {
            "active": view.active,
            "waiting": view.waiting,
            "total": view.total,
            "refused": view.refused,
            "max": view.max_connections,
        },
        "bytes": {"up": view.bytes_up, "down": view.bytes_down},
        "backends": [
            {
                "address": b.address,
                "primary": b.primary,
                "verdict": b.verdict or None,
                "active": b.active,
            }
            for b in view.backends
        ],
    }


def status_document(snap: ProxySnapshot) -> dict[str, Any]:
    """``/api/status``'s JSON (pure)::

    {"version": ..., "time": RFC 3339, "started_at": RFC 3339,
     "proxies": [{"listen", "relay", "phase", "primary", "selections", "failovers",
                  "selecting_for_seconds", "last_failover", "last_selection_seconds",
                  "connections": {"active", "waiting", "total", "refused", "max"},
                  "bytes": {"up", "down"},
                  "backends": [{"address", "primary", "verdict", "active"}]}]}
    """
    return {
        "version": snap.version,
        "time": rfc3339(snap.wall),
        "started_at": rfc3339(snap.started_at),
        "proxies": [_proxy(view) for view in snap.proxies],
    }


def families(snap: ProxySnapshot) -> Iterator[Metric]:
    """The Prometheus metric families of every proxy (pure)."""
    labels = ["listen"]
    primary = GaugeMetricFamily(
        "goavail_proxy_primary",
        "1 for the backend connections go to now",
        labels=["listen", "backend"],
    )
    backend_up = GaugeMetricFamily(
        "goavail_proxy_backend_up",
        "The checks' verdict of a backend: 1 up, 0 down, -1 unknown (with [Proxy] checks)",
        labels=["listen", "backend"],
    )
    serving = GaugeMetricFamily("goavail_proxy_serving", "1 while a primary serves", labels=labels)
    failovers = CounterMetricFamily(
        "goavail_proxy_failovers", "Primary changes from one backend to another", labels=labels
    )
    selections = CounterMetricFamily(
        "goavail_proxy_selections", "Primaries selected (the first included)", labels=labels
    )
    active = GaugeMetricFamily(
        "goavail_proxy_connections_active", "Connections being relayed", labels=labels
    )
    waiting = GaugeMetricFamily(
        "goavail_proxy_connections_waiting", "Connections waiting for a primary", labels=labels
    )
    total = CounterMetricFamily("goavail_proxy_connections", "Connections accepted", labels=labels)
    refused = CounterMetricFamily(
        "goavail_proxy_connections_refused",
        "Connections closed without reaching a backend",
        labels=labels,
    )
    relayed = CounterMetricFamily(
        "goavail_proxy_bytes",
        "Bytes relayed (direction up: to the backend, down: to the client)",
        labels=["listen", "direction"],
    )
    selection = GaugeMetricFamily(
        "goavail_proxy_last_selection_seconds",
        "Seconds from the loss of the primary to the next relayed connection's gate opening",
        labels=labels,
    )
    for view in snap.proxies:
        key = [view.listen]
        serving.add_metric(key, 1.0 if view.phase == "serving" else 0.0)
        failovers.add_metric(key, view.failovers)
        selections.add_metric(key, view.selections)
        active.add_metric(key, view.active)
        waiting.add_metric(key, view.waiting)
        total.add_metric(key, view.total)
        refused.add_metric(key, view.refused)
        relayed.add_metric([view.listen, "up"], view.bytes_up)
        relayed.add_metric([view.listen, "down"], view.bytes_down)
        if view.last_selection_seconds is not None:
            selection.add_metric(key, view.last_selection_seconds)
        for b in view.backends:
            primary.add_metric([view.listen, b.address], 1.0 if b.primary else 0.0)
            if b.verdict:
                value = {"up": 1.0, "down": 0.0}.get(b.verdict, -1.0)
                backend_up.add_metric([view.listen, b.address], value)
    yield from (serving, primary, backend_up, failovers, selections, active, waiting, total)
    yield from (refused, relayed, selection)


class _Collector(Collector):
    def __init__(self, source: ProxySource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        return families(self.source.proxy_snapshot())


_PAGE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>goavail proxy</title>
<meta http-equiv="refresh" content="5">
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.serving{color:#060}.selecting{color:#a00}</style></head>
<body><h1>goavail proxy</h1><p>goavail {{ doc.version }} · {{ doc.time }}</p>
{% for p in doc.proxies %}
<h2>{{ p.listen }} <span class="{{ p.phase }}">{{ p.phase }}</span></h2>
<p>primary: <b>{{ p.primary or "none" }}</b> · failovers: {{ p.failovers }}
· selections: {{ p.selections }} · relay: {{ p.relay }}
{% if p.last_failover %}· last failover: {{ p.last_failover }}{% endif %}</p>
<p>connections: {{ p.connections.active }} active, {{ p.connections.waiting }} waiting,
{{ p.connections.total }} total, {{ p.connections.refused }} refused (limit {{ p.connections.max }})
· bytes: {{ p.bytes.up }} up, {{ p.bytes.down }} down</p>
<table><tr><th>backend</th><th>primary</th><th>checks</th><th>active</th></tr>
{% for b in p.backends %}<tr><td>{{ b.address }}</td><td>{{ "yes" if b.primary else "" }}</td>
<td>{{ b.verdict or "—" }}</td><td>{{ b.active }}</td></tr>{% endfor %}</table>
{% endfor %}</body></html>
"""
)


def render_page(snap: ProxySnapshot) -> str:
    """The status page's HTML (pure)."""
    return _PAGE.render(doc=status_document(snap))


class ProxyWebServer:
    """``goavail proxy``'s HTTP server (read-only).

    Args:
        host, port: where to listen (``[Server] listen`` or ``--status-listen``).
        source: the proxies (:class:`~goavail.web.ports.ProxySource`).
    """

    def __init__(self, host: str, port: int, source: ProxySource) -> None:
        self.host, self.port, self.source = host, port, source
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(source))
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/_health", self.health)
        return app

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            OSError: the address cannot be bound (the caller names the setting).
        """
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("proxy status on http://%s:%d/ (/api/status, /metrics, /_health)", *self.bound)

    @property
    def bound(self) -> tuple[str, int]:
        """``(host, port)`` actually bound (after :meth:`start`)."""
        assert self._runner is not None
        for address in self._runner.addresses:
            return str(address[0]), int(address[1])
        return self.host, self.port  # pragma: no cover

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def page(self, request: web.Request) -> web.Response:
        """``GET /``: the status page."""
        return web.Response(
            text=render_page(self.source.proxy_snapshot()), content_type="text/html"
        )

    async def status(self, request: web.Request) -> web.Response:
        """``GET /api/status``: :func:`status_document`."""
        return web.json_response(status_document(self.source.proxy_snapshot()))

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the Prometheus text format."""
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def health(self, request: web.Request) -> web.Response:
        """``GET /_health``: 200 while every proxy has a serving primary, else 503."""
        doc = status_document(self.source.proxy_snapshot())
        healthy = all(p["phase"] == "serving" for p in doc["proxies"])
        body = {
            "healthy": healthy,
            "proxies": {p["listen"]: p["primary"] for p in doc["proxies"]},
        }
        return web.json_response(body, status=200 if healthy else 503)


def bind_problem(exc: OSError, setting: str) -> str:
    """An operator's message for a status server that cannot bind ``setting``."""
    reason = exc.strerror or str(exc)
    hint = (
        "another program holds that port" if exc.errno == errno.EADDRINUSE else "check the address"
    )
    return f"{setting}: cannot listen: {reason} ({hint})"


__all__ = ["ProxyWebServer", "bind_problem", "families", "render_page", "status_document"]
