"""RFC 2136 dynamic updates (BIND, Knot, PowerDNS, ...) through dnspython, TSIG-signed.

Reading. Per name, one query for A and one for AAAA, over TCP, sent to the
configured (primary) server and TSIG-signed (RFC 8945) when a key is
configured; a pass of the reconciler (:meth:`~goavail.dns.providers.base.Provider.records_for`)
asks only for the families of its configured addresses (one query per name when
they are all IPv4). Per-name queries rather than a zone transfer (AXFR): a pass
costs small exchanges per managed name instead of the whole zone (goavail's
names may be a handful among a zone's thousands of records), no transfer ACL is
needed — the update key is enough, and a name server answers queries with no
rate limit or per-request price, unlike the HTTP APIs whose calls per pass
goavail counts. TCP because a large record
set must not be truncated and a lost UDP datagram must not look like an empty
name. The answer must be authoritative (AA flag): a resolver or a secondary
that is not the zone's server is refused with a permanent error.

Writing. One UPDATE message per change (RFC 2136 §2.5), guarded by a
prerequisite (§2.4.2, "RRset exists (value dependent)", or §2.4.3 "RRset does
not exist" for the first address of a family): the record set must still be
exactly what goavail just read. So a create adds the address to the set it
read (keeping the set's TTL; a new set gets ``ttl``), a delete removes one
address from it, and a concurrent change by someone else makes the server
refuse the update (NXRRSET/YXRRSET) instead of goavail acting on a stale
view; that is transient, and the retry re-reads. A TTL update replaces the set
with the same addresses at the new TTL — a delete of the RRset and the adds, in
ONE message under the same prerequisite — which the server applies atomically
(RFC 2136 §3.7): the name is never without the set, not even between the two
halves, and a failure leaves the old set as it was. Creating an address already
there and deleting one already gone are detected on that read
(:class:`~goavail.dns.providers.base.RecordExists` / ``RecordMissing``).

Errors: SERVFAIL, failed prerequisites, timeouts, refused or reset
connections are transient. REFUSED (the update ACL), NOTAUTH (not this
server's zone, or the key), NOTZONE, FORMERR, NOTIMP and TSIG errors
(BADKEY, BADSIG, BADTIME, an unsigned answer to a signed request) are
permanent, with a message that says what to check. The TSIG secret is never
in a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from goavail.dns.audit import AuditLog
from goavail.dns.model import Record, RecordType, normalize_address, normalize_name
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing

log = logging.getLogger(__name__)

TSIG_SECRET_ENV = "GOAVAIL_TSIG_SECRET"
"""Environment variable holding the TSIG secret (base64, as in BIND/Knot key files)."""

TSIG_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
    "hmac-sha224",
    "hmac-sha1",
    "hmac-md5",
)
"""TSIG algorithms accepted (RFC 8945 §6; hmac-md5 only for old servers)."""

_RDTYPES: dict[RecordType, dns.rdatatype.RdataType] = {
    "A": dns.rdatatype.A,
    "AAAA": dns.rdatatype.AAAA,
}

_PREREQUISITE_FAILED = frozenset(
    {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}
)


class MissingTsigSecret(ValueError):
    """``tsig_key_name`` is configured but the secret is not in the environment, or is not
    base64. The message names the variable, never its value."""


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A TSIG key (RFC 8945).

    Attributes:
        name: the key's name as the server knows it (e.g. ``"goavail-key."``).
        algorithm: one of :data:`TSIG_ALGORITHMS`.
        secret: base64 text; never shown by ``repr``.
    """

    name: str
    algorithm: str
    secret: str = field(repr=False)


def tsig_from_env(
    environ: Mapping[str, str], key_name: str | None, algorithm: str
) -> TsigKey | None:
    """The TSIG key named ``key_name`` with its secret from ``GOAVAIL_TSIG_SECRET``.

    Args:
        environ: the environment, e.g. ``os.environ``.
        key_name: ``tsig_key_name`` from the config, or None (no TSIG: returns None).
        algorithm: ``tsig_algorithm`` from the config.

    Raises:
        MissingTsigSecret: the variable is unset, empty or not base64.
    """
    if key_name is None:
        return None
    secret = environ.get(TSIG_SECRET_ENV, "").strip()
    if not secret:
        raise MissingTsigSecret(
            f"{TSIG_SECRET_ENV} is not set: put the base64 secret of TSIG key {key_name!r} "
            "(tsig_key_name) in it"
        )
    try:
        base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise MissingTsigSecret(
            f"{TSIG_SECRET_ENV} is not valid base64 (the secret of TSIG key {key_name!r}, as "
            "in the server's key file)"
        ) from None
    return TsigKey(key_name, algorithm, secret)


