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
* 81044 "Record does not exist." (HTTP 404) on delete: already gone (on a TTL
  update: nothing to update; the next pass plans again).

A TTL update is one ``PATCH /zones/{zone}/dns_records/{id}`` (the SDK's
``dns.records.edit``) with the record's name, type, content and the new ``ttl``:
the record is changed in place, never removed.
* 7003 "Could not route to ..., perhaps your object identifier is invalid?"
  (HTTP 400): the cached zone id is no longer valid; it is looked up again on
  the next call.

Reading many names (:meth:`~goavail.dns.providers.base.Provider.records_for`, what
the reconciler does at every pass) lists each zone's A records, then its AAAA
records (``GET /zones/{zone_id}/dns_records?type=A``, paged): a pass costs
``ceil(A records / 5000) + ceil(AAAA records / 5000)`` requests per zone, whatever
the number of names, instead of one per name. A zone holding far more records
than goavail has names in it is read name by name instead (see
:meth:`CloudflareProvider._read_zone`). Records at names goavail does not
manage are dropped.

Requests go through the SDK's client as its README's "custom/undocumented
requests" (``client.get/post/delete(path, cast_to=httpx.Response)``): the SDK's
authentication, base URL, timeout, connection pool and error classes, but the
JSON envelope is read here (:func:`_envelope`), with no pydantic model per record
and without importing the SDK's ``dns`` and ``zones`` resources and their types
(about 570 modules). At 10,000 records that is about a tenth of the CPU of a pass
and 9 MB less resident memory (BENCHMARKS.md, issue 14). Listings ask for
:data:`_PER_PAGE` records per page and are checked against their
``result_info`` (``page``, ``per_page``, ``count``, ``total_count``,
``total_pages``): at most :data:`MAX_PAGES` pages, and an answer that does not
add up is a failed read, never "no records". Any answer that is not JSON, or
that lacks a field goavail relies on, is a transient
:class:`~goavail.dns.providers.base.ProviderError` (see :func:`_malformed`).
A ``Retry-After`` (seconds or HTTP-date) on a 429 or 5xx answer is read with
:func:`goavail.dns.backoff.parse_retry_after`; the base class then lets no call
out before it.

Secrets (API token, global API key) never appear in error messages or reprs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import cloudflare
import httpx
from cloudflare import AsyncCloudflare

from goavail.dns.audit import AuditLog
from goavail.dns.backoff import parse_retry_after
from goavail.dns.model import Record, RecordType, normalize_name
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing

_TYPES: tuple[RecordType, ...] = ("A", "AAAA")

log = logging.getLogger(__name__)

T = TypeVar("T")

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


_PER_PAGE = 5000
"""Records asked for per page when listing DNS records.

The API's default is 100; its schema allows up to 5,000,000
(``dns-records_per_page``: minimum 1, maximum 5e6, in Cloudflare's OpenAPI
description of ``GET /zones/{zone_id}/dns_records``; older API documentation gave
5,000 as the maximum). 5,000 is within both, makes a zone of up to 5,000 A records
one request per pass (10,000 targets in 5 zones: 5 requests instead of 100), and
bounds what one page costs to read (about 2 MB of JSON) when a large zone turns
out to be cheaper to read name by name (see :meth:`CloudflareProvider._read_zone`)."""

_ZONE_RECORDS_PER_NAME = 100
"""A zone is listed at once when it holds at most this many records of a type per name of
goavail's in it, else read name by name (the threshold of one 100-record page per name
that a name-by-name read would cost in requests)."""

_ZONES_PER_PAGE = 50
"""Zones asked for per page when looking the zone up (the API's maximum, 5..50)."""

MAX_PAGES = 1000
"""The most pages one listing may have (5,000,000 records of :data:`_PER_PAGE`); a server
that announces more is not believed, and a listing is never walked further (a zone listing
included: a zone of more than 100,000 A records cannot be read at once).

No name can answer a DNS query with more than about 4,096 addresses (a DNS message over TCP
is at most 65,535 bytes and an A record in it at least 16; RFC 1035 §4.1.3), but goavail's
configuration gives every hostname every address, and its benchmarks hold up to 50,000
records under one name: 1,000 pages covers that with room (and the zone listing's page of
zones, 50 per page, 50,000 zones), and still bounds a pager that a
server could otherwise keep asking for ever (a server that repeats a page is caught at the
second page; see :meth:`CloudflareProvider._read_pages`)."""


