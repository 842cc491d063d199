"""AWS Route 53 through boto3, compatible with what the Go original wrote.

Route 53 stores *record sets*: one (name, type[, SetIdentifier]) holds all the
values and one TTL, and a change replaces a whole set
(``ChangeResourceRecordSets`` with ``UPSERT``) or deletes it (``DELETE`` with
exactly its current content); there is no per-value add or remove. So each
create or delete here reads the sets of the name
(``ListResourceRecordSets``) and writes the full new set:

* values goavail does not manage (other addresses) stay in the set, and so do
  its TTL and routing attributes (``SetIdentifier``, ``Weight``, ``Region``,
  ``Failover``, ``GeoLocation``, ``MultiValueAnswer``, ``HealthCheckId``, ...):
  the set read is copied and only its ``ResourceRecords`` change;
* a new address goes into the one set of that name and type; when there are
  several (weighted, latency, ... routing), into the one whose
  ``SetIdentifier`` is the first label of the name — the Go original UPSERTed
  weighted sets with ``SetIdentifier`` = the short host name. Anything else
  is ambiguous and a permanent error naming the sets;
* a set that would become empty is deleted; a name without a set of the type
  gets a plain set with the configured ``ttl``;
* alias sets (``AliasTarget``) are neither listed nor changed;
* a TTL update is one ``UPSERT`` of each set holding the address, with the same
  values and attributes and the new ``TTL``: atomic, so the set never goes away.

Two agents writing one set at the same moment can overwrite each other's
UPSERT (Route 53 has no conditional write); the reconciler re-reads on every
pass and the periodic resync repairs such a lost update.

Reading many names (:meth:`~goavail.dns.providers.base.Provider.records_for`,
what the reconciler does at every pass) lists each hosted zone once
(``ListResourceRecordSets`` from the zone's start, ``page_size`` sets per page,
following ``NextRecordName``/``NextRecordType``/``NextRecordIdentifier``): a pass
costs ``ceil(record sets in the zone / 300)`` requests per zone, whatever the
number of names, instead of one per name. Route 53 cannot filter a zone
listing by type, so every set counts, and a zone with far more sets than
goavail has names in it is read name by name instead (see
:meth:`Route53Provider._read_zone`).

Credentials and endpoint come from boto3's standard chain: ``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the shared
files, web identity, container and instance roles; ``AWS_ENDPOINT_URL_ROUTE_53``
(or ``AWS_ENDPOINT_URL``) points the client elsewhere, which is how the tests
reach moto. The region is ``aws_region``, else the chain's, else ``us-east-1``
(Route 53 is global; requests are signed for us-east-1). boto3's own retries
are off: :class:`~goavail.dns.providers.base.Provider` and the reconciler retry.

Errors (https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html
and the common errors page): ``Throttling``, ``PriorRequestNotComplete``,
HTTP 5xx, timeouts and connection errors are transient; an
``InvalidChangeBatch`` saying the set "was not found" or its "values ... do not
match" means the set changed between our read and our write, also transient
(the retry re-reads). Everything else — bad credentials, access denied, a
missing zone, an invalid request — is permanent. Secrets never appear in
messages: boto3 never puts them in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from goavail import __version__
from goavail.dns.audit import AuditLog
from goavail.dns.backoff import parse_retry_after
from goavail.dns.model import Record, RecordType, normalize_address, normalize_name
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing

if TYPE_CHECKING:
    from mypy_boto3_route53.client import Route53Client
    from mypy_boto3_route53.type_defs import ChangeTypeDef, ResourceRecordSetOutputTypeDef

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
"""Region used to sign requests when neither ``aws_region`` nor the AWS chain gives one."""

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Route 53 / AWS error codes worth retrying as they are."""

CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
"""Error codes meaning the credentials are wrong, expired or lack a permission."""

_CONFLICT = re.compile(r"not found|do not match", re.IGNORECASE)
_ESCAPE = re.compile(r"\\(\d{3})")
_FAMILIES: tuple[RecordType, ...] = ("A", "AAAA")

CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE, "
    "or run with an instance/container role"
)


def decode_name(name: str) -> str:
    """A name as Route 53 returns it -> goavail's form: octal escapes decoded
    (``\\052`` -> ``*``), lower case, no trailing dot."""
    return normalize_name(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), name))


def normalize_zone_id(zone_id: str) -> str:
    """``"/hostedzone/Z123"`` or ``"Z123"`` -> ``"Z123"``."""
    return zone_id.rsplit("/", 1)[-1]


def _values(rrset: ResourceRecordSetOutputTypeDef) -> set[str]:
    """The canonical addresses of a set (values that are not addresses are skipped)."""
    values: set[str] = set()
    for rr in rrset.get("ResourceRecords", []):
        with contextlib.suppress(ValueError):
            values.add(normalize_address(rr["Value"]))
    return values


def _describe_set(rrset: ResourceRecordSetOutputTypeDef) -> str:
    ident = rrset.get("SetIdentifier")
    return f"{rrset['Type']} {decode_name(rrset['Name'])}" + (f" [{ident}]" if ident else "")


class Route53Provider(Provider):
    """A and AAAA record sets of one Route 53 hosted zone (or several, with ``zones``).

    Args:
        dry_run, audit: see :class:`~goavail.dns.providers.base.Provider`.
        zone_name: the hosted zone's name (``aws_domain``).
        zone_id: the hosted zone ID (``aws_zoneid``, with or without the
            ``/hostedzone/`` prefix), or None to look it up by name. Either way
            it is checked against ``zone_name`` on first use.
        ttl: seconds, TTL of the sets goavail creates (0..2147483647); sets that
            exist keep theirs.
        region: AWS region for the client, or None for the AWS chain's default.
        request_timeout: seconds allowed to connect and to read each response.
        page_size: record sets asked for per ``ListResourceRecordSets`` page
            (1..300; Route 53's maximum and default is 300).
        zones: further hosted zones whose names this provider also reads and
            writes: zone name -> hosted zone ID (checked like ``zone_id``), or
            None to look it up by name. A name belongs to the longest zone it is
            in (:meth:`zone_of`); a name in none of them reads as no records, and
            a write to it fails (permanent error).

    Raises:
        ValueError: ``ttl``, ``request_timeout`` or ``page_size`` out of range.
        botocore.exceptions.BotoCoreError: the AWS configuration is unusable
            (e.g. ``AWS_PROFILE`` names a profile that does not exist).
    """

    name = "route53"

    def __init__(
        self,
        *,
        dry_run: bool,
        audit: AuditLog,
        zone_name: str,
        zone_id: str | None,
        ttl: int,
        region: str | None = None,
        request_timeout: float = 10.0,
        page_size: int = 300,
        zones: Mapping[str, str | None] | None = None,
    ) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        if not 0 <= ttl <= 2**31 - 1:
            raise ValueError(f"ttl must be 0..{2**31 - 1} seconds, got {ttl}")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        if not 1 <= page_size <= 300:
            raise ValueError(f"page_size must be 1..300, got {page_size}")
        self.zone_name = normalize_name(zone_name)
        self.configured_zone_id = normalize_zone_id(zone_id) if zone_id else None
        self.zones: dict[str, str | None] = {self.zone_name: self.configured_zone_id}
        """Every hosted zone managed (``zone_name`` first) -> its configured ID or None."""
        for other, other_id in (zones or {}).items():
            self.zones.setdefault(
                normalize_name(other), normalize_zone_id(other_id) if other_id else None
            )
        self.ttl = ttl
        self.request_timeout = request_timeout
        self.page_size = page_size
        session = boto3.session.Session(region_name=region)
        self.region = region or session.region_name or DEFAULT_REGION
        self._client: Route53Client = session.client(
            "route53",
            region_name=self.region,
            config=botocore.config.Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=request_timeout,
                read_timeout=request_timeout,
                user_agent_extra=f"goavail/{__version__}",
            ),
        )
        self._zone_ids: dict[str, str] = {}
        self._zone_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"Route53Provider(zone_name={self.zone_name!r}, zone_id={self.configured_zone_id!r}, "
            f"ttl={self.ttl}, region={self.region!r}, dry_run={self.dry_run})"
        )

    @property
    def endpoint_url(self) -> str:
        """The endpoint the client talks to (``AWS_ENDPOINT_URL_ROUTE_53`` when set)."""
        return self._client.meta.endpoint_url

    async def close(self) -> None:
        """Close the client's HTTP connections."""
        self._client.close()

    # -- zone ---------------------------------------------------------------------------

    def zone_of(self, name: str) -> str | None:
        """The zone of :attr:`zones` that ``name`` is in (the longest one), or None. Pure."""
        wanted = normalize_name(name)
        inside = [z for z in self.zones if wanted == z or wanted.endswith("." + z)]
        return max(inside, key=len, default=None)

    async def zone_id(self, zone: str | None = None) -> str:
        """The hosted zone ID of ``zone`` (default ``zone_name``): checked (``aws_zoneid``)
        or looked up by name, then cached.

        Raises:
            ProviderError: no such zone, the ID belongs to another zone, several
                zones have the name (public and private), ``zone`` is not one of
                :attr:`zones`, or the call failed.
        """
        zone = self.zone_name if zone is None else normalize_name(zone)
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        if zone not in self.zones:
            raise ProviderError(
                f"route53: {zone!r} is not a zone of this provider", transient=False
            )
        async with self._zone_lock:
            if zone not in self._zone_ids:
                self._zone_ids[zone] = await self._find_zone(zone, self.zones[zone])
            return self._zone_ids[zone]

    async def _zone_id_of(self, name: str) -> str | None:
        """The hosted zone ID of the zone ``name`` is in; None when it is in none."""
        zone = self.zone_of(name)
        return None if zone is None else await self.zone_id(zone)

    async def _find_zone(self, zone: str, configured: str | None) -> str:
        if configured is not None:
            zone_id = configured
            got = await self._call(
                f"get hosted zone {zone_id}", self._client.get_hosted_zone, Id=zone_id
            )
            actual = decode_name(got["HostedZone"]["Name"])
            if actual != zone:
                raise ProviderError(
                    f"route53: aws_zoneid {zone_id} is the hosted zone of {actual!r}, "
                    f"not of aws_domain {zone!r}",
                    transient=False,
                )
            return zone_id
        listed = await self._call(
            f"look up zone {zone}",
            self._client.list_hosted_zones_by_name,
            DNSName=zone + ".",
            MaxItems="100",
        )
        ids = [
            normalize_zone_id(z["Id"])
            for z in listed["HostedZones"]
            if decode_name(z["Name"]) == zone
        ]
        if not ids:
            raise ProviderError(
                f"route53: no hosted zone named {zone!r} is visible with these "
                "credentials (set aws_zoneid, or check the credentials' account)",
                transient=False,
            )
        if len(ids) > 1:
            raise ProviderError(
                f"route53: {len(ids)} hosted zones are named {zone!r} "
                f"({', '.join(ids)}; public and private?): set aws_zoneid to the one to manage",
                transient=False,
            )
        return ids[0]

    # -- record sets ------------------------------------------------------------------------

    async def record_sets(self, name: str) -> list[ResourceRecordSetOutputTypeDef]:
        """Every A and AAAA record set at exactly ``name``, alias sets included, as Route 53
        returns them; follows ``ListResourceRecordSets`` pagination. [] when ``name`` is
        in none of :attr:`zones`.

        Raises:
            ProviderError: the sets could not be read.
        """
        zone_id = await self._zone_id_of(name)
        if zone_id is None:
            return []
        wanted = normalize_name(name)
        found: list[ResourceRecordSetOutputTypeDef] = []
        # Route 53 lists in (name with labels reversed, type, set identifier) order, from
        # the first set at or after the start: all of `name`'s sets come in one run.
        start: dict[str, str] | None = {"StartRecordName": wanted + ".", "StartRecordType": "A"}
        while start is not None:
            sets, start = await self._page(zone_id, start, f"list {wanted}")
            for rrset in sets:
                if decode_name(rrset["Name"]) != wanted:
                    return found
                if rrset["Type"] in _FAMILIES:
                    found.append(rrset)
        return found

    async def _page(
        self, zone_id: str, start: dict[str, str], what: str
    ) -> tuple[list[ResourceRecordSetOutputTypeDef], dict[str, str] | None]:
        """One ``ListResourceRecordSets`` page from ``start`` (empty: the zone's start).

        Returns:
            (its record sets, the start of the next page or None after the last).

        Raises:
            ProviderError: the call failed, or the next page would start where this
                one did (an endpoint ignoring ``StartRecordIdentifier``: permanent,
                rather than a loop).
        """
        page = await self._call(
            what,
            self._client.list_resource_record_sets,
            HostedZoneId=zone_id,
            MaxItems=str(self.page_size),
            **start,
        )
        sets = page["ResourceRecordSets"]
        if not page["IsTruncated"]:
            return sets, None
        following = {
            "StartRecordName": page["NextRecordName"],
            "StartRecordType": page["NextRecordType"],
        }
        if page.get("NextRecordIdentifier"):
            following["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        if following == start:
            raise ProviderError(
                f"route53: {what} failed: the endpoint {self.endpoint_url} "
                f"returned the page starting at {start} again (it ignores "
                "StartRecordIdentifier?); refusing to loop",
                transient=False,
            )
        return sets, following

    async def _read_zone(
        self, zone: str, names: Collection[str]
    ) -> dict[str, list[ResourceRecordSetOutputTypeDef]] | None:
        """The A and AAAA sets at ``names`` (normalised) in ``zone``, from one listing of it.

        Walks the zone's ``ListResourceRecordSets`` pages from its start; each page
        (the zone lookup too) is retried on its own
        (:meth:`~goavail.dns.providers.base.Provider._retrying`: backoff,
        ``Retry-After``), so a fault in the middle costs that page again; a page
        that still fails fails the read.

        None when reading name by name is cheaper: for a single name, or when the
        listing is still not over after as many pages as there are names (a large
        zone with few of goavail's names in it: so a pass never costs more than
        ``2 * len(names)`` requests for the zone).

        Raises:
            ProviderError: the zone or a page could not be read (after retries).
        """
        if len(names) <= 1:
            return None
        zone_id = await self._retrying(
            functools.partial(self.zone_id, zone), f"{self.name}: look up zone {zone}"
        )
        found: dict[str, list[ResourceRecordSetOutputTypeDef]] = {name: [] for name in names}
        start: dict[str, str] | None = {}
        pages = 0
        while start is not None:
            if pages >= len(names):
                log.debug(
                    "route53: zone %s has more than %d pages; reading name by name", zone, pages
                )
                return None
            pages += 1
            what = f"list zone {zone} (page {pages})"
            sets, start = await self._retrying(
                functools.partial(self._page, zone_id, start, what), f"{self.name}: {what}"
            )
            for rrset in sets:
                if rrset["Type"] in _FAMILIES:
                    at = found.get(decode_name(rrset["Name"]))
                    if at is not None:
                        at.append(rrset)
        return found

    async def _sets_of(self, record: Record) -> list[ResourceRecordSetOutputTypeDef]:
        return [s for s in await self.record_sets(record.name) if s["Type"] == record.type]

    # -- Provider hooks -----------------------------------------------------------------------

    async def _list(self, name: str) -> list[Record]:
        return _records(normalize_name(name), await self.record_sets(name))

    async def _list_names(
        self, names: Sequence[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]]:
        """Each hosted zone listed once (:meth:`_read_zone`), its sets shared out to ``names``.

        Names in none of :attr:`zones` get []; a zone that is cheaper to read name
        by name is read so (one retried :meth:`_list` per name). ``types`` is not
        used: a zone listing has every type.

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
            found = await self._read_zone(zone, members.keys())
            for wanted, given in members.items():
                for name in given:
                    if found is not None:
                        out[name] = _records(wanted, found[wanted])
                    else:
                        out[name] = await self._retrying(
                            functools.partial(self._list, name), f"{self.name}: list {name}"
                        )
        return out

    async def _create(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        sets = await self._sets_of(record)
        if any(record.content in _values(s) for s in sets):
            raise RecordExists(_describe(record))
        target = self._target_set(sets, record)
        if target is None:
            new: Any = {
                "Name": record.name,
                "Type": record.type,
                "TTL": self.ttl if record.ttl is None else record.ttl,
                "ResourceRecords": [{"Value": record.content}],
            }
        else:
            new = copy.deepcopy(target)
            new["ResourceRecords"] = [*target["ResourceRecords"], {"Value": record.content}]
        await self._change(zone_id, [{"Action": "UPSERT", "ResourceRecordSet": new}], record)

    async def _delete(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        changes: list[ChangeTypeDef] = []
        for rrset in await self._sets_of(record):
            if record.content not in _values(rrset):
                continue
            keep = [
                rr
                for rr in rrset["ResourceRecords"]
                if _canonical_or_none(rr["Value"]) != record.content
            ]
            if keep:
                new = copy.deepcopy(rrset)
                new["ResourceRecords"] = keep
                changes.append({"Action": "UPSERT", "ResourceRecordSet": new})
            else:
                changes.append({"Action": "DELETE", "ResourceRecordSet": rrset})
        if not changes:
            raise RecordMissing(_describe(record))
        await self._change(zone_id, changes, record)

    async def _update_ttl(self, record: Record) -> None:
        zone_id = await self._zone_id_for(record)
        ttl = self.ttl if record.ttl is None else record.ttl
        holding = [s for s in await self._sets_of(record) if record.content in _values(s)]
        if not holding:
            raise RecordMissing(_describe(record))
        changes: list[ChangeTypeDef] = []
        for rrset in holding:
            if rrset.get("TTL") != ttl:
                new = copy.deepcopy(rrset)
                new["TTL"] = ttl
                changes.append({"Action": "UPSERT", "ResourceRecordSet": new})
        if not changes:
            raise RecordExists(f"{_describe(record)} TTL {ttl}")
        await self._change(zone_id, changes, record)

    # -- internals ------------------------------------------------------------------------------

    async def _zone_id_for(self, record: Record) -> str:
        """The hosted zone ID ``record`` is written to.

        Raises:
            ProviderError: the name is in none of :attr:`zones` (permanent), or
                the zone lookup failed.
        """
        zone_id = await self._zone_id_of(record.name)
        if zone_id is None:
            raise ProviderError(
                f"route53: {record.name} is in none of the zones {', '.join(self.zones)}",
                transient=False,
            )
        return zone_id

    def _target_set(
        self, sets: Sequence[ResourceRecordSetOutputTypeDef], record: Record
    ) -> ResourceRecordSetOutputTypeDef | None:
        """The set a new address of ``record``'s name and type goes into (None: a new set).

        Raises:
            ProviderError: (permanent) only alias sets exist, or several sets exist and
                none has the original's SetIdentifier (the first label of the name).
        """
        if not sets:
            return None
        plain = [s for s in sets if "ResourceRecords" in s]
        if not plain:
            raise ProviderError(
                f"route53: {record.type} {record.name} is an alias record; goavail does not "
                f"add {record.content} to it",
                transient=False,
            )
        if len(plain) == 1:
            return plain[0]
        short = record.name.split(".", 1)[0]
        for rrset in plain:
            if rrset.get("SetIdentifier") == short:
                return rrset
        idents = ", ".join(repr(s.get("SetIdentifier")) for s in plain)
        raise ProviderError(
            f"route53: {record.type} {record.name} has {len(plain)} record sets ({idents}) and "
            f"none has SetIdentifier {short!r}: goavail cannot tell which one should get "
            f"{record.content}; add it by hand or name the set {short!r}",
            transient=False,
        )

    async def _change(self, zone_id: str, changes: list[ChangeTypeDef], record: Record) -> None:
        what = f"{changes[0]['Action'].lower()} " + ", ".join(
            _describe_set(c["ResourceRecordSet"])  # type: ignore[arg-type]
            for c in changes
        )
        await self._call(
            f"{what} (for {record.content})",
            self._client.change_resource_record_sets,
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": f"goavail {__version__}", "Changes": changes},
        )
        log.debug("route53: %s (for %s %s)", what, record.type, record.content)

    async def _call(self, what: str, fn: Callable[..., T], **kwargs: Any) -> T:
        """Run one blocking boto3 call in a thread; translate its errors.

        Raises:
            ProviderError: see the module docstring for transient vs permanent.
        """
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except botocore.exceptions.ClientError as exc:
            raise self._client_error(exc, what) from None
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as exc:
            raise ProviderError(
                f"route53: {what} failed: {exc}; {CREDENTIALS_HINT}", transient=False
            ) from None
        except (
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ):
            raise ProviderError(
                f"route53: {what} failed: timed out after {self.request_timeout:g}s",
                transient=True,
            ) from None
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
            raise ProviderError(
                f"route53: {what} failed: connection error ({exc})", transient=True
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderError(f"route53: {what} failed: {exc}", transient=False) from None

    def _client_error(self, exc: botocore.exceptions.ClientError, what: str) -> ProviderError:
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip()
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        detail = f"HTTP {status} {code}" + (f": {message}" if message else "")
        transient = code in TRANSIENT_CODES or status == 429 or status >= 500
        if code == "InvalidChangeBatch" and _CONFLICT.search(message):
            transient = True  # the set changed between our read and our write: re-read
            detail += " (the record set changed meanwhile; re-reading)"
        elif code in CREDENTIAL_CODES:
            detail += f"; check the AWS credentials and their Route 53 rights ({CREDENTIALS_HINT})"
        elif code == "NoSuchHostedZone":
            detail += f"; check aws_zoneid / aws_domain ({', '.join(self.zones)})"
            self._zone_ids.clear()
        retry_after = _retry_after(meta.get("HTTPHeaders", {}), self.clock.wall())
        if retry_after is not None:
            detail += f", asked to wait {retry_after:g} s"
        return ProviderError(
            f"route53: {what} failed: {detail}", transient=transient, retry_after=retry_after
        )


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds an AWS answer asks to wait, or None (pure).

    ``Retry-After`` (RFC 9110 §10.2.3, seconds or HTTP-date; Route 53 does not
    document sending it, but a proxy in front may) and ``x-amz-retry-after``
    (milliseconds, the header botocore's "standard" retry mode honours, see
    ``botocore/retries/standard.py``; goavail turns botocore's retries off, so
    it reads the header itself). The longer of the two wins. ``headers`` has
    lower-case keys, as botocore gives them.
    """
    waits = [parse_retry_after(headers.get("retry-after"), now)]
    millis = headers.get("x-amz-retry-after", "").strip()
    if millis.isascii() and millis.isdigit():
        waits.append(int(millis) / 1000.0)
    return max((w for w in waits if w is not None), default=None)


def _records(name: str, sets: Sequence[ResourceRecordSetOutputTypeDef]) -> list[Record]:
    """The :class:`Record` of each address of the A/AAAA ``sets`` at ``name`` (normalised);
    alias and traffic-policy sets (no ``ResourceRecords``) are not goavail's. Pure."""
    records: list[Record] = []
    for rrset in sets:
        if "ResourceRecords" not in rrset:
            continue
        rtype: RecordType = "A" if rrset["Type"] == "A" else "AAAA"
        for content in sorted(_values(rrset)):
            records.append(
                Record(
                    name=name,
                    type=rtype,
                    content=content,
                    ttl=rrset.get("TTL"),
                    id=rrset.get("SetIdentifier"),
                )
            )
    return records


def _canonical_or_none(value: str) -> str | None:
    try:
        return normalize_address(value)
    except ValueError:
        return None


def _describe(record: Record) -> str:
    return f"{record.type} {record.name} {record.content}"
