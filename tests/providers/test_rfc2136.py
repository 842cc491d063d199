"""The RFC 2136 provider: the shared contract against a real Knot DNS, plus RFC 2136 specifics.

Each test gets its own ``knotd`` (``tests/knot.py``) on 127.0.0.1 with a
TSIG-protected dynamic zone; the provider talks to it through a DNS-over-TCP
proxy that can answer SERVFAIL or hang up on purpose. Every change is checked
with real, signed DNS queries straight to knotd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record, RecordType
from goavail.dns.providers.base import CallRetry, ProviderError
from goavail.dns.providers.rfc2136 import (
    TSIG_SECRET_ENV,
    MissingTsigSecret,
    Rfc2136Provider,
    TsigKey,
    tsig_from_env,
)
from tests.knot import KEY_NAME, DnsFaultProxy, KnotServer, free_port
from tests.providers.contract import Backdoor, ProviderContract

pytestmark = pytest.mark.netns

ZONE = "example.test"
WWW = f"www.{ZONE}"

MakeProvider = Callable[..., Rfc2136Provider]


def _rec(name: str, content: str, rtype: RecordType = "A") -> Record:
    return Record(name=name, type=rtype, content=content, ttl=300)


@pytest.fixture
def knot() -> Iterator[KnotServer]:
    with KnotServer(
        ZONE,
        records=[
            "alias IN CNAME www",
            "mail IN A 127.0.0.9",
        ],
    ) as server:
        yield server


@pytest.fixture
def proxy(knot: KnotServer) -> Iterator[DnsFaultProxy]:
    with DnsFaultProxy(knot.port, knot.key) as p:
        yield p


@pytest.fixture
async def make(knot: KnotServer, proxy: DnsFaultProxy) -> AsyncIterator[MakeProvider]:
    made: list[Rfc2136Provider] = []

    def make_one(**overrides: Any) -> Rfc2136Provider:
        kwargs: dict[str, Any] = {
            "dry_run": False,
            "audit": AuditLog(),
            "server": "127.0.0.1",
            "port": proxy.port,
            "zone": ZONE,
            "ttl": 60,
            "tsig": TsigKey(KEY_NAME, "hmac-sha256", knot.secret),
            "timeout": 3.0,
        }
        kwargs.update(overrides)
        p = Rfc2136Provider(**kwargs)
        made.append(p)
        return p

    yield make_one
    for p in made:
        await p.close()


class KnotBackdoor:
    """TXT records written with signed updates and read with signed queries, straight to knotd."""

    def __init__(self, knot: KnotServer) -> None:
        self.knot = knot

    def add_txt(self, name: str, text: str) -> None:
        self.knot.update(("add", name, 300, "TXT", f'"{text}"'))

    def txt(self, name: str) -> set[str]:
        return {t.strip('"') for t in self.knot.rdatas(name, "TXT")}


class TestRfc2136Contract(ProviderContract):
    @pytest.fixture
    def zone(self) -> str:
        return ZONE

    @pytest.fixture
    def make_provider(self, make: MakeProvider) -> Callable[[bool], Rfc2136Provider]:
        return lambda dry_run: make(dry_run=dry_run)

    @pytest.fixture
    def inject_transient(self, proxy: DnsFaultProxy) -> Callable[[int], None]:
        def inject(n: int) -> None:
            for i in range(n):
                proxy.fail_next(1, "servfail" if i % 2 == 0 else "close")

        return inject

    @pytest.fixture
    def backdoor(self, knot: KnotServer) -> Backdoor:
        return KnotBackdoor(knot)


# -- what the server holds, seen with real queries -----------------------------------------------


async def test_changes_are_visible_to_real_queries(make: MakeProvider, knot: KnotServer) -> None:
    p = make(ttl=120)
    await p.apply(
        [
            Change("create", Record(WWW, "A", "192.0.2.1"), "t"),
            Change("create", _rec(WWW, "2001:db8::1", "AAAA"), "t"),
        ]
    )
    assert knot.addresses(WWW) == {"192.0.2.1", "2001:db8::1"}
    assert knot.ttl(WWW, "A") == 120  # a new set of a record without a TTL: the configured
    assert knot.ttl(WWW, "AAAA") == 300  # ... with one (the name's, from the planner): its own
    await p.apply([Change("delete", _rec(WWW, "192.0.2.1"), "t")])
    assert knot.addresses(WWW) == {"2001:db8::1"}
    assert knot.rdatas(f"mail.{ZONE}", "A") == {"127.0.0.9"}  # another name, untouched


async def test_ttl_update_replaces_the_set_atomically(make: MakeProvider, knot: KnotServer) -> None:
    """One UPDATE message: the set at the new TTL, every address (managed or not) kept."""
    knot.update(("add", WWW, 3600, "A", "198.51.100.7"), ("add", WWW, 3600, "A", "192.0.2.1"))
    p = make(ttl=60)

    def serial() -> int:
        value: int = knot.query(ZONE, "SOA").answer[0][0].serial
        return value

    before = serial()
    out = await p.apply([Change("update", Record(WWW, "A", "192.0.2.1", 30), "lower")])
    assert [o.ok for o in out] == [True]
    assert knot.rdatas(WWW, "A") == {"198.51.100.7", "192.0.2.1"}
    assert knot.ttl(WWW, "A") == 30
    assert serial() == before + 1  # one update, not a delete and an add


async def test_existing_set_keeps_its_ttl(make: MakeProvider, knot: KnotServer) -> None:
    knot.update(("add", WWW, 3600, "A", "198.51.100.7"))
    p = make(ttl=60)
    [seen] = await p.records(WWW)
    assert (seen.content, seen.ttl) == ("198.51.100.7", 3600)
    await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert knot.rdatas(WWW, "A") == {"198.51.100.7", "192.0.2.1"}
    assert knot.ttl(WWW, "A") == 3600


async def test_refuses_to_add_next_to_a_cname(make: MakeProvider, knot: KnotServer) -> None:
    name = f"alias.{ZONE}"
    [outcome] = await make().apply([Change("create", _rec(name, "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "CNAME" in str(outcome.error)
    assert knot.rdatas(name, "CNAME") == {f"www.{ZONE}."}


async def test_name_outside_the_zone(make: MakeProvider) -> None:
    p = make()
    assert await p.records("www.elsewhere.test") == []
    [outcome] = await p.apply([Change("create", _rec("www.elsewhere.test", "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "outside the zone example.test" in str(outcome.error)


async def test_prerequisite_detects_a_concurrent_change(
    make: MakeProvider, knot: KnotServer, proxy: DnsFaultProxy
) -> None:
    """The update is guarded by the set just read: a change in between makes it fail."""
    knot.update(("add", WWW, 300, "A", "192.0.2.1"))
    p = make()
    p.retry = CallRetry(attempts=1)
    # slip a foreign change in between the provider's read and its update: the
    # proxy relays the read, then this change lands, then the update arrives
    original = proxy._next_fault
    calls = 0

    def between() -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the UPDATE, after the query
            knot.update(("add", WWW, 300, "A", "192.0.2.99"))
        return original()

    proxy._next_fault = between  # type: ignore[method-assign]
    [outcome] = await p.apply([Change("create", _rec(WWW, "192.0.2.2"), "t")])
    proxy._next_fault = original  # type: ignore[method-assign]
    assert outcome.error is not None and outcome.error.transient
    assert "NXRRSET" in str(outcome.error) and "changed" in str(outcome.error)
    assert knot.rdatas(WWW, "A") == {"192.0.2.1", "192.0.2.99"}  # nothing applied blindly
    # the next attempt re-reads and succeeds
    assert [o.ok for o in await p.apply([Change("create", _rec(WWW, "192.0.2.2"), "t")])] == [True]
    assert knot.rdatas(WWW, "A") == {"192.0.2.1", "192.0.2.2", "192.0.2.99"}


# -- errors --------------------------------------------------------------------------------------


async def test_servfail_and_hangup_are_transient(make: MakeProvider, proxy: DnsFaultProxy) -> None:
    p = make()
    p.retry = CallRetry(attempts=1)
    for fault, text in (("servfail", "SERVFAIL"), ("close", "connection closed")):
        proxy.fail_next(1, fault)  # type: ignore[arg-type]
        with pytest.raises(ProviderError, match=text) as info:
            await p.records(WWW)
        assert info.value.transient


async def test_connection_refused_is_transient(make: MakeProvider) -> None:
    p = make(port=free_port())
    p.retry = CallRetry(attempts=1)
    with pytest.raises(ProviderError, match="connection refused") as info:
        await p.records(WWW)
    assert info.value.transient


async def test_wrong_secret_is_permanent_and_never_shown(make: MakeProvider) -> None:
    wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    p = make(tsig=TsigKey(KEY_NAME, "hmac-sha256", wrong))
    [outcome] = await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "BADSIG" in str(outcome.error) and TSIG_SECRET_ENV in str(outcome.error)
    assert wrong not in str(outcome.error) and wrong not in repr(p)


async def test_unknown_key_is_permanent(make: MakeProvider, knot: KnotServer) -> None:
    p = make(tsig=TsigKey("someone-else.", "hmac-sha256", knot.secret))
    with pytest.raises(ProviderError, match="BADKEY") as info:
        await p.records(WWW)
    assert not info.value.transient


async def test_unsigned_update_is_refused_by_the_acl(make: MakeProvider, knot: KnotServer) -> None:
    p = make(tsig=None)
    assert await p.records(f"mail.{ZONE}") != []  # queries need no key
    [outcome] = await p.apply([Change("create", _rec(WWW, "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "NOTAUTH" in str(outcome.error) or "REFUSED" in str(outcome.error)
    assert knot.addresses(WWW) == set()


async def test_wrong_zone_is_permanent_with_a_hint(make: MakeProvider) -> None:
    p = make(zone="other.test")
    [outcome] = await p.apply([Change("create", _rec("www.other.test", "192.0.2.1"), "t")])
    assert outcome.error is not None and not outcome.error.transient
    assert "other.test" in str(outcome.error)


def test_tsig_secret_from_env() -> None:
    assert tsig_from_env({}, None, "hmac-sha256") is None
    key = tsig_from_env({TSIG_SECRET_ENV: " c2VjcmV0\n"}, "k.", "hmac-sha512")
    assert key == TsigKey("k.", "hmac-sha512", "c2VjcmV0")
    assert "c2VjcmV0" not in repr(key)
    with pytest.raises(MissingTsigSecret, match=TSIG_SECRET_ENV):
        tsig_from_env({}, "k.", "hmac-sha256")
    with pytest.raises(MissingTsigSecret, match="not valid base64") as info:
        tsig_from_env({TSIG_SECRET_ENV: "not base64!"}, "k.", "hmac-sha256")
    assert "not base64!" not in str(info.value)


def test_invalid_arguments() -> None:
    common: dict[str, Any] = {"dry_run": True, "audit": AuditLog(), "tsig": None}
    with pytest.raises(ValueError, match="ttl"):
        Rfc2136Provider(**common, server="127.0.0.1", port=53, zone=ZONE, ttl=-1)
    with pytest.raises(ValueError, match="port"):
        Rfc2136Provider(**common, server="127.0.0.1", port=0, zone=ZONE, ttl=60)
    with pytest.raises(ValueError, match="zone"):
        Rfc2136Provider(**common, server="127.0.0.1", port=53, zone="a..b", ttl=60)
    with pytest.raises(ValueError, match="IP"):
        Rfc2136Provider(**common, server="ns1.example.test", port=53, zone=ZONE, ttl=60)


@pytest.mark.netns
async def test_the_ns_set_of_a_zone_is_resolved_through_the_configured_resolver() -> None:
    """``verify = true`` asks the zone's NS set (issue 15): its NS names and their
    addresses, resolved through ``[...] verify resolver``; here a real knotd answers for
    the zone (``@ NS ns1``, ``ns1 A 127.0.0.1``, and ``ns2 AAAA ::1`` added), so the set is
    both addresses on port 53. A zone it has no NS set for is an error, not an empty set."""
    import dns.exception

    from goavail.dns.verifier import resolve_ns_set

    with KnotServer("example.test", records=["@ IN NS ns2", "ns2 IN AAAA ::1"]) as knot:
        servers = await resolve_ns_set("example.test", [knot.address], 2.0)
        assert servers == ("127.0.0.1:53", "[::1]:53")
        with pytest.raises(dns.exception.DNSException):
            await resolve_ns_set("elsewhere.test", [knot.address], 0.5)
