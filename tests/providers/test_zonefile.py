"""The zone file provider: the shared contract, plus what is special about a file on disk."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdatatype
import dns.zone
import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record, RecordType
from goavail.dns.providers.base import ProviderError
from goavail.dns.providers.zonefile import ZonefileProvider, next_serial
from tests.providers.contract import Backdoor, ProviderContract

ORIGIN = "example.test"

SEED = """\
; test zone header
; second header line

$TTL 3600
@       IN SOA  ns1 hostmaster 2024010100 3600 600 604800 300 ; the SOA
        IN NS   ns1
        IN NS   ns2.elsewhere.test.
        IN MX   10 mail
        IN TXT  "v=spf1 mx -all" "second string"
ns1     IN A    127.0.0.1
mail    IN A    127.0.0.9 ; unmanaged
mail    IN AAAA 2001:db8::9
alias   IN CNAME www
www 60  IN A    127.0.0.2 ; managed
www 60  IN A    127.0.0.3
www     IN TXT  "www has other data too"
"""

MakeProvider = Callable[..., ZonefileProvider]


def _rec(name: str, content: str, rtype: RecordType = "A") -> Record:
    return Record(name=name, type=rtype, content=content, ttl=300)


def _create(name: str, content: str, rtype: RecordType = "A") -> Change:
    return Change("create", _rec(name, content, rtype), "test")


def _delete(name: str, content: str, rtype: RecordType = "A") -> Change:
    return Change("delete", _rec(name, content, rtype), "test")


# Small synchronous file helpers: the tests touch tiny files in tmp_path, where
# blocking the event loop for a moment is harmless.


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _inode(path: Path) -> int:
    return path.stat().st_ino


def _chmod(path: Path, mode: int) -> None:
    path.chmod(mode)


def _parse(path: Path) -> dns.zone.Zone:
    return dns.zone.from_file(str(path), ORIGIN, relativize=True)


def _serial(path: Path) -> int:
    soa = _parse(path).get_rdataset("@", dns.rdatatype.SOA)
    assert soa is not None
    serial: int = soa[0].serial
    return serial


def _without_managed(zone: dns.zone.Zone, managed: set[str]) -> dict[str, set[str]]:
    """Every rdataset as text, except A/AAAA at ``managed`` names, with the SOA serial zeroed."""
    out: dict[str, set[str]] = {}
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if name.to_text() in managed and rds.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                continue
            if rds.rdtype == dns.rdatatype.SOA:
                text = {f"{rds.ttl} {rd.replace(serial=0).to_text()}" for rd in rds}
            else:
                text = {f"{rds.ttl} {rd.to_text()}" for rd in rds}
            out[f"{name} {dns.rdatatype.to_text(rds.rdtype)}"] = text
    return out


@pytest.fixture
def zone_path(tmp_path: Path) -> Path:
    path = tmp_path / "example.test.zone"
    _write_text(path, SEED)
    return path


@pytest.fixture
def make(zone_path: Path) -> MakeProvider:
    """make(dry_run=..., reload_command=..., reload_timeout=...) -> a provider on ``zone_path``."""

    def make_one(
        *,
        dry_run: bool = False,
        reload_command: Sequence[str] | None = None,
        reload_timeout: float = 10.0,
    ) -> ZonefileProvider:
        return ZonefileProvider(
            dry_run=dry_run,
            audit=AuditLog(),
            path=zone_path,
            origin=ORIGIN,
            ttl=300,
            reload_command=reload_command,
            reload_timeout=reload_timeout,
        )

    return make_one


class TestZonefileContract(ProviderContract):
    @pytest.fixture
    def zone(self) -> str:
        return ORIGIN

    @pytest.fixture
    def contract_zone(self, tmp_path: Path) -> Path:
        return tmp_path / "contract.zone"

    @pytest.fixture
    def backdoor(self, contract_zone: Path) -> Backdoor:
        return ZoneFileBackdoor(contract_zone)

    @pytest.fixture
    def make_provider(self, contract_zone: Path) -> Callable[[bool], ZonefileProvider]:
        # the contract wants an empty backend: a zone with only SOA and NS
        path = contract_zone
        path.write_text(
            "$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 604800 300\n@ IN NS ns1\n"
            "ns1 IN A 127.0.0.1\n",
            encoding="utf-8",
        )

        def make_provider(dry_run: bool) -> ZonefileProvider:
            return ZonefileProvider(
                dry_run=dry_run, audit=AuditLog(), path=path, origin=ORIGIN, ttl=300
            )

        return make_provider


class ZoneFileBackdoor:
    """TXT records edited in the zone file with dnspython, behind the provider's back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add_txt(self, name: str, text: str) -> None:
        zone = _parse(self.path)
        relative = dns.name.from_text(name + ".").relativize(zone.origin)  # type: ignore[arg-type]
        rdataset = zone.find_rdataset(relative, dns.rdatatype.TXT, create=True)
        rdataset.add(dns.rdata.from_text("IN", "TXT", f'"{text}"'), 300)
        _write_text(self.path, zone.to_text(relativize=True, want_origin=True))

    def txt(self, name: str) -> set[str]:
        zone = _parse(self.path)
        relative = dns.name.from_text(name + ".").relativize(zone.origin)  # type: ignore[arg-type]
        rdataset = zone.get_rdataset(relative, dns.rdatatype.TXT)
        if rdataset is None:
            return set()
        return {b"".join(rd.strings).decode() for rd in rdataset}


