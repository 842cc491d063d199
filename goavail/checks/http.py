"""HTTP(S) probe engine: a target is up when it answers a request as configured
(flipper's http/https checks).

The connection goes to the target's address; ``host`` is sent as the ``Host``
header and, for https, as the TLS SNI name, and it is the name the certificate
is validated against (httpx passes the ``sni_hostname`` request extension to
httpcore, which gives it to ``SSLContext.wrap_bio`` as ``server_hostname``; with
``check_hostname`` on, OpenSSL matches the certificate against it). Each probe
opens a new connection (no keep-alive), so every probe sees a fresh TCP and TLS
handshake and the certificate actually served.

HTTPS probes also read the leaf certificate's expiry: :attr:`HttpProbe.cert_expiry`
and :meth:`HttpProbe.cert_days_left` (for metrics), and a log line when a
certificate falls under :data:`CERT_WARN_DAYS` / :data:`CERT_ERROR_DAYS` days
(flipper's thresholds) or is renewed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from goavail import __version__
from goavail.checks.base import CLOSED, ProbeResult, ProbeSetupError, TaskProbe
from goavail.checks.tcp import error_text as os_error_text

if TYPE_CHECKING:
    import httpx

# httpx and cryptography.x509 are imported where they are used (~7 MB of RSS on
# top of the rest of the agent): an agent without http(s) checks never loads them.

log = logging.getLogger("goavail.checks.http")

MAX_BODY = 1 << 20
"""Bytes of a response body searched for ``body_contains`` (1 MiB)."""

CERT_WARN_DAYS = 14.0
"""A certificate with fewer days left than this is logged at WARNING (flipper)."""

CERT_ERROR_DAYS = 7.0
"""A certificate with fewer days left than this is logged at ERROR (flipper)."""

CertLevel = Literal["ok", "warning", "error"]

_VERIFY_CODES: dict[int, str] = {
    # OpenSSL's X509_V_ERR_* codes (include/openssl/x509_vfy.h)
    9: "TLS certificate not yet valid",  # CERT_NOT_YET_VALID
    10: "TLS certificate expired",  # CERT_HAS_EXPIRED
    18: "TLS certificate not trusted (self-signed)",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "TLS certificate not trusted (self-signed CA in chain)",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "TLS certificate not trusted (unknown issuer)",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "TLS certificate not trusted (cannot verify the first certificate)",
}
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64


def cert_level(days_left: float) -> CertLevel:
    """How loudly to report a certificate with ``days_left`` days of validity (pure).

    ``"error"`` under :data:`CERT_ERROR_DAYS` (expired included), ``"warning"``
    under :data:`CERT_WARN_DAYS`, else ``"ok"``.
    """
    if days_left < CERT_ERROR_DAYS:
        return "error"
    if days_left < CERT_WARN_DAYS:
        return "warning"
    return "ok"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts (first exception of a group), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 16 and all(current is not s for s in seen):
        seen.append(current)
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return seen


def error_text(exc: BaseException, name: str) -> str:
    """Short reason for a failed request (pure).

    Args:
        exc: what httpx raised (its causes are searched for the TLS or socket error).
        name: the name the certificate was validated against (for a mismatch).

    Returns:
        e.g. ``"TLS certificate expired"``, ``"TLS certificate does not match
        app.example.com"``, ``"connection refused"``, ``"timeout"``.
    """
    import httpx

    chain = _chain(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            code = cause.verify_code
            if code in (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH):
                return f"TLS certificate does not match {name}"
            if code in _VERIFY_CODES:
                return _VERIFY_CODES[code]
            return f"TLS certificate verify failed: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    for cause in chain:
        if isinstance(cause, TimeoutError | httpx.TimeoutException):
            return "timeout"
        if isinstance(cause, OSError) and cause.errno is not None:
            return os_error_text(cause)
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {exc}" if str(exc) else "protocol error"
    for cause in chain:
        if isinstance(cause, ConnectionError):
            return os_error_text(cause)
    return str(exc) or type(exc).__name__


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class HttpProbe(TaskProbe):
    """HTTP(S) probe engine implementing :class:`goavail.checks.base.Probe`.

    Args:
        scheme: ``"http"`` or ``"https"`` (also the engine's ``kind``).
        port: TCP port (1-65535).
        path: request path, starting with ``/``.
        method: request method.
        host: ``Host`` header, TLS SNI name and certificate name; None: the
            target's address.
        expected_status: status codes that count as healthy; None: any 2xx.
        body_contains: text the body must contain (searched as UTF-8 bytes in the
            first :data:`MAX_BODY` bytes), or None (the body is not read).
        tls_verify: validate the certificate chain and name (https).
        ca_file: PEM file of trusted CAs instead of certifi's bundle (https).
        timeout: seconds the whole exchange (connect, TLS, request, status line,
            headers and the part of the body read) may take.
        check_id: the check's id, for log lines.
        wall_clock: the wall clock in seconds since the epoch (certificate days).

    Redirects are not followed (a 301 is healthy only if listed in
    ``expected_status``); proxies from the environment are not used. Each probe
    runs as its own task. Results: ``rtt`` is the time to the response headers
    (and the body part read) in seconds; ``error`` is e.g. ``"status 503
    (expected 2xx)"``, ``"body does not contain 'ok'"``, ``"TLS certificate
    expired"``, ``"connection refused"``, ``"timeout"``.

    Attributes:
        cert_expiry: https: target -> the ``notAfter`` of the leaf certificate it
            served at its last successful handshake, in seconds since the epoch.
    """

    def __init__(
        self,
        *,
        scheme: Literal["http", "https"],
        port: int,
        path: str = "/",
        method: str = "GET",
        host: str | None = None,
        expected_status: Sequence[int] | None = None,
        body_contains: str | None = None,
        tls_verify: bool = True,
        ca_file: Path | None = None,
        timeout: float = 1.0,
        check_id: str = "",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, not {port}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        super().__init__()
        self.kind = scheme
        self.scheme = scheme
        self.port = port
        self.path = path
        self.method = method
        self.host = host
        self.expected_status = frozenset(expected_status) if expected_status else None
        self.needle = body_contains.encode("utf-8") if body_contains else None
        self.body_contains = body_contains
        self.tls_verify = tls_verify
        self.ca_file = ca_file
        self.timeout = timeout
        self.check_id = check_id or scheme
        self._wall_clock = wall_clock
        self.cert_expiry: dict[str, float] = {}
        self._cert_der: dict[str, bytes] = {}
        self._cert_level: dict[str, CertLevel] = {}
        self._client: httpx.AsyncClient | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of the probes (https).

        Raises:
            ProbeSetupError: ``ca_file`` cannot be read or holds no certificate.
        """
        if not self.tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_file is None:
            import httpx

            return httpx.create_ssl_context(trust_env=False)
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ProbeSetupError(
                f"check {self.check_id}: cannot load ca_file {self.ca_file}: {exc}"
            ) from None

    async def start(self) -> None:
        """Create the HTTP client (no connection is opened yet).

        Raises:
            ProbeSetupError: see :meth:`ssl_context`.
        """
        if self._client is not None:
            return
        import httpx

        verify: ssl.SSLContext | bool = self.ssl_context() if self.scheme == "https" else False
        self._client = httpx.AsyncClient(
            verify=verify,
            trust_env=False,
            follow_redirects=False,
            timeout=None,  # the whole exchange is bounded by asyncio.timeout in probe()
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            headers={"User-Agent": f"goavail/{__version__}", "Connection": "close"},
        )
        self._closed = False

    async def probe(self, target: str) -> ProbeResult:
        """Send one request to ``target`` and judge the answer (within ~``timeout`` s)."""
        client = self._client
        if client is None:
            return CLOSED
        import httpx  # loaded by start(): this is a sys.modules look-up

        url = f"{self.scheme}://{_url_host(target)}:{self.port}{self.path}"
        headers = {"Host": self.host} if self.host else {}
        extensions = {"sni_hostname": self.host} if self.host and self.scheme == "https" else {}
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                request = client.build_request(
                    self.method, url, headers=headers, extensions=extensions
                )
                response = await client.send(request, stream=True)
                try:
                    if self.scheme == "https":
                        self._note_certificate(target, response)
                    problem = self._status_problem(response.status_code)
                    if problem is None and self.needle is not None:
                        problem = await self._body_problem(response)
                finally:
                    await response.aclose()
        except (httpx.HTTPError, OSError) as exc:  # TimeoutError is an OSError
            return ProbeResult(ok=False, error=error_text(exc, self.host or target))
        if problem is not None:
            return ProbeResult(ok=False, error=problem)
        return ProbeResult(ok=True, rtt=time.monotonic() - start)

    def _status_problem(self, status: int) -> str | None:
        if self.expected_status is None:
            return None if 200 <= status <= 299 else f"status {status} (expected 2xx)"
        if status in self.expected_status:
            return None
        wanted = ", ".join(str(s) for s in sorted(self.expected_status))
        return f"status {status} (expected {wanted})"

    async def _body_problem(self, response: httpx.Response) -> str | None:
        needle = self.needle
        assert needle is not None
        keep = len(needle) - 1
        window = b""
        read = 0
        async for chunk in response.aiter_bytes():
            window = window[-keep:] + chunk if keep else chunk
            if needle in window:
                return None
            read += len(chunk)
            if read >= MAX_BODY:
                break
        return f"body does not contain {self.body_contains!r}"

    # -- certificates ------------------------------------------------------------------

    def _note_certificate(self, target: str, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return
        if self._cert_der.get(target) != der:
            from cryptography import x509

            try:
                not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
            except ValueError as exc:
                log.debug(
                    "check %s: cannot parse the certificate of %s: %s", self.check_id, target, exc
                )
                return
            self._cert_der[target] = der
            self.cert_expiry[target] = not_after.timestamp()
        days = self.cert_days_left(target)
        assert days is not None
        level = cert_level(days)
        if self._cert_level.get(target, "ok") != level:
            self._log_certificate(target, days, level)
        self._cert_level[target] = level

    def cert_days_left(self, target: str) -> float | None:
        """Days (fractional; negative once expired) until the certificate ``target``
        last served expires, or None when not known (http, or no handshake yet)."""
        expiry = self.cert_expiry.get(target)
        if expiry is None:
            return None
        return (expiry - self._wall_clock()) / 86400.0

    def _log_certificate(self, target: str, days: float, level: CertLevel) -> None:
        until = datetime.fromtimestamp(self.cert_expiry[target], UTC).strftime("%Y-%m-%d %H:%M UTC")
        name = self.host or target
        extra = {"target": target, "check": self.check_id, "cert_days_left": round(days, 2)}
        if level == "ok":
            log.info(
                "check %s: the certificate of %s on %s is valid until %s (%.0f days left)",
                self.check_id,
                name,
                target,
                until,
                days,
                extra=extra,
            )
            return
        what = "EXPIRED" if days < 0 else f"expires in {days:.1f} days"
        log.log(
            logging.ERROR if level == "error" else logging.WARNING,
            "check %s: the certificate of %s on %s %s (%s)",
            self.check_id,
            name,
            target,
            what,
            until,
            extra=extra,
        )

    def forget(self, targets: Sequence[str]) -> None:
        """Drop what is known of ``targets`` (removed by a reload)."""
        for target in targets:
            self.cert_expiry.pop(target, None)
            self._cert_der.pop(target, None)
            self._cert_level.pop(target, None)

    def _ready(self) -> bool:
        return not self._closed and self._client is not None

    async def close(self) -> None:
        """Cancel requests in flight (callbacks get ``error="closed"``), close the client."""
        await super().close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


__all__ = [
    "CERT_ERROR_DAYS",
    "CERT_WARN_DAYS",
    "MAX_BODY",
    "HttpProbe",
    "cert_level",
    "error_text",
]