@dataclass(frozen=True, slots=True)
class _Current:
    """What the server holds for one (name, type): the RRset (or None) and a CNAME flag."""

    rrset: dns.rrset.RRset | None
    cname: bool

    def addresses(self) -> set[str]:
        if self.rrset is None:
            return set()
        return {normalize_address(rd.to_text()) for rd in self.rrset}


class Rfc2136Provider(Provider):
    """A and AAAA records of one zone on a name server that accepts RFC 2136 updates.

    Args:
        dry_run, audit: see :class:`~goavail.dns.providers.base.Provider`.
        server: IP address of the zone's primary server.
        port: its DNS port (53).
        zone: the zone's name; every managed name must be in it.
        ttl: seconds, TTL of record sets goavail creates (existing sets keep theirs).
        tsig: the TSIG key signing every request and checking every answer, or
            None to send unsigned requests (only for servers that authorise
            updates by address).
        timeout: seconds allowed per request (connect, send, answer).

    Raises:
        ValueError: an invalid zone, server, port, ttl, timeout or TSIG secret.
    """

    name = "rfc2136"

    def __init__(
        self,
        *,
        dry_run: bool,
        audit: AuditLog,
        server: str,
        port: int,
        zone: str,
        ttl: int,
        tsig: TsigKey | None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        if not 0 <= ttl <= 2**31 - 1:
            raise ValueError(f"ttl must be 0..{2**31 - 1} seconds, got {ttl}")
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.server = normalize_address(server)
        self.port = port
        try:
            self.zone = dns.name.from_text(normalize_name(zone) + ".")
        except dns.exception.DNSException as exc:
            raise ValueError(f"zone {zone!r} is not a valid domain name: {exc}") from None
        self.ttl = ttl
        self.timeout = timeout
        self.tsig_name = tsig.name if tsig else None
        self.tsig_algorithm = tsig.algorithm if tsig else None
        self._key: dns.tsig.Key | None = None
        if tsig is not None:
            try:
                self._key = dns.tsig.Key(tsig.name, tsig.secret, tsig.algorithm)
            except (binascii.Error, ValueError, dns.exception.DNSException):
                raise ValueError(f"TSIG key {tsig.name!r}: the secret is not base64") from None

    def __repr__(self) -> str:
        return (
            f"Rfc2136Provider(server={self.server!r}, port={self.port}, zone={self._zone_text!r}, "
            f"ttl={self.ttl}, tsig_key={self.tsig_name!r}, dry_run={self.dry_run})"
        )

    @property
    def _zone_text(self) -> str:
        return normalize_name(self.zone.to_text())

    @property
    def _where(self) -> str:
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.port}"

    # -- Provider hooks -----------------------------------------------------------------------

    async def _list(self, name: str) -> list[Record]:
        return await self._query_types(name, _RDTYPES.keys())

    async def _list_names(
        self, names: Sequence[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]]:
        """Name by name, as :meth:`records` reads one name (each name retried on its own),
        but only the wanted types: one query per name and type.

        Raises:
            ProviderError: a name could not be read (after retries).
        """
        out: dict[str, list[Record]] = {}
        for name in names:
            out[name] = await self._retrying(
                functools.partial(self._query_types, name, types), f"{self.name}: list {name}"
            )
        return out

    async def _query_types(self, name: str, types: Collection[RecordType]) -> list[Record]:
        """The records of ``types`` at ``name``: one query per type; [] outside the zone.

        Raises:
            ProviderError: see :meth:`_current`.
        """
        absolute = self._absolute(name)
        if absolute is None:
            return []
        records: list[Record] = []
        for rtype, rdtype in _RDTYPES.items():
            if rtype not in types:
                continue
            current = await self._current(absolute, rdtype)
            if current.rrset is None:
                continue
            records.extend(
                Record(normalize_name(name), rtype, address, ttl=current.rrset.ttl)
                for address in sorted(current.addresses())
            )
        return records

    async def _create(self, record: Record) -> None:
        absolute = self._in_zone(record)
        rdtype = _RDTYPES[record.type]
        rdata = self._rdata(record)
        current = await self._current(absolute, rdtype)
        if current.cname:
            raise ProviderError(
                f"rfc2136: {record.name} has a CNAME; refusing to add {record.type} records "
                "next to it (RFC 1034 §3.6.2)",
                transient=False,
            )
        if record.content in current.addresses():
            raise RecordExists(_describe(record))
        update = self._update()
        if current.rrset is None:
            update.absent(absolute, rdtype)
            ttl = self.ttl if record.ttl is None else record.ttl
        else:
            update.present(absolute, *current.rrset)
            ttl = current.rrset.ttl
        update.add(absolute, ttl, rdata)
        await self._send_update(update, f"create {_describe(record)}")

    async def _delete(self, record: Record) -> None:
        absolute = self._in_zone(record)
        rdtype = _RDTYPES[record.type]
        rdata = self._rdata(record)
        current = await self._current(absolute, rdtype)
        if current.rrset is None or record.content not in current.addresses():
            raise RecordMissing(_describe(record))
        update = self._update()
        update.present(absolute, *current.rrset)
        update.delete(absolute, rdata)
        await self._send_update(update, f"delete {_describe(record)}")

    async def _update_ttl(self, record: Record) -> None:
        absolute = self._in_zone(record)
        rdtype = _RDTYPES[record.type]
        current = await self._current(absolute, rdtype)
        if current.rrset is None or record.content not in current.addresses():
            raise RecordMissing(_describe(record))
        ttl = self.ttl if record.ttl is None else record.ttl
        if current.rrset.ttl == ttl:
            raise RecordExists(f"{_describe(record)} TTL {ttl}")
        update = self._update()
        update.present(absolute, *current.rrset)
        update.replace(absolute, ttl, *current.rrset)  # delete the set + add: one message
        await self._send_update(update, f"set TTL {ttl} of {record.name} {record.type}")

    # -- internals ------------------------------------------------------------------------------

    def _absolute(self, name: str) -> dns.name.Name | None:
        """``name`` as an absolute DNS name, or None when it is outside the zone.

        Raises:
            ProviderError: ``name`` is not a valid DNS name (permanent).
        """
        try:
            absolute = dns.name.from_text(normalize_name(name) + ".")
        except dns.exception.DNSException as exc:
            raise ProviderError(
                f"rfc2136: invalid DNS name {name!r}: {exc}", transient=False
            ) from exc
        return absolute if absolute.is_subdomain(self.zone) else None

    def _in_zone(self, record: Record) -> dns.name.Name:
        absolute = self._absolute(record.name)
        if absolute is None:
            raise ProviderError(
                f"rfc2136: {record.name} is outside the zone {self._zone_text}", transient=False
            )
        return absolute

    @staticmethod
    def _rdata(record: Record) -> dns.rdata.Rdata:
        try:
            return dns.rdata.from_text(dns.rdataclass.IN, _RDTYPES[record.type], record.content)
        except (dns.exception.DNSException, ValueError) as exc:
            raise ProviderError(
                f"rfc2136: {record.content!r} is not a valid {record.type} address: {exc}",
                transient=False,
            ) from exc

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self.zone, keyring=self._key)

    async def _current(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Current:
        """The RRset of (``name``, ``rdtype``) on the server, and whether ``name`` is a CNAME.

        Raises:
            ProviderError: the query failed, or the answer is not authoritative.
        """
        what = f"query {name.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(rdtype)}"
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD  # ask the server about its own zone, no recursion
        if self._key is not None:
            query.use_tsig(self._key)
        answer = await self._send(query, what)
        rcode = answer.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise self._rcode_error(rcode, what)
        if not answer.flags & dns.flags.AA:
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: the answer is not authoritative; "
                f"server must be the primary of zone {self._zone_text} (and the name not "
                "delegated to another zone)",
                transient=False,
            )
        rrset = answer.get_rrset(answer.answer, name, dns.rdataclass.IN, rdtype)
        cname = answer.get_rrset(answer.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        return _Current(rrset, cname is not None)

    async def _send_update(self, update: dns.update.UpdateMessage, what: str) -> None:
        answer = await self._send(update, what)
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            raise self._rcode_error(rcode, what)
        log.debug("rfc2136: %s at %s: done", what, self._where)

    async def _send(self, message: dns.message.Message, what: str) -> dns.message.Message:
        """Send ``message`` over TCP and return the (TSIG-verified) answer.

        Raises:
            ProviderError: transient for timeouts and connection errors, permanent
                for TSIG errors and malformed answers.
        """
        try:
            return await dns.asyncquery.tcp(
                message, self.server, timeout=self.timeout, port=self.port
            )
        except dns.exception.Timeout:
            raise ProviderError(
                f"rfc2136: {what} at {self._where} timed out after {self.timeout:g}s",
                transient=True,
            ) from None
        except dns.tsig.PeerError as exc:
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: the server rejected our TSIG "
                f"({_tsig_error(exc)}); check tsig_key_name ({self.tsig_name}), tsig_algorithm "
                f"({self.tsig_algorithm}), {TSIG_SECRET_ENV} and the clocks",
                transient=False,
            ) from None
        except dns.message.UnknownTSIGKey:
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: the answer is signed with a key we do not know",
                transient=False,
            ) from None
        except dns.exception.FormError as exc:
            hint = ""
            if "TSIG" in str(exc):
                hint = (
                    f" (a server that does not serve zone {self._zone_text} answers NOTAUTH "
                    "unsigned: check server, port and zone)"
                )
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: bad answer: {exc}{hint}", transient=False
            ) from None
        except dns.exception.DNSException as exc:
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: {type(exc).__name__}: {exc}", transient=False
            ) from None
        except (OSError, EOFError) as exc:
            detail = _os_text(exc)
            raise ProviderError(
                f"rfc2136: {what} at {self._where}: connection error ({detail})", transient=True
            ) from None

    def _rcode_error(self, rcode: dns.rcode.Rcode, what: str) -> ProviderError:
        text = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.SERVFAIL:
            return ProviderError(
                f"rfc2136: {what} at {self._where}: SERVFAIL (server failure)", transient=True
            )
        if rcode in _PREREQUISITE_FAILED:
            return ProviderError(
                f"rfc2136: {what} at {self._where}: {text}: the record set changed since it "
                "was read; re-reading",
                transient=True,
            )
        hints = {
            dns.rcode.REFUSED: (
                f"the server refused: its update policy for zone {self._zone_text} must allow "
                + (f"TSIG key {self.tsig_name}" if self.tsig_name else "this address")
            ),
            dns.rcode.NOTAUTH: (
                f"the server is not authoritative for zone {self._zone_text}, or its update "
                "policy does not allow "
                + (
                    f"TSIG key {self.tsig_name}"
                    if self.tsig_name
                    else f"unsigned updates (set tsig_key_name and {TSIG_SECRET_ENV})"
                )
            ),
            dns.rcode.NOTZONE: f"a name is outside zone {self._zone_text}",
            dns.rcode.NOTIMP: "the server does not implement this (dynamic updates disabled?)",
            dns.rcode.FORMERR: "the server could not parse the request",
        }
        hint = hints.get(rcode, "")
        return ProviderError(
            f"rfc2136: {what} at {self._where}: {text}" + (f" ({hint})" if hint else ""),
            transient=False,
        )


def _tsig_error(exc: dns.tsig.PeerError) -> str:
    names = {
        dns.tsig.PeerBadKey: "BADKEY: unknown key name or algorithm",
        dns.tsig.PeerBadSignature: "BADSIG: wrong secret",
        dns.tsig.PeerBadTime: "BADTIME: clocks differ by more than the fudge",
        dns.tsig.PeerBadTruncation: "BADTRUNC",
    }
    for kind, text in names.items():
        if isinstance(exc, kind):
            return text
    return type(exc).__name__


def _os_text(exc: OSError | EOFError) -> str:
    if isinstance(exc, EOFError):
        return "connection closed by the server"
    if exc.errno is not None:  # asyncio's strerror is "Connect call failed (...)"
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _describe(record: Record) -> str:
    return f"{record.type} {record.name} {record.content}"
