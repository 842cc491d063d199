"""A stateful stand-in for the part of the Cloudflare API v4 that goavail uses.

It is a real HTTP server (aiohttp) bound to 127.0.0.1 (or a chosen host) that answers what the
official ``cloudflare`` Python SDK (5.x) sends, with Cloudflare's response
envelope ``{"success", "errors": [{"code", "message"}], "messages", "result"}``
and Cloudflare's error codes, so that the SDK raises the same exceptions it
raises against api.cloudflare.com.

Routes (under the base path ``/client/v4``; reference:
https://developers.cloudflare.com/api/resources/dns/subresources/records/ and
https://developers.cloudflare.com/api/resources/zones/):

* ``GET /zones`` — filters ``name`` (exact, or with an operator prefix such as
  ``contains:``/``starts_with:``/``ends_with:``), ``status``, ``page``,
  ``per_page`` (5..50, default 20).
* ``GET /zones/{zone_id}``
* ``GET /zones/{zone_id}/dns_records`` — filters ``name``, ``name.exact``,
  ``name.contains``, ``name.startswith``, ``name.endswith`` (the SDK sends the
  dotted forms for its ``name={"exact": ...}`` argument), the same for
  ``content``, ``type``, ``proxied``, ``match`` (``all``/``any``), ``order``,
  ``direction``, ``page``, ``per_page`` (default 100).
* ``POST /zones/{zone_id}/dns_records``
* ``GET|PATCH|PUT|DELETE /zones/{zone_id}/dns_records/{dns_record_id}``
* ``POST /zones/{zone_id}/dns_records/batch`` — deletes, patches, puts, posts,
  executed in that order, all or nothing.

Paginated answers carry ``result_info`` with ``page``, ``per_page``, ``count``,
``total_count`` and ``total_pages``; a page past the end is an empty list (the
SDK's auto-pager stops on an empty page).

Errors (HTTP status, Cloudflare code):

* 400 / 81058 "An identical record already exists." on create or update of a
  record whose name, type and content equal another's (``legacy_exists_code``
  switches to the older 81057 "Record already exists.").
* 400 / 81053 when A/AAAA and CNAME would share a name.
* 404 / 81044 "Record does not exist." for an unknown record id.
* 400 / 7003 "Could not route to ..., perhaps your object identifier is
  invalid?" (plus 7000 "No route for that URI") for an unknown zone id.
* 400 / 9005, 9006 (bad A/AAAA content), 9021 (bad TTL), 1004 (bad JSON/field).
* 403 / 10000 "Authentication error" for a wrong API token;
  403 / 9103 "Unknown X-Auth-Key or X-Auth-Email" for a wrong global key pair;
  400 / 9106 when no credentials are sent at all.
* Injected faults: 429 / 971 "Please wait and consider throttling your request
  speed" with a ``Retry-After`` header; 500 with a JSON envelope (code 10001,
  representative); 502/503/504 with an HTML body, as Cloudflare's edge sends.

Per-operation faults (:meth:`CloudflareStub.inject`): a rule hits the ``nth``
request of one operation (``"list"`` = ``GET dns_records``, ``"create"``,
``"delete"``, ``"zones"`` = ``GET /zones``, or ``"any"``) counted from when the
rule was added, and the ``times - 1`` following ones (``times=None``: for
ever). A rule does one of:

* ``status=`` an error answer instead of serving the request (nothing changes):
  e.g. 400 with ``code=9005`` (bad A content), 403 with ``code=10000``
  (authentication), 429 (code 971) with ``retry_after=`` seconds, an HTTP-date
  string or a ``datetime`` (sent as an IMF-fixdate), 5xx;
* ``malformed=`` one of :data:`MALFORMED`: the request is served (a create or
  delete does happen) and the 200 answer is spoiled: a body that is not JSON
  (with a JSON content type, or as an HTML page), ``success: false``, no
  ``result``, ``result: null``, no ``result_info``, or every record in the
  result with ``ttl`` null or a string, ``name`` null, ``content`` or ``id``
  missing;
* ``pager=`` one of :data:`PAGER` (list and zone listings): the server ignores
  ``page`` (always page 1), uses a smaller ``per_page`` than asked (and says
  so), returns fewer items than its ``per_page`` says (a short page), or adds
  one to ``total_count`` or to ``total_pages``.

Watching the zone after every call: :meth:`CloudflareStub.watch` registers
``callback(entry, zones)``, called after EVERY API request has been answered
(faulted ones included; control routes excluded) with the request's
:class:`RequestLogEntry` and the state right after it, ``{zone name: [record
JSON, ...]}``. It runs in the server thread with the state lock held (keep it
quick; do not call the stand-in over HTTP from it). An exception it raises is
collected in :attr:`CloudflareStub.watch_errors` (the request is still
answered), so a test asserts an invariant after every single call with e.g.::

    low: list[int] = []
    stub.watch(lambda entry, zones: low.append(min_records(zones)))
    ...  # drive the provider / reconciler
    assert stub.watch_errors == [] and min(low) >= 1

Known simplifications: TTLs are stored as sent even for proxied records
(Cloudflare shows proxied records with TTL 1, "automatic"); names are
lower-cased and A/AAAA contents put in canonical form; no tags/comment filters,
no shadow metadata, no import/export/scan routes.

Test control: the Python API of :class:`CloudflareStub` (``add_zone``,
``add_record``, ``records``, ``set_faults``, ``fail_next``, ``inject``, ``watch``,
``count``, ...) and,
for a stub run as a subprocess (``python -m tests.cfstub``), the unauthenticated
routes ``POST /__stub__/faults``, ``POST /__stub__/zones``, ``POST /__stub__/reset``
and ``GET /__stub__/state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import email.utils
import ipaddress
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, get_args

from aiohttp import web

BASE_PATH = "/client/v4"
STUB_PATH = "/__stub__"

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_TOKEN = "cfstub-test-token"
"""The API token accepted when none is given (a fake credential for tests)."""

_HTML_ERROR = (
    "<!DOCTYPE html><html><head><title>{status} {reason}</title></head>"
    "<body><h1>Error {status}</h1><p>{reason} (cfstub fault injection)</p></body></html>"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return uuid.uuid4().hex


class CFError(Exception):
    """An API error answered as Cloudflare's envelope with ``success: false``."""

    def __init__(self, status: int, *errors: tuple[int, str]) -> None:
        super().__init__(errors[0][1] if errors else str(status))
        self.status = status
        self.errors = list(errors)


