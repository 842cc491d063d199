"""The agent's HTTP side: status page, ``/_health``, ``/metrics``, ``/api/status``, overrides.

* :mod:`goavail.web.snapshot` copies what the agent knows, cheaply, on the event loop;
* :mod:`goavail.web.status` turns a snapshot into the ``/api/status`` document (and the page);
* :mod:`goavail.web.metrics` turns a snapshot into Prometheus metrics;
* :mod:`goavail.web.selfcheck` runs goavail's own health probes (Philae format);
* :mod:`goavail.web.server` is the aiohttp server that serves them;
* :mod:`goavail.web.proxy` is ``goavail proxy``'s own small server (a ``ProxySnapshot``).
"""

from goavail.errors import GoavailError


class ServerError(GoavailError):
    """The HTTP server cannot start; the message names the address and the fix.

    Defined here, not in :mod:`goavail.web.server`, so that the CLI can catch it
    without importing aiohttp, jinja2 and prometheus-client when ``[Server]`` is off.
    """


__all__ = ["ServerError"]
