"""The Route 53 provider: the shared contract against moto's server, plus Route 53 specifics.

boto3 talks HTTP to a real moto server on 127.0.0.1 through a fault-injecting
proxy (``tests/route53_server.py``), reached through ``AWS_ENDPOINT_URL_ROUTE_53``
only — the provider never passes an endpoint. Record sets are seeded and read
back with a second, plain boto3 client talking to moto directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record, RecordType
from goavail.dns.providers.base import CallRetry, ProviderError
from goavail.dns.providers.route53 import Route53Provider, _retry_after, decode_name
from goavail.dns.reconcile import Reconciler
from goavail.health import State
from tests.providers.contract import Backdoor, ProviderContract
from tests.route53_server import FaultProxy, MotoServer

if TYPE_CHECKING:
    from mypy_boto3_route53.client import Route53Client
    from mypy_boto3_route53.type_defs import ResourceRecordSetTypeDef

pytestmark = pytest.mark.netns

ZONE = "example.test"
OTHER_ZONE = "example.org"
WWW = f"www.{ZONE}"

MakeProvider = Callable[..., Route53Provider]


def _rec(name: str, content: str, rtype: RecordType = "A") -> Record:
    return Record(name=name, type=rtype, content=content, ttl=300)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as p:
        yield p


@pytest.fixture
def aws_env(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """boto3's standard variables only: fake keys, the proxy as Route 53's endpoint."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAGOAVAILTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "goavail-test-secret-key")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", proxy.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def direct(moto: MotoServer, proxy: FaultProxy) -> Route53Client:
    """A plain boto3 client on moto itself (no proxy, no faults), moto emptied."""
    moto.reset()
    proxy.clear()
    return boto3.client(
        "route53",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="seed",
        aws_secret_access_key="seed",
    )


@pytest.fixture
def zone_id(direct: Route53Client) -> str:
    """A fresh hosted zone ``example.test`` (its bare ID)."""
    created = direct.create_hosted_zone(Name=ZONE, CallerReference="goavail-test")
    return created["HostedZone"]["Id"].rsplit("/", 1)[-1]


@pytest.fixture
async def make_r53(aws_env: None, zone_id: str) -> AsyncIterator[MakeProvider]:
    made: list[Route53Provider] = []

    def make(**overrides: Any) -> Route53Provider:
        kwargs: dict[str, Any] = {
            "dry_run": False,
            "audit": AuditLog(),
            "zone_name": ZONE,
            "zone_id": zone_id,
            "ttl": 60,
            "region": "us-west-2",
            "request_timeout": 5.0,
        }
        kwargs.update(overrides)
        p = Route53Provider(**kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


def upsert(client: Route53Client, zone_id: str, *sets: ResourceRecordSetTypeDef) -> None:
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": s} for s in sets]},
    )


def sets_at(client: Route53Client, zone_id: str, name: str) -> list[dict[str, Any]]:
    """Every record set at ``name`` as moto holds it (names decoded, no trailing dot)."""
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id):
        for rrset in page["ResourceRecordSets"]:
            if decode_name(rrset["Name"]) == name:
                found.append({**rrset, "Name": decode_name(rrset["Name"])})
    return found


def weighted(ident: str, address: str, weight: int = 1) -> ResourceRecordSetTypeDef:
    """A weighted A set at www."""
    return {
        "Name": WWW,
        "Type": "A",
        "SetIdentifier": ident,
        "Weight": weight,
        "TTL": 60,
        "ResourceRecords": [{"Value": address}],
    }


def values(rrset: dict[str, Any]) -> set[str]:
    return {rr["Value"] for rr in rrset.get("ResourceRecords", [])}


class MotoBackdoor:
    """TXT record sets written and read with boto3 directly on moto."""

    def __init__(self, client: Route53Client, zone_id: str) -> None:
        self.client = client
        self.zone_id = zone_id

    def add_txt(self, name: str, text: str) -> None:
        upsert(
            self.client,
            self.zone_id,
            {"Name": name, "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": f'"{text}"'}]},
        )

    def txt(self, name: str) -> set[str]:
        return {
            v.strip('"')
            for s in sets_at(self.client, self.zone_id, name)
            if s["Type"] == "TXT"
            for v in values(s)
        }