def _record_missing() -> CFError:
    return CFError(404, (81044, "Record does not exist."))


@dataclass
class StubRecord:
    """One DNS record held by the stand-in (any type; content is a string)."""

    id: str
    zone_id: str
    name: str
    type: str
    content: str
    ttl: int
    proxied: bool
    comment: str | None = None
    tags: list[str] = field(default_factory=list)
    created_on: str = field(default_factory=_now)
    modified_on: str = field(default_factory=_now)

    def to_json(self) -> JSON:
        """The record as Cloudflare returns it (``RecordResponse`` in the SDK)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "content": self.content,
            "proxiable": self.type in ("A", "AAAA", "CNAME"),
            "proxied": self.proxied,
            "ttl": self.ttl,
            "settings": {},
            "meta": {},
            "comment": self.comment,
            "tags": list(self.tags),
            "created_on": self.created_on,
            "modified_on": self.modified_on,
        }


@dataclass
class StubZone:
    """One zone held by the stand-in."""

    id: str
    name: str
    status: str = "active"
    created_on: str = field(default_factory=_now)

    def to_json(self) -> JSON:
        """The zone as Cloudflare returns it (``Zone`` in the SDK)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": None,
            "original_registrar": None,
            "original_dnshost": None,
            "created_on": self.created_on,
            "modified_on": self.created_on,
            "activated_on": self.created_on,
            "meta": {"phishing_detected": False, "cdn_only": False, "dns_only": False},
            "owner": {"id": None, "name": None, "type": "user"},
            "account": {"id": "0" * 32, "name": "cfstub account"},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "plan": {"id": "0" * 32, "name": "Free Website", "is_subscribed": False},
        }


@dataclass(frozen=True)
class RequestLogEntry:
    """One request the stand-in answered.

    Attributes:
        method: HTTP method.
        route: the route template without the base path, e.g.
            ``"/zones/{zone_id}/dns_records"`` (the raw path for unknown routes).
        path: the concrete path without the base path.
        query: the query string as a list of (key, value) pairs.
        body: the decoded JSON body, or None.
        status: the HTTP status answered.
        remote: the client's IP address (aiohttp's ``request.remote``), or None
            when unknown: tells apart the agents of a cluster test.
    """

    method: str
    route: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    status: int
    remote: str | None = None


@dataclass
class Faults:
    """Fault injection settings; see :meth:`CloudflareStub.set_faults`."""

    error_rate: float = 0.0
    statuses: tuple[int, ...] = (429, 500, 502)
    delay: float = 0.0
    retry_after: int = 1
    rng: random.Random = field(default_factory=random.Random)
    queued: list[int] = field(default_factory=list)


Operation = Literal["list", "create", "delete", "zones", "any"]
"""What a per-operation fault rule applies to (see :meth:`CloudflareStub.inject`)."""

Malformed = Literal[
    "non-json",
    "html",
    "success-false",
    "no-result",
    "null-result",
    "no-result-info",
    "ttl-null",
    "ttl-string",
    "name-null",
    "content-missing",
    "id-missing",
]
MALFORMED: tuple[str, ...] = get_args(Malformed)
"""The ways a 200 answer can be spoiled."""

Pager = Literal["ignore-page", "small-per-page", "short-page", "total-count", "total-pages"]
PAGER: tuple[str, ...] = get_args(Pager)
"""The ways a paginated answer can be inconsistent."""

Watcher = Callable[["RequestLogEntry", dict[str, list[JSON]]], None]
"""``callback(entry, zones)``; see :meth:`CloudflareStub.watch`."""

_PAGER: contextvars.ContextVar[Pager | None] = contextvars.ContextVar("cfstub_pager", default=None)
"""The pager fault of the request being served (set by the middleware, read by listings)."""

_OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/zones/{zone_id}/dns_records"): "list",
    ("POST", "/zones/{zone_id}/dns_records"): "create",
    ("DELETE", "/zones/{zone_id}/dns_records/{record_id}"): "delete",
    ("GET", "/zones"): "zones",
}


@dataclass
class OpFault:
    """One per-operation fault rule; see :meth:`CloudflareStub.inject`.

    Attributes:
        op: the operation it applies to.
        nth: the first request it hits (1 = the next one), counted among that
            operation's requests since the rule was added.
        times: how many requests it hits from there; None: every later one.
        status, code, message, retry_after: the error answer (``status`` set).
        malformed: how a served 200 answer is spoiled.
        pager: how a paginated answer is made inconsistent.
        seen: requests of ``op`` seen since the rule was added.
        hits: requests it has hit.
    """

    op: Operation
    nth: int = 1
    times: int | None = 1
    status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: str | None = None
    malformed: Malformed | None = None
    pager: Pager | None = None
    seen: int = 0
    hits: int = 0

    def applies(self) -> bool:
        """Count one more request of ``op``; True when this rule hits it."""
        self.seen += 1
        if self.seen < self.nth:
            return False
        if self.times is not None and self.seen >= self.nth + self.times:
            return False
        self.hits += 1
        return True

    def to_json(self) -> JSON:
        """The rule as the control route shows it."""
        return {
            k: v
            for k, v in {
                "op": self.op,
                "nth": self.nth,
                "times": self.times,
                "status": self.status,
                "code": self.code,
                "retry_after": self.retry_after,
                "malformed": self.malformed,
                "pager": self.pager,
                "seen": self.seen,
                "hits": self.hits,
            }.items()
            if v is not None
        }


