"""Cloudflare DNS through the official ``cloudflare`` SDK (async client).

The SDK's base URL is never set here: the SDK reads ``CLOUDFLARE_BASE_URL``
itself, which is how tests point it at the stand-in in ``tests/cfstub``. The
SDK's own retries are off (``max_retries=0``): the reconciler retries with its
own backoff, and :class:`~goavail.dns.providers.base.Provider.apply` stops at
the first transient error.

Cloudflare error codes used (API v4 envelope ``errors[].code``; see
https://developers.cloudflare.com/api/resources/dns/subresources/records/ and
https://developers.cloudflare.com/fundamentals/api/troubleshooting/):

* 81057 "Record already exists." / 81058 "An identical record already exists."
  (HTTP 400) on create: the record is there, which is what goavail wanted.
* 81044 "Record does not exist." (HTTP 404) on delete: already gone.
* 7003 "Could not route to ..., perhaps your object identifier is invalid?"
  (HTTP 400): the cached zone id is no longer valid; it is looked up again on
  the next call.

Secrets (API token, global API key) never appear in error messages or reprs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import cloudflare
from cloudflare import AsyncCloudflare
from cloudflare.types.dns.record_response import AAAARecord, ARecord

from goavail.dns.audit import AuditLog
from goavail.dns.model import Record, normalize_address, normalize_name
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing

log = logging.getLogger(__name__)

TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
KEY_ENV = "CF_API_KEY"
EMAIL_ENV = "CF_API_EMAIL"

CODES_RECORD_EXISTS = frozenset({81057, 81058})
CODE_RECORD_MISSING = 81044
CODE_ZONE_ROUTE = 7003


class MissingCredentials(ValueError):
    """No usable Cloudflare credentials in the environment.

    The message names the variables to set (never their values).
    """


@dataclass(frozen=True, slots=True)
class CloudflareCredentials:
    """How goavail authenticates to Cloudflare: an API token, or a global API key + email.

    Attributes:
        api_token: a scoped API token (sent as ``Authorization: Bearer``).
        api_key: the account's global API key (``X-Auth-Key``), with ``api_email``.
        api_email: the account e-mail (``X-Auth-Email``), with ``api_key``.

    No field is shown by ``repr``.

    Raises:
        ValueError: from the constructor when neither a token nor both key and
            e-mail are given.
    """

    api_token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    api_email: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.api_token and not (self.api_key and self.api_email):
            raise ValueError("CloudflareCredentials needs api_token, or api_key and api_email")

    @property
    def method(self) -> Literal["token", "global-key"]:
        """Which scheme is used: the token when set, else the global key pair."""
        return "token" if self.api_token else "global-key"

    def secrets(self) -> tuple[str, ...]:
        """The secret values (token, key), for scrubbing them out of messages."""
        return tuple(s for s in (self.api_token, self.api_key) if s)


def credentials_from_env(environ: Mapping[str, str]) -> CloudflareCredentials:
    """Credentials from ``CLOUDFLARE_API_TOKEN``, or the original goavail's ``CF_API_KEY`` +
    ``CF_API_EMAIL``. The token wins when both are set; empty values count as unset.

    Args:
        environ: the environment, e.g. ``os.environ``.

    Raises:
        MissingCredentials: neither a token nor both key and e-mail are set. The
            message names the variables, never their values.
    """
    token = environ.get(TOKEN_ENV, "").strip()
    if token:
        return CloudflareCredentials(api_token=token)
    key = environ.get(KEY_ENV, "").strip()
    email = environ.get(EMAIL_ENV, "").strip()
    if key and email:
        return CloudflareCredentials(api_key=key, api_email=email)
    if key or email:
        missing = EMAIL_ENV if key else KEY_ENV
        present = KEY_ENV if key else EMAIL_ENV
        raise MissingCredentials(
            f"Cloudflare credentials incomplete: {present} is set but {missing} is not; "
            f"set both, or set {TOKEN_ENV} instead"
        )
    raise MissingCredentials(
        f"no Cloudflare credentials: set {TOKEN_ENV} (an API token with DNS edit rights "
        f"on the zone), or {KEY_ENV} and {EMAIL_ENV} (global API key and account e-mail)"
    )


_PER_PAGE = 100
"""Records asked for per page when listing DNS records (the API default is 100)."""


class CloudflareProvider(Provider):
    """A and AAAA records of one Cloudflare zone.

    Args:
        dry_run, audit: see :class:`~goavail.dns.providers.base.Provider`.
        zone_name: the zone (e.g. ``"example.com"``); its id is looked up by name
            on first use and cached.
        proxied: Cloudflare's proxy ("orange cloud") flag for records created.
        ttl: TTL in seconds for records created; 1 means Cloudflare "automatic",
            otherwise 30..86400 (60 minimum outside Enterprise plans).
        credentials: see :class:`CloudflareCredentials`.
        request_timeout: seconds allowed per HTTP request.

    Raises:
        ValueError: ``ttl`` or ``request_timeout`` out of range.
    """

    name = "cloudflare"

    def __init__(
        self,
        *,
        dry_run: bool,
        audit: AuditLog,
        zone_name: str,
        proxied: bool,
        ttl: int,
        credentials: CloudflareCredentials,
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        if ttl != 1 and not 30 <= ttl <= 86400:
            raise ValueError(f"ttl must be 1 (automatic) or 30..86400 seconds, got {ttl}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        self.zone_name = normalize_name(zone_name)
        self.proxied = proxied
        self.ttl = ttl
        self.request_timeout = request_timeout
        self._credentials = credentials
        self._client = AsyncCloudflare(
            api_token=credentials.api_token,
            api_key=credentials.api_key,
            api_email=credentials.api_email,
            max_retries=0,
            timeout=request_timeout,
        )
        # The SDK fills unset credentials from CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL /
        # CLOUDFLARE_API_USER_SERVICE_KEY and prefers X-Auth-Email over a token: use
        # exactly the credentials given, nothing picked up on the side.
        self._client.api_token = credentials.api_token or None
        self._client.api_key = None if credentials.api_token else credentials.api_key
        self._client.api_email = None if credentials.api_token else credentials.api_email
        self._client.user_service_key = None
        self._zone_id: str | None = None
        self._zone_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"CloudflareProvider(zone_name={self.zone_name!r}, proxied={self.proxied}, "
            f"ttl={self.ttl}, dry_run={self.dry_run}, auth={self._credentials.method})"
        )

    async def close(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()

    # -- zone ---------------------------------------------------------------------------

    async def zone_id(self) -> str:
        """The id of ``zone_name``, looked up once and cached.

        Raises:
            ProviderError: the zone is not visible with these credentials
                (transient=False), or the lookup failed.
        """
        if self._zone_id is not None:
            return self._zone_id
        async with self._zone_lock:
            if self._zone_id is None:
                try:
                    async for zone in self._client.zones.list(name=self.zone_name):
                        if normalize_name(zone.name) == self.zone_name:
                            self._zone_id = zone.id
                            break
                except cloudflare.APIError as exc:
                    raise self._error(exc, f"look up zone {self.zone_name}") from None
                if self._zone_id is None:
                    raise ProviderError(
                        f"cloudflare: zone {self.zone_name!r} not found, or the credentials "
                        "cannot read it",
                        transient=False,
                    )
            return self._zone_id

    # -- Provider hooks ---------------------------------------------------------------------

    async def _list(self, name: str) -> list[Record]:
        zone_id = await self.zone_id()
        found: list[Record] = []
        try:
            # Walk the pages by hand: the SDK's auto-pager only stops at an empty
            # page, which costs one more request per read against the rate limit.
            # A page shorter than per_page is the last one.
            page = await self._client.dns.records.list(
                zone_id=zone_id, name={"exact": name}, per_page=_PER_PAGE
            )
            items = list(page.result or [])
            while len(page.result or []) >= _PER_PAGE:
                page = await page.get_next_page()
                items.extend(page.result or [])
            for r in items:
                if not isinstance(r, ARecord | AAAARecord) or r.content is None:
                    continue
                try:
                    content = normalize_address(r.content)
                except ValueError:
                    log.warning("cloudflare: ignoring %s %s with bad content", r.type, r.name)
                    continue
                found.append(
                    Record(
                        name=normalize_name(r.name),
                        type=r.type,
                        content=content,
                        ttl=int(r.ttl),
                        proxied=r.proxied,
                        id=r.id,
                    )
                )
        except cloudflare.APIError as exc:
            raise self._error(exc, f"list {name}") from None
        # the API filter is case-insensitive; keep exactly the name asked for
        return [r for r in found if r.name == normalize_name(name)]

    async def _create(self, record: Record) -> None:
        zone_id = await self.zone_id()
        try:
            await self._client.dns.records.create(
                zone_id=zone_id,
                name=record.name,
                type=record.type,
                content=record.content,
                ttl=self.ttl,
                proxied=self.proxied,
            )
        except cloudflare.BadRequestError as exc:
            if _codes(exc) & CODES_RECORD_EXISTS:
                raise RecordExists(_describe(record)) from None
            raise self._error(exc, f"create {_describe(record)}") from None
        except cloudflare.APIError as exc:
            raise self._error(exc, f"create {_describe(record)}") from None

    async def _delete(self, record: Record) -> None:
        zone_id = await self.zone_id()
        record_id = record.id
        if record_id is None:
            match = [r for r in await self._list(record.name) if r.key == record.key]
            if not match:
                raise RecordMissing(_describe(record))
            record_id = match[0].id
            assert record_id is not None  # set by _list
        try:
            await self._client.dns.records.delete(record_id, zone_id=zone_id)
        except cloudflare.NotFoundError as exc:
            if not _codes(exc) or CODE_RECORD_MISSING in _codes(exc):
                raise RecordMissing(_describe(record)) from None
            raise self._error(exc, f"delete {_describe(record)}") from None
        except cloudflare.APIError as exc:
            if CODE_RECORD_MISSING in _codes(exc):
                raise RecordMissing(_describe(record)) from None
            raise self._error(exc, f"delete {_describe(record)}") from None

    # -- errors -------------------------------------------------------------------------------

    def _error(self, exc: cloudflare.APIError, what: str) -> ProviderError:
        """Translate an SDK exception into a ProviderError with a secret-free message.

        Transient: HTTP 429, 5xx, timeouts and connection errors. Everything else
        (authentication, permissions, invalid requests, unknown zone) is permanent.
        """
        transient = False
        retry_after: float | None = None
        if isinstance(exc, cloudflare.APITimeoutError):
            detail = f"timed out after {self.request_timeout:g}s"
            transient = True
        elif isinstance(exc, cloudflare.APIConnectionError):
            cause = exc.__cause__
            detail = f"connection error ({type(cause).__name__ if cause else 'unknown'})"
            transient = True
        elif isinstance(exc, cloudflare.APIStatusError):
            status = exc.status_code
            detail = f"HTTP {status}"
            errors = "; ".join(f"{e.code}: {e.message}" for e in exc.errors)
            if errors:
                detail += f" ({errors})"
            if isinstance(exc, cloudflare.RateLimitError):
                transient = True
                header = exc.response.headers.get("Retry-After")
                if header:
                    detail += f", Retry-After {header}s"
                    with contextlib.suppress(ValueError):
                        retry_after = max(0.0, float(header))
            elif status >= 500:
                transient = True
            elif isinstance(exc, cloudflare.AuthenticationError | cloudflare.PermissionDeniedError):
                scheme = (
                    TOKEN_ENV if self._credentials.method == "token" else f"{KEY_ENV}/{EMAIL_ENV}"
                )
                detail += f"; check {scheme} and its rights on zone {self.zone_name}"
            if CODE_ZONE_ROUTE in _codes(exc):
                self._zone_id = None  # the zone may have been re-created: look it up again
        else:
            detail = type(exc).__name__
        message = f"cloudflare: {what} failed: {detail}"
        for secret in self._credentials.secrets():
            message = message.replace(secret, "[redacted]")
        return ProviderError(message, transient=transient, retry_after=retry_after)


def _codes(exc: cloudflare.APIError) -> set[int]:
    return {e.code for e in exc.errors if e.code is not None}


def _describe(record: Record) -> str:
    return f"{record.type} {record.name} {record.content}"
