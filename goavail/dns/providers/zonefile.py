"""The ``zonefile`` provider: A/AAAA records kept in an RFC 1035 master file.

This is the provider that needs no account anywhere: goavail edits a zone file
on disk (``make run`` uses ``examples/example.test.zone``) and, optionally, runs
a command that tells the name server to reload it (``knotc zone-reload ...``,
``rndc reload ...``, ``nsd-control reload ...``).

How the file is treated:

* **The file is the source of truth.** Every read parses it again when it
  changed on disk, so an operator may edit it while goavail runs; a pass of
  the reconciler reads it once for all its names
  (:meth:`~goavail.dns.providers.base.Provider.records_for`). Only the A and AAAA rdata that
  goavail is asked to create or delete change (and, for a TTL update, the TTL
  of that name's A or AAAA set); every other record (SOA fields
  other than the serial, NS, MX, TXT, CNAME, other names, other addresses of
  the same name) is kept. The file is parsed and written with dnspython, so its
  *content* is preserved, but its *layout* is normalised on the first write:
  one record per line, an explicit TTL on every line, names relative to
  ``$ORIGIN``. The leading block of comment lines (the file's header) and
  end-of-line comments on records are kept; comment-only lines between records
  are not.
* **Serial.** Every write bumps the SOA serial by one in RFC 1982 serial
  arithmetic (``(serial + 1) mod 2**32``, skipping 0, see :func:`next_serial`).
  A date-style serial (``YYYYMMDDnn``) is also just incremented: that keeps it
  increasing without goavail reading the clock, and a hand edit following the
  date convention stays valid as long as it is larger.
* **Atomic writes.** The new text goes to a temporary file in the same
  directory, is fsync'ed, gets the original file's mode (and owner, when
  permitted), and replaces the file with :func:`os.replace`; the directory is
  fsync'ed after. A name server or an operator reading the file never sees half
  a zone. If the file changed on disk between goavail's read and its write (an
  operator saved it meanwhile), the write is abandoned with a transient
  :class:`ProviderError` and the reconciler retries on the new content.
* **Missing file.** Reading a missing file yields no records; the first write
  creates a minimal valid zone (SOA and NS at the origin, name server
  ``localhost.`` as a placeholder, serial 1 after the write, mode 0644).
* **Concurrency.** Changes within one process are serialised by an
  :class:`asyncio.Lock`; all file work runs in :func:`asyncio.to_thread`.
* **Reload command.** After each successful write ``reload_command`` (an argv
  list, no shell) runs with a timeout (10 s by default). A failure, a timeout
  or a command that cannot be started is logged as a warning with the exit code
  and the tail of its output, but the change still counts as applied: the file
  *is* written, and the name server picks it up on its next reload.

Not supported: ``$INCLUDE`` (rewriting would inline the included file, so such
a file is rejected with a permanent error); classes other than IN. ``$GENERATE``
ranges are accepted but written back expanded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from goavail.dns.audit import AuditLog
from goavail.dns.model import Record, RecordType, normalize_address, normalize_name
from goavail.dns.providers.base import Provider, ProviderError, RecordExists, RecordMissing

log = logging.getLogger(__name__)

SERIAL_MODULUS = 2**32
"""RFC 1982 serial number space for the 32-bit SOA SERIAL field (RFC 1035 §3.3.13)."""

NEW_FILE_MODE = 0o644
"""Mode of a zone file goavail creates (name servers usually run as another user)."""

_RELATIVES_KEPT: Final = 1 << 16
"""Names whose origin-relative form :meth:`ZonefileProvider._relative` remembers."""
_Action = Literal["create", "delete", "update"]

_RDTYPES: dict[RecordType, dns.rdatatype.RdataType] = {
    "A": dns.rdatatype.A,
    "AAAA": dns.rdatatype.AAAA,
}

# Errors that only an operator can fix; any other OSError is worth a quick retry.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EROFS}
)

_TAIL_CHARS = 500


def next_serial(serial: int) -> int:
    """The SOA serial that follows ``serial`` (RFC 1982 §3.1, SERIAL_BITS = 32).

    ``(serial + 1) mod 2**32``; the result 0 is skipped (``4294967295 -> 1``)
    because some software treats serial 0 as "unset". A one-step increment is
    always "greater than" the old serial in RFC 1982 terms, so secondaries and
    reloading name servers accept it.

    Raises:
        ValueError: ``serial`` is not in ``0 .. 2**32 - 1``.
    """
    if not 0 <= serial < SERIAL_MODULUS:
        raise ValueError(f"SOA serial {serial} is outside 0..{SERIAL_MODULUS - 1}")
    return (serial + 1) % SERIAL_MODULUS or 1


@dataclass(frozen=True, slots=True)
class _Fingerprint:
    """What identifies one version of the file on disk (to detect a concurrent edit)."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Fingerprint:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(slots=True)
