"""The Cloudflare API stand-in, exercised only through the official ``cloudflare`` SDK.

If the SDK parses its answers and raises the same exceptions (with the same
Cloudflare error codes) as against api.cloudflare.com, the provider tests that
run against the stand-in mean something. The ``/__stub__`` control routes are
not Cloudflare API; they are driven with plain httpx.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare.types.dns.record_response import AAAARecord, ARecord

from tests.cfstub import CloudflareStub, RequestLogEntry

ZONE = "example.test"
TOKEN = "stub-token-for-tests"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[CloudflareStub]:
    with CloudflareStub(token=TOKEN, api_key="gk-123", api_email="me@example.test") as s:
        yield s


@pytest.fixture
def stub(server: CloudflareStub) -> CloudflareStub:
    server.reset()
    server.state.legacy_exists_code = False
    return server


@pytest.fixture
def zone_id(stub: CloudflareStub) -> str:
    return stub.add_zone(ZONE)


@pytest.fixture
def cf(stub: CloudflareStub) -> Iterator[cloudflare.Cloudflare]:
    client = cloudflare.Cloudflare(api_token=TOKEN, base_url=stub.base_url, max_retries=0)
    yield client
    client.close()


def _codes(exc: cloudflare.APIError) -> list[int | None]:
    return [e.code for e in exc.errors]


def test_base_url_is_loopback(stub: CloudflareStub) -> None:
    assert stub.base_url.startswith("http://127.0.0.1:")
    assert stub.base_url.endswith("/client/v4")


# -- zones --------------------------------------------------------------------------------


def test_zones_by_name(stub: CloudflareStub, cf: cloudflare.Cloudflare) -> None:
    zid = stub.add_zone(ZONE)
    stub.add_zone("other.test")
    assert stub.add_zone("Example.Test.") == zid  # idempotent, normalised
    zones = list(cf.zones.list(name=ZONE))
    assert [(z.id, z.name, z.status) for z in zones] == [(zid, ZONE, "active")]
    assert list(cf.zones.list(name="missing.test")) == []
    assert {z.name for z in cf.zones.list()} == {ZONE, "other.test"}
    assert cf.zones.get(zone_id=zid) is not None


def test_zones_pagination_envelope(stub: CloudflareStub, cf: cloudflare.Cloudflare) -> None:
    for i in range(12):
        stub.add_zone(f"z{i:02}.test")
    page = cf.zones.list(per_page=5, page=3)
    assert [z.name for z in page.result] == ["z10.test", "z11.test"]
    assert page.result_info is not None
    assert (page.result_info.page, page.result_info.per_page) == (3, 5)
    assert len(list(cf.zones.list(per_page=5))) == 12


def test_unknown_zone_is_7003(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as info:
        list(cf.dns.records.list(zone_id="0" * 32))
    assert 7003 in _codes(info.value)


# -- records ------------------------------------------------------------------------------


def test_create_get_and_fields(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    rec = cf.dns.records.create(
        zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=300, proxied=True
    )
    assert isinstance(rec, ARecord)
    assert (rec.name, rec.content, rec.ttl, rec.proxied) == (f"www.{ZONE}", "192.0.2.1", 300, True)
    assert len(rec.id) == 32 and rec.created_on and rec.modified_on
    got = cf.dns.records.get(rec.id, zone_id=zone_id)
    assert isinstance(got, ARecord) and got.id == rec.id
    v6 = cf.dns.records.create(
        zone_id=zone_id, name=f"www.{ZONE}", type="AAAA", content="2001:DB8:0::1", ttl=1
    )
    assert isinstance(v6, AAAARecord) and v6.content == "2001:db8::1"


def test_apex_name(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    rec = cf.dns.records.create(zone_id=zone_id, name="@", type="A", content="192.0.2.1", ttl=1)
    assert rec is not None and rec.name == ZONE


def test_identical_record_is_81058(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    www = f"www.{ZONE}"
    cf.dns.records.create(zone_id=zone_id, name=www, type="A", content="192.0.2.1", ttl=1)
    with pytest.raises(cloudflare.BadRequestError) as info:
        cf.dns.records.create(zone_id=zone_id, name=www, type="A", content="192.0.2.1", ttl=1)
    assert info.value.status_code == 400
    assert _codes(info.value) == [81058]
    assert info.value.errors[0].message == "An identical record already exists."


def test_identical_record_legacy_81057(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    stub.state.legacy_exists_code = True
    stub.add_record(ZONE, "www", "A", "192.0.2.1")
    with pytest.raises(cloudflare.BadRequestError) as info:
        cf.dns.records.create(
            zone_id=zone_id, name=f"www.{ZONE}", type="A", content="192.0.2.1", ttl=1
        )
    assert _codes(info.value) == [81057]


def test_invalid_content_and_ttl(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as info:
        cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="2001:db8::1", ttl=1)
    assert 9005 in _codes(info.value)
    with pytest.raises(cloudflare.BadRequestError) as info:
        cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=7)
    assert 9021 in _codes(info.value)


def test_cname_conflicts_with_address(zone_id: str, cf: cloudflare.Cloudflare) -> None:
    cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=1)
    with pytest.raises(cloudflare.BadRequestError) as info:
        cf.dns.records.create(zone_id=zone_id, name="www", type="CNAME", content="x.test", ttl=1)
    assert _codes(info.value) == [81053]


def test_list_filters(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    stub.add_record(ZONE, "www", "A", "192.0.2.1")
    stub.add_record(ZONE, "www", "A", "192.0.2.2", proxied=True)
    stub.add_record(ZONE, "www", "AAAA", "2001:db8::1")
    stub.add_record(ZONE, "www", "TXT", "hello")
    stub.add_record(ZONE, "wwwx", "A", "192.0.2.1")
    www = f"www.{ZONE}"

    def keys(page: object) -> set[tuple[str, str, str | None]]:
        return {(r.name, r.type, r.content) for r in page}  # type: ignore[attr-defined]

    by_name = cf.dns.records.list(zone_id=zone_id, name={"exact": www})
    assert len(keys(by_name)) == 4
    assert keys(cf.dns.records.list(zone_id=zone_id, name={"exact": "WWW.example.test"})) == keys(
        by_name
    )
    assert keys(cf.dns.records.list(zone_id=zone_id, name={"exact": www}, type="A")) == {
        (www, "A", "192.0.2.1"),
        (www, "A", "192.0.2.2"),
    }
    only = cf.dns.records.list(zone_id=zone_id, content={"exact": "192.0.2.1"}, type="A")
    assert keys(only) == {(www, "A", "192.0.2.1"), (f"wwwx.{ZONE}", "A", "192.0.2.1")}
    assert len(keys(cf.dns.records.list(zone_id=zone_id, name={"startswith": "www"}))) == 5
    assert keys(cf.dns.records.list(zone_id=zone_id, name={"exact": www}, proxied=True)) == {
        (www, "A", "192.0.2.2")
    }
    either = cf.dns.records.list(
        zone_id=zone_id, type="TXT", content={"exact": "2001:db8::1"}, match="any"
    )
    assert keys(either) == {(www, "TXT", "hello"), (www, "AAAA", "2001:db8::1")}


def test_pagination(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    for i in range(120):
        stub.add_record(ZONE, "many", "A", f"10.0.{i // 250}.{i % 250}")
    first = cf.dns.records.list(zone_id=zone_id, per_page=50)
    assert first.result_info is not None
    assert (first.result_info.page, first.result_info.per_page) == (1, 50)
    assert len(first.result) == 50
    raw = cf.dns.records.with_raw_response.list(zone_id=zone_id, per_page=50, page=3)
    info = raw.http_response.json()["result_info"]
    assert info == {"page": 3, "per_page": 50, "count": 20, "total_count": 120, "total_pages": 3}
    stub.clear_log()
    everything = list(cf.dns.records.list(zone_id=zone_id, per_page=50))
    assert len({r.id for r in everything}) == 120
    # pages 1, 2, 3 and the empty page 4 that ends the SDK's auto-paging
    assert stub.count("GET", "/zones/{zone_id}/dns_records") == 4


def test_delete(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    rid = stub.add_record(ZONE, "www", "A", "192.0.2.1")
    gone = cf.dns.records.delete(rid, zone_id=zone_id)
    assert gone is not None and gone.id == rid
    assert stub.records(ZONE) == []
    with pytest.raises(cloudflare.NotFoundError) as info:
        cf.dns.records.delete(rid, zone_id=zone_id)
    assert _codes(info.value) == [81044]
    assert info.value.errors[0].message == "Record does not exist."
    with pytest.raises(cloudflare.NotFoundError):
        cf.dns.records.get(rid, zone_id=zone_id)


def test_patch_and_put(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    rid = stub.add_record(ZONE, "www", "A", "192.0.2.1", ttl=300, proxied=True)
    patched = cf.dns.records.edit(rid, zone_id=zone_id, name=f"www.{ZONE}", type="A", ttl=120)
    assert patched is not None
    assert (patched.content, patched.ttl, patched.proxied) == ("192.0.2.1", 120, True)
    put = cf.dns.records.update(
        rid, zone_id=zone_id, name=f"www.{ZONE}", type="A", content="192.0.2.9", ttl=60
    )
    assert put is not None
    assert (put.content, put.ttl, put.proxied) == ("192.0.2.9", 60, False)  # PUT replaces
    assert [r["content"] for r in stub.records(ZONE)] == ["192.0.2.9"]
    with pytest.raises(cloudflare.NotFoundError):
        cf.dns.records.edit("f" * 32, zone_id=zone_id, name="www", type="A", ttl=1)


def test_batch(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    a = stub.add_record(ZONE, "www", "A", "192.0.2.1")
    b = stub.add_record(ZONE, "www", "A", "192.0.2.2")
    c = stub.add_record(ZONE, "www", "A", "192.0.2.3")
    out = cf.dns.records.batch(
        zone_id=zone_id,
        deletes=[{"id": a}],
        patches=[{"id": b, "name": "www", "type": "A", "ttl": 120}],
        puts=[{"id": c, "name": "www", "type": "A", "content": "192.0.2.4", "ttl": 1}],
        posts=[{"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 1}],  # a was deleted
    )
    assert out is not None
    assert [r.id for r in out.deletes or []] == [a]
    assert [r.ttl for r in out.patches or []] == [120]
    assert [r.content for r in out.puts or []] == ["192.0.2.4"]
    assert [r.content for r in out.posts or []] == ["192.0.2.1"]
    assert sorted(r["content"] for r in stub.records(ZONE)) == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.4",
    ]


def test_batch_is_atomic(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    a = stub.add_record(ZONE, "www", "A", "192.0.2.1")
    before = stub.records(ZONE)
    with pytest.raises(cloudflare.NotFoundError) as info:
        cf.dns.records.batch(
            zone_id=zone_id,
            deletes=[{"id": a}, {"id": "0" * 32}],
            posts=[{"name": "new", "type": "A", "content": "192.0.2.5", "ttl": 1}],
        )
    assert _codes(info.value) == [81044]
    assert stub.records(ZONE) == before
    with pytest.raises(cloudflare.BadRequestError) as info2:
        cf.dns.records.batch(
            zone_id=zone_id,
            posts=[
                {"name": "new", "type": "A", "content": "192.0.2.5", "ttl": 1},
                {"name": "www", "type": "A", "content": "192.0.2.1", "ttl": 1},
            ],
        )
    assert _codes(info2.value) == [81058]
    assert stub.records(ZONE) == before


# -- authentication -----------------------------------------------------------------------


def test_wrong_token_is_403_10000(stub: CloudflareStub, zone_id: str) -> None:
    bad = cloudflare.Cloudflare(api_token="nope", base_url=stub.base_url, max_retries=0)
    with pytest.raises(cloudflare.PermissionDeniedError) as info:
        list(bad.zones.list())
    assert info.value.status_code == 403 and _codes(info.value) == [10000]


def test_global_key_auth(stub: CloudflareStub, zone_id: str) -> None:
    good = cloudflare.Cloudflare(
        api_key="gk-123", api_email="me@example.test", base_url=stub.base_url, max_retries=0
    )
    assert [z.id for z in good.zones.list(name=ZONE)] == [zone_id]
    bad = cloudflare.Cloudflare(
        api_key="gk-999", api_email="me@example.test", base_url=stub.base_url, max_retries=0
    )
    with pytest.raises(cloudflare.PermissionDeniedError) as info:
        list(bad.zones.list())
    assert _codes(info.value) == [9103]


# -- faults and counters --------------------------------------------------------------------


def test_fail_next_statuses(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    stub.fail_next(1, 429)
    stub.fail_next(1, 500)
    stub.fail_next(1, 503)
    with pytest.raises(cloudflare.RateLimitError) as rl:
        cf.zones.list()
    assert rl.value.response.headers["Retry-After"] == "1"
    assert _codes(rl.value) == [971]
    with pytest.raises(cloudflare.InternalServerError) as e500:
        cf.zones.list()
    assert e500.value.status_code == 500 and _codes(e500.value) == [10001]
    with pytest.raises(cloudflare.InternalServerError) as e503:
        cf.zones.list()
    assert e503.value.status_code == 503  # an HTML page, as Cloudflare's edge sends
    assert [z.id for z in cf.zones.list(name=ZONE)] == [zone_id]


def test_error_rate_is_reproducible(stub: CloudflareStub, cf: cloudflare.Cloudflare) -> None:
    def run() -> list[str]:
        seen = []
        for _ in range(40):
            try:
                cf.zones.list()
                seen.append("ok")
            except cloudflare.APIStatusError as exc:
                seen.append(str(exc.status_code))
        return seen

    stub.set_faults(0.5, statuses=(429, 502), seed=7)
    first = run()
    stub.set_faults(0.5, statuses=(429, 502), seed=7)
    assert run() == first
    assert {"ok", "429", "502"} <= set(first)
    stub.set_faults(1.0, statuses=(500,))
    with pytest.raises(cloudflare.InternalServerError):
        cf.zones.list()
    stub.clear_faults()
    cf.zones.list()


def test_delay_causes_sdk_timeout(stub: CloudflareStub) -> None:
    client = cloudflare.Cloudflare(
        api_token=TOKEN, base_url=stub.base_url, max_retries=0, timeout=0.2
    )
    stub.set_faults(0.0, delay=1.0)
    with pytest.raises(cloudflare.APITimeoutError):
        client.zones.list()
    stub.set_faults(0.0, delay=0.05)
    client.zones.list()
    client.close()


def test_set_faults_validates(stub: CloudflareStub) -> None:
    with pytest.raises(ValueError, match="error_rate"):
        stub.set_faults(1.5)
    with pytest.raises(ValueError, match="delay"):
        stub.set_faults(0.0, delay=-1)


def test_request_counter(stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare) -> None:
    cf.zones.list(name=ZONE)
    cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=1)
    stub.fail_next(1, 429)
    with pytest.raises(cloudflare.RateLimitError):
        cf.dns.records.list(zone_id=zone_id)
    assert stub.count("GET", "/zones") == 1
    assert stub.count("POST", "/zones/{zone_id}/dns_records") == 1
    assert stub.count("GET", "/zones/{zone_id}/dns_records") == 1  # faulted ones count
    assert stub.count() == 3
    assert [e.status for e in stub.requests] == [200, 200, 429]
    assert {e.remote for e in stub.requests} == {"127.0.0.1"}  # who sent each request


# -- per-operation faults and the per-call watcher ----------------------------------------------

RECORDS = "/zones/{zone_id}/dns_records"


def test_inject_hits_the_nth_request_of_one_operation(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    rule = stub.inject("create", nth=2, times=2, status=400, code=9005, message="bad content")
    cf.zones.list()  # other operations are not counted
    statuses: list[tuple[int, list[int | None]]] = []
    for i in range(5):
        try:
            cf.dns.records.create(
                zone_id=zone_id, name=f"h{i}", type="A", content="192.0.2.1", ttl=1
            )
            statuses.append((200, []))
        except cloudflare.BadRequestError as exc:
            statuses.append((400, _codes(exc)))
    assert statuses == [(200, []), (400, [9005]), (400, [9005]), (200, []), (200, [])]
    assert (rule.seen, rule.hits) == (5, 2)
    assert len(stub.records(ZONE)) == 3  # a faulted create makes nothing
    assert stub.state.snapshot()["faults"]["rules"][0]["hits"] == 2


def test_inject_for_ever_and_any(stub: CloudflareStub, zone_id: str) -> None:
    cf = cloudflare.Cloudflare(api_token=TOKEN, base_url=stub.base_url, max_retries=0)
    stub.inject("any", times=None, status=403, code=10000, message="Authentication error")
    for _ in range(3):
        with pytest.raises(cloudflare.PermissionDeniedError):
            cf.dns.records.list(zone_id=zone_id)
    with pytest.raises(cloudflare.PermissionDeniedError):
        cf.zones.list()
    stub.clear_faults()
    assert list(cf.zones.list(name=ZONE))
    cf.close()


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (60, "60"),
        ("soon", "soon"),
        (datetime(2026, 3, 1, 12, 1, 30, tzinfo=UTC), "Sun, 01 Mar 2026 12:01:30 GMT"),
        (None, "1"),
    ],
)
def test_inject_429_retry_after_forms(
    stub: CloudflareStub,
    zone_id: str,
    cf: cloudflare.Cloudflare,
    retry_after: float | str | datetime | None,
    header: str,
) -> None:
    stub.inject("list", status=429, retry_after=retry_after)
    with pytest.raises(cloudflare.RateLimitError) as info:
        cf.dns.records.list(zone_id=zone_id)
    assert info.value.response.headers["Retry-After"] == header
    assert _codes(info.value) == [971]


def test_inject_5xx_with_retry_after(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    stub.inject("list", status=503, retry_after=30)
    with pytest.raises(cloudflare.InternalServerError) as info:
        cf.dns.records.list(zone_id=zone_id)
    assert info.value.response.headers["Retry-After"] == "30"


def test_malformed_answers_are_served_then_spoiled(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    stub.inject("create", malformed="non-json")
    with pytest.raises(ValueError, match="Expecting"):  # what the SDK raises for it
        cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=1)
    assert len(stub.records(ZONE)) == 1  # the create did happen
    stub.inject("list", malformed="ttl-null")
    page = cf.dns.records.list(zone_id=zone_id)
    assert [r.ttl for r in page.result] == [None]
    stub.inject("list", malformed="success-false")
    page = cf.dns.records.list(zone_id=zone_id)
    assert page.result == [] and (page.model_extra or {})["success"] is False
    stub.inject("list", malformed="no-result")
    assert cf.dns.records.list(zone_id=zone_id).result is None
    assert len(cf.dns.records.list(zone_id=zone_id).result) == 1  # rules hit once by default


@pytest.mark.parametrize(
    ("pager", "page", "per_page", "count", "total_count", "total_pages"),
    [
        (None, 2, 5, 2, 7, 2),
        ("ignore-page", 1, 5, 5, 7, 2),
        ("small-per-page", 2, 5, 2, 7, 2),  # asked 10: 5 per page, says so
        ("short-page", 2, 5, 1, 7, 2),
        ("total-count", 2, 5, 2, 8, 2),
        ("total-pages", 2, 5, 2, 7, 3),
    ],
)
def test_pager_faults(
    stub: CloudflareStub,
    zone_id: str,
    cf: cloudflare.Cloudflare,
    pager: Any,
    page: int,
    per_page: int,
    count: int,
    total_count: int,
    total_pages: int,
) -> None:
    for i in range(7):
        stub.add_record(ZONE, "www", "A", f"192.0.2.{i + 1}")
    asked = 10 if pager == "small-per-page" else 5
    if pager is not None:
        stub.inject("list", pager=pager)
    got = cf.dns.records.list(zone_id=zone_id, page=2, per_page=asked)
    assert got.result_info is not None
    info = got.result_info.model_extra or {}
    assert (got.result_info.page, got.result_info.per_page) == (page, per_page)
    assert len(got.result) == count == info["count"]
    assert (info["total_count"], info["total_pages"]) == (total_count, total_pages)


def test_inject_validates(stub: CloudflareStub) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        stub.inject("list")
    with pytest.raises(ValueError, match="exactly one"):
        stub.inject("list", status=500, pager="short-page")
    with pytest.raises(ValueError, match="unknown operation"):
        stub.inject("update", status=500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown malformed"):
        stub.inject("list", malformed="weird")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4xx or 5xx"):
        stub.inject("list", status=200)
    with pytest.raises(ValueError, match="nth"):
        stub.inject("list", status=500, nth=0)


def test_watch_sees_the_state_after_every_api_call(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    seen: list[tuple[str, str, int, list[str]]] = []

    def watcher(entry: RequestLogEntry, zones: dict[str, list[dict[str, Any]]]) -> None:
        # only this test's record requests: a zone lookup left over from an earlier test's
        # client (the stand-in is shared by the module) may still arrive meanwhile
        if entry.route.startswith(RECORDS):
            seen.append(
                (entry.method, entry.route, entry.status, [r["content"] for r in zones[ZONE]])
            )

    stub.watch(watcher)
    created = cf.dns.records.create(
        zone_id=zone_id, name="www", type="A", content="192.0.2.1", ttl=1
    )
    stub.inject("create", status=429)
    with pytest.raises(cloudflare.RateLimitError):
        cf.dns.records.create(zone_id=zone_id, name="www", type="A", content="192.0.2.2", ttl=1)
    assert created is not None and created.id is not None
    cf.dns.records.delete(created.id, zone_id=zone_id)
    httpx.get(stub.base_url.removesuffix("/client/v4") + "/__stub__/state").raise_for_status()
    assert seen == [
        ("POST", RECORDS, 200, ["192.0.2.1"]),
        ("POST", RECORDS, 429, ["192.0.2.1"]),  # faulted calls are shown too
        ("DELETE", RECORDS + "/{record_id}", 200, []),
    ]  # control routes are not
    stub.unwatch(watcher)
    cf.dns.records.list(zone_id=zone_id)
    assert len(seen) == 3


def test_watch_errors_are_collected(
    stub: CloudflareStub, zone_id: str, cf: cloudflare.Cloudflare
) -> None:
    def never_empty(entry: RequestLogEntry, zones: dict[str, list[dict[str, Any]]]) -> None:
        assert zones[ZONE], f"zone empty after {entry.method} {entry.route}"

    stub.watch(never_empty)
    cf.dns.records.list(zone_id=zone_id)  # still answered
    [error] = stub.watch_errors
    assert isinstance(error, AssertionError) and "zone empty after GET" in str(error)
    stub.reset()
    assert stub.watch_errors == [] and stub.state.watchers == []


def test_inject_over_http_control(stub: CloudflareStub, zone_id: str) -> None:
    control = stub.base_url.removesuffix("/client/v4") + "/__stub__"
    cf = cloudflare.Cloudflare(api_token=TOKEN, base_url=stub.base_url, max_retries=0)
    spec = {"op": "list", "status": 429, "retry_after": 60, "times": 2}
    httpx.post(f"{control}/faults", json={"inject": [spec]}).raise_for_status()
    for _ in range(2):
        with pytest.raises(cloudflare.RateLimitError) as info:
            cf.dns.records.list(zone_id=zone_id)
        assert info.value.response.headers["Retry-After"] == "60"
    cf.dns.records.list(zone_id=zone_id)
    bad = httpx.post(f"{control}/faults", json={"inject": [{"op": "list"}]})
    assert bad.status_code == 400 and "exactly one" in bad.json()["error"]
    [rule] = httpx.get(f"{control}/state").json()["faults"]["rules"]
    assert (rule["op"], rule["hits"], rule["retry_after"]) == ("list", 2, "60")
    cf.close()


# -- as a subprocess ---------------------------------------------------------------------------


def test_subprocess_with_http_control() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cfstub", "--port", "0", "--token", TOKEN, "--zone", ZONE],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/client/v4")
        control = base_url.removesuffix("/client/v4") + "/__stub__"
        cf = cloudflare.Cloudflare(api_token=TOKEN, base_url=base_url, max_retries=0)
        [zone] = list(cf.zones.list(name=ZONE))
        cf.dns.records.create(zone_id=zone.id, name="www", type="A", content="192.0.2.1", ttl=1)

        httpx.post(
            f"{control}/faults", json={"fail_next": {"n": 1, "status": 429}}
        ).raise_for_status()
        with pytest.raises(cloudflare.RateLimitError):
            cf.zones.list()
        httpx.post(
            f"{control}/faults", json={"error_rate": 1.0, "statuses": [502]}
        ).raise_for_status()
        with pytest.raises(cloudflare.InternalServerError):
            cf.zones.list()
        httpx.post(f"{control}/faults", json={"error_rate": 0.0}).raise_for_status()
        new_zone = httpx.post(f"{control}/zones", json={"name": "second.test"}).json()["id"]
        assert [z.id for z in cf.zones.list(name="second.test")] == [new_zone]

        state = httpx.get(f"{control}/state").json()
        [first] = [z for z in state["zones"] if z["name"] == ZONE]
        assert [(r["name"], r["content"]) for r in first["records"]] == [
            (f"www.{ZONE}", "192.0.2.1")
        ]
        counts = {(c["method"], c["route"]): c["count"] for c in state["counts"]}
        # two auto-paged lists (a page and the empty page after it, each), two faults
        assert counts[("GET", "/zones")] == 6
        cf.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
