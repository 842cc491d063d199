"""The Cloudflare provider: the shared contract against the API stand-in, plus Cloudflare specifics.

The SDK is pointed at the stand-in through ``CLOUDFLARE_BASE_URL`` only, as in
production; the provider never passes a base URL.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record, RecordType
from goavail.dns.providers import cloudflare as cloudflare_provider
from goavail.dns.providers.base import CallRetry, Clock, ProviderError
from goavail.dns.providers.cloudflare import (
    CloudflareCredentials,
    CloudflareProvider,
    MissingCredentials,
    credentials_from_env,
)
from goavail.dns.reconcile import Reconciler
from goavail.health import State
from tests.cfstub import CloudflareStub, RequestLogEntry
from tests.cfstub.server import MALFORMED, PAGER
from tests.fakeclock import WALL_START, FakeTime
from tests.providers.contract import Backdoor, ProviderContract

ZONE = "example.test"
OTHER_ZONE = "example.org"
TOKEN = "tok-3f9a6c1e-secret-value"
API_KEY = "globalkey-77d1c0ffee-secret"
API_EMAIL = "ops@example.test"

RECORDS_ROUTE = "/zones/{zone_id}/dns_records"

MakeProvider = Callable[..., CloudflareProvider]


A_ONLY: tuple[RecordType, ...] = ("A",)
"""Read only A records (a configuration with IPv4 addresses only)."""


def _rec(name: str, content: str, rtype: RecordType = "A") -> Record:
    return Record(name=name, type=rtype, content=content, ttl=300)


def _keys(records: list[Record]) -> set[tuple[str, str, str]]:
    return {r.key for r in records}


@pytest.fixture(scope="module")
def cf_server() -> Iterator[CloudflareStub]:
    with CloudflareStub(token=TOKEN, api_key=API_KEY, api_email=API_EMAIL) as server:
        yield server


@pytest.fixture
def stub(cf_server: CloudflareStub, monkeypatch: pytest.MonkeyPatch) -> CloudflareStub:
    """The stand-in, emptied, holding zone ``example.test``; the SDK is pointed at it."""
    cf_server.reset()
    cf_server.state.legacy_exists_code = False
    cf_server.add_zone(ZONE)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", cf_server.base_url)
    for var in (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_KEY",
        "CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_USER_SERVICE_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    return cf_server


@pytest.fixture
def pages_of_100(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listings ask for 100 records per page (the API's default; goavail asks for 5,000),
    so that paging is exercised with a few hundred records."""
    monkeypatch.setattr(cloudflare_provider, "_PER_PAGE", 100)