class _Loaded:
    """A parsed zone file: the zone, its leading comment block and its file status.

    ``index`` (built on first read, :meth:`addresses_at`): relative name -> its A and
    AAAA records as ``(type, canonical address, ttl)``; ``records``: name as asked ->
    its records (:meth:`ZonefileProvider._records_at`). Both only for a parse that is
    never modified (the cached one: :meth:`ZonefileProvider._change_sync` parses
    afresh).
    """

    zone: dns.zone.Zone
    header: str
    stat: os.stat_result
    index: dict[dns.name.Name, list[tuple[RecordType, str, int]]] | None = None
    records: dict[str, list[Record]] = field(default_factory=dict)

    def addresses_at(self, relative: dns.name.Name) -> list[tuple[RecordType, str, int]]:
        """The A/AAAA records at ``relative`` (a name relative to the origin), A first:
        ``(type, canonical address, ttl)``; what ``zone.get_rdataset`` would give for
        each type, from an index of the whole zone built once (a pass reads every
        managed name: 5,000 look-ups through dnspython cost 0.2 s of CPU per pass)."""
        if self.index is None:
            index: dict[dns.name.Name, list[tuple[RecordType, str, int]]] = {}
            for name, node in self.zone.nodes.items():
                found = [
                    (rtype, normalize_address(rd.address), rdataset.ttl)
                    for rtype, rdtype in _RDTYPES.items()
                    if (rdataset := node.get_rdataset(self.zone.rdclass, rdtype)) is not None
                    for rd in rdataset
                ]
                if found:
                    index[name] = found
            self.index = index
        return self.index.get(relative, [])