class _TooManyPages(Exception):
    """A listing has more pages than its caller wants to read (see :meth:`_read_pages`)."""


class CloudflareProvider(Provider):
    """A and AAAA records of one Cloudflare zone (or several, with ``zones``).

    Args:
        dry_run, audit: see :class:`~goavail.dns.providers.base.Provider`.
        zone_name: the zone (e.g. ``"example.com"``); its id is looked up by name
            on first use and cached.
        zones: further zones of the same account whose names this provider also
            reads and writes, each looked up by name and cached like
            ``zone_name``. A name belongs to the longest zone it is in
            (:meth:`zone_of`); a name in none of them reads as no records, and
            a write to it fails (permanent error).
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
        zones: Sequence[str] = (),
    ) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        if ttl != 1 and not 30 <= ttl <= 86400:
            raise ValueError(f"ttl must be 1 (automatic) or 30..86400 seconds, got {ttl}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        self.zone_name = normalize_name(zone_name)
        self.zones: tuple[str, ...] = tuple(
            dict.fromkeys([self.zone_name, *map(normalize_name, zones)])
        )
        """Every zone managed, ``zone_name`` first."""
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
        self._zone_ids: dict[str, str] = {}
        self._zone_lock = asyncio.Lock()

    def __repr__(self) -> str:
        more = f", zones={list(self.zones[1:])!r}" if len(self.zones) > 1 else ""
        return (
            f"CloudflareProvider(zone_name={self.zone_name!r}{more}, proxied={self.proxied}, "
            f"ttl={self.ttl}, dry_run={self.dry_run}, auth={self._credentials.method})"
        )

    async def close(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()

    # -- zone ---------------------------------------------------------------------------

    def zone_of(self, name: str) -> str | None:
        """The zone of :attr:`zones` that ``name`` is in (the longest one), or None. Pure."""
        wanted = normalize_name(name)
        inside = [z for z in self.zones if wanted == z or wanted.endswith("." + z)]
        return max(inside, key=len, default=None)

    async def zone_id(self, zone: str | None = None) -> str:
        """The id of ``zone`` (default ``zone_name``), looked up by name once and cached.

        Raises:
            ProviderError: the zone is not visible with these credentials
                (transient=False), or the lookup failed.
        """
        zone = self.zone_name if zone is None else normalize_name(zone)
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        async with self._zone_lock:
            if zone not in self._zone_ids:
                what = f"look up zone {zone}"
                zones = await self._read_pages("/zones", {"name": zone}, _ZONES_PER_PAGE, what)
                for item in zones:
                    zname, zid = item.get("name"), item.get("id")
                    if not isinstance(zname, str) or not isinstance(zid, str) or not zid:
                        raise _malformed(what, "a zone without a name or id")
                    if normalize_name(zname) == zone:
                        self._zone_ids[zone] = zid
                        break
                if zone not in self._zone_ids:
                    raise ProviderError(
                        f"cloudflare: zone {zone!r} not found, or the credentials cannot read it",
                        transient=False,
                    )
            return self._zone_ids[zone]

    async def _zone_id_for(self, record: Record) -> str:
        """The id of the zone ``record`` is written to.

        Raises:
            ProviderError: the name is in none of :attr:`zones` (permanent), or
                the zone lookup failed.
        """
        zone = self.zone_of(record.name)
        if zone is None:
            raise ProviderError(
                f"cloudflare: {record.name} is in none of the zones {', '.join(self.zones)}",
                transient=False,
            )
        return await self.zone_id(zone)

    # -- Provider hooks ---------------------------------------------------------------------

    async def _list(self, name: str) -> list[Record]:
        zone = self.zone_of(name)
        if zone is None:
            return []  # not in a zone of this provider: nothing of goavail's there
        zone_id = await self.zone_id(zone)
        wanted = normalize_name(name)
        what = f"list {name}"
        items = await self._read_pages(
            _records_path(zone_id), {"name": {"exact": name}}, _PER_PAGE, what
        )
        # the API filter is case-insensitive; keep exactly the name asked for
        return [r for item in items if (r := _record(item, wanted, what)) is not None]

    async def _list_names(
        self, names: Sequence[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]]:
        """Each zone's records read at once (:meth:`_read_zone`), shared out to ``names``.

        Names in none of :attr:`zones` get []; a zone that is cheaper to read
        name by name is read so (one retried :meth:`_list` per name).

        Raises:
            ProviderError: a zone or a name could not be read (after retries).
        """
        out: dict[str, list[Record]] = {name: [] for name in names}
        by_zone: dict[str, dict[str, list[str]]] = {}  # zone -> normalised name -> names
        for name in names:
            zone = self.zone_of(name)
            if zone is not None:
                by_zone.setdefault(zone, {}).setdefault(normalize_name(name), []).append(name)
        for zone, members in by_zone.items():
            found = await self._read_zone(zone, members.keys(), types)
            for wanted, given in members.items():
                for name in given:
                    if found is not None:
                        out[name] = list(found[wanted])
                    else:
                        out[name] = await self._retrying(
                            functools.partial(self._list, name), f"{self.name}: list {name}"
                        )
        return out

    async def _read_zone(
        self, zone: str, names: Collection[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]] | None:
        """The records of ``types`` at ``names`` (normalised) in ``zone``, one listing per type.

        Each listing (``GET /zones/{id}/dns_records?type=A``, :data:`_PER_PAGE` per
        page, or fewer: see below) is checked page by page as any listing
        (:meth:`_read_pages`); each
        request, the zone lookup included, is retried on its own
        (:meth:`~goavail.dns.providers.base.Provider._retrying`: backoff,
        ``Retry-After``), so a fault in the middle of a listing costs that page
        again, not the pages before it; a page that still fails fails the read.

        None when reading name by name is cheaper: when there are no more names
        than types (one request per name reads both types), or when a listing
        turns out to hold more than :data:`_ZONE_RECORDS_PER_NAME` records per
        name (a large zone with few of goavail's names in it). Pages then ask for
        no more than that many records in all, so the first page, wasted, is
        small, and a pass never costs more than ``2 * len(names) + 1`` requests
        for the zone.

        Raises:
            ProviderError: the zone or a page could not be read (after retries),
                or an answer is malformed (never read as "no records").
        """
        if len(names) <= len(types):
            return None
        zone_id = await self._retrying(
            functools.partial(self.zone_id, zone), f"{self.name}: look up zone {zone}"
        )
        found: dict[str, list[Record]] = {name: [] for name in names}
        most = _ZONE_RECORDS_PER_NAME * len(names)
        per_page = min(_PER_PAGE, most)
        for rtype in (t for t in _TYPES if t in types):
            what = f"list the {rtype} records of zone {zone}"
            try:
                items = await self._read_pages(
                    _records_path(zone_id),
                    {"type": rtype},
                    per_page,
                    what,
                    retry=True,
                    max_items=most,
                )
            except _TooManyPages as exc:
                log.debug("cloudflare: %s: %s; reading name by name", what, exc)
                return None
            for item in items:
                name, itype = item.get("name"), item.get("type")
                if not isinstance(name, str) or itype != rtype:
                    # a record without a name, or of another type than the filter asked
                    # for: the server ignored the filter, or the answer is garbled
                    raise _malformed(what, f"a record with name {name!r} and type {itype!r}")
                wanted = normalize_name(name)
                if wanted in found:
                    record = _record(item, wanted, what)
                    if record is not None:
                        found[wanted].append(record)
        return found

    async def _read_pages(
        self,
        path: str,
        params: Mapping[str, Any],
        per_page: int,
        what: str,
        *,
        retry: bool = False,
        max_items: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a paginated listing, each page checked against its ``result_info``.

        Pages are asked for one by one (``GET path?page=N&per_page=...``, see
        :meth:`_get`) while ``result_info.page`` is below ``total_pages``: exactly
        the pages that hold items, no extra empty page (the SDK's auto-pager only
        stops at an empty one).

        Args:
            path: the listing's path, e.g. ``/zones/{id}/dns_records``.
            params: its filters (a nested dict is sent as the SDK sends it:
                ``{"name": {"exact": n}}`` is ``name.exact=n``).
            per_page: the page size asked for.
            what: the operation, for messages.
            retry: run each request (each page) through
                :meth:`~goavail.dns.providers.base.Provider._retrying`; for callers
                that do not retry the whole listing themselves.
            max_items: when page 1 announces more items than this, stop there.

        Returns:
            The items (JSON objects) of every page, in order.

        Raises:
            ProviderError: the request failed (see :meth:`_error`), or an answer
                is inconsistent (transient; see :func:`_page_items`).
            _TooManyPages: ``max_items`` is exceeded (after one request).
        """

        async def fetch(
            number: int, totals: tuple[int, int] | None
        ) -> tuple[list[dict[str, Any]], tuple[int, int]]:
            async def once() -> tuple[list[dict[str, Any]], tuple[int, int]]:
                query = {**params, "page": number, "per_page": per_page}
                body = await self._listing(functools.partial(self._get, path, query), what)
                return _page_items(body, number, per_page, totals, what)

            if not retry:
                return await once()
            return await self._retrying(once, f"{self.name}: {what} (page {number})")

        items, totals = await fetch(1, None)
        if max_items is not None and totals[0] > max_items:
            raise _TooManyPages(f"{totals[0]} items, more than {max_items}")
        number = 1
        while number < totals[1]:
            number += 1
            result, totals = await fetch(number, totals)
            items.extend(result)
        ids = [i for item in items if (i := item.get("id")) is not None]
        if len(set(ids)) != len(ids):  # items without an id are reported by the caller
            raise _malformed(what, "the same item on two pages (does the server ignore `page`?)")
        return items

    async def _get(self, path: str, query: Mapping[str, Any]) -> bytes:
        """``GET path?query`` through the SDK's client; the body of its 2xx answer.

        Raises:
            cloudflare.APIError: as the SDK raises it (status, timeout, connection).
        """
        reply = await self._client.get(path, cast_to=httpx.Response, options={"params": query})
        return reply.content

    async def _listing(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """:meth:`_sdk` for a listing: a 400 or 404 is an error like any other (no listing
        answers with a code a caller acts on; 7003, a stale zone id, clears the cache)."""
        try:
            return await self._sdk(call, what)
        except (cloudflare.BadRequestError, cloudflare.NotFoundError) as exc:
            raise self._error(exc, what) from None

    async def _sdk(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``await call()``: an SDK request, with its errors made :class:`ProviderError`.

        :class:`cloudflare.BadRequestError` and :class:`cloudflare.NotFoundError`
        pass through (callers read their codes). Anything else ``call`` raises as
        ``ValueError``/``TypeError``/``AttributeError``/``LookupError`` (an answer
        that could not be read) becomes a transient error (see :func:`_malformed`);
        the body of a 2xx answer is read by :func:`_envelope`, not by the SDK.
        """
        try:
            return await call()
        except (cloudflare.BadRequestError, cloudflare.NotFoundError):
            raise
        except cloudflare.APIError as exc:
            raise self._error(exc, what) from None
        except (ValueError, TypeError, AttributeError, LookupError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:160]
            for secret in self._credentials.secrets():
                detail = detail.replace(secret, "[redacted]")
            raise _malformed(what, f"not Cloudflare's JSON envelope ({detail})") from None

    async def _create(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        what = f"create {_describe(record)}"
        body = {
            "name": record.name,
            "type": record.type,
            "content": record.content,
            "ttl": self.ttl if record.ttl is None else record.ttl,
            "proxied": self.proxied,
        }
        try:
            reply = await self._sdk(
                lambda: self._client.post(
                    _records_path(zone_id), cast_to=httpx.Response, body=body
                ),
                what,
            )
        except cloudflare.BadRequestError as exc:
            if _codes(exc) & CODES_RECORD_EXISTS:
                raise RecordExists(_describe(record)) from None
            raise self._error(exc, what) from None
        except cloudflare.NotFoundError as exc:
            raise self._error(exc, what) from None
        # The answer must show the record made: a 200 with success false or no
        # result leaves it unknown whether it was (a retry answers "exists" if so).
        created = _envelope(reply.content, what).get("result")
        if not isinstance(created, dict):
            raise _malformed(what, "no record in the answer (no result)")
        made = _record(created, record.name, what)
        if made is None or made.key != record.key:
            raise _malformed(what, "the answer shows another record than the one asked for")

    async def _delete(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        record_id = record.id
        if record_id is None:
            match = [r for r in await self._list(record.name) if r.key == record.key]
            if not match:
                raise RecordMissing(_describe(record))
            record_id = match[0].id
            assert record_id is not None  # set by _list
        what = f"delete {_describe(record)}"
        path = f"{_records_path(zone_id)}/{quote(record_id, safe='')}"
        try:
            reply = await self._sdk(lambda: self._client.delete(path, cast_to=httpx.Response), what)
        except cloudflare.NotFoundError as exc:
            if not _codes(exc) or CODE_RECORD_MISSING in _codes(exc):
                raise RecordMissing(_describe(record)) from None
            raise self._error(exc, what) from None
        except cloudflare.BadRequestError as exc:
            if CODE_RECORD_MISSING in _codes(exc):
                raise RecordMissing(_describe(record)) from None
            raise self._error(exc, what) from None
        # as for creates: unknown whether it happened; a retry answers "missing" if so
        deleted = _envelope(reply.content, what).get("result")
        if not isinstance(deleted, dict) or deleted.get("id") != record_id:
            raise _malformed(what, "the answer does not name the deleted record's id")

    async def _update_ttl(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        ttl = self.ttl if record.ttl is None else record.ttl
        record_id = record.id
        if record_id is None:
            match = [r for r in await self._list(record.name) if r.key == record.key]
            if not match:
                raise RecordMissing(_describe(record))
            if match[0].ttl == ttl:
                raise RecordExists(f"{_describe(record)} TTL {ttl}")
            record_id = match[0].id
            assert record_id is not None  # set by _list
        what = f"set TTL {ttl} of {_describe(record)}"
        path = f"{_records_path(zone_id)}/{quote(record_id, safe='')}"
        body = {"name": record.name, "type": record.type, "content": record.content, "ttl": ttl}
        try:
            reply = await self._sdk(
                lambda: self._client.patch(path, cast_to=httpx.Response, body=body), what
            )
        except (cloudflare.NotFoundError, cloudflare.BadRequestError) as exc:
            if CODE_RECORD_MISSING in _codes(exc) or (
                isinstance(exc, cloudflare.NotFoundError) and not _codes(exc)
            ):
                raise RecordMissing(_describe(record)) from None
            raise self._error(exc, what) from None
        edited = _envelope(reply.content, what).get("result")
        if not isinstance(edited, dict):
            raise _malformed(what, "no record in the answer (no result)")
        made = _record(edited, record.name, what)
        if made is None or made.key != record.key or made.ttl != ttl:
            raise _malformed(what, "the answer shows another record or TTL than asked for")

    # -- errors -------------------------------------------------------------------------------

    def _error(self, exc: cloudflare.APIError, what: str) -> ProviderError:
        """Translate an SDK exception into a ProviderError with a secret-free message.

        Transient: HTTP 429, 5xx, timeouts, connection errors and answers the SDK
        could not validate. Everything else (authentication, permissions, invalid
        requests, unknown zone) is permanent. A ``Retry-After`` on a 429 or 5xx
        (seconds or HTTP-date, RFC 9110 §10.2.3) gives ``retry_after`` in
        seconds, read against ``clock.wall()``.
        """
        transient = False
        retry_after: float | None = None
        if isinstance(exc, cloudflare.APITimeoutError):
            detail = f"timed out after {self.request_timeout:g}s"
            transient = True
        elif isinstance(exc, cloudflare.APIResponseValidationError):
            detail = "unreadable answer (the SDK could not validate it)"
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
            if isinstance(exc, cloudflare.RateLimitError) or status >= 500:
                transient = True
                header = exc.response.headers.get("Retry-After")
                if header is not None:
                    retry_after = parse_retry_after(header, self.clock.wall())
                    detail += ", " + _describe_retry_after(header, retry_after)
            elif isinstance(exc, cloudflare.AuthenticationError | cloudflare.PermissionDeniedError):
                scheme = (
                    TOKEN_ENV if self._credentials.method == "token" else f"{KEY_ENV}/{EMAIL_ENV}"
                )
                detail += f"; check {scheme} and its rights on zone {self.zone_name}"
            if CODE_ZONE_ROUTE in _codes(exc):
                self._zone_ids.clear()  # a zone may have been re-created: look them up again
        else:
            detail = type(exc).__name__
        message = f"cloudflare: {what} failed: {detail}"
        for secret in self._credentials.secrets():
            message = message.replace(secret, "[redacted]")
        return ProviderError(message, transient=transient, retry_after=retry_after)


def _describe_retry_after(header: str, seconds: float | None) -> str:
    """``Retry-After`` for a message: "Retry-After 60 s", "Retry-After <date> (58 s from
    now)", or the unreadable value (shortened, quoted) and that it is ignored."""
    text = header.strip()
    if seconds is None:
        return f"Retry-After {text[:64]!r} (unreadable, ignored)"
    if text.isascii() and text.isdigit():
        return f"Retry-After {seconds:g} s"
    return f"Retry-After {text[:64]} ({seconds:.0f} s from now)"


def _malformed(what: str, detail: str) -> ProviderError:
    """A 200 answer goavail cannot use, as a transient :class:`ProviderError`.

    Transient, because the request itself was valid and accepted: such an answer
    comes from a fault between goavail and the API (an edge or proxy page, a
    truncated body) or in the API, and the same request later can succeed. The
    reconciler retries it with its backoff (up to 30 s apart); a write it
    concerns may or may not have been made, which is safe to retry since
    creating an existing record and deleting a missing one count as success.
    Never read as "no records".
    """
    return ProviderError(f"cloudflare: {what} failed: malformed answer: {detail}", transient=True)


def _int_field(info: Mapping[str, Any], name: str) -> int | None:
    """``result_info.<name>`` when it is a non-negative integer, else None.

    An integral float counts (``2.0``), as the SDK's models read it."""
    value = info.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _records_path(zone_id: str) -> str:
    """``/zones/{zone_id}/dns_records``, the id quoted as the SDK quotes path parameters."""
    return f"/zones/{quote(zone_id, safe='')}/dns_records"


def _envelope(body: bytes, what: str) -> dict[str, Any]:
    """Cloudflare's JSON envelope of a 2xx answer, checked to say ``success: true``. Pure.

    Raises:
        ProviderError: transient (see :func:`_malformed`): the body is not a JSON
            object (an HTML page from an edge or proxy, a truncated body), or
            ``success`` is not ``true``.
    """
    try:
        envelope = json.loads(body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise _malformed(
            what, f"not Cloudflare's JSON envelope ({type(exc).__name__}: {exc})"[:200]
        ) from None
    if not isinstance(envelope, dict):
        raise _malformed(what, f"not Cloudflare's JSON envelope (a JSON {type(envelope).__name__})")
    if envelope.get("success") is not True:
        errors = envelope.get("errors")
        codes = [e.get("code") for e in errors or [] if isinstance(e, dict)]
        detail = f"success is {envelope.get('success')!r}"
        raise _malformed(what, detail + (f" (codes {codes})" if codes else ""))
    return envelope


def _page_items(
    body: bytes,
    number: int,
    per_page: int,
    totals: tuple[int, int] | None,
    what: str,
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """The items of page ``number`` of a listing, after checking that the page adds up.

    ``body`` is the answer's JSON, Cloudflare's envelope. Checks (any failure is a
    transient error, see :func:`_malformed`): the body is a JSON object that says
    ``success: true`` (:func:`_envelope`) and has a ``result`` list of objects and a
    ``result_info``;
    ``result_info.page`` is ``number`` (a server that ignores ``page`` answers page
    1 again) and ``per_page`` what was asked (a smaller one would make a short
    read); ``total_pages`` is ``ceil(total_count / per_page)``, at most
    :data:`MAX_PAGES`, and the same on every page (``totals``, from page 1); the
    page holds exactly the items these numbers imply (and ``count`` says so, when
    present).

    Pure.

    Returns:
        (the items, (total_count, total_pages)).

    Raises:
        ProviderError: transient, naming what does not add up.
    """
    envelope = _envelope(body, what)
    result = envelope.get("result")
    if not isinstance(result, list):
        raise _malformed(what, "no result list")
    if not all(isinstance(item, dict) for item in result):
        raise _malformed(what, "a result item that is not a JSON object")
    info = envelope.get("result_info")
    if not isinstance(info, dict):
        raise _malformed(what, "no result_info")
    got_page, got_per_page = _int_field(info, "page"), _int_field(info, "per_page")
    total_count, total_pages = _int_field(info, "total_count"), _int_field(info, "total_pages")
    if got_page is None or not got_per_page or total_count is None or total_pages is None:
        raise _malformed(what, f"result_info incomplete: {info!r}"[:200])
    if got_page != number:
        raise _malformed(what, f"asked for page {number}, got page {got_page}")
    if got_per_page != per_page:
        raise _malformed(what, f"asked for {per_page} per page, got {got_per_page}")
    if total_pages != -(-total_count // per_page):
        raise _malformed(what, f"{total_count} items cannot make {total_pages} pages of {per_page}")
    if total_pages > MAX_PAGES:
        raise _malformed(what, f"{total_pages} pages, more than the {MAX_PAGES} goavail reads")
    if totals is not None and totals != (total_count, total_pages):
        raise _malformed(what, "the listing changed between pages")
    expected = min(per_page, max(0, total_count - (number - 1) * per_page))
    count = info.get("count")
    if len(result) != expected or (count is not None and count != len(result)):
        raise _malformed(
            what,
            f"page {number} holds {len(result)} items (count {count!r}), "
            f"{expected} expected from total_count {total_count}",
        )
    return result, (total_count, total_pages)


_FAMILY: dict[str, int] = {"A": 4, "AAAA": 6}


def _record(item: Mapping[str, Any], wanted: str, what: str) -> Record | None:
    """The :class:`Record` a record's JSON object stands for, if it is an A/AAAA at ``wanted``.

    Records at other names (the API's
    name filter ignores case; goavail keeps the exact name) and of other types are
    None. A record whose name or type cannot be read, or an A/AAAA at ``wanted``
    without a string id, a valid address of its family, an integer TTL >= 1
    (integral floats and numeric strings accepted, as the SDK's models read them:
    ``"300"`` is 300) or a boolean/absent ``proxied``, is a malformed answer:
    skipping it could read a name as having fewer (or no) records than it has.

    Raises:
        ProviderError: transient (see :func:`_malformed`).
    """

    name, rtype = item.get("name"), item.get("type")
    if not isinstance(name, str) or not isinstance(rtype, str):
        raise _malformed(what, f"a record with name {name!r} and type {rtype!r}")
    if normalize_name(name) != wanted or rtype not in _FAMILY:
        return None
    rid, content, proxied = item.get("id"), item.get("content"), item.get("proxied")
    shown = ttl = item.get("ttl")
    if isinstance(ttl, str):
        with contextlib.suppress(ValueError):
            ttl = float(ttl)
    label = f"{rtype} {name}"
    if not isinstance(rid, str) or not rid:
        raise _malformed(what, f"{label} without an id")
    try:
        address = ipaddress.ip_address(content) if isinstance(content, str) else None
    except ValueError:
        address = None
    if address is None or address.version != _FAMILY[rtype]:
        raise _malformed(what, f"{label} with content {content!r}"[:200])
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not 1 <= ttl <= 2**31 - 1  # also false for nan (Python's json reads NaN)
        or ttl != int(ttl)
    ):
        raise _malformed(what, f"{label} with ttl {shown!r}"[:200])
    if proxied is not None and not isinstance(proxied, bool):
        raise _malformed(what, f"{label} with proxied {proxied!r}"[:200])
    record_type: RecordType = "A" if rtype == "A" else "AAAA"
    return Record(
        name=wanted,
        type=record_type,
        content=sys.intern(str(address)),  # the config's own string (interned there)
        ttl=int(ttl),
        proxied=proxied,
        id=rid,
    )


def _codes(exc: cloudflare.APIError) -> set[int]:
    return {e.code for e in exc.errors if e.code is not None}


def _describe(record: Record) -> str:
    return f"{record.type} {record.name} {record.content}"