# -- reading ---------------------------------------------------------------------------


async def test_list_reads_existing_records(make: MakeProvider) -> None:
    p = make()
    got = await p.records("www.example.test")
    assert {(r.name, r.type, r.content, r.ttl) for r in got} == {
        ("www.example.test", "A", "127.0.0.2", 60),
        ("www.example.test", "A", "127.0.0.3", 60),
    }
    mail = await p.records("mail.example.test")
    assert {(r.type, r.content) for r in mail} == {("A", "127.0.0.9"), ("AAAA", "2001:db8::9")}
    # only A/AAAA: the CNAME, TXT, MX, NS and SOA are not records goavail reports
    assert await p.records("alias.example.test") == []
    assert await p.records("example.test") == []


async def test_list_sees_operator_edits(make: MakeProvider, zone_path: Path) -> None:
    p = make()
    assert len(await p.records("www.example.test")) == 2
    _write_text(zone_path, SEED + "www 60 IN A 127.0.0.4\n")
    assert len(await p.records("www.example.test")) == 3


async def test_unchanged_file_is_parsed_once_and_an_edit_of_equal_size_is_seen(
    make: MakeProvider, zone_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make()
    parses = 0
    real_read = ZonefileProvider._read

    def counting_read(self: ZonefileProvider) -> object:
        nonlocal parses
        parses += 1
        return real_read(self)

    monkeypatch.setattr(ZonefileProvider, "_read", counting_read)
    first = await p.records("www.example.test")
    assert await p.records("www.example.test") == first
    assert await p.records("mail.example.test") != []
    assert parses == 1  # one parse for three reads of an unchanged file
    # Same size, same second: only the content (and the ns timestamps) differ.
    _write_text(zone_path, _read_text(zone_path).replace("127.0.0.3", "127.0.0.8"))
    got = await p.records("www.example.test")
    assert {r.content for r in got} == {"127.0.0.2", "127.0.0.8"}
    assert parses == 2


async def test_name_outside_origin_is_not_touched(make: MakeProvider, zone_path: Path) -> None:
    before = _read_bytes(zone_path)
    p = make()
    assert await p.records("www.other.test") == []
    assert await p.records("test") == []
    out = await p.apply([_create("www.other.test", "192.0.2.1")])
    assert not out[0].ok
    assert out[0].error is not None
    assert not out[0].error.transient
    assert "outside the zone" in str(out[0].error)
    out = await p.apply([_delete("www.other.test", "192.0.2.1")])
    assert not out[0].ok
    assert _read_bytes(zone_path) == before


async def test_missing_file_lists_nothing_and_is_created_valid(tmp_path: Path) -> None:
    path = tmp_path / "new.zone"
    p = ZonefileProvider(dry_run=False, audit=AuditLog(), path=path, origin=ORIGIN, ttl=120)
    assert await p.records("www.example.test") == []
    assert not path.exists()
    # deleting from a missing file is "already done" and creates nothing
    out = await p.apply([_delete("www.example.test", "192.0.2.1")])
    assert out[0].ok
    assert not path.exists()

    # a record without a TTL of its own gets the provider's ttl
    out = await p.apply([Change("create", Record("www.example.test", "A", "192.0.2.1"), "t")])
    assert out[0].ok
    zone = _parse(path)  # a valid zone: dnspython checks SOA and NS at the origin
    assert zone.get_rdataset("@", dns.rdatatype.NS) is not None
    assert _serial(path) == 1
    www = zone.get_rdataset("www", dns.rdatatype.A)
    assert www is not None
    assert www.ttl == 120
    assert [rd.to_text() for rd in www] == ["192.0.2.1"]
    assert _mode(path) == 0o644
    assert _read_text(path).startswith("; Zone example.test, created by goavail")


async def test_malformed_file_is_a_permanent_error_naming_file_and_line(
    make: MakeProvider, zone_path: Path
) -> None:
    _write_text(zone_path, SEED + "bad IN A 300.1.2.3\n")
    before = _read_bytes(zone_path)
    p = make()
    with pytest.raises(ProviderError) as info:
        await p.records("www.example.test")
    assert not info.value.transient
    assert str(zone_path) in str(info.value)
    assert f"{zone_path}:" in str(info.value)  # FILE:LINE as dnspython reports it
    out = await p.apply([_create("www.example.test", "127.0.0.4")])
    assert not out[0].ok
    assert out[0].error is not None
    assert not out[0].error.transient
    assert _read_bytes(zone_path) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\n", "no SOA"),
        ("$INCLUDE other.zone\n", "$INCLUDE"),
        # a second SOA at another name: dnspython raises a plain ValueError
        (
            "@ 3600 IN SOA ns1 host 1 2 3 4 5\n@ 3600 IN NS ns1\nns1 3600 IN A 127.0.0.1\n"
            "sub 3600 IN SOA ns1 host 1 2 3 4 5\n",
            "non-origin SOA",
        ),
    ],
)
async def test_invalid_zone_is_a_permanent_error(
    make: MakeProvider, zone_path: Path, text: str, expected: str
) -> None:
    _write_text(zone_path, text)
    with pytest.raises(ProviderError) as info:
        await make().records("www.example.test")
    assert not info.value.transient
    assert str(zone_path) in str(info.value)
    assert expected in str(info.value)