class StubState:
    """Zones, records, fault settings and the request log; guarded by ``lock``.

    Every method that touches state takes ``lock`` itself, so it may be called
    from the test thread while the server thread serves requests.
    """

    def __init__(
        self,
        *,
        token: str | None = DEFAULT_TOKEN,
        api_key: str | None = None,
        api_email: str | None = None,
        legacy_exists_code: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.token = token
        self.api_key = api_key
        self.api_email = api_email
        self.legacy_exists_code = legacy_exists_code
        self.zones: dict[str, StubZone] = {}
        self.records_by_zone: dict[str, dict[str, StubRecord]] = {}
        self.faults = Faults()
        self.op_faults: list[OpFault] = []
        self.log: list[RequestLogEntry] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.watchers: list[Watcher] = []
        self.watch_errors: list[BaseException] = []

    # -- seeding / inspection ---------------------------------------------------

    def add_zone(self, name: str) -> str:
        """Create a zone (or return the id of the existing one of that name)."""
        name = name.rstrip(".").lower()
        with self.lock:
            for z in self.zones.values():
                if z.name == name:
                    return z.id
            zone = StubZone(id=_new_id(), name=name)
            self.zones[zone.id] = zone
            self.records_by_zone[zone.id] = {}
            return zone.id

    def zone_id(self, zone: str) -> str:
        """The id of ``zone`` given by name or id.

        Raises:
            KeyError: no such zone.
        """
        with self.lock:
            if zone in self.zones:
                return zone
            name = zone.rstrip(".").lower()
            for z in self.zones.values():
                if z.name == name:
                    return z.id
        raise KeyError(zone)

    def reset(self) -> None:
        """Forget every zone, record, fault setting and logged request."""
        with self.lock:
            self.zones.clear()
            self.records_by_zone.clear()
            self.faults = Faults()
            self.op_faults.clear()
            self.log.clear()
            self.counts.clear()
            self.watchers.clear()
            self.watch_errors.clear()

    # -- fault injection ----------------------------------------------------------

    def set_faults(
        self,
        error_rate: float,
        statuses: Sequence[int] = (429, 500, 502),
        delay: float = 0.0,
        seed: int | None = None,
        retry_after: int = 1,
    ) -> None:
        """See :meth:`CloudflareStub.set_faults`."""
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")
        if error_rate > 0 and not statuses:
            raise ValueError("statuses must not be empty when error_rate > 0")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        with self.lock:
            queued = self.faults.queued
            self.faults = Faults(
                error_rate=error_rate,
                statuses=tuple(statuses),
                delay=delay,
                retry_after=retry_after,
                rng=random.Random(seed),
                queued=queued,
            )

    def fail_next(self, n: int, status: int = 503) -> None:
        """See :meth:`CloudflareStub.fail_next`."""
        with self.lock:
            self.faults.queued.extend([status] * n)

    def inject(self, fault: OpFault) -> None:
        """See :meth:`CloudflareStub.inject`.

        Raises:
            ValueError: not exactly one of status/malformed/pager, an unknown
                operation, kind or status, ``nth`` < 1 or ``times`` < 1.
        """
        kinds = [k for k in (fault.status, fault.malformed, fault.pager) if k is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of status, malformed, pager")
        if fault.op not in get_args(Operation):
            raise ValueError(f"unknown operation {fault.op!r}")
        if fault.malformed is not None and fault.malformed not in MALFORMED:
            raise ValueError(f"unknown malformed answer {fault.malformed!r}")
        if fault.pager is not None and fault.pager not in PAGER:
            raise ValueError(f"unknown pager fault {fault.pager!r}")
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError(f"status must be 4xx or 5xx, got {fault.status}")
        if fault.nth < 1 or (fault.times is not None and fault.times < 1):
            raise ValueError("nth and times must be >= 1")
        with self.lock:
            self.op_faults.append(fault)

    def pick_op_fault(self, op: str | None) -> OpFault | None:
        """The first rule that hits this request of ``op`` (every rule of ``op`` counts it)."""
        if op is None:
            return None
        chosen: OpFault | None = None
        with self.lock:
            for rule in self.op_faults:
                if rule.op in (op, "any") and rule.applies() and chosen is None:
                    chosen = rule
        return chosen

    def pick_fault(self) -> tuple[int | None, float]:
        """(status to fail with or None, delay in seconds) for the next API request."""
        with self.lock:
            f = self.faults
            if f.queued:
                return f.queued.pop(0), f.delay
            if f.error_rate > 0 and f.rng.random() < f.error_rate:
                return f.rng.choice(f.statuses), f.delay
            return None, f.delay

    # -- request log ----------------------------------------------------------------

    def note(self, entry: RequestLogEntry) -> None:
        """Append ``entry`` to the log, count it by (method, route) and show it to the
        watchers (API requests only; see :meth:`CloudflareStub.watch`)."""
        with self.lock:
            self.log.append(entry)
            self.counts[(entry.method, entry.route)] += 1
            if not self.watchers or entry.path.startswith(STUB_PATH):
                return
            zones = {
                z.name: [r.to_json() for r in self.records_by_zone.get(z.id, {}).values()]
                for z in self.zones.values()
            }
            for watcher in list(self.watchers):
                try:
                    watcher(entry, zones)
                except Exception as exc:  # collected for the test to assert on
                    self.watch_errors.append(exc)

    def snapshot(self) -> JSON:
        """State as JSON: zones with their records, fault settings, request counts."""
        with self.lock:
            return {
                "zones": [
                    {
                        **z.to_json(),
                        "records": [
                            r.to_json() for r in self.records_by_zone.get(z.id, {}).values()
                        ],
                    }
                    for z in self.zones.values()
                ],
                "faults": {
                    "error_rate": self.faults.error_rate,
                    "statuses": list(self.faults.statuses),
                    "delay": self.faults.delay,
                    "retry_after": self.faults.retry_after,
                    "queued": list(self.faults.queued),
                    "rules": [rule.to_json() for rule in self.op_faults],
                },
                "counts": [
                    {"method": m, "route": r, "count": c} for (m, r), c in self.counts.items()
                ],
            }

    # -- authentication ---------------------------------------------------------------

    def check_auth(self, headers: Mapping[str, str]) -> None:
        """Accept the configured Bearer token or X-Auth-Key + X-Auth-Email pair.

        Raises:
            CFError: 403/10000 wrong token, 403/9103 wrong key pair,
                400/9106 no credentials.
        """
        auth = headers.get("Authorization")
        key, email = headers.get("X-Auth-Key"), headers.get("X-Auth-Email")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise CFError(
                    400,
                    (6003, "Invalid request headers"),
                    (6111, "Invalid format for Authorization header"),
                )
            if self.token is None or token != self.token:
                raise CFError(403, (10000, "Authentication error"))
            return
        if key is not None or email is not None:
            if self.api_key is None or key != self.api_key or email != self.api_email:
                raise CFError(403, (9103, "Unknown X-Auth-Key or X-Auth-Email"))
            return
        raise CFError(400, (9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"))

    # -- zones -------------------------------------------------------------------------

    def get_zone(self, zone_id: str, path: str) -> StubZone:
        """The zone ``zone_id``.

        Raises:
            CFError: 400/7003 unknown zone.
        """
        zone = self.zones.get(zone_id)
        if zone is None:
            raise CFError(
                400,
                (7003, f"Could not route to {path}, perhaps your object identifier is invalid?"),
                (7000, "No route for that URI"),
            )
        return zone

    def list_zones(self, query: Mapping[str, str]) -> list[StubZone]:
        """Zones matching the ``name`` and ``status`` filters of ``GET /zones``."""
        zones = list(self.zones.values())
        if "name" in query:
            op, sep, value = query["name"].partition(":")
            if not sep or op not in _ZONE_NAME_OPS:
                op, value = "equal", query["name"]
            value = value.rstrip(".").lower()
            zones = [z for z in zones if _ZONE_NAME_OPS[op](z.name, value)]
        if "status" in query:
            zones = [z for z in zones if z.status == query["status"]]
        return zones

    # -- records -----------------------------------------------------------------------

    def full_name(self, zone: StubZone, name: object) -> str:
        """Cloudflare's name handling: "@" is the apex, other names are made fully qualified.

        Raises:
            CFError: 400 (1004/9008) for a missing or non-string name.
        """
        if not isinstance(name, str) or not name:
            raise CFError(400, (1004, "DNS Validation Error"), (9008, "name is required."))
        fqdn = name.rstrip(".").lower()
        if fqdn in ("@", zone.name):
            return zone.name
        if fqdn.endswith("." + zone.name):
            return fqdn
        return f"{fqdn}.{zone.name}"

    def validate(self, zone: StubZone, fields: Mapping[str, Any]) -> JSON:
        """Check and normalise record fields (name, type, content, ttl, proxied, comment, tags).

        Returns:
            The normalised fields present in ``fields``.

        Raises:
            CFError: 400 with Cloudflare's validation codes.
        """
        out: JSON = {}
        rtype = fields.get("type")
        if rtype is not None:
            if rtype not in _RECORD_TYPES:
                raise CFError(400, (1004, "DNS Validation Error"), (9000, "Invalid record type"))
            out["type"] = rtype
        if "name" in fields:
            out["name"] = self.full_name(zone, fields["name"])
        if "content" in fields:
            content = fields["content"]
            if not isinstance(content, str):
                raise CFError(400, (1004, "DNS Validation Error"), (9007, "Content is required."))
            out["content"] = content
        if "ttl" in fields:
            ttl = fields["ttl"]
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or int(ttl) != ttl:
                raise CFError(400, (9021, "Invalid TTL. Must be an integer."))
            ttl = int(ttl)
            if ttl != 1 and not 30 <= ttl <= 86400:
                raise CFError(
                    400,
                    (
                        9021,
                        "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
                    ),
                )
            out["ttl"] = ttl
        if "proxied" in fields:
            if not isinstance(fields["proxied"], bool):
                raise CFError(400, (1004, "DNS Validation Error"), (9003, "Invalid 'proxied'"))
            out["proxied"] = fields["proxied"]
        if "comment" in fields:
            out["comment"] = fields["comment"]
        if "tags" in fields:
            out["tags"] = list(fields["tags"] or [])
        return out

    @staticmethod
    def _check_content(rtype: str, content: str) -> str:
        if rtype in ("A", "AAAA"):
            try:
                addr = ipaddress.ip_address(content)
            except ValueError:
                addr = None
            want = 4 if rtype == "A" else 6
            if addr is None or addr.version != want:
                code, what = (9005, "IPv4") if rtype == "A" else (9006, "IPv6")
                raise CFError(
                    400,
                    (1004, "DNS Validation Error"),
                    (code, f"Content for {rtype} record must be a valid {what} address."),
                )
            return str(addr)
        return content

    def _check_conflicts(self, records: Mapping[str, StubRecord], rec: StubRecord) -> None:
        for other in records.values():
            if other.id == rec.id or other.name != rec.name:
                continue
            if other.type == rec.type and other.content.lower() == rec.content.lower():
                if self.legacy_exists_code:
                    raise CFError(400, (81057, "Record already exists."))
                raise CFError(400, (81058, "An identical record already exists."))
            types = {other.type, rec.type}
            if "CNAME" in types and types <= {"A", "AAAA", "CNAME"}:
                raise CFError(
                    400, (81053, "An A, AAAA, or CNAME record with that host already exists.")
                )

    def _finish(self, records: Mapping[str, StubRecord], rec: StubRecord) -> StubRecord:
        rec.content = self._check_content(rec.type, rec.content)
        self._check_conflicts(records, rec)
        return rec

    def create(self, zone: StubZone, records: dict[str, StubRecord], body: Any) -> StubRecord:
        """POST semantics: a new record from ``body`` added to ``records``."""
        if not isinstance(body, dict):
            raise CFError(400, (1004, "DNS Validation Error"), (9207, "Request body is invalid."))
        fields = self.validate(zone, body)
        for needed, code in (("type", 9000), ("name", 9008), ("content", 9007)):
            if needed not in fields:
                raise CFError(400, (1004, "DNS Validation Error"), (code, f"{needed} is required."))
        rec = StubRecord(
            id=_new_id(),
            zone_id=zone.id,
            name=fields["name"],
            type=fields["type"],
            content=fields["content"],
            ttl=fields.get("ttl", 1),
            proxied=fields.get("proxied", False),
            comment=fields.get("comment"),
            tags=fields.get("tags", []),
        )
        self._finish(records, rec)
        records[rec.id] = rec
        return rec

    def update(
        self,
        zone: StubZone,
        records: dict[str, StubRecord],
        rid: Any,
        body: Any,
        *,
        partial: bool,
    ) -> StubRecord:
        """PATCH (``partial``) or PUT semantics on record ``rid`` in ``records``."""
        if not isinstance(rid, str) or rid not in records:
            raise _record_missing()
        if not isinstance(body, dict):
            raise CFError(400, (1004, "DNS Validation Error"), (9207, "Request body is invalid."))
        fields = self.validate(zone, body)
        old = records[rid]
        if partial:
            new = _replace(old, fields)
        else:
            for needed in ("type", "name", "content"):
                if needed not in fields:
                    raise CFError(400, (1004, "DNS Validation Error"), (9007, f"{needed} required"))
            new = _replace(
                old,
                {
                    "ttl": 1,
                    "proxied": False,
                    "comment": None,
                    "tags": [],
                    **fields,
                },
            )
        new.modified_on = _now()
        self._finish(records, new)
        records[rid] = new
        return new

    def list_records(self, records: Iterable[StubRecord], query: Mapping[str, str]) -> list[Any]:
        """Records matching the filters of ``GET /zones/{id}/dns_records``, ordered.

        Raises:
            CFError: 400/9207 for an unknown filter operator.
        """
        tests: list[tuple[str, str, str]] = []  # (attribute, operator, wanted value)
        for key, value in query.items():
            attr, _, op = key.partition(".")
            if attr in ("name", "content"):
                op = op or "exact"
                if op not in _TEXT_OPS:
                    raise CFError(400, (9207, f"Unsupported filter {key}"))
                tests.append((attr, op, value.rstrip(".").lower() if attr == "name" else value))
            elif key == "type":
                tests.append(("type", "equal", value))
            elif key == "proxied":
                tests.append(("proxied", "equal", str(value.lower() == "true")))

        def match(r: StubRecord, test: tuple[str, str, str]) -> bool:
            attr, op, want = test
            if op == "equal":
                return str(getattr(r, attr)) == want
            return _TEXT_OPS[op](str(getattr(r, attr)).lower(), want.lower())

        combine = any if query.get("match") == "any" else all
        found = [r for r in records if not tests or combine(match(r, t) for t in tests)]
        order = query.get("order")
        if order in ("type", "name", "content", "ttl", "proxied"):
            found.sort(key=lambda r: getattr(r, order), reverse=query.get("direction") == "desc")
        return found


def _replace(old: StubRecord, fields: Mapping[str, Any]) -> StubRecord:
    new = copy.copy(old)
    for k, v in fields.items():
        setattr(new, k, v)
    new.tags = list(new.tags)
    return new


_RECORD_TYPES = frozenset(
    {
        *("A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR"),
        *("NS", "OPENPGPKEY", "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI"),
    }
)

_TEXT_OPS: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda have, want: have == want,
    "contains": lambda have, want: want in have,
    "startswith": lambda have, want: have.startswith(want),
    "endswith": lambda have, want: have.endswith(want),
}

_ZONE_NAME_OPS: dict[str, Callable[[str, str], bool]] = {
    "equal": lambda have, want: have == want,
    "not_equal": lambda have, want: have != want,
    "contains": lambda have, want: want in have,
    "starts_with": lambda have, want: have.startswith(want),
    "ends_with": lambda have, want: have.endswith(want),
}


# -- HTTP layer ------------------------------------------------------------------------------


def _envelope(result: Any, result_info: JSON | None = None) -> JSON:
    body: JSON = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def _error_response(err: CFError) -> web.Response:
    return web.json_response(
        {
            "success": False,
            "errors": [{"code": c, "message": m} for c, m in err.errors],
            "messages": [],
            "result": None,
        },
        status=err.status,
    )


def _fault_response(status: int, retry_after: int) -> web.Response:
    if status == 429:
        resp = _error_response(
            CFError(429, (971, "Please wait and consider throttling your request speed"))
        )
        resp.headers["Retry-After"] = str(retry_after)
        return resp
    if status in (502, 503, 504) or status >= 520:
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        text = _HTML_ERROR.format(status=status, reason=reason.get(status, "Origin Error"))
        return web.Response(status=status, text=text, content_type="text/html")
    return _error_response(
        CFError(status, (10001, "An internal error occurred (cfstub fault injection)."))
    )


def _page(
    items: Sequence[Any],
    query: Mapping[str, str],
    default: int,
    maximum: int,
    pager: Pager | None = None,
) -> JSON:
    """One page of ``items`` in Cloudflare's envelope, or an inconsistent one (``pager``)."""
    try:
        page = max(1, int(float(query.get("page", "1"))))
        per_page = int(float(query.get("per_page", str(default))))
    except ValueError as exc:
        raise CFError(400, (1004, "Invalid page or per_page")) from exc
    per_page = max(5, min(per_page, maximum))
    if pager == "ignore-page":
        page = 1
    elif pager == "small-per-page":
        per_page = max(5, per_page // 2)
    total = len(items)
    start = (page - 1) * per_page
    chunk = list(items[start : start + per_page])
    if pager == "short-page" and chunk:
        chunk = chunk[: max(1, len(chunk) // 2)] if len(chunk) > 1 else []
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": total + (pager == "total-count"),
        "total_pages": (total + per_page - 1) // per_page + (pager == "total-pages"),
    }
    return _envelope([x.to_json() for x in chunk], info)


def _op_fault(
    op: Operation,
    *,
    nth: int = 1,
    times: int | None = 1,
    status: int | None = None,
    code: int | None = None,
    message: str | None = None,
    retry_after: float | str | datetime | None = None,
    malformed: Malformed | None = None,
    pager: Pager | None = None,
) -> OpFault:
    """An :class:`OpFault` with ``retry_after`` as header text (seconds, or an IMF-fixdate)."""
    header: str | None
    if retry_after is None or isinstance(retry_after, str):
        header = retry_after
    elif isinstance(retry_after, datetime):
        header = email.utils.format_datetime(retry_after.astimezone(UTC), usegmt=True)
    else:
        header = str(int(retry_after))
    return OpFault(
        op=op,
        nth=nth,
        times=times,
        status=status,
        code=code,
        message=message,
        retry_after=header,
        malformed=malformed,
        pager=pager,
    )


def _rule_response(rule: OpFault) -> web.Response:
    """The error answer of a per-operation rule with ``status`` set."""
    assert rule.status is not None
    if rule.code is None and rule.message is None:
        resp = _fault_response(rule.status, 1)
    else:
        resp = _error_response(
            CFError(rule.status, (rule.code or 10001, rule.message or "cfstub injected error"))
        )
    if rule.retry_after is not None:
        resp.headers["Retry-After"] = rule.retry_after
    elif rule.status != 429:
        resp.headers.popall("Retry-After", None)
    return resp


_RECORD_SPOILERS: dict[str, Callable[[JSON], None]] = {
    "ttl-null": lambda r: r.__setitem__("ttl", None),
    "ttl-string": lambda r: r.__setitem__("ttl", "automatic"),
    "name-null": lambda r: r.__setitem__("name", None),
    "content-missing": lambda r: r.pop("content", None),
    "id-missing": lambda r: r.pop("id", None),
}


def _spoil(response: web.Response, how: Malformed) -> web.Response:
    """A 200 answer spoiled as ``how`` says (an error answer is left alone)."""
    if response.status != 200:
        return response
    if how == "non-json":
        return web.Response(
            status=200, text='{"success": true, "result": [', content_type="application/json"
        )
    if how == "html":
        return web.Response(
            status=200,
            text="<!DOCTYPE html><html><body>Checking your browser...</body></html>",
            content_type="text/html",
        )
    assert response.text is not None
    body = json.loads(response.text)
    if how == "success-false":
        body["success"] = False
        body["errors"] = [{"code": 10001, "message": "cfstub: success false with HTTP 200"}]
        body["result"] = [] if isinstance(body.get("result"), list) else None
    elif how == "no-result":
        body.pop("result", None)
    elif how == "null-result":
        body["result"] = None
    elif how == "no-result-info":
        body.pop("result_info", None)
    else:
        result = body.get("result")
        for rec in result if isinstance(result, list) else [result]:
            if isinstance(rec, dict):
                _RECORD_SPOILERS[how](rec)
    return web.json_response(body)


async def _json_body(request: web.Request) -> Any:
    if not request.body_exists:
        return None
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CFError(400, (1004, "Request body is not valid JSON.")) from exc


def build_app(state: StubState) -> web.Application:
    """The aiohttp application serving ``state`` (API under ``/client/v4``)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        route = canonical.removeprefix(BASE_PATH)
        body: Any = None
        status = 500
        try:
            if request.path.startswith(STUB_PATH):
                response = await handler(request)
                status = response.status
                return response
            fault, delay = state.pick_fault()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None:
                status = fault
                return _fault_response(fault, state.faults.retry_after)
            rule = state.pick_op_fault(_OPERATIONS.get((request.method, route)))
            if rule is not None and rule.status is not None:
                response = _rule_response(rule)
                status = response.status
                return response
            _PAGER.set(rule.pager if rule is not None else None)
            try:
                with state.lock:
                    state.check_auth(request.headers)
                body = await _json_body(request)  # aiohttp caches it for the handler
                if request.match_info.http_exception is not None:
                    raise CFError(404, (7000, "No route for that URI"))
                response = await handler(request)
            except CFError as err:
                response = _error_response(err)
            if rule is not None and rule.malformed is not None:
                assert isinstance(response, web.Response)
                response = _spoil(response, rule.malformed)
            status = response.status
            return response
        finally:
            state.note(
                RequestLogEntry(
                    method=request.method,
                    route=route,
                    path=request.path.removeprefix(BASE_PATH),
                    query=list(request.query.items()),
                    body=body,
                    status=status,
                    remote=request.remote,
                )
            )

    app = web.Application(middlewares=[middleware])

    async def list_zones(request: web.Request) -> web.Response:
        with state.lock:
            zones = state.list_zones(request.query)
            pager = _PAGER.get()
            return web.json_response(_page(zones, request.query, 20, 50, pager))

    async def get_zone(request: web.Request) -> web.Response:
        with state.lock:
            zone = state.get_zone(request.match_info["zone_id"], request.path)
            return web.json_response(_envelope(zone.to_json()))

    async def list_records(request: web.Request) -> web.Response:
        with state.lock:
            zone = state.get_zone(request.match_info["zone_id"], request.path)
            found = state.list_records(state.records_by_zone[zone.id].values(), request.query)
            pager = _PAGER.get()
            return web.json_response(_page(found, request.query, 100, 5_000_000, pager))

    async def create_record(request: web.Request) -> web.Response:
        body = await _json_body(request)
        with state.lock:
            zone = state.get_zone(request.match_info["zone_id"], request.path)
            rec = state.create(zone, state.records_by_zone[zone.id], body)
            return web.json_response(_envelope(rec.to_json()))

    async def one_record(request: web.Request) -> web.Response:
        body = await _json_body(request)
        with state.lock:
            zone = state.get_zone(request.match_info["zone_id"], request.path)
            records = state.records_by_zone[zone.id]
            rid = request.match_info["record_id"]
            if request.method == "GET":
                if rid not in records:
                    raise _record_missing()
                return web.json_response(_envelope(records[rid].to_json()))
            if request.method == "DELETE":
                if records.pop(rid, None) is None:
                    raise _record_missing()
                return web.json_response(_envelope({"id": rid}))
            partial = request.method == "PATCH"
            rec = state.update(zone, records, rid, body, partial=partial)
            return web.json_response(_envelope(rec.to_json()))

    async def batch(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise CFError(400, (1004, "DNS Validation Error"), (9207, "Request body is invalid."))
        with state.lock:
            zone = state.get_zone(request.match_info["zone_id"], request.path)
            work = {rid: _replace(r, {}) for rid, r in state.records_by_zone[zone.id].items()}
            result: JSON = {"deletes": [], "patches": [], "puts": [], "posts": []}
            for item in body.get("deletes") or []:
                rid = item.get("id") if isinstance(item, dict) else None
                gone = work.pop(rid, None) if isinstance(rid, str) else None
                if gone is None:
                    raise _record_missing()
                result["deletes"].append(gone.to_json())
            for kind, partial in (("patches", True), ("puts", False)):
                for item in body.get(kind) or []:
                    if not isinstance(item, dict):
                        raise _record_missing()
                    fields = {k: v for k, v in item.items() if k != "id"}
                    rec = state.update(zone, work, item.get("id"), fields, partial=partial)
                    result[kind].append(rec.to_json())
            for item in body.get("posts") or []:
                result["posts"].append(state.create(zone, work, item).to_json())
            state.records_by_zone[zone.id] = work  # all or nothing
            return web.json_response(_envelope(result))

    async def stub_state(request: web.Request) -> web.Response:
        return web.json_response(state.snapshot())

    async def stub_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "error_rate" in body or "delay" in body:
                state.set_faults(
                    float(body.get("error_rate", 0.0)),
                    statuses=tuple(body.get("statuses", (429, 500, 502))),
                    delay=float(body.get("delay", 0.0)),
                    seed=body.get("seed"),
                    retry_after=int(body.get("retry_after", 1)),
                )
            if "fail_next" in body:
                spec = body["fail_next"]
                state.fail_next(int(spec["n"]), int(spec.get("status", 503)))
            for spec in body.get("inject", []):
                state.inject(_op_fault(**spec))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def stub_zones(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": state.add_zone(str(body["name"]))})

    async def stub_reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"ok": True})

    zones = f"{BASE_PATH}/zones"
    records = f"{zones}/{{zone_id}}/dns_records"
    app.router.add_get(zones, list_zones)
    app.router.add_get(f"{zones}/{{zone_id}}", get_zone)
    app.router.add_get(records, list_records)
    app.router.add_post(records, create_record)
    app.router.add_post(f"{records}/batch", batch)
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        app.router.add_route(method, f"{records}/{{record_id}}", one_record)
    app.router.add_get(f"{STUB_PATH}/state", stub_state)
    app.router.add_post(f"{STUB_PATH}/faults", stub_faults)
    app.router.add_post(f"{STUB_PATH}/zones", stub_zones)
    app.router.add_post(f"{STUB_PATH}/reset", stub_reset)
    return app


class CloudflareStub:
    """The stand-in server, run in a background thread with its own event loop.

    Args:
        token: the API token accepted as ``Authorization: Bearer``; None accepts none.
        api_key, api_email: the global API key pair accepted as ``X-Auth-Key`` +
            ``X-Auth-Email`` (both None: key auth always fails).
        port: TCP port on ``host``; 0 picks a free one.
        legacy_exists_code: answer duplicate creates with 81057 instead of 81058.
        host: the IPv4 address to listen on (default 127.0.0.1).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        token: str | None = DEFAULT_TOKEN,
        api_key: str | None = None,
        api_email: str | None = None,
        port: int = 0,
        legacy_exists_code: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.state = StubState(
            token=token,
            api_key=api_key,
            api_email=api_email,
            legacy_exists_code=legacy_exists_code,
        )
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str | None:
        """The accepted API token."""
        return self.state.token

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/client/v4`` (valid after :meth:`start`)."""
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> str:
        """Start serving in a background thread.

        Returns:
            The base URL for the SDK, ``http://HOST:PORT/client/v4``.

        Raises:
            OSError: the port could not be bound.
            RuntimeError: already started.
        """
        if self._thread is not None:
            raise RuntimeError("CloudflareStub already started")
        loop = asyncio.new_event_loop()

        async def boot() -> None:
            runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self._runner = runner
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]

        ready = threading.Event()
        errors: list[BaseException] = []

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
            # requests still held by an injected delay: cancel them, then close
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="cfstub", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise errors[0]
        return self.base_url

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
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

    # -- seeding and inspection -----------------------------------------------------

    def add_zone(self, name: str) -> str:
        """Create zone ``name`` (idempotent); returns its 32-hex-digit id."""
        return self.state.add_zone(name)

    def add_record(
        self,
        zone: str,
        name: str,
        type: str,
        content: str,
        *,
        ttl: int = 1,
        proxied: bool = False,
        comment: str | None = None,
    ) -> str:
        """Add a record directly (no HTTP); ``zone`` is a name or id.

        Returns:
            The new record's id.

        Raises:
            KeyError: no such zone.
            CFError: invalid fields or an identical record exists (as the API would answer).
        """
        with self.state.lock:
            z = self.state.zones[self.state.zone_id(zone)]
            body = {
                "name": name,
                "type": type,
                "content": content,
                "ttl": ttl,
                "proxied": proxied,
                "comment": comment,
            }
            return self.state.create(z, self.state.records_by_zone[z.id], body).id

    def records(self, zone: str) -> list[JSON]:
        """Every record of ``zone`` (name or id) as the API shows it, in creation order.

        Raises:
            KeyError: no such zone.
        """
        with self.state.lock:
            zid = self.state.zone_id(zone)
            return [r.to_json() for r in self.state.records_by_zone[zid].values()]

    def reset(self) -> None:
        """Forget every zone, record, fault and logged request."""
        self.state.reset()

    # -- faults ---------------------------------------------------------------------

    def set_faults(
        self,
        error_rate: float,
        statuses: Sequence[int] = (429, 500, 502),
        delay: float = 0.0,
        seed: int | None = None,
        retry_after: int = 1,
    ) -> None:
        """Make API requests fail or slow down.

        Args:
            error_rate: fraction (0..1) of API requests answered with a fault
                status instead of being served.
            statuses: fault statuses, chosen uniformly; 429 comes with
                ``Retry-After: retry_after`` and code 971, 502/503/504 with an
                HTML body, other 5xx with a JSON envelope.
            delay: seconds every API request is held before it is answered.
            seed: seeds the random choices, for reproducible runs.
            retry_after: seconds put in the 429 ``Retry-After`` header.

        ``/__stub__`` control routes are never faulted. Requests queued by
        :meth:`fail_next` are kept.

        Raises:
            ValueError: ``error_rate`` outside [0, 1], negative ``delay``, or no statuses.
        """
        self.state.set_faults(error_rate, statuses, delay, seed, retry_after)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` API requests with ``status`` (before any random faults)."""
        self.state.fail_next(n, status)

    def inject(
        self,
        op: Operation,
        *,
        nth: int = 1,
        times: int | None = 1,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | str | datetime | None = None,
        malformed: Malformed | None = None,
        pager: Pager | None = None,
    ) -> OpFault:
        """Add a per-operation fault rule (see the module docstring); returns it (its
        ``seen``/``hits`` counters show what it did).

        Args:
            op: ``"list"``, ``"create"``, ``"delete"``, ``"zones"`` or ``"any"``.
            nth: the first request of ``op`` hit, 1 = the next one.
            times: requests hit from there on; None = all of them.
            status: answer this HTTP status instead of serving the request; with
                ``code``/``message`` as Cloudflare's error (default: as
                :meth:`set_faults` answers it: 429/971, HTML 502-504, JSON 5xx).
            retry_after: ``Retry-After`` header: seconds (number), a string sent
                as is (e.g. an HTTP-date or garbage), or a ``datetime`` sent as an
                IMF-fixdate. 429 without it sends ``Retry-After: 1``.
            malformed: serve the request, then spoil its 200 answer (:data:`MALFORMED`).
            pager: make a listing inconsistent (:data:`PAGER`).

        Rules are checked after :meth:`fail_next` and before the random faults
        of :meth:`set_faults`; the first rule that hits a request decides it,
        and every rule of the operation counts it.

        Raises:
            ValueError: not exactly one of ``status``/``malformed``/``pager``, or
                an unknown value.
        """
        rule = _op_fault(
            op,
            nth=nth,
            times=times,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            malformed=malformed,
            pager=pager,
        )
        self.state.inject(rule)
        return rule

    def clear_faults(self) -> None:
        """No more faults or delay: drop queued :meth:`fail_next` failures and
        :meth:`inject` rules."""
        with self.state.lock:
            self.state.faults = Faults()
            self.state.op_faults.clear()

    # -- watching the state ---------------------------------------------------------

    def watch(self, callback: Watcher) -> None:
        """Call ``callback(entry, zones)`` after every API request has been answered.

        ``entry`` is the request's :class:`RequestLogEntry`; ``zones`` maps each
        zone's name to its records (as :meth:`records` shows them) right after
        the request. Runs in the server thread with the state lock held. An
        exception it raises goes to :attr:`watch_errors`. :meth:`reset` drops
        watchers.
        """
        with self.state.lock:
            self.state.watchers.append(callback)

    def unwatch(self, callback: Watcher) -> None:
        """Stop calling ``callback``.

        Raises:
            ValueError: it was not watching.
        """
        with self.state.lock:
            self.state.watchers.remove(callback)

    @property
    def watch_errors(self) -> list[BaseException]:
        """A copy of the exceptions raised by watchers, oldest first."""
        with self.state.lock:
            return list(self.state.watch_errors)

    # -- request log ----------------------------------------------------------------

    @property
    def requests(self) -> list[RequestLogEntry]:
        """A copy of the log of API and control requests answered, oldest first."""
        with self.state.lock:
            return list(self.state.log)

    def count(self, method: str | None = None, route: str | None = None) -> int:
        """Number of requests answered (faulted ones included) by method and/or route.

        ``route`` is a template without the base path, e.g. ``"/zones"`` or
        ``"/zones/{zone_id}/dns_records/{record_id}"``. None matches any.
        """
        with self.state.lock:
            return sum(
                c
                for (m, r), c in self.state.counts.items()
                if (method is None or m == method.upper()) and (route is None or r == route)
            )

    def clear_log(self) -> None:
        """Forget logged requests and counts."""
        with self.state.lock:
            self.state.log.clear()
            self.state.counts.clear()