@pytest.fixture
async def make_cf(stub: CloudflareStub) -> AsyncIterator[MakeProvider]:
    """``make_cf(**overrides)`` builds a provider on the stand-in; all are closed afterwards."""
    made: list[CloudflareProvider] = []

    def make(**overrides: Any) -> CloudflareProvider:
        kwargs: dict[str, Any] = {
            "dry_run": False,
            "audit": AuditLog(),
            "zone_name": ZONE,
            "proxied": False,
            "ttl": 300,
            "credentials": CloudflareCredentials(api_token=TOKEN),
            "request_timeout": 5.0,
        }
        kwargs.update(overrides)
        p = CloudflareProvider(**kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


class TestCloudflareContract(ProviderContract):
    @pytest.fixture
    def zone(self) -> str:
        return ZONE

    @pytest.fixture
    def second_zone(self, stub: CloudflareStub) -> str:
        stub.add_zone(OTHER_ZONE)
        return OTHER_ZONE

    @pytest.fixture
    def make_provider(self, make_cf: MakeProvider) -> Callable[[bool], CloudflareProvider]:
        return lambda dry_run: make_cf(dry_run=dry_run, zones=[OTHER_ZONE])

    @pytest.fixture
    def inject_transient(self, stub: CloudflareStub) -> Callable[[int], None]:
        return lambda n: stub.fail_next(n, 503)

    @pytest.fixture
    def backdoor(self, stub: CloudflareStub) -> Backdoor:
        return StubBackdoor(stub)


class StubBackdoor:
    """TXT records put into and read from the stand-in's state directly (no HTTP)."""

    def __init__(self, stub: CloudflareStub) -> None:
        self.stub = stub

    def add_txt(self, name: str, text: str) -> None:
        self.stub.add_record(ZONE, name, "TXT", text)

    def txt(self, name: str) -> set[str]:
        return {
            r["content"]
            for r in self.stub.records(ZONE)
            if r["type"] == "TXT" and r["name"] == name
        }


# -- zone ---------------------------------------------------------------------------------


async def test_zone_lookup_is_cached(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    p = make_cf()
    for _ in range(3):
        await p.records(f"www.{ZONE}")
    await p.apply([Change("create", _rec(f"www.{ZONE}", "192.0.2.1"), "t")])
    assert stub.count("GET", "/zones") == 1
    assert stub.count("GET", RECORDS_ROUTE) == 3
    assert await p.zone_id() == stub.state.zone_id(ZONE)


async def test_missing_zone_is_permanent_error_naming_it(make_cf: MakeProvider) -> None:
    p = make_cf(zone_name="nowhere.test")
    with pytest.raises(ProviderError, match=r"nowhere\.test") as info:
        await p.records("www.nowhere.test")
    assert info.value.transient is False


async def test_zone_name_is_normalised(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    p = make_cf(zone_name="Example.TEST.")
    assert await p.zone_id() == stub.state.zone_id(ZONE)


# -- reading ------------------------------------------------------------------------------


@pytest.mark.usefixtures("pages_of_100")
async def test_list_follows_pagination(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    name = f"big.{ZONE}"
    for i in range(130):
        stub.add_record(ZONE, name, "A", f"198.51.100.{i}" if i < 100 else f"203.0.113.{i}")
    p = make_cf()
    got = await p.records(name)
    assert len(got) == 130
    assert len({r.key for r in got}) == 130
    pages = [e for e in stub.requests if e.route == RECORDS_ROUTE]
    assert len(pages) == 2  # exactly the pages holding records: no extra empty page
    assert all(("name.exact", name) in e.query for e in pages)


async def test_list_of_a_short_name_is_one_request(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    stub.add_record(ZONE, www, "A", "192.0.2.2")
    p = make_cf()
    await p.zone_id()
    assert len(await p.records(www)) == 2
    assert stub.count("GET", RECORDS_ROUTE) == 1  # rate limits: one GET per name and pass


async def test_list_only_a_and_aaaa_at_exactly_that_name(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1", ttl=120, proxied=True)
    stub.add_record(ZONE, www, "AAAA", "2001:0DB8:0000::0001")
    stub.add_record(ZONE, www, "TXT", "v=spf1 -all")
    stub.add_record(ZONE, www, "MX", "mail.example.test")
    stub.add_record(ZONE, f"sub.{www}", "A", "192.0.2.2")
    stub.add_record(ZONE, f"w{www}", "A", "192.0.2.3")
    got = await make_cf().records(www)
    assert {r.key for r in got} == {(www, "A", "192.0.2.1"), (www, "AAAA", "2001:db8::1")}
    a = next(r for r in got if r.type == "A")
    assert (a.ttl, a.proxied) == (120, True)
    assert all(r.id for r in got)


async def test_names_are_normalised(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    stub.add_record(ZONE, "WWW.Example.Test", "A", "192.0.2.1")
    got = await make_cf().records(f"www.{ZONE}")
    assert [r.key for r in got] == [(f"www.{ZONE}", "A", "192.0.2.1")]


# -- reading every name of a pass at once (records_for) -----------------------------------------


def _seed_zone(stub: CloudflareStub, names: list[str], zone: str = ZONE) -> int:
    """Each of ``names`` gets A 192.0.2.1; 50 A records at names goavail does not manage
    around them, and TXT records at 20 of ``names``. Returns the number of A records in
    the zone."""
    for name in names:
        stub.add_record(zone, name, "A", "192.0.2.1")
    for i in range(50):
        stub.add_record(zone, f"unmanaged{i}.{zone}", "A", f"198.51.100.{i}")
    for i, name in enumerate(names[:20]):
        stub.add_record(zone, name, "TXT", f"note {i}")
    return len(names) + 50


def _listings(stub: CloudflareStub) -> list[RequestLogEntry]:
    return [e for e in stub.requests if e.route == RECORDS_ROUTE and e.method == "GET"]


@pytest.mark.usefixtures("pages_of_100")
async def test_a_pass_over_200_names_costs_one_request_per_page_of_records(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    names = [f"host{i:03d}.{ZONE}" for i in range(200)]
    a_records = _seed_zone(stub, names)
    p = make_cf()
    await p.zone_id()
    stub.clear_log()
    got = await p.records_for(names, A_ONLY)
    assert {n: _keys(rs) for n, rs in got.items()} == {n: {(n, "A", "192.0.2.1")} for n in names}
    pages = _listings(stub)
    assert len(pages) == -(-a_records // 100) == 3  # 250 A records, 100 per page
    assert all(("type", "A") in e.query and ("per_page", "100") in e.query for e in pages)
    assert [dict(e.query).get("page", "1") for e in pages] == ["1", "2", "3"]
    # both families: one more listing (no AAAA record: one empty page)
    stub.clear_log()
    await p.records_for(names)
    assert [dict(e.query)["type"] for e in _listings(stub)] == ["A", "A", "A", "AAAA"]
    # a reconcile pass over the 200 names (IPv4 addresses only) costs the same 3 requests
    stub.clear_log()
    rec = Reconciler(
        p,
        names=names,
        addresses=["192.0.2.1"],
        decisions={"192.0.2.1": State.UP},
        ttl=300,
        proxied=False,
        resync_interval=60.0,
    )
    assert await rec.reconcile_once() and rec.converged
    assert stub.count() == 3 and len(_listings(stub)) == 3
    # the per-name path it replaces: one request per name
    stub.clear_log()
    for name in names[:10]:
        await p.records(name)
    assert stub.count() == 10


async def test_names_in_two_zones_cost_one_listing_each(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    stub.add_zone(OTHER_ZONE)
    here = [f"h{i}.{ZONE}" for i in range(30)]
    there = [f"h{i}.{OTHER_ZONE}" for i in range(30)]
    _seed_zone(stub, here)
    _seed_zone(stub, there, OTHER_ZONE)
    p = make_cf(zones=[OTHER_ZONE])
    got = await p.records_for([*here, *there], A_ONLY)
    assert all(_keys(got[n]) == {(n, "A", "192.0.2.1")} for n in [*here, *there])
    assert stub.count("GET", "/zones") == 2  # each zone looked up by name once, then cached
    paths = [e.path for e in _listings(stub)]
    assert len(paths) == 2 and len(set(paths)) == 2  # one page of A records per zone
    stub.clear_log()
    await p.records_for([*here, *there], A_ONLY)
    assert stub.count() == 2


@pytest.mark.usefixtures("pages_of_100")
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 429, "retry_after": 1},
        {"malformed": "success-false"},
        {"malformed": "no-result-info"},
        {"pager": "total-count"},
        {"pager": "short-page"},
    ],
)
async def test_a_fault_in_the_middle_of_a_zone_listing_is_a_failed_read(
    stub: CloudflareStub, make_cf: MakeProvider, fault: dict[str, Any]
) -> None:
    names = [f"host{i:03d}.{ZONE}" for i in range(200)]
    _seed_zone(stub, names)
    p = make_cf()
    p.clock = FakeTime().clock  # a Retry-After is slept in fake time
    await p.zone_id()
    p.retry = CallRetry(attempts=1)
    stub.inject("list", nth=2, **fault)  # page 2 of 3
    with pytest.raises(ProviderError) as info:
        await p.records_for(names, A_ONLY)
    assert info.value.transient
    # with retries the faulty page alone is asked again: pages 1, 2, 2, 3
    p.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
    stub.clear_log()
    stub.inject("list", nth=2, **fault)
    got = await p.records_for(names, A_ONLY)
    assert all(_keys(got[n]) == {(n, "A", "192.0.2.1")} for n in names)
    assert [dict(e.query).get("page", "1") for e in _listings(stub)] == ["1", "2", "2", "3"]


async def test_a_malformed_record_of_a_managed_name_fails_the_zone_read(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    names = [f"host{i}.{ZONE}" for i in range(5)]
    _seed_zone(stub, names)
    p = make_cf()
    p.retry = CallRetry(attempts=1)
    stub.inject("list", malformed="content-missing")
    with pytest.raises(ProviderError, match="malformed answer") as info:
        await p.records_for(names)
    assert info.value.transient


async def test_a_large_zone_with_few_names_is_read_name_by_name(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    for i in range(1000):  # ten pages of A records goavail does not manage
        stub.add_record(ZONE, f"other{i}.{ZONE}", "A", f"198.51.100.{i % 250}")
    names = [f"www{i}.{ZONE}" for i in range(3)]
    for name in names:
        stub.add_record(ZONE, name, "A", "192.0.2.1")
    p = make_cf()
    await p.zone_id()
    stub.clear_log()
    got = await p.records_for(names, A_ONLY)
    assert all(_keys(got[n]) == {(n, "A", "192.0.2.1")} for n in names)
    queries = [dict(e.query) for e in _listings(stub)]
    # page 1 of the listing says 10 pages: more than 3 names cost one by one
    assert len(queries) == 1 + len(names)
    assert [q.get("name.exact") for q in queries[1:]] == names
    # two names (no more than the types asked): name by name at once, no listing
    stub.clear_log()
    await p.records_for(names[:2])
    assert [dict(e.query).get("name.exact") for e in _listings(stub)] == names[:2]


@pytest.mark.parametrize(
    ("names", "per_page"),
    [
        (3, 300),  # a zone read at once only up to 100 records per name: no larger page
        (60, 5000),  # 6,000 allowed: one page of the most goavail asks for
    ],
)
async def test_a_zone_listing_asks_for_large_pages(
    stub: CloudflareStub, make_cf: MakeProvider, names: int, per_page: int
) -> None:
    """5,000 records per page (the API allows up to 5,000,000), fewer when a zone of more
    than 100 records per name would be read name by name anyway."""
    wanted = [f"host{i:03d}.{ZONE}" for i in range(names)]
    _seed_zone(stub, wanted)
    p = make_cf()
    await p.zone_id()
    stub.clear_log()
    got = await p.records_for(wanted, A_ONLY)
    assert all(_keys(got[n]) == {(n, "A", "192.0.2.1")} for n in wanted)
    assert [dict(e.query).get("per_page") for e in _listings(stub)] == [str(per_page)]
    assert stub.count() == 1  # names + 50 others: one page
    stub.clear_log()
    await p.records(wanted[0])
    assert [dict(e.query).get("per_page") for e in _listings(stub)] == ["5000"]


async def test_records_for_outside_the_zones_and_writes_there_fail(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    p = make_cf()
    assert await p.records_for([f"a.{OTHER_ZONE}", f"b.{OTHER_ZONE}", "c.invalid"]) == {
        f"a.{OTHER_ZONE}": [],
        f"b.{OTHER_ZONE}": [],
        "c.invalid": [],
    }
    assert stub.count() == 0
    [out] = await p.apply([Change("create", _rec(f"a.{OTHER_ZONE}", "192.0.2.1"), "t")])
    assert out.error is not None and not out.error.transient
    assert "none of the zones" in str(out.error)


# -- writing ------------------------------------------------------------------------------


async def test_proxied_and_ttl_passed_through(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    p = make_cf(proxied=True, ttl=120)
    # a record without a TTL of its own gets the section's
    await p.apply([Change("create", Record(f"www.{ZONE}", "A", "192.0.2.1"), "t")])
    [stored] = stub.records(ZONE)
    assert (stored["name"], stored["content"]) == (f"www.{ZONE}", "192.0.2.1")
    assert stored["proxied"] is True
    assert stored["ttl"] == 120
    [post] = [e for e in stub.requests if e.method == "POST" and e.route == RECORDS_ROUTE]
    assert post.body == {
        "name": f"www.{ZONE}",
        "type": "A",
        "content": "192.0.2.1",
        "ttl": 120,
        "proxied": True,
    }


async def test_automatic_ttl(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    await make_cf(ttl=1).apply([Change("create", Record(f"www.{ZONE}", "A", "192.0.2.1"), "t")])
    assert [r["ttl"] for r in stub.records(ZONE)] == [1]


async def test_ttl_update_is_one_patch_of_the_record(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    """A TTL update PATCHes the record by its id (name, type, content, ttl): the record is
    changed in place, never deleted and created again."""
    p = make_cf(ttl=300)
    name = f"www.{ZONE}"
    await p.apply([Change("create", _rec(name, "192.0.2.1"), "t")])
    [record] = await p.records(name)
    [before] = stub.records(ZONE)
    out = await p.apply([Change("update", Record(name, "A", "192.0.2.1", 60, id=record.id), "x")])
    assert [o.ok for o in out] == [True]
    [after] = stub.records(ZONE)
    assert (after["id"], after["ttl"]) == (before["id"], 60)
    writes = [e for e in stub.requests if e.method in ("POST", "PATCH", "PUT", "DELETE")]
    assert [e.method for e in writes] == ["POST", "PATCH"]
    assert writes[-1].body == {"name": name, "type": "A", "content": "192.0.2.1", "ttl": 60}


def test_bad_ttl_rejected() -> None:
    with pytest.raises(ValueError, match="ttl"):
        CloudflareProvider(
            dry_run=False,
            audit=AuditLog(),
            zone_name=ZONE,
            proxied=False,
            ttl=5,
            credentials=CloudflareCredentials(api_token=TOKEN),
        )


async def test_legacy_exists_code_81057_is_success(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    stub.state.legacy_exists_code = True
    stub.add_record(ZONE, f"www.{ZONE}", "A", "192.0.2.1")
    p = make_cf()
    out = await p.apply([Change("create", _rec(f"www.{ZONE}", "192.0.2.1"), "t")])
    assert out[0].ok
    assert p.audit.recent[-1]["outcome"] == "already-done"


async def test_delete_without_id_looks_it_up(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    stub.add_record(ZONE, www, "A", "192.0.2.2")
    p = make_cf()
    out = await p.apply([Change("delete", _rec(www, "192.0.2.1"), "t")])
    assert out[0].ok and p.audit.recent[-1]["outcome"] == "applied"
    assert [r["content"] for r in stub.records(ZONE)] == ["192.0.2.2"]


async def test_delete_stale_id_is_success(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    www = f"www.{ZONE}"
    rid = stub.add_record(ZONE, www, "A", "192.0.2.1")
    p = make_cf()
    [current] = await p.records(www)
    assert current.id == rid
    stub.reset()
    stub.add_zone(ZONE)  # same name, new zone id: the cached one is now unknown (7003)
    out = await p.apply([Change("delete", current, "t")])
    assert not out[0].ok and out[0].error is not None
    assert out[0].error.transient is False
    # the zone id is looked up again, the stale record id answers 81044 -> already done
    out = await p.apply([Change("delete", current, "t")])
    assert out[0].ok and p.audit.recent[-1]["outcome"] == "already-done"


# -- errors -------------------------------------------------------------------------------


async def test_wrong_token_is_permanent_and_secret_free(make_cf: MakeProvider) -> None:
    bad = "wrong-token-0123456789abcdef"
    p = make_cf(credentials=CloudflareCredentials(api_token=bad))
    with pytest.raises(ProviderError) as info:
        await p.records(f"www.{ZONE}")
    assert info.value.transient is False
    text = str(info.value)
    assert "403" in text and "10000" in text and "CLOUDFLARE_API_TOKEN" in text
    assert bad not in text and TOKEN not in text
    out = await p.apply([Change("create", _rec(f"www.{ZONE}", "192.0.2.1"), "t")])
    assert out[0].error is not None and not out[0].error.transient
    assert bad not in str(p.audit.recent[-1])
    assert bad not in repr(p)


async def test_wrong_global_key_is_permanent_and_secret_free(make_cf: MakeProvider) -> None:
    bad = "not-the-global-key-42"
    p = make_cf(credentials=CloudflareCredentials(api_key=bad, api_email=API_EMAIL))
    with pytest.raises(ProviderError) as info:
        await p.records(f"www.{ZONE}")
    assert info.value.transient is False
    assert "9103" in str(info.value) and "CF_API_KEY" in str(info.value)
    assert bad not in str(info.value)


@pytest.mark.parametrize(
    ("status", "needle"), [(429, "Retry-After 1 s"), (500, "HTTP 500"), (502, "HTTP 502")]
)
async def test_rate_limit_and_server_errors_are_transient(
    stub: CloudflareStub, make_cf: MakeProvider, status: int, needle: str
) -> None:
    p = make_cf()
    p.retry = CallRetry(attempts=1)
    p.clock = FakeTime().clock  # the 429's Retry-After: 1 is slept in fake time
    await p.zone_id()
    stub.fail_next(1, status)
    with pytest.raises(ProviderError, match=needle) as info:
        await p.records(f"www.{ZONE}")
    assert info.value.transient is True
    assert await p.records(f"www.{ZONE}") == []  # the SDK did not retry: one fault, one error
    assert stub.count("GET", RECORDS_ROUTE) == 2


async def test_timeout_is_transient(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    p = make_cf(request_timeout=0.2)
    await p.zone_id()
    stub.set_faults(0.0, delay=1.0)
    with pytest.raises(ProviderError, match="timed out") as info:
        await p.records(f"www.{ZONE}")
    assert info.value.transient is True


async def test_connection_error_is_transient(
    make_cf: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"http://127.0.0.1:{port}/client/v4")
    p = make_cf()
    with pytest.raises(ProviderError, match="connection error") as info:
        await p.records(f"www.{ZONE}")
    assert info.value.transient is True


async def test_retry_after_is_honoured_within_the_call(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    p = make_cf()
    await p.zone_id()
    name = f"retry.{ZONE}"  # a name of its own: late requests of earlier tests don't count
    stub.fail_next(1, 429)  # Retry-After: 1
    assert await p.records(name) == []
    statuses = [
        e.status
        for e in stub.requests
        if e.route == RECORDS_ROUTE and ("name.exact", name) in e.query
    ]
    assert statuses == [429, 200]  # the 429, then the retry after waiting
    stub.fail_next(1, 429)
    p.retry = CallRetry(attempts=1)
    with pytest.raises(ProviderError) as info:
        await p.records(name)
    assert info.value.retry_after == 1.0


async def test_apply_stops_at_transient_error(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    p = make_cf()
    p.retry = CallRetry(attempts=1)
    await p.zone_id()
    stub.fail_next(1, 429)
    out = await p.apply(
        [
            Change("create", _rec(f"a.{ZONE}", "192.0.2.1"), "t"),
            Change("create", _rec(f"b.{ZONE}", "192.0.2.2"), "t"),
        ]
    )
    assert len(out) == 1 and not out[0].ok
    assert stub.records(ZONE) == []


# -- credentials --------------------------------------------------------------------------


async def test_global_key_auth_works(stub: CloudflareStub, make_cf: MakeProvider) -> None:
    creds = credentials_from_env({"CF_API_KEY": API_KEY, "CF_API_EMAIL": API_EMAIL})
    p = make_cf(credentials=creds)
    out = await p.apply([Change("create", _rec(f"www.{ZONE}", "192.0.2.1"), "t")])
    assert out[0].ok
    assert [r.content for r in await p.records(f"www.{ZONE}")] == ["192.0.2.1"]


async def test_sdk_environment_does_not_override_token(
    stub: CloudflareStub, make_cf: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the SDK would send X-Auth-Email/X-Auth-Key from these instead of the token
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@else.test")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "unrelated")
    assert await make_cf().records(f"www.{ZONE}") == []


def test_credentials_from_env_token() -> None:
    creds = credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
    assert (creds.api_token, creds.api_key, creds.method) == (TOKEN, None, "token")


def test_credentials_from_env_key_and_email() -> None:
    creds = credentials_from_env({"CF_API_KEY": API_KEY, "CF_API_EMAIL": API_EMAIL})
    assert (creds.api_key, creds.api_email, creds.method) == (API_KEY, API_EMAIL, "global-key")


def test_credentials_from_env_token_wins() -> None:
    env = {"CLOUDFLARE_API_TOKEN": TOKEN, "CF_API_KEY": API_KEY, "CF_API_EMAIL": API_EMAIL}
    assert credentials_from_env(env).method == "token"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["CLOUDFLARE_API_TOKEN", "CF_API_KEY", "CF_API_EMAIL"]),
        ({"CLOUDFLARE_API_TOKEN": "  "}, ["CLOUDFLARE_API_TOKEN"]),
        ({"CF_API_KEY": API_KEY}, ["CF_API_EMAIL", "CLOUDFLARE_API_TOKEN"]),
        ({"CF_API_EMAIL": API_EMAIL}, ["CF_API_KEY", "CLOUDFLARE_API_TOKEN"]),
    ],
)
def test_credentials_from_env_missing(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(MissingCredentials) as info:
        credentials_from_env(env)
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value)
    for value in env.values():
        if value.strip():
            assert value not in str(info.value)


def test_credentials_repr_hides_secrets() -> None:
    for creds in (
        CloudflareCredentials(api_token=TOKEN),
        CloudflareCredentials(api_key=API_KEY, api_email=API_EMAIL),
    ):
        text = repr(creds)
        assert TOKEN not in text and API_KEY not in text and API_EMAIL not in text


def test_credentials_need_token_or_key_pair() -> None:
    with pytest.raises(ValueError, match="api_token"):
        CloudflareCredentials(api_key=API_KEY)


# -- fault injection: every odd answer is a ProviderError, never a bare exception --------------


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def timed_cf(make_cf: MakeProvider, fake_time: FakeTime) -> CloudflareProvider:
    """A provider on fake time (no real sleeping), one try per call."""
    p = make_cf()
    p.clock = fake_time.clock
    p.retry = CallRetry(attempts=1)
    return p


def _list_requests(stub: CloudflareStub) -> int:
    return stub.count("GET", RECORDS_ROUTE)


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [(400, 9005, "9005"), (403, 10000, "CLOUDFLARE_API_TOKEN")],
)
async def test_nth_create_fails_permanently(
    stub: CloudflareStub, timed_cf: CloudflareProvider, status: int, code: int, hint: str
) -> None:
    rule = stub.inject("create", nth=2, status=status, code=code, message="injected")
    [first] = await timed_cf.apply([Change("create", _rec(f"a.{ZONE}", "192.0.2.1"), "t")])
    [second] = await timed_cf.apply([Change("create", _rec(f"b.{ZONE}", "192.0.2.2"), "t")])
    [third] = await timed_cf.apply([Change("create", _rec(f"c.{ZONE}", "192.0.2.3"), "t")])
    assert first.ok and third.ok
    assert second.error is not None and second.error.transient is False
    assert f"HTTP {status}" in str(second.error) and hint in str(second.error)
    assert (rule.seen, rule.hits) == (3, 1)
    assert sorted(r["name"] for r in stub.records(ZONE)) == [f"a.{ZONE}", f"c.{ZONE}"]


@pytest.mark.parametrize(("status", "code"), [(400, 9005), (403, 10000), (500, None)])
async def test_delete_fails(
    stub: CloudflareStub, timed_cf: CloudflareProvider, status: int, code: int | None
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    [current] = await timed_cf.records(www)
    stub.inject("delete", status=status, code=code)
    [out] = await timed_cf.apply([Change("delete", current, "t")])
    assert out.error is not None and out.error.transient is (status >= 500)
    assert len(stub.records(ZONE)) == 1  # an error answer changes nothing


async def test_retry_after_seconds_holds_every_call(
    stub: CloudflareStub, timed_cf: CloudflareProvider, fake_time: FakeTime
) -> None:
    www = f"www.{ZONE}"
    await timed_cf.zone_id()
    stub.inject("list", status=429, retry_after=60)
    with pytest.raises(ProviderError, match="Retry-After 60 s") as info:
        await timed_cf.records(www)
    assert info.value.transient and info.value.retry_after == 60.0
    assert timed_cf.retry_wait() == 60.0
    # no read, no write goes out before the instant, in this pass or the next
    with pytest.raises(ProviderError, match=r"60\.0 s to go"):
        await timed_cf.records(www)
    [out] = await timed_cf.apply([Change("create", _rec(www, "192.0.2.1"), "t")])
    assert out.error is not None and out.error.transient and out.error.retry_after == 60.0
    with pytest.raises(ProviderError, match="to go"):
        await timed_cf.check(www)
    assert _list_requests(stub) == 1 and stub.count("POST", RECORDS_ROUTE) == 0
    fake_time.advance(60)
    assert await timed_cf.records(www) == []
    assert fake_time.slept == []


async def test_retry_after_http_date(
    stub: CloudflareStub, timed_cf: CloudflareProvider, fake_time: FakeTime
) -> None:
    await timed_cf.zone_id()
    stub.inject("create", status=429, retry_after=WALL_START + timedelta(seconds=90))
    [out] = await timed_cf.apply([Change("create", _rec(f"www.{ZONE}", "192.0.2.1"), "t")])
    assert out.error is not None and out.error.retry_after == 90.0
    assert "Retry-After Sun, 01 Mar 2026 12:01:30 GMT (90 s from now)" in str(out.error)
    assert timed_cf.retry_wait() == 90.0


async def test_retry_after_obsolete_date_and_5xx(
    stub: CloudflareStub, timed_cf: CloudflareProvider
) -> None:
    await timed_cf.zone_id()
    stub.inject("list", status=503, retry_after="Sunday, 01-Mar-26 12:00:30 GMT")
    with pytest.raises(ProviderError, match="HTTP 503") as info:
        await timed_cf.records(f"www.{ZONE}")
    assert info.value.transient and info.value.retry_after == 30.0


async def test_retry_after_short_is_slept_within_the_call(
    stub: CloudflareStub, make_cf: MakeProvider, fake_time: FakeTime
) -> None:
    p = make_cf()
    p.clock = fake_time.clock
    await p.zone_id()
    stub.inject("list", status=429, retry_after=7)
    assert await p.records(f"www.{ZONE}") == []
    assert fake_time.slept == [7.0]
    assert _list_requests(stub) == 2


async def test_retry_after_garbage_is_ignored(
    stub: CloudflareStub, timed_cf: CloudflareProvider
) -> None:
    await timed_cf.zone_id()
    stub.inject("list", status=429, retry_after="soon")
    with pytest.raises(ProviderError, match=r"Retry-After 'soon' \(unreadable, ignored\)") as info:
        await timed_cf.records(f"www.{ZONE}")
    assert info.value.transient and info.value.retry_after is None
    assert timed_cf.retry_wait() == 0.0


@pytest.mark.parametrize("malformed", MALFORMED)
async def test_malformed_list_answer_is_a_failed_read(
    stub: CloudflareStub, timed_cf: CloudflareProvider, malformed: Any
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    await timed_cf.zone_id()
    stub.inject("list", malformed=malformed)
    with pytest.raises(ProviderError, match="malformed answer") as info:
        await timed_cf.records(www)
    assert info.value.transient is True
    assert [r.content for r in await timed_cf.records(www)] == ["192.0.2.1"]


async def test_ttl_as_numeric_string_is_read_as_the_sdk_parses_it(
    stub: CloudflareStub, timed_cf: CloudflareProvider
) -> None:
    """The SDK turns "300" into 300.0 (lenient parsing); that is a readable TTL."""
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1", ttl=300)
    await timed_cf.zone_id()
    stub.inject("list", malformed="ttl-string")  # "automatic": not a number
    with pytest.raises(ProviderError, match="ttl 'automatic'"):
        await timed_cf.records(www)
    [rec] = await timed_cf.records(www)
    assert rec.ttl == 300


@pytest.mark.parametrize(
    "malformed",
    [m for m in MALFORMED if m not in ("no-result-info", "ttl-string")],
)
async def test_malformed_create_answer_is_transient_and_retry_is_safe(
    stub: CloudflareStub, timed_cf: CloudflareProvider, malformed: Any
) -> None:
    www = f"www.{ZONE}"
    await timed_cf.zone_id()
    stub.inject("create", malformed=malformed)
    change = Change("create", _rec(www, "192.0.2.1"), "t")
    [out] = await timed_cf.apply([change])
    assert out.error is not None and out.error.transient
    assert "malformed answer" in str(out.error)
    # the stand-in did make it: the retry answers "exists", which is success
    [out] = await timed_cf.apply([change])
    assert out.ok and timed_cf.audit.recent[-1]["outcome"] == "already-done"
    assert len(stub.records(ZONE)) == 1


@pytest.mark.parametrize(
    "malformed", ["non-json", "html", "success-false", "no-result", "null-result", "id-missing"]
)
async def test_malformed_delete_answer_is_transient_and_retry_is_safe(
    stub: CloudflareStub, make_cf: MakeProvider, fake_time: FakeTime, malformed: Any
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    p = make_cf()
    p.clock = fake_time.clock  # retried within the call, no real sleeping
    [current] = await p.records(www)
    stub.inject("delete", malformed=malformed)
    [out] = await p.apply([Change("delete", current, "t")])
    assert out.ok and p.audit.recent[-1]["outcome"] == "already-done"
    assert stub.records(ZONE) == []
    assert len(fake_time.slept) == 1  # one malformed answer, one retry


@pytest.mark.parametrize("malformed", ["non-json", "html", "success-false", "no-result"])
async def test_malformed_zone_lookup_is_transient(
    stub: CloudflareStub, timed_cf: CloudflareProvider, malformed: Any
) -> None:
    stub.inject("zones", malformed=malformed)
    with pytest.raises(ProviderError, match=r"look up zone.*malformed answer") as info:
        await timed_cf.records(f"www.{ZONE}")
    assert info.value.transient is True
    assert await timed_cf.zone_id() == stub.state.zone_id(ZONE)


def _seed(stub: CloudflareStub, name: str, n: int) -> None:
    for i in range(n):
        stub.add_record(ZONE, name, "A", f"198.51.100.{i}" if i < 100 else f"203.0.113.{i}")


@pytest.mark.usefixtures("pages_of_100")
@pytest.mark.parametrize(
    ("pager", "message", "requests"),
    [
        ("ignore-page", "asked for page 2, got page 1", 2),
        ("small-per-page", "asked for 100 per page, got 50", 1),
        ("short-page", "page 1 holds 50 items", 1),
        ("total-count", "page 2 holds 30 items", 2),
        ("total-pages", "130 items cannot make 3 pages", 1),
    ],
)
async def test_inconsistent_pages_are_a_failed_read(
    stub: CloudflareStub,
    timed_cf: CloudflareProvider,
    pager: Any,
    message: str,
    requests: int,
) -> None:
    name = f"big.{ZONE}"
    _seed(stub, name, 130)
    await timed_cf.zone_id()
    stub.inject("list", pager=pager, times=None)
    with pytest.raises(ProviderError, match=message) as info:
        await timed_cf.records(name)
    assert info.value.transient is True
    assert _list_requests(stub) == requests  # bounded: never asked for ever
    stub.clear_faults()
    assert len(await timed_cf.records(name)) == 130


@pytest.mark.parametrize("pager", ["total-count", "total-pages"])
async def test_an_empty_name_with_inconsistent_totals_is_not_read_as_empty(
    stub: CloudflareStub, timed_cf: CloudflareProvider, pager: Any
) -> None:
    await timed_cf.zone_id()
    stub.inject("list", pager=pager)
    with pytest.raises(ProviderError, match="malformed answer"):
        await timed_cf.records(f"www.{ZONE}")


async def test_a_server_ignoring_page_is_fine_for_a_single_page(
    stub: CloudflareStub, timed_cf: CloudflareProvider
) -> None:
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    await timed_cf.zone_id()
    stub.inject("list", pager="ignore-page", times=None)
    assert [r.content for r in await timed_cf.records(www)] == ["192.0.2.1"]


@pytest.mark.usefixtures("pages_of_100")
async def test_pages_are_bounded(
    stub: CloudflareStub, timed_cf: CloudflareProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"big.{ZONE}"
    _seed(stub, name, 130)
    monkeypatch.setattr(cloudflare_provider, "MAX_PAGES", 1)
    with pytest.raises(ProviderError, match="2 pages, more than the 1 goavail reads"):
        await timed_cf.records(name)
    assert _list_requests(stub) == 1


@pytest.mark.parametrize(
    ("content", "rtype", "needle"),
    [("2001:db8::1", "A", "content '2001:db8::1'"), ("192.0.2.1", "AAAA", "content")],
)
async def test_address_of_the_wrong_family_is_malformed(
    stub: CloudflareStub, timed_cf: CloudflareProvider, content: str, rtype: str, needle: str
) -> None:
    www = f"www.{ZONE}"
    rid = stub.add_record(ZONE, www, "TXT", "placeholder")
    with stub.state.lock:  # a record the real API would never hold
        rec = stub.state.records_by_zone[stub.state.zone_id(ZONE)][rid]
        rec.type, rec.content = rtype, content
    with pytest.raises(ProviderError, match=needle):
        await timed_cf.records(www)


async def test_watch_sees_the_zone_after_every_call(
    stub: CloudflareStub, timed_cf: CloudflareProvider
) -> None:
    """The stand-in's per-call hook, as the "never empty a name" suite uses it."""
    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1")
    await timed_cf.zone_id()
    seen: list[tuple[str, int]] = []

    def at_www(entry: RequestLogEntry, zones: dict[str, list[dict[str, Any]]]) -> None:
        seen.append((entry.method, sum(r["name"] == www for r in zones[ZONE])))

    stub.watch(at_www)
    [current] = await timed_cf.records(www)
    out = await timed_cf.apply(
        [Change("create", _rec(www, "192.0.2.2"), "t"), Change("delete", current, "t")]
    )
    assert all(o.ok for o in out)
    assert seen == [("GET", 1), ("POST", 2), ("DELETE", 1)]
    assert min(n for _, n in seen) >= 1
    assert stub.watch_errors == []


# -- the invariant after every single API call, under the stand-in's own faults ------------

NEVER_EMPTY_FAULTS: dict[str, list[dict[str, Any]]] = {
    "1st-create-9005": [{"op": "create", "status": 400, "code": 9005}],
    "2nd-create-10000": [{"op": "create", "nth": 2, "status": 403, "code": 10000}],
    "create-9005-then-429": [
        {"op": "create", "status": 400, "code": 9005},
        {"op": "create", "nth": 2, "status": 429, "retry_after": 1},
    ],
    "create-429-http-date": [
        {"op": "create", "status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    ],
    "delete-503": [{"op": "delete", "status": 503}],
    **{f"create-{kind}": [{"op": "create", "malformed": kind}] for kind in MALFORMED},
    **{f"list-{kind}": [{"op": "list", "malformed": kind}] for kind in MALFORMED},
    **{f"list-{kind}": [{"op": "list", "pager": kind}] for kind in PAGER},
}


@pytest.mark.parametrize("fault", NEVER_EMPTY_FAULTS)
async def test_no_name_is_left_empty_after_any_request(
    stub: CloudflareStub, make_cf: MakeProvider, fault: str
) -> None:
    """www holds A1 and A4, api holds A1; A1 and A4 go down, A2 is up. Under each fault
    the stand-in served over HTTP (through the SDK), the zone is read after every single
    request: no name ever has zero A records, and DNS converges once the fault is spent."""
    www, api = f"www.{ZONE}", f"api.{ZONE}"
    a1, a2, a4 = "192.0.2.1", "192.0.2.2", "192.0.2.4"
    for name, address in ((www, a1), (www, a4), (api, a1)):
        stub.add_record(ZONE, name, "A", address)
    counts: list[dict[str, int]] = []

    def watch(entry: Any, zones: dict[str, list[dict[str, Any]]]) -> None:
        records = zones.get(ZONE, [])
        counts.append(
            {n: sum(1 for r in records if r["name"] == n and r["type"] == "A") for n in (www, api)}
        )

    stub.watch(watch)
    rules = [stub.inject(**rule) for rule in NEVER_EMPTY_FAULTS[fault]]
    p = make_cf()
    p.retry = CallRetry(attempts=2, base=0.01, cap=0.02, max_retry_after=0.0)
    now = [1000.0]  # a provider clock that the test moves: no real waiting for Retry-After

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    p.clock = Clock(monotonic=lambda: now[0], sleep=sleep)
    rec = Reconciler(
        p,
        names=[www, api],
        addresses=[a1, a2, a4],
        decisions={a1: State.DOWN, a2: State.UP, a4: State.DOWN},
        ttl=300,
        proxied=False,
        resync_interval=60.0,
        jitter=lambda: 0.0,
    )
    results = []
    for _ in range(6):
        now[0] += 400.0  # past any Retry-After (capped at 300 s)
        results.append(await rec.reconcile_once())
        if results[-1] and rec.converged:
            break
    assert stub.watch_errors == []
    assert counts, "the watch saw no request"
    assert min(min(c.values()) for c in counts) >= 1, counts
    assert results[-1] and rec.converged, (results, rec.last_error)
    assert all(rule.hits >= 1 for rule in rules)  # every fault was served
    final = stub.records(ZONE)
    assert {r["content"] for r in final if r["name"] == www} == {a2}
    assert {r["content"] for r in final if r["name"] == api} == {a2}


async def test_proxied_names_are_verified_through_the_api_not_dns(
    stub: CloudflareStub, make_cf: MakeProvider
) -> None:
    """Served-answer verification (issue 15) of a proxied name: Cloudflare answers DNS
    queries for it with its own edge addresses, so the verifier reads the record through
    the API instead and never asks a name server. The withdrawal of 192.0.2.2 is reported
    lagging while the API still lists it, and propagated once it is gone."""
    from goavail.config.verify import VerifySection
    from goavail.dns.plan import NameSpec
    from goavail.dns.propagation import API
    from goavail.dns.reconcile import PassOutcome
    from goavail.dns.verifier import Verifier

    www = f"www.{ZONE}"
    stub.add_record(ZONE, www, "A", "192.0.2.1", proxied=True)
    gone = stub.add_record(ZONE, www, "A", "192.0.2.2", proxied=True)
    provider = make_cf(proxied=True)
    clock = [0.0]
    asked: list[str] = []
    lags: list[tuple[str, bool]] = []

    async def ask(source: str, key: object, *, query_timeout: float, retries: int) -> object:
        asked.append(source)  # never: a proxied name is not asked over DNS
        raise AssertionError("a name server was asked about a proxied name")

    reads = 0
    real_records_for = provider.records_for

    async def counted_records_for(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        clock[0] += 0.5
        if reads == 4:  # the API stops listing the withdrawn record after 4 reads
            with stub.state.lock:
                stub.state.records_by_zone[stub.state.zone_id(ZONE)].pop(gone)
        return await real_records_for(*args, **kwargs)

    provider.records_for = counted_records_for  # type: ignore[method-assign]
    verifier = Verifier(
        "cloudflare",
        VerifySection(servers=["127.0.0.1:53"], limit=1.0, interval=0.01),
        zone=ZONE,
        provider=provider,
        resync_interval=60.0,
        on_lag=lambda _, lag, on: lags.append((lag.source, on)),
        monotonic=lambda: clock[0],
        ask=ask,
    )
    spec = NameSpec(www, (("192.0.2.1", "192.0.2.2"),), proxied=True)
    runner = asyncio.create_task(verifier.run())
    try:
        verifier.offer(
            PassOutcome(
                {www: [Record(www, "A", "192.0.2.1", proxied=True)]},
                (spec,),
                (),
                {(www, "A"): 0.0},
                0.0,
            )
        )
        async with asyncio.timeout(10):
            while verifier.view().count == 0:
                await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert asked == []
    assert lags == [(API, True), (API, False)]
    assert reads >= 4
    [state] = verifier.answer(www)
    assert state.planned == {"192.0.2.1"} and state.behind == ()