# -- writing ---------------------------------------------------------------------------


async def test_unmanaged_records_preserved_after_several_changes(
    make: MakeProvider, zone_path: Path
) -> None:
    original = _parse(zone_path)
    p = make()
    changes = [
        _create("www.example.test", "127.0.0.4"),
        _delete("www.example.test", "127.0.0.2"),
        _create("www.example.test", "2001:db8::4", "AAAA"),
        _create("new.example.test", "192.0.2.1"),
        _delete("www.example.test", "127.0.0.3"),
        _create("www.example.test", "127.0.0.2"),
    ]
    for change in changes:
        assert [o.ok for o in await p.apply([change])] == [True]

    after = _parse(zone_path)
    managed = {"www", "new"}
    assert _without_managed(after, managed) == _without_managed(original, managed)
    # the SOA apart from its serial, byte for byte in presentation form
    old_soa = original.get_rdataset("@", dns.rdatatype.SOA)
    new_soa = after.get_rdataset("@", dns.rdatatype.SOA)
    assert old_soa is not None
    assert new_soa is not None
    assert new_soa[0].replace(serial=0) == old_soa[0].replace(serial=0)
    assert new_soa[0].serial == old_soa[0].serial + len(changes)
    # the managed names hold exactly what was asked
    assert {(r.type, r.content) for r in await p.records("www.example.test")} == {
        ("A", "127.0.0.4"),
        ("A", "127.0.0.2"),
        ("AAAA", "2001:db8::4"),
    }
    # other data at the managed name survives too
    www_txt = after.get_rdataset("www", dns.rdatatype.TXT)
    assert www_txt is not None
    # the header comment block and end-of-line comments are kept
    text = _read_text(zone_path)
    assert text.startswith("; test zone header\n; second header line\n")
    assert "127.0.0.9 ; unmanaged" in text
    # a new RRset gets the provider's TTL; an existing one keeps its TTL (RFC 2181 5.2)
    new_a = after.get_rdataset("new", dns.rdatatype.A)
    www_a = after.get_rdataset("www", dns.rdatatype.A)
    assert new_a is not None
    assert www_a is not None
    assert new_a.ttl == 300
    assert www_a.ttl == 60


async def test_rewritten_file_is_stable(make: MakeProvider, zone_path: Path) -> None:
    """The header is not duplicated and the layout does not drift across rewrites."""
    p = make()
    await p.apply([_create("www.example.test", "127.0.0.4")])
    first = _read_text(zone_path)
    await p.apply([_delete("www.example.test", "127.0.0.4")])
    await p.apply([_create("www.example.test", "127.0.0.4")])
    second = _read_text(zone_path)
    assert second.count("; test zone header") == 1
    serial = _serial(zone_path)
    assert second == first.replace(f" {serial - 2} ", f" {serial} ")