class ZonefileProvider(Provider):
    """A/AAAA records in an RFC 1035 master file (see the module docstring).

    Args:
        dry_run, audit: see :class:`Provider`.
        path: the zone file. Symbolic links are followed: the file they point
            to is replaced, the link stays.
        origin: the zone's origin, e.g. ``"example.test"`` (trailing dot optional).
            Names outside it are never read or written.
        ttl: TTL in seconds of an A/AAAA RRset goavail creates (and of the SOA
            and NS of a zone file it creates). Adding an address to an existing
            RRset keeps that RRset's TTL, since all records of an RRset share one
            TTL (RFC 2181 §5.2).
        reload_command: argv run after each successful write (no shell), or
            None. A failure is logged, never raised.
        reload_timeout: seconds the reload command may run before it (and its
            process group) is killed.

    Raises:
        ValueError: ``origin`` is not a valid domain name, ``ttl`` is outside
            1..2**31-1 (RFC 2181 §8), ``reload_command`` is a plain string or
            ``reload_timeout`` is not positive.
    """

    name = "zonefile"

    def __init__(
        self,
        *,
        dry_run: bool,
        audit: AuditLog,
        path: Path,
        origin: str,
        ttl: int,
        reload_command: Sequence[str] | None = None,
        reload_timeout: float = 10.0,
    ) -> None:
        super().__init__(dry_run=dry_run, audit=audit)
        if not 1 <= ttl <= 2**31 - 1:
            raise ValueError(f"ttl must be 1..{2**31 - 1} seconds, not {ttl}")
        if isinstance(reload_command, str):
            raise ValueError("reload_command must be an argv list, not a string")
        if reload_timeout <= 0:
            raise ValueError(f"reload_timeout must be positive, not {reload_timeout}")
        try:
            self.origin = dns.name.from_text(normalize_name(origin) + ".")
        except dns.exception.DNSException as exc:
            raise ValueError(f"origin {origin!r} is not a valid domain name: {exc}") from exc
        self.path = Path(path)
        self.ttl = ttl
        self.reload_command: tuple[str, ...] | None = (
            tuple(reload_command) if reload_command else None
        )
        self.reload_timeout = reload_timeout
        self._lock = asyncio.Lock()
        # The last parse, reused by reads while the file is unchanged: parsing is
        # ~0.2 ms per record with dnspython (2.3 s CPU for 10,000 records), and a
        # resync reads the file once per name every resync_interval.
        self._parsed: tuple[tuple[int, ...], _Loaded] | None = None
        self._relatives: dict[str, dns.name.Name | None] = {}

    # -- Provider hooks -----------------------------------------------------------

    async def _list(self, name: str) -> list[Record]:
        """A and AAAA records at exactly ``name``; [] outside the origin or if the file is missing.

        Raises:
            ProviderError: the file cannot be read or parsed (permanent for a
                syntax error, naming the file and line).
        """
        return await asyncio.to_thread(self._list_sync, name)

    async def _list_names(
        self, names: Sequence[str], types: frozenset[RecordType]
    ) -> dict[str, list[Record]]:
        """The records of every name from one read of the file (retried as one read).

        Raises:
            ProviderError: see :meth:`_list`.
        """
        return await self._retrying(
            functools.partial(asyncio.to_thread, self._list_names_sync, names),
            f"{self.name}: read {self.path}",
        )

    async def _create(self, record: Record) -> None:
        """Add ``record``'s address to its RRset, bump the serial, write, reload.

        Raises:
            RecordExists: the address is already there (the file is not written).
            ProviderError: the name is outside the origin, carries a CNAME, the
                content is not an address of ``record.type``, or the file cannot
                be read, parsed or written.
        """
        await self._change("create", record)

    async def _delete(self, record: Record) -> None:
        """Remove ``record``'s address from its RRset, bump the serial, write, reload.

        Raises:
            RecordMissing: the address is not there (the file is not written).
            ProviderError: see :meth:`_create`.
        """
        await self._change("delete", record)

    async def _update_ttl(self, record: Record) -> None:
        """Give ``record``'s RRset the TTL ``record.ttl`` (one atomic rewrite of the file,
        serial bumped, reload).

        Raises:
            RecordExists: the set already has that TTL (the file is not written).
            RecordMissing: the address is not in the set (the file is not written).
            ProviderError: see :meth:`_create`.
        """
        await self._change("update", record)

    # -- internals ------------------------------------------------------------------

    async def _change(self, action: _Action, record: Record) -> None:
        async with self._lock:
            await asyncio.to_thread(self._change_sync, action, record)
            await self._reload()

    def _relative(self, name: str) -> dns.name.Name | None:
        """``name`` relative to the origin, or None when it is outside the origin
        (remembered per name: a pass asks for every managed name).

        Raises:
            ProviderError: ``name`` is not a valid DNS name (permanent).
        """
        if name in self._relatives:
            return self._relatives[name]
        relative = self._relative_of(name)
        if len(self._relatives) >= _RELATIVES_KEPT:
            self._relatives.clear()
        self._relatives[name] = relative
        return relative

    def _relative_of(self, name: str) -> dns.name.Name | None:
        try:
            absolute = dns.name.from_text(normalize_name(name) + ".")
        except dns.exception.DNSException as exc:
            raise ProviderError(f"invalid DNS name {name!r}: {exc}", transient=False) from exc
        if not absolute.is_subdomain(self.origin):
            return None
        return absolute.relativize(self.origin)

    def _list_sync(self, name: str) -> list[Record]:
        if self._relative(name) is None:
            return []
        return self._records_at(name, self._read_cached())

    def _list_names_sync(self, names: Sequence[str]) -> dict[str, list[Record]]:
        inside = any(self._relative(n) is not None for n in names)
        loaded = self._read_cached() if inside else None
        return {name: self._records_at(name, loaded) for name in names}

    def _records_at(self, name: str, loaded: _Loaded | None) -> list[Record]:
        """The A/AAAA records at ``name`` in ``loaded`` ([] outside the origin or with no file)."""
        if loaded is None:
            return []
        known = loaded.records.get(name)
        if known is not None:
            return list(known)
        relative = self._relative(name)
        if relative is None:
            return []
        fqdn = normalize_name(name)
        records = [
            Record(fqdn, rtype, address, ttl)
            for rtype, address, ttl in loaded.addresses_at(relative)
        ]
        loaded.records[name] = records  # the parse never changes: asked again each pass
        return list(records)

    def _change_sync(self, action: _Action, record: Record) -> None:
        relative = self._relative(record.name)
        if relative is None:
            raise ProviderError(
                f"{record.name} is outside the zone {self._origin_text} kept in {self.path}",
                transient=False,
            )
        rdtype = _RDTYPES[record.type]
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, record.content)
        except (dns.exception.DNSException, ValueError) as exc:
            raise ProviderError(
                f"{record.content!r} is not a valid {record.type} address: {exc}",
                transient=False,
            ) from exc

        loaded = self._read()
        if loaded is None:
            if action == "delete":
                raise RecordMissing(f"{self.path} does not exist")
            zone, header, before = self._new_zone(), self._new_header(), None
        else:
            zone, header, before = loaded.zone, loaded.header, loaded.stat

        if action == "create":
            node = zone.get_node(relative)
            if node is not None and node.get_rdataset(zone.rdclass, dns.rdatatype.CNAME):
                # dnspython would silently drop the CNAME; a name is either an alias or not.
                raise ProviderError(
                    f"{record.name} has a CNAME in {self.path}; refusing to add {record.type}"
                    " records next to it (RFC 1034 §3.6.2)",
                    transient=False,
                )
            rdataset = zone.find_rdataset(relative, rdtype, create=True)
            if rdata in rdataset:
                raise RecordExists(f"{record.name} {record.type} {record.content}")
            rdataset.add(rdata, None if len(rdataset) else self._ttl_of(record))
        elif action == "update":
            existing = zone.get_rdataset(relative, rdtype)
            if existing is None or rdata not in existing:
                raise RecordMissing(f"{record.name} {record.type} {record.content}")
            ttl = self._ttl_of(record)
            if existing.ttl == ttl:
                raise RecordExists(f"{record.name} {record.type} TTL {ttl}")
            existing.ttl = ttl
        else:
            existing = zone.get_rdataset(relative, rdtype)
            if existing is None or rdata not in existing:
                raise RecordMissing(f"{record.name} {record.type} {record.content}")
            existing.discard(rdata)  # type: ignore[no-untyped-call]  # dns.set.Set is untyped
            if len(existing) == 0:
                zone.delete_rdataset(relative, rdtype)

        serial = self._bump_serial(zone)
        self._write(
            header + zone.to_text(relativize=True, want_origin=True, want_comments=True), before
        )
        log.info(
            "zone file %s: %s %s %s %s (serial %d)",
            self.path,
            action,
            record.name,
            record.type,
            record.content,
            serial,
        )

    def _ttl_of(self, record: Record) -> int:
        """The TTL to give ``record``'s set: its own, else the provider's ``ttl``."""
        return self.ttl if record.ttl is None else record.ttl

    @property
    def _origin_text(self) -> str:
        return normalize_name(self.origin.to_text())

    def _bump_serial(self, zone: dns.zone.Zone) -> int:
        soa_set = zone.get_rdataset(dns.name.empty, dns.rdatatype.SOA)
        if soa_set is None:  # from_text checks this; kept for the type checker
            raise ProviderError(f"{self.path} has no SOA record at its origin", transient=False)
        old = soa_set[0]
        new = old.replace(serial=next_serial(old.serial))
        soa_set.add(new)  # SOA is a singleton type: replaces the old rdata, keeps the TTL
        serial: int = new.serial
        return serial

    def _new_zone(self) -> dns.zone.Zone:
        text = (
            f"@ {self.ttl} IN SOA localhost. hostmaster 0 3600 600 604800 {self.ttl}\n"
            f"@ {self.ttl} IN NS localhost.\n"
        )
        return dns.zone.from_text(text, self.origin, relativize=True)

    def _new_header(self) -> str:
        return (
            f"; Zone {self._origin_text}, created by goavail (zonefile provider).\n"
            "; goavail changes only the A/AAAA records of the names it is configured for and\n"
            "; the SOA serial; edit everything else freely (replace the placeholder name\n"
            '; server "localhost." with yours). This comment block is kept on rewrites.\n'
            "\n"
        )

    def _read_cached(self) -> _Loaded | None:
        """:meth:`_read`, or the last parse when the file has not changed since.

        "Unchanged" means the same device, inode, size, mtime and ctime (in ns): any
        write, rename over it or ``touch`` changes one of them. Only for reading: a
        change parses afresh (:meth:`_change_sync` modifies the zone it gets).
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError:
            return self._read()  # let _read report it
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._parsed is not None and self._parsed[0] == key:
            return self._parsed[1]
        loaded = self._read()
        if loaded is not None:
            s = loaded.stat
            read_key = (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
            self._parsed = (read_key, loaded)
        return loaded

    def _read(self) -> _Loaded | None:
        """Parse the file; None when it does not exist.

        Raises:
            ProviderError: read error (permanent or transient by errno) or a
                syntax/zone error (permanent, with file and line).
        """
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(f"cannot read zone file {self.path}", exc) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ProviderError(
                f"{self.path}:{line}: zone file is not valid UTF-8", transient=False
            ) from exc
        try:
            zone = dns.zone.from_text(
                text,
                self.origin,
                relativize=True,
                filename=str(self.path),
                allow_include=False,
            )
        except dns.exception.SyntaxError as exc:
            # dnspython's message is "FILE:LINE: detail". For an error found at the end
            # of a record (a bad address, say) LINE is the one after the record's.
            hint = (
                " (goavail cannot rewrite a file using $INCLUDE)" if "$INCLUDE" in str(exc) else ""
            )
            raise ProviderError(f"cannot parse zone file: {exc}{hint}", transient=False) from exc
        except (dns.exception.DNSException, ValueError) as exc:
            # dnspython raises a plain ValueError for some zone errors, e.g. a second
            # SOA at another name ("add() has non-origin SOA").
            raise ProviderError(
                f"{self.path}: not a valid zone for {self._origin_text}: {exc}", transient=False
            ) from exc
        return _Loaded(zone, _header(text), st)

    def _write(self, text: str, before: os.stat_result | None) -> None:
        """Replace the file with ``text`` atomically, keeping its mode and owner.

        Raises:
            ProviderError: the file changed since ``before`` was taken
                (transient), or an OS error.
        """
        target = Path(os.path.realpath(self.path))
        directory = target.parent
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise _os_error(f"cannot write zone file {self.path}", exc) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                if before is None:
                    os.fchmod(f.fileno(), NEW_FILE_MODE)
                else:
                    os.fchmod(f.fileno(), stat.S_IMODE(before.st_mode))
                    _keep_owner(f.fileno(), before)
                os.fsync(f.fileno())
            self._check_unchanged(target, before)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _os_error(f"cannot write zone file {self.path}", exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(directory)

    def _check_unchanged(self, target: Path, before: os.stat_result | None) -> None:
        try:
            now: _Fingerprint | None = _Fingerprint.of(os.stat(target))
        except FileNotFoundError:
            now = None
        if now != (None if before is None else _Fingerprint.of(before)):
            raise ProviderError(
                f"{self.path} changed on disk while goavail was updating it; will retry",
                transient=True,
            )

    async def _reload(self) -> None:
        """Run ``reload_command``; log, never raise, when it fails or times out."""
        if self.reload_command is None:
            return
        argv = self.reload_command
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole on timeout
            )
        except OSError as exc:
            log.warning(
                "reload command %s could not start: %s; the zone file %s is written and"
                " the change counts as applied",
                list(argv),
                exc,
                self.path,
            )
            return
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), self.reload_timeout)
        except TimeoutError:
            log.warning(
                "reload command %s timed out after %gs and was killed; the zone file %s is"
                " written and the change counts as applied",
                list(argv),
                self.reload_timeout,
                self.path,
            )
            return
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.returncode != 0:
            log.warning(
                "reload command %s exited with code %s: %s; the zone file %s is written and"
                " the change counts as applied",
                list(argv),
                proc.returncode,
                _tail(stderr or stdout) or "(no output)",
                self.path,
            )
        else:
            log.debug("reload command %s succeeded", list(argv))


def _header(text: str) -> str:
    """The leading block of comment and blank lines of a zone file's text."""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not stripped.startswith(";"):
            break
        lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines)


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


def _os_error(what: str, exc: OSError) -> ProviderError:
    return ProviderError(f"{what}: {exc}", transient=exc.errno not in _PERMANENT_ERRNOS)


def _keep_owner(fd: int, before: os.stat_result) -> None:
    """Give the temp file the original owner and group when allowed (root, or own group)."""
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) == (before.st_uid, before.st_gid):
        return
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        log.debug("cannot keep owner %d:%d of the zone file", before.st_uid, before.st_gid)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: some file systems refuse to fsync a directory)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        log.debug("cannot open %s to fsync it: %s", directory, exc)
        return
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        log.debug("cannot fsync %s: %s", directory, exc)
    finally:
        os.close(dir_fd)