class TestRoute53Contract(ProviderContract):
    @pytest.fixture
    def zone(self) -> str:
        return ZONE

    @pytest.fixture
    def second_zone(self, direct: Route53Client) -> str:
        direct.create_hosted_zone(Name=OTHER_ZONE, CallerReference="goavail-test-other")
        return OTHER_ZONE

    @pytest.fixture
    def make_provider(self, make_r53: MakeProvider) -> Callable[[bool], Route53Provider]:
        # the second zone is looked up by name, the first one's ID is given
        return lambda dry_run: make_r53(dry_run=dry_run, zones={OTHER_ZONE: None})

    @pytest.fixture
    def inject_transient(self, proxy: FaultProxy) -> Callable[[int], None]:
        def inject(n: int) -> None:
            # a mix of what Route 53 sends when busy
            for i in range(n):
                proxy.fail_next(1, ("throttling", "unavailable", "prior-request")[i % 3])

        return inject

    @pytest.fixture
    def backdoor(self, direct: Route53Client, zone_id: str) -> Backdoor:
        return MotoBackdoor(direct, zone_id)


# -- the Go original's record sets --------------------------------------------------------------


async def test_weighted_set_of_the_original_keeps_its_routing(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    # what the Go original UPSERTed: SetIdentifier = short name, Weight 0, its ttl
    original: ResourceRecordSetTypeDef = {
        "Name": WWW,
        "Type": "A",
        "SetIdentifier": "www",
        "Weight": 0,
        "TTL": 30,
        "HealthCheckId": "11111111-2222-3333-4444-555555555555",
        "ResourceRecords": [{"Value": "192.0.2.1"}, {"Value": "198.51.100.7"}],
    }
    upsert(direct, zone_id, original)
    p = make_r53(ttl=300)
    got = await p.records(WWW)
    assert {(r.content, r.ttl, r.id) for r in got} == {
        ("192.0.2.1", 30, "www"),
        ("198.51.100.7", 30, "www"),
    }
    await p.apply([Change("create", _rec(WWW, "192.0.2.2"), "t")])
    [rrset] = sets_at(direct, zone_id, WWW)
    assert values(rrset) == {"192.0.2.1", "192.0.2.2", "198.51.100.7"}
    assert (rrset["SetIdentifier"], rrset["Weight"], rrset["TTL"]) == ("www", 0, 30)
    assert rrset["HealthCheckId"] == original["HealthCheckId"]

    await p.apply([Change("delete", _rec(WWW, "192.0.2.1"), "t")])
    [rrset] = sets_at(direct, zone_id, WWW)
    assert values(rrset) == {"192.0.2.2", "198.51.100.7"}  # the unmanaged value stays
    assert (rrset["SetIdentifier"], rrset["Weight"], rrset["TTL"]) == ("www", 0, 30)

    # a TTL update is one UPSERT of the set: values and routing kept, only the TTL moves
    out = await p.apply([Change("update", Record(WWW, "A", "192.0.2.2", 10), "lower")])
    assert [o.ok for o in out] == [True]
    [rrset] = sets_at(direct, zone_id, WWW)
    assert values(rrset) == {"192.0.2.2", "198.51.100.7"}
    assert (rrset["SetIdentifier"], rrset["Weight"], rrset["TTL"]) == ("www", 0, 10)
    assert rrset["HealthCheckId"] == original["HealthCheckId"]


async def test_several_weighted_sets_new_address_goes_to_the_short_name(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    upsert(
        direct,
        zone_id,
        {
            "Name": WWW,
            "Type": "A",
            "SetIdentifier": "eu",
            "Weight": 50,
            "TTL": 60,
            "ResourceRecords": [{"Value": "192.0.2.1"}],
        },
        {
            "Name": WWW,
            "Type": "A",
            "SetIdentifier": "www",
            "Weight": 10,
            "TTL": 60,
            "ResourceRecords": [{"Value": "192.0.2.2"}],
        },
    )
    p = make_r53()
    await p.apply([Change("create", _rec(WWW, "192.0.2.3"), "t")])
    by_id = {s["SetIdentifier"]: s for s in sets_at(direct, zone_id, WWW)}
    assert values(by_id["www"]) == {"192.0.2.2", "192.0.2.3"}
    assert values(by_id["eu"]) == {"192.0.2.1"}
    # a delete removes the address from the set that holds it; an emptied set goes
    out = await p.apply([Change("delete", _rec(WWW, "192.0.2.1"), "t")])
    assert [o.ok for o in out] == [True]
    assert {s["SetIdentifier"] for s in sets_at(direct, zone_id, WWW)} == {"www"}


async def test_ambiguous_sets_are_a_permanent_error_naming_them(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    upsert(direct, zone_id, weighted("us", "192.0.2.1"), weighted("eu", "192.0.2.2"))
    p = make_r53()
    [outcome] = await p.apply([Change("create", _rec(WWW, "192.0.2.3"), "t")])
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.transient is False
    assert "'us'" in str(outcome.error) and "'eu'" in str(outcome.error)
    assert "'www'" in str(outcome.error)
    assert {v for s in sets_at(direct, zone_id, WWW) for v in values(s)} == {
        "192.0.2.1",
        "192.0.2.2",
    }


async def test_simple_set_keeps_its_ttl_and_unmanaged_values(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    upsert(
        direct,
        zone_id,
        {
            "Name": WWW,
            "Type": "AAAA",
            "TTL": 123,
            "ResourceRecords": [{"Value": "2001:DB8:0::7"}],
        },
    )
    p = make_r53(ttl=60)
    assert [r.key for r in await p.records(WWW)] == [(WWW, "AAAA", "2001:db8::7")]
    await p.apply(
        [
            Change("create", _rec(WWW, "2001:db8::1", "AAAA"), "t"),
            Change("create", Record(WWW, "A", "192.0.2.1"), "t"),  # no TTL of its own
        ]
    )
    by_type = {s["Type"]: s for s in sets_at(direct, zone_id, WWW)}
    assert values(by_type["AAAA"]) == {"2001:DB8:0::7", "2001:db8::1"}  # unmanaged text kept
    assert by_type["AAAA"]["TTL"] == 123
    assert by_type["A"]["TTL"] == 60  # a new set gets the configured ttl
    assert "SetIdentifier" not in by_type["A"]
    await p.apply([Change("delete", _rec(WWW, "2001:db8::1", "AAAA"), "t")])
    assert values(next(s for s in sets_at(direct, zone_id, WWW) if s["Type"] == "AAAA")) == {
        "2001:DB8:0::7"
    }


async def test_alias_sets_are_not_listed_nor_changed(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    alias: ResourceRecordSetTypeDef = {
        "Name": f"api.{ZONE}",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": zone_id,
            "DNSName": WWW,
            "EvaluateTargetHealth": False,
        },
    }
    upsert(direct, zone_id, alias)
    p = make_r53()
    assert await p.records(f"api.{ZONE}") == []
    [outcome] = await p.apply([Change("create", _rec(f"api.{ZONE}", "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "alias" in str(outcome.error)
    [rrset] = sets_at(direct, zone_id, f"api.{ZONE}")
    assert "AliasTarget" in rrset and "ResourceRecords" not in rrset


async def test_wildcard_name(make_r53: MakeProvider, direct: Route53Client, zone_id: str) -> None:
    name = f"*.apps.{ZONE}"
    p = make_r53()
    await p.apply([Change("create", _rec(name, "192.0.2.1"), "t")])
    assert [r.key for r in await p.records(name)] == [(name, "A", "192.0.2.1")]
    assert [s["Type"] for s in sets_at(direct, zone_id, name)] == ["A"]


# -- reading -----------------------------------------------------------------------------------


async def test_list_follows_pagination_and_stops_at_the_next_name(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str, proxy: FaultProxy
) -> None:
    upsert(
        direct,
        zone_id,
        {
            "Name": WWW,
            "Type": "A",
            "TTL": 60,
            "ResourceRecords": [{"Value": f"192.0.2.{i}"} for i in range(1, 6)],
        },
        {"Name": WWW, "Type": "AAAA", "TTL": 60, "ResourceRecords": [{"Value": "2001:db8::1"}]},
        {"Name": WWW, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"x"'}]},
        {"Name": f"a.{WWW}", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.99"}]},
        {
            "Name": f"zzz.{ZONE}",
            "Type": "A",
            "TTL": 60,
            "ResourceRecords": [{"Value": "192.0.2.9"}],
        },
    )
    p = make_r53(page_size=1)
    await p.zone_id()
    proxy.clear()
    got = await p.records(WWW)
    assert {r.key for r in got} == {(WWW, "A", f"192.0.2.{i}") for i in range(1, 6)} | {
        (WWW, "AAAA", "2001:db8::1")
    }
    # one page each for A, AAAA, TXT, then the page of the next name ends the walk
    assert proxy.operations["ListResourceRecordSets"] == 4


async def test_pagination_that_does_not_advance_is_an_error_not_a_loop(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str
) -> None:
    # moto ignores StartRecordIdentifier: with one weighted set per page it serves
    # the same page again and again. Route 53 itself never does; goavail must not hang.
    upsert(direct, zone_id, *(weighted(f"set{i}", f"192.0.2.{i}") for i in (1, 2, 3)))
    with pytest.raises(ProviderError, match="refusing to loop") as info:
        await make_r53(page_size=1).records(WWW)
    assert info.value.transient is False
    assert len(await make_r53().records(WWW)) == 3  # one page: fine


async def test_zone_id_checked_once_and_cached(make_r53: MakeProvider, proxy: FaultProxy) -> None:
    p = make_r53()
    proxy.clear()
    for _ in range(3):
        await p.records(WWW)
    await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert proxy.operations["GetHostedZone"] == 1
    assert proxy.operations["ListHostedZonesByName"] == 0


async def test_zone_looked_up_by_name_without_aws_zoneid(
    make_r53: MakeProvider, zone_id: str, proxy: FaultProxy
) -> None:
    p = make_r53(zone_id=None, zone_name="Example.TEST.")
    assert await p.zone_id() == zone_id
    assert proxy.operations["ListHostedZonesByName"] == 1
    # the original's form with the /hostedzone/ prefix is accepted too
    assert await make_r53(zone_id=f"/hostedzone/{zone_id}").zone_id() == zone_id


async def test_zone_id_of_another_zone_is_refused(
    make_r53: MakeProvider, direct: Route53Client
) -> None:
    other = direct.create_hosted_zone(Name="other.test", CallerReference="o")["HostedZone"]["Id"]
    p = make_r53(zone_id=other)
    with pytest.raises(ProviderError, match=r"other\.test.*example\.test") as info:
        await p.records(WWW)
    assert info.value.transient is False


async def test_missing_zone_is_a_permanent_error(make_r53: MakeProvider) -> None:
    with pytest.raises(ProviderError, match="NoSuchHostedZone") as info:
        await make_r53(zone_id="ZNOSUCHZONE").records(WWW)
    assert info.value.transient is False
    with pytest.raises(ProviderError, match=r"no hosted zone named 'nowhere\.test'") as info:
        await make_r53(zone_id=None, zone_name="nowhere.test").records("www.nowhere.test")
    assert info.value.transient is False


# -- reading every name of a pass at once (records_for) -----------------------------------------


def _seed_names(client: Route53Client, zone_id: str, names: list[str]) -> int:
    """An A set 192.0.2.1 at each of ``names``, 30 A sets and a TXT set goavail does not
    manage; returns the number of record sets in the zone (SOA and NS included)."""
    sets: list[ResourceRecordSetTypeDef] = [
        {"Name": n, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}
        for n in names
    ]
    sets += [
        {
            "Name": f"unmanaged{i}.{ZONE}",
            "Type": "A",
            "TTL": 60,
            "ResourceRecords": [{"Value": f"198.51.100.{i}"}],
        }
        for i in range(30)
    ]
    sets.append(
        {"Name": names[0], "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"note"'}]}
    )
    upsert(client, zone_id, *sets)
    pages = client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
    return sum(len(page["ResourceRecordSets"]) for page in pages)


async def test_a_pass_over_200_names_costs_one_listing_per_page_of_sets(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str, proxy: FaultProxy
) -> None:
    names = [f"host{i:03d}.{ZONE}" for i in range(200)]
    total = _seed_names(direct, zone_id, names)
    assert total == 200 + 30 + 1 + 2  # + TXT, SOA, NS
    p = make_r53()
    await p.zone_id()
    proxy.clear()
    got = await p.records_for(names)
    assert all({r.key for r in got[n]} == {(n, "A", "192.0.2.1")} for n in names)
    assert proxy.operations == {"ListResourceRecordSets": 1}  # 233 sets: one page of 300
    small = make_r53(page_size=50)
    await small.zone_id()
    proxy.clear()
    assert await small.records_for(names) == got
    assert proxy.operations == {"ListResourceRecordSets": -(-total // 50)}
    # a reconcile pass over the 200 names: the same single request
    proxy.clear()
    rec = Reconciler(
        p,
        names=names,
        addresses=["192.0.2.1"],
        decisions={"192.0.2.1": State.UP},
        ttl=60,
        proxied=None,
        resync_interval=60.0,
    )
    assert await rec.reconcile_once() and rec.converged
    assert proxy.operations == {"ListResourceRecordSets": 1}


async def test_names_in_two_hosted_zones(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str, proxy: FaultProxy
) -> None:
    other = direct.create_hosted_zone(Name="example.org", CallerReference="o")["HostedZone"]
    other_id = other["Id"].rsplit("/", 1)[-1]
    here = [f"h{i}.{ZONE}" for i in range(5)]
    there = [f"h{i}.example.org" for i in range(5)]
    _seed_names(direct, zone_id, here)
    sets: list[ResourceRecordSetTypeDef] = [
        {"Name": n, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.2"}]}
        for n in there
    ]
    upsert(direct, other_id, *sets)
    p = make_r53(zones={"example.org": other_id})
    got = await p.records_for([*here, *there, "x.example.net"])
    assert all({r.key for r in got[n]} == {(n, "A", "192.0.2.1")} for n in here)
    assert all({r.key for r in got[n]} == {(n, "A", "192.0.2.2")} for n in there)
    assert got["x.example.net"] == []
    assert proxy.operations["ListResourceRecordSets"] == 2  # one per hosted zone
    assert proxy.operations["GetHostedZone"] == 2  # each configured ID checked once
    proxy.clear()
    await p.records_for([*here, *there])
    assert proxy.operations == {"ListResourceRecordSets": 2}


async def test_a_fault_in_the_middle_of_a_zone_listing_is_a_failed_read(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str, proxy: FaultProxy
) -> None:
    names = [f"host{i:03d}.{ZONE}" for i in range(200)]
    total = _seed_names(direct, zone_id, names)
    p = make_r53(page_size=100)
    await p.zone_id()
    real = p._client.list_resource_record_sets
    calls = 0

    def list_then_fail(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        page = real(**kwargs)
        if calls == 1:
            proxy.fail_next(1, "unavailable")  # the request for page 2 fails
        return page

    p._client.list_resource_record_sets = list_then_fail  # type: ignore[method-assign]
    p.retry = CallRetry(attempts=1)
    with pytest.raises(ProviderError, match="503") as info:
        await p.records_for(names)
    assert info.value.transient
    calls = 0
    proxy.clear()
    p.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
    got = await p.records_for(names)
    assert all({r.key for r in got[n]} == {(n, "A", "192.0.2.1")} for n in names)
    # pages 1, 2 (failed at the proxy, not counted there), 2 again, 3
    assert calls == -(-total // 100) + 1
    assert proxy.operations == {"ListResourceRecordSets": -(-total // 100)}


async def test_a_large_zone_with_few_names_is_read_name_by_name(
    make_r53: MakeProvider, direct: Route53Client, zone_id: str, proxy: FaultProxy
) -> None:
    names = [f"host{i}.{ZONE}" for i in range(3)]
    _seed_names(direct, zone_id, names)  # 36 sets
    p = make_r53(page_size=5)
    await p.zone_id()
    proxy.clear()
    got = await p.records_for(names)
    assert all({r.key for r in got[n]} == {(n, "A", "192.0.2.1")} for n in names)
    # 3 pages of the listing, still not over: then 3 reads of one name each (8 sets in
    # all would have been 8 pages)
    assert proxy.operations == {"ListResourceRecordSets": 3 + 3}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("throttling", "HTTP 400 Throttling"),
        ("prior-request", "HTTP 400 PriorRequestNotComplete"),
        ("unavailable", "HTTP 503 ServiceUnavailable"),
    ],
)
async def test_busy_route53_is_transient(
    make_r53: MakeProvider, proxy: FaultProxy, fault: Any, code: str
) -> None:
    p = make_r53()
    await p.zone_id()
    p.retry = CallRetry(attempts=1)
    proxy.fail_next(1, fault)
    [outcome] = await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert outcome.error is not None and outcome.error.transient
    assert code in str(outcome.error)


async def test_unreachable_endpoint_is_transient(
    make_r53: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.route53_server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", f"http://127.0.0.1:{free_port()}")
    p = make_r53()
    p.retry = CallRetry(attempts=1)
    assert p.endpoint_url.startswith("http://127.0.0.1:")
    with pytest.raises(ProviderError, match="connection error") as info:
        await p.records(WWW)
    assert info.value.transient


async def test_missing_credentials_name_the_variables(
    make_r53: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    p = make_r53()
    with pytest.raises(ProviderError, match="AWS_ACCESS_KEY_ID") as info:
        await p.records(WWW)
    assert info.value.transient is False
    assert "goavail-test-secret-key" not in str(info.value)


def test_secret_not_in_repr(make_r53: MakeProvider) -> None:
    p = make_r53()
    assert "goavail-test-secret-key" not in repr(p)
    assert "AKIAGOAVAILTEST" not in repr(p)


async def test_dry_run_sends_no_change(make_r53: MakeProvider, proxy: FaultProxy) -> None:
    p = make_r53(dry_run=True)
    proxy.clear()
    await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert [r.key for r in await p.records(WWW)] == [(WWW, "A", "192.0.2.1")]
    assert proxy.operations["ChangeResourceRecordSets"] == 0
    assert await make_r53().records(WWW) == []


def test_invalid_arguments(aws_env: None) -> None:
    common: dict[str, Any] = {"dry_run": True, "audit": AuditLog(), "zone_name": ZONE}
    with pytest.raises(ValueError, match="ttl"):
        Route53Provider(**common, zone_id=None, ttl=-1)
    with pytest.raises(ValueError, match="page_size"):
        Route53Provider(**common, zone_id=None, ttl=60, page_size=301)
    with pytest.raises(ValueError, match="request_timeout"):
        Route53Provider(**common, zone_id=None, ttl=60, request_timeout=0)
    # no region anywhere: requests are signed for us-east-1 (Route 53 is global)
    assert Route53Provider(**common, zone_id=None, ttl=60).region == "us-east-1"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after": "30"}, 30.0),
        ({"retry-after": "Sun, 01 Mar 2026 12:00:45 GMT"}, 45.0),
        ({"x-amz-retry-after": "1500"}, 1.5),  # milliseconds, as botocore reads it
        ({"retry-after": "2", "x-amz-retry-after": "4000"}, 4.0),  # the longer wins
        ({"retry-after": "soon", "x-amz-retry-after": "-1"}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert _retry_after(headers, now) == seconds