async def test_serial_bumped_once_per_change(make: MakeProvider, zone_path: Path) -> None:
    p = make()
    start = _serial(zone_path)
    await p.apply([_create("www.example.test", "127.0.0.4")])
    assert _serial(zone_path) == start + 1
    await p.apply(
        [_delete("www.example.test", "127.0.0.2"), _create("a.example.test", "::1", "AAAA")]
    )
    assert _serial(zone_path) == start + 3
    # idempotent no-ops do not write, so do not bump
    before = _read_bytes(zone_path)
    out = await p.apply(
        [_create("www.example.test", "127.0.0.4"), _delete("www.example.test", "127.0.0.2")]
    )
    assert [o.ok for o in out] == [True, True]
    assert _read_bytes(zone_path) == before


@pytest.mark.parametrize(
    ("serial", "expected"),
    [(0, 1), (1, 2), (2024010199, 2024010200), (2**31 - 1, 2**31), (2**32 - 2, 2**32 - 1)],
)
def test_next_serial(serial: int, expected: int) -> None:
    assert next_serial(serial) == expected


def test_next_serial_wraps_skipping_zero() -> None:
    assert next_serial(2**32 - 1) == 1


@pytest.mark.parametrize("serial", [-1, 2**32])
def test_next_serial_rejects_out_of_range(serial: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        next_serial(serial)


async def test_serial_wraps_in_the_file(make: MakeProvider, zone_path: Path) -> None:
    _write_text(zone_path, SEED.replace("2024010100", str(2**32 - 1)))
    await make().apply([_create("www.example.test", "127.0.0.4")])
    assert _serial(zone_path) == 1


async def test_write_is_atomic_and_keeps_mode(make: MakeProvider, zone_path: Path) -> None:
    _chmod(zone_path, 0o640)
    inode = _inode(zone_path)
    p = make()
    await p.apply([_create("www.example.test", "127.0.0.4"), _create("x.example.test", "::2")])
    assert sorted(os.listdir(zone_path.parent)) == [zone_path.name]  # no temp file left
    assert _mode(zone_path) == 0o640
    assert _inode(zone_path) != inode  # replaced by rename, not rewritten in place


async def test_failed_write_leaves_no_temp_file(make: MakeProvider, zone_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only directory")
    before = _read_bytes(zone_path)
    _chmod(zone_path.parent, 0o555)
    try:
        out = await make().apply([_create("www.example.test", "127.0.0.4")])
    finally:
        _chmod(zone_path.parent, 0o755)
    assert not out[0].ok
    assert out[0].error is not None
    assert not out[0].error.transient
    assert sorted(os.listdir(zone_path.parent)) == [zone_path.name]
    assert _read_bytes(zone_path) == before


async def test_symlink_target_is_replaced_link_kept(tmp_path: Path, zone_path: Path) -> None:
    link = tmp_path / "link.zone"
    link.symlink_to(zone_path)
    p = ZonefileProvider(dry_run=False, audit=AuditLog(), path=link, origin=ORIGIN, ttl=300)
    await p.apply([_create("www.example.test", "127.0.0.4")])
    assert link.is_symlink()
    assert "127.0.0.4" in _read_text(zone_path)


async def test_concurrent_changes_are_serialized(make: MakeProvider, zone_path: Path) -> None:
    p = make()
    start = _serial(zone_path)
    addresses = [f"192.0.2.{i}" for i in range(1, 11)]
    outs = await asyncio.gather(*(p.apply([_create("many.example.test", a)]) for a in addresses))
    assert all(o[0].ok for o in outs)
    got = await p.records("many.example.test")
    assert {r.content for r in got} == set(addresses)
    assert _serial(zone_path) == start + len(addresses)


async def test_refuses_to_add_next_to_a_cname(make: MakeProvider, zone_path: Path) -> None:
    before = _read_bytes(zone_path)
    out = await make().apply([_create("alias.example.test", "192.0.2.1")])
    assert not out[0].ok
    assert out[0].error is not None
    assert "CNAME" in str(out[0].error)
    assert _read_bytes(zone_path) == before


async def test_invalid_address_is_a_permanent_error(make: MakeProvider, zone_path: Path) -> None:
    out = await make().apply([_create("www.example.test", "2001:db8::1", "A")])
    assert not out[0].ok
    assert out[0].error is not None
    assert not out[0].error.transient


async def test_dry_run_leaves_file_byte_identical(make: MakeProvider, zone_path: Path) -> None:
    before = _read_bytes(zone_path)
    reloads = zone_path.parent / "reloads.log"
    p = make(dry_run=True, reload_command=_appender(reloads))
    out = await p.apply(
        [_create("www.example.test", "127.0.0.4"), _delete("www.example.test", "127.0.0.2")]
    )
    assert [o.ok for o in out] == [True, True]
    assert {r.content for r in await p.records("www.example.test")} == {"127.0.0.3", "127.0.0.4"}
    assert _read_bytes(zone_path) == before
    assert not reloads.exists()


def test_constructor_validates() -> None:
    def make(
        origin: str = ORIGIN, ttl: int = 60, reload_command: Sequence[str] | None = None
    ) -> ZonefileProvider:
        return ZonefileProvider(
            dry_run=False,
            audit=AuditLog(),
            path=Path("x"),
            origin=origin,
            ttl=ttl,
            reload_command=reload_command,
        )

    with pytest.raises(ValueError, match="ttl"):
        make(ttl=0)
    with pytest.raises(ValueError, match="argv"):
        make(reload_command="rndc reload")
    assert make(origin="Example.TEST.").origin == dns.name.from_text("example.test.")
    assert make(reload_command=[]).reload_command is None


async def test_failed_replace_cleans_up_and_is_transient(
    make: MakeProvider, zone_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _read_bytes(zone_path)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", broken_replace)
    out = await make().apply([_create("www.example.test", "127.0.0.4")])
    assert not out[0].ok
    assert out[0].error is not None
    assert out[0].error.transient
    assert sorted(os.listdir(zone_path.parent)) == [zone_path.name]
    assert _read_bytes(zone_path) == before


async def test_concurrent_operator_edit_is_not_overwritten(
    make: MakeProvider, zone_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator_text = SEED + "added-by-hand IN A 192.0.2.77\n"
    real_read = ZonefileProvider._read

    def read_then_operator_saves(self: ZonefileProvider) -> object:
        loaded = real_read(self)
        _write_text(zone_path, operator_text)
        return loaded

    monkeypatch.setattr(ZonefileProvider, "_read", read_then_operator_saves)
    out = await make().apply([_create("www.example.test", "127.0.0.4")])
    assert not out[0].ok
    assert out[0].error is not None
    assert out[0].error.transient
    assert "changed on disk" in str(out[0].error)
    assert _read_text(zone_path) == operator_text
    assert sorted(os.listdir(zone_path.parent)) == [zone_path.name]


# -- reload command -------------------------------------------------------------------


def _appender(log_path: Path) -> list[str]:
    """argv of a tiny script that appends its arguments to ``log_path``."""
    script = (
        "import sys; open(sys.argv[1], 'a', encoding='utf-8').write(' '.join(sys.argv[2:]) + '\\n')"
    )
    return [sys.executable, "-c", script, str(log_path), "reload", ORIGIN]


async def test_reload_command_runs_after_each_write(make: MakeProvider, zone_path: Path) -> None:
    reloads = zone_path.parent / "reloads.log"
    p = make(reload_command=_appender(reloads))
    await p.apply(
        [_create("www.example.test", "127.0.0.4"), _delete("www.example.test", "127.0.0.2")]
    )
    assert _read_text(reloads) == f"reload {ORIGIN}\n" * 2
    # a no-op (already there) writes nothing and reloads nothing
    await p.apply([_create("www.example.test", "127.0.0.4")])
    assert _read_text(reloads).count("\n") == 2


async def test_failing_reload_command_does_not_fail_the_change(
    make: MakeProvider, zone_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = "import sys; sys.stderr.write('zone not found\\n'); sys.exit(3)"
    p = make(reload_command=[sys.executable, "-c", script])
    with caplog.at_level(logging.WARNING, logger="goavail.dns.providers.zonefile"):
        out = await p.apply([_create("www.example.test", "127.0.0.4")])
    assert [o.ok for o in out] == [True]
    assert p.audit.recent[-1]["outcome"] == "applied"
    assert "127.0.0.4" in _read_text(zone_path)
    warning = caplog.records[-1].getMessage()
    assert "exited with code 3" in warning
    assert "zone not found" in warning


async def test_missing_reload_command_does_not_fail_the_change(
    make: MakeProvider, zone_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = make(reload_command=[str(zone_path.parent / "no-such-command")])
    with caplog.at_level(logging.WARNING, logger="goavail.dns.providers.zonefile"):
        out = await p.apply([_create("www.example.test", "127.0.0.4")])
    assert [o.ok for o in out] == [True]
    assert "could not start" in caplog.records[-1].getMessage()


async def test_reload_command_timeout_is_killed(
    make: MakeProvider, zone_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = make(
        reload_command=[sys.executable, "-c", "import time; time.sleep(30)"],
        reload_timeout=0.3,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="goavail.dns.providers.zonefile"):
        out = await p.apply([_create("www.example.test", "127.0.0.4")])
    assert loop.time() - started < 5
    assert [o.ok for o in out] == [True]
    assert "timed out" in caplog.records[-1].getMessage()
    assert "127.0.0.4" in _read_text(zone_path)
