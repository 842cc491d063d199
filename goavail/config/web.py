"""``[Server]``: the HTTP server's listen address."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
)

from goavail.config.values import _MODEL_CONFIG, split_host_port


def _check_listen(value: str) -> str:
    host, _ = split_host_port(value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r}: the host must be an IP address (e.g. '127.0.0.1:8080', '[::1]:8080')"
        ) from None
    return value


class ServerSection(BaseModel):
    """``[Server]``: the agent's HTTP server (status page, ``/_health``, ``/metrics``, API).

    Attributes:
        enabled: start the server (default True).
        listen: ``"ip:port"`` (IPv6 as ``"[addr]:port"``) to listen on, default
            ``"127.0.0.1:8080"``. Read-only endpoints are open to whoever reaches it;
            write endpoints need the ``GOAVAIL_ADMIN_TOKEN`` bearer token.
    """

    model_config = _MODEL_CONFIG

    enabled: bool = True
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:8080"

    def host_port(self) -> tuple[str, int]:
        """``listen`` split into (host, port), the host without IPv6 brackets."""
        return split_host_port(self.listen)
