"""The Hetzner Cloud edge: the official ``hcloud`` SDK, every call in a worker thread.

The SDK is synchronous (``requests``); each call runs in :func:`asyncio.to_thread` so
the probing event loop is never held up. The API token comes only from the
environment (``HCLOUD_TOKEN``) and is never logged; ``HCLOUD_ENDPOINT`` replaces the
API's address (the SDK's ``api_endpoint``; the test suite points it at its stand-in).

The SDK retries 502/504, ``rate_limit_exceeded`` and timeouts itself (up to 5 times,
exponential backoff); every other failure surfaces as :class:`HetznerError` and the
reconciler retries with its own backoff (:mod:`goavail.dns.backoff`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from goavail import __version__
from goavail.errors import GoavailError, SetupError
from goavail.fip.plan import FloatingIp, Server, resource_index

if TYPE_CHECKING:
    from hcloud import Client

TOKEN_ENV = "HCLOUD_TOKEN"
ENDPOINT_ENV = "HCLOUD_ENDPOINT"
DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"

T = TypeVar("T")


class HetznerError(GoavailError):
    """A Hetzner Cloud API call failed (after the SDK's own retries).

    Attributes:
        code: the API's error code (``"rate_limit_exceeded"``, ``"server_error"``, an
            HTTP status, ...) or None (a connection error, an action that failed).
    """

    def __init__(self, message: str, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


def client_from_env(environ: dict[str, str] | None = None, *, poll_interval: float = 0.5) -> Client:
    """An ``hcloud.Client`` from ``HCLOUD_TOKEN`` (required) and ``HCLOUD_ENDPOINT``.

    Args:
        environ: the environment (default ``os.environ``).
        poll_interval: seconds between two reads of a running action.

    Raises:
        SetupError: ``HCLOUD_TOKEN`` is unset or empty (the message names it, never
            a value).
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise SetupError(
            f"[[floating_ips]]: the Hetzner Cloud API token is missing: set {TOKEN_ENV} "
            "in goavail's environment (a read & write token of the project)"
        )
    from hcloud import Client

    return Client(
        token=token,
        api_endpoint=env.get(ENDPOINT_ENV, "").strip() or DEFAULT_ENDPOINT,
        application_name="goavail",
        application_version=__version__,
        poll_interval=poll_interval,
        timeout=30.0,
    )


def _server(raw: Any) -> Server | None:
    """A :class:`Server` from an SDK server, or None when it has no public address."""
    net = raw.public_net
    address = None
    if net is not None and net.ipv4 is not None:
        address = net.ipv4.ip
    elif net is not None and net.ipv6 is not None:
        address = str(net.ipv6.ip).split("/")[0]
    if not address:
        return None
    location = getattr(raw, "location", None)
    if location is None and raw.datacenter is not None:
        location = raw.datacenter.location
    return Server(
        id=int(raw.id),
        name=str(raw.name),
        location=str(location.name) if location is not None else "",
        address=address,
        index=resource_index(raw.labels or {}),
    )


def _floating_ip(raw: Any) -> FloatingIp:
    home = raw.home_location
    return FloatingIp(
        id=int(raw.id),
        name=str(raw.name),
        address=str(raw.ip).split("/")[0],
        location=str(home.name) if home is not None else "",
        index=resource_index(raw.labels or {}),
        server=int(raw.server.id) if raw.server is not None else None,
    )


class Hetzner:
    """The calls a floating-IP group makes (each in a worker thread).

    Args:
        client: an ``hcloud.Client`` (see :func:`client_from_env`).
        action_timeout: seconds an assign action may run before it counts as failed.
    """

    def __init__(self, client: Client, *, action_timeout: float = 60.0) -> None:
        self.client = client
        self.action_timeout = action_timeout

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        from hcloud import APIException, HCloudException

        try:
            return await asyncio.to_thread(fn)
        except APIException as exc:
            raise HetznerError(f"{what}: {exc.message} ({exc.code})", exc.code) from None
        except HCloudException as exc:
            raise HetznerError(f"{what}: {exc}") from None
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise HetznerError(f"{what}: {type(exc).__name__}: {exc}") from None

    async def servers(self, selector: str) -> tuple[list[Server], list[str]]:
        """The servers matching ``selector``, and the names of those left out because
        they have no public address (every page).

        Raises:
            HetznerError: the call failed.
        """
        raw = await self._call(
            "list servers", lambda: self.client.servers.get_all(label_selector=selector)
        )
        servers: list[Server] = []
        skipped: list[str] = []
        for item in raw:
            server = _server(item)
            if server is None:
                skipped.append(str(item.name))
            else:
                servers.append(server)
        return servers, skipped

    async def floating_ips(self, selector: str) -> list[FloatingIp]:
        """The floating IPs matching ``selector`` (every page).

        Raises:
            HetznerError: the call failed.
        """
        raw = await self._call(
            "list floating IPs",
            lambda: self.client.floating_ips.get_all(label_selector=selector),
        )
        return [_floating_ip(item) for item in raw]

    async def assign(self, ip: int, server: int) -> None:
        """Assign floating IP ``ip`` to server ``server`` and wait until Hetzner's action
        finished (``running`` -> ``success``).

        Raises:
            HetznerError: the call failed, the action ended in ``error``, or it was
                still running after ``action_timeout`` seconds.
        """
        from hcloud.floating_ips import FloatingIP
        from hcloud.servers import Server as SdkServer

        def run() -> None:
            action = self.client.floating_ips.assign(FloatingIP(id=ip), SdkServer(id=server))
            interval = 0.5
            action.wait_until_finished(max_retries=max(1, int(self.action_timeout / interval)))

        await self._call(f"assign floating IP {ip} to server {server}", run)

    async def close(self) -> None:
        """Close the SDK's HTTP session."""
        session = getattr(self.client._client, "_session", None)
        if session is not None:
            await asyncio.to_thread(session.close)
