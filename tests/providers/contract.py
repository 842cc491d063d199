"""One contract test suite that every DNS provider runs (after dns-lexicon's integration_tests).

A provider's test module subclasses :class:`ProviderContract` and defines two
fixtures:

* ``make_provider``: a callable ``make_provider(dry_run: bool) -> Provider``
  (sync or async, see ``_make``) returning a provider bound to one fresh, empty
  backend per test; every call within one test talks to the same backend.
* ``zone``: the zone/domain the backend serves, e.g. ``"example.test"``.

Optional fixtures (when not overridden, the tests needing them are skipped):

* ``inject_transient``: a callable ``inject_transient(n)`` making the next ``n``
  backend requests fail transiently (HTTP 429/5xx, DNS SERVFAIL, ...) through a
  real mechanism (the stand-in's fault injection, a fault-injecting proxy).
* ``backdoor``: a :class:`Backdoor` reaching the backend without the provider,
  to seed and inspect records goavail does not manage (a TXT record at a
  managed name).
* ``second_zone``: another zone the backend serves that the providers made by
  ``make_provider`` also manage (names in two zones read at once); without it,
  names outside ``zone`` must read as no records.

The cases follow dns-lexicon's ``tests/providers/integration_tests.py``: list
(empty, one, a set), create (one, a set built one by one, an existing one),
delete (one of a set, the last one, a missing one), idempotent repeats of a
whole batch, records goavail does not manage left alone (other addresses,
other names, other types), AAAA beside A, dry-run, and transient errors
reported and retried on reads and writes; then the read of many names at once
(:meth:`~goavail.dns.providers.base.Provider.records_for`): many names, names in
two zones, unmanaged records ignored, names without records, dry-run, faults;
then TTL updates (``update`` changes): in place, idempotent, on a missing record,
in dry-run, and under faults while a name is degraded and restored, never leaving
a name without a record.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

import pytest

from goavail.dns.model import Change, Record, RecordType
from goavail.dns.plan import NameSpec
from goavail.dns.providers.base import CallRetry, Provider, ProviderError
from goavail.dns.reconcile import Reconciler
from goavail.health import State


class Backdoor(Protocol):
    """Direct access to a provider's backend (boto3 on moto, dnspython on Knot, ...)."""

    def add_txt(self, name: str, text: str) -> None:
        """Add a TXT record holding ``text`` at ``name`` (fully qualified, no trailing dot)."""

    def txt(self, name: str) -> set[str]:
        """The texts of the TXT records at ``name``."""


async def _make(make_provider: Callable[..., Any], dry_run: bool = False) -> Provider:
    made = make_provider(dry_run)
    if inspect.isawaitable(made):
        made = await made
    assert isinstance(made, Provider)
    return made


A_ONLY: tuple[RecordType, ...] = ("A",)
"""Read only A records (a configuration with IPv4 addresses only)."""


def _rec(name: str, content: str, rtype: RecordType = "A") -> Record:
    return Record(name=name, type=rtype, content=content, ttl=300)


def _keys(records: list[Record]) -> set[tuple[str, str, str]]:
    return {r.key for r in records}


FAULTS: dict[str, dict[tuple[str, int], str]] = {
    "1st-create-permanent": {("_create", 1): "permanent"},
    "2nd-create-permanent": {("_create", 2): "permanent"},
    "1st-create-transient": {("_create", 1): "transient"},
    "1st-create-landed": {("_create", 1): "landed"},
    "1st-create-unexpected": {("_create", 1): "unexpected"},
    "creates-permanent-then-transient": {("_create", 1): "permanent", ("_create", 2): "transient"},
    "1st-delete-permanent": {("_delete", 1): "permanent"},
    "1st-delete-landed": {("_delete", 1): "landed"},
    "every-create-of-a-pass": {("_create", n): "permanent" for n in (1, 2)},
}

TTL_FAULTS: dict[str, dict[tuple[str, int], str]] = {
    "no-fault": {},
    "1st-update-permanent": {("_update_ttl", 1): "permanent"},
    "1st-update-transient": {("_update_ttl", 1): "transient"},
    "1st-update-landed": {("_update_ttl", 1): "landed"},
    "1st-update-unexpected": {("_update_ttl", 1): "unexpected"},
    "2nd-update-landed": {("_update_ttl", 2): "landed"},
    "restoring-updates-permanent": {("_update_ttl", n): "permanent" for n in (3, 4, 5)},
    "update-and-delete-fail": {("_update_ttl", 1): "transient", ("_delete", 1): "landed"},
}
"""Fault scripts of the TTL test: the lowering pass makes updates 1-2 (and a delete), the
restoring pass a create and updates from 3 on (each retried call counts)."""
"""Per-operation fault scripts: (hook, its Nth call) -> what happens to that call."""


class _FaultyHooks:
    """Wraps a provider's ``_create``/``_delete``/``_update_ttl`` with a fault script and,
    after every call, reads the backend through ``observer`` and checks that no managed
    name that had a record lost its last one."""

    def __init__(
        self,
        provider: Provider,
        observer: Provider,
        names: list[str],
        managed: set[str],
        script: dict[tuple[str, int], str],
    ) -> None:
        self.observer, self.names, self.managed, self.script = observer, names, managed, script
        self.counts: Counter[str] = Counter()
        self.calls = 0
        self.smallest: dict[str, int] = {}
        for hook in ("_create", "_delete", "_update_ttl"):
            setattr(provider, hook, self._wrap(hook, getattr(provider, hook)))

    async def snapshot(self) -> dict[str, int]:
        """name -> managed records the backend holds now."""
        out = {}
        for name in self.names:
            records = await self.observer._list(name)
            out[name] = sum(1 for r in records if r.content in self.managed)
        return out

    def _wrap(
        self, hook: str, real: Callable[[Record], Awaitable[None]]
    ) -> Callable[[Record], Awaitable[None]]:
        async def call(record: Record) -> None:
            self.counts[hook] += 1
            fault = self.script.get((hook, self.counts[hook]))
            try:
                if fault in (None, "landed"):
                    await real(record)
            finally:
                self.calls += 1
                counts = await self.snapshot()
                for name, n in counts.items():
                    # recorded, not asserted here: the pass would catch the AssertionError
                    self.smallest[name] = min(self.smallest.get(name, n), n)
            if fault == "permanent":
                raise ProviderError("injected: HTTP 400 code 9005", transient=False)
            if fault in ("transient", "landed"):
                raise ProviderError("injected: HTTP 503 / timeout", transient=True)
            if fault == "unexpected":
                raise KeyError("injected: a malformed answer")

        return call


class ProviderContract:
    """The behaviour every provider must show. See the module docstring for fixtures."""

    @pytest.fixture
    def inject_transient(self) -> Callable[[int], None] | None:
        return None

    @pytest.fixture
    def backdoor(self) -> Backdoor | None:
        return None

    @pytest.fixture
    def second_zone(self) -> str | None:
        return None

    async def test_list_empty_name(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        assert await p.records(f"nothing.{zone}") == []

    async def test_create_then_list(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        out = await p.apply([Change("create", _rec(name, "192.0.2.1"), "test")])
        assert [o.ok for o in out] == [True]
        got = await p.records(name)
        assert _keys(got) == {(name, "A", "192.0.2.1")}
        # a fresh provider on the same backend sees it too: it was really written
        p2 = await _make(make_provider)
        assert _keys(await p2.records(name)) == {(name, "A", "192.0.2.1")}

    async def test_create_existing_is_success(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        change = Change("create", _rec(name, "192.0.2.1"), "test")
        await p.apply([change])
        out = await p.apply([change])
        assert [o.ok for o in out] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"
        assert len(await p.records(name)) == 1

    async def test_delete(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        await p.apply(
            [
                Change("create", _rec(name, "192.0.2.1"), "test"),
                Change("create", _rec(name, "192.0.2.2"), "test"),
            ]
        )
        current = {r.content: r for r in await p.records(name)}
        out = await p.apply([Change("delete", current["192.0.2.1"], "test")])
        assert [o.ok for o in out] == [True]
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.2")}

    async def test_delete_missing_is_success(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        out = await p.apply([Change("delete", _rec(name, "192.0.2.9"), "test")])
        assert [o.ok for o in out] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"

    async def test_unmanaged_records_untouched(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        www, other = f"www.{zone}", f"other.{zone}"
        await p.apply(
            [
                Change("create", _rec(www, "192.0.2.1"), "test"),
                Change("create", _rec(www, "198.51.100.7"), "test"),
                Change("create", _rec(other, "192.0.2.1"), "test"),
            ]
        )
        www_now = {r.content: r for r in await p.records(www)}
        await p.apply([Change("delete", www_now["192.0.2.1"], "test")])
        assert _keys(await p.records(www)) == {(www, "A", "198.51.100.7")}
        assert _keys(await p.records(other)) == {(other, "A", "192.0.2.1")}

    async def test_aaaa(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"v6.{zone}"
        await p.apply(
            [
                Change("create", _rec(name, "2001:db8::1", "AAAA"), "test"),
                Change("create", _rec(name, "2001:db8::2", "AAAA"), "test"),
                Change("create", _rec(name, "192.0.2.1"), "test"),
            ]
        )
        assert _keys(await p.records(name)) == {
            (name, "AAAA", "2001:db8::1"),
            (name, "AAAA", "2001:db8::2"),
            (name, "A", "192.0.2.1"),
        }
        current = {r.content: r for r in await p.records(name)}
        await p.apply([Change("delete", current["2001:db8::1"], "test")])
        assert _keys(await p.records(name)) == {
            (name, "AAAA", "2001:db8::2"),
            (name, "A", "192.0.2.1"),
        }
        # the last AAAA goes, the A stays: the families are separate record sets
        await p.apply([Change("delete", _rec(name, "2001:db8::2", "AAAA"), "test")])
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.1")}
        fresh = await _make(make_provider)
        assert _keys(await fresh.records(name)) == {(name, "A", "192.0.2.1")}

    async def test_aaaa_content_is_canonical(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"v6.{zone}"
        await p.apply([Change("create", _rec(name, "2001:db8::a:0:0:1", "AAAA"), "test")])
        [got] = await (await _make(make_provider)).records(name)
        assert got.key == (name, "AAAA", "2001:db8::a:0:0:1")
        out = await p.apply([Change("create", _rec(name, "2001:db8::a:0:0:1", "AAAA"), "again")])
        assert [o.ok for o in out] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"

    async def test_create_builds_a_set(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            out = await p.apply([Change("create", _rec(name, address), "test")])
            assert [o.ok for o in out] == [True]
            assert p.audit.recent[-1]["outcome"] == "applied"
        expected = {(name, "A", f"192.0.2.{i}") for i in (1, 2, 3)}
        assert _keys(await p.records(name)) == expected
        assert _keys(await (await _make(make_provider)).records(name)) == expected

    async def test_delete_last_record_empties_only_that_name(
        self, make_provider: Any, zone: str
    ) -> None:
        p = await _make(make_provider)
        www, api = f"www.{zone}", f"api.{zone}"
        await p.apply(
            [
                Change("create", _rec(www, "192.0.2.1"), "test"),
                Change("create", _rec(api, "192.0.2.1"), "test"),
            ]
        )
        [record] = await p.records(www)
        out = await p.apply([Change("delete", record, "test")])
        assert [o.ok for o in out] == [True]
        fresh = await _make(make_provider)
        assert await fresh.records(www) == []
        assert _keys(await fresh.records(api)) == {(api, "A", "192.0.2.1")}

    async def test_delete_twice_is_success(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        await p.apply(
            [
                Change("create", _rec(name, "192.0.2.1"), "test"),
                Change("create", _rec(name, "192.0.2.2"), "test"),
            ]
        )
        delete = Change("delete", _rec(name, "192.0.2.1"), "test")
        assert [o.ok for o in await p.apply([delete])] == [True]
        assert p.audit.recent[-1]["outcome"] == "applied"
        assert [o.ok for o in await p.apply([delete])] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.2")}

    async def test_repeating_a_batch_is_idempotent(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        await p.apply([Change("create", _rec(name, "192.0.2.9"), "seed")])
        batch = [
            Change("create", _rec(name, "192.0.2.1"), "test"),
            Change("create", _rec(name, "2001:db8::1", "AAAA"), "test"),
            Change("delete", _rec(name, "192.0.2.9"), "test"),
        ]
        first = await p.apply(batch)
        assert [o.ok for o in first] == [True, True, True]
        after = _keys(await p.records(name))
        assert after == {(name, "A", "192.0.2.1"), (name, "AAAA", "2001:db8::1")}
        second = await (await _make(make_provider)).apply(batch)
        assert [o.ok for o in second] == [True, True, True]
        assert _keys(await p.records(name)) == after

    async def test_other_record_types_untouched(
        self, make_provider: Any, zone: str, backdoor: Backdoor | None
    ) -> None:
        if backdoor is None:
            pytest.skip("this backend holds A and AAAA records only")
        p = await _make(make_provider)
        name = f"www.{zone}"
        backdoor.add_txt(name, "kept by goavail")
        await p.apply(
            [
                Change("create", _rec(name, "192.0.2.1"), "test"),
                Change("create", _rec(name, "192.0.2.2"), "test"),
                Change("create", _rec(name, "2001:db8::1", "AAAA"), "test"),
            ]
        )
        assert {r.type for r in await p.records(name)} == {"A", "AAAA"}
        await p.apply(
            [
                Change("delete", _rec(name, "192.0.2.1"), "test"),
                Change("delete", _rec(name, "192.0.2.2"), "test"),
                Change("delete", _rec(name, "2001:db8::1", "AAAA"), "test"),
            ]
        )
        assert await p.records(name) == []
        assert backdoor.txt(name) == {"kept by goavail"}

    async def test_dry_run_writes_nothing(self, make_provider: Any, zone: str) -> None:
        real = await _make(make_provider)
        name = f"www.{zone}"
        await real.apply([Change("create", _rec(name, "192.0.2.1"), "seed")])
        current = await real.records(name)
        dry = await _make(make_provider, dry_run=True)
        out = await dry.apply(
            [
                Change("create", _rec(name, "192.0.2.2"), "test"),
                Change("delete", current[0], "test"),
            ]
        )
        assert [o.ok for o in out] == [True, True]
        assert [e["outcome"] for e in list(dry.audit.recent)[-2:]] == ["planned", "planned"]
        assert all(e["dry_run"] for e in dry.audit.recent)
        # the dry-run provider shows the would-be state, the backend is unchanged
        assert _keys(await dry.records(name)) == {(name, "A", "192.0.2.2")}
        assert _keys(await real.records(name)) == {(name, "A", "192.0.2.1")}

    async def test_transient_error_reported_then_succeeds(
        self,
        make_provider: Any,
        zone: str,
        inject_transient: Callable[[int], None] | None,
    ) -> None:
        if inject_transient is None:
            pytest.skip("this backend has no transient errors to inject")
        p = await _make(make_provider)
        p.retry = CallRetry(attempts=2, base=0.01, cap=0.02)
        name = f"www.{zone}"
        change = Change("create", _rec(name, "192.0.2.1"), "test")
        inject_transient(2)  # more failures than tries: the error is reported
        out = await p.apply([change])
        assert not out[0].ok
        assert out[0].error is not None and out[0].error.transient
        assert p.audit.recent[-1]["outcome"] == "error"
        out = await p.apply([change])
        assert out[0].ok
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.1")}

    async def test_transient_error_retried_within_the_call(
        self,
        make_provider: Any,
        zone: str,
        inject_transient: Callable[[int], None] | None,
    ) -> None:
        if inject_transient is None:
            pytest.skip("this backend has no transient errors to inject")
        p = await _make(make_provider)
        p.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
        name = f"www.{zone}"
        inject_transient(2)  # fewer failures than tries: absorbed
        out = await p.apply([Change("create", _rec(name, "192.0.2.1"), "test")])
        assert [o.ok for o in out] == [True]
        assert p.audit.recent[-1]["outcome"] in ("applied", "already-done")
        inject_transient(2)
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.1")}

    async def test_transient_error_on_read_retried(
        self,
        make_provider: Any,
        zone: str,
        inject_transient: Callable[[int], None] | None,
    ) -> None:
        if inject_transient is None:
            pytest.skip("this backend has no transient errors to inject")
        p = await _make(make_provider)
        name = f"www.{zone}"
        await p.apply([Change("create", _rec(name, "192.0.2.1"), "seed")])
        p.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
        inject_transient(2)  # absorbed by the retries of one read
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.1")}
        p.retry = CallRetry(attempts=1)
        inject_transient(1)
        with pytest.raises(ProviderError) as info:
            await p.records(name)
        assert info.value.transient
        assert _keys(await p.records(name)) == {(name, "A", "192.0.2.1")}

    # -- reading many names at once (Provider.records_for, what a reconcile pass reads) --

    async def test_records_for_many_names(
        self, make_provider: Any, zone: str, backdoor: Backdoor | None
    ) -> None:
        """Twelve names read at once: each gets exactly its records, a name without any
        gets [], records at names not asked for are left out, duplicates are read once."""
        p = await _make(make_provider)
        names = [f"n{i:02d}.{zone}" for i in range(12)]
        other, empty = f"other.{zone}", f"empty.{zone}"
        changes = [
            Change("create", _rec(n, f"192.0.2.{i + 1}"), "seed") for i, n in enumerate(names)
        ]
        changes += [
            Change("create", _rec(names[0], "192.0.2.100"), "seed"),
            Change("create", _rec(names[0], "2001:db8::1", "AAAA"), "seed"),
            Change("create", _rec(other, "192.0.2.1"), "seed"),
        ]
        assert all(o.ok for o in await p.apply(changes))
        if backdoor is not None:
            backdoor.add_txt(names[1], "not an address")
        fresh = await _make(make_provider)
        got = await fresh.records_for([*names, empty, names[0]])
        assert list(got) == [*names, empty]
        assert got[empty] == []
        assert _keys(got[names[0]]) == {
            (names[0], "A", "192.0.2.1"),
            (names[0], "A", "192.0.2.100"),
            (names[0], "AAAA", "2001:db8::1"),
        }
        for i, name in enumerate(names[1:], start=1):
            assert _keys(got[name]) == {(name, "A", f"192.0.2.{i + 1}")}
        for name in names:  # the same as reading each name alone
            assert _keys(got[name]) == _keys(await fresh.records(name))
        only_a = await fresh.records_for(names, A_ONLY)
        assert {r.type for records in only_a.values() for r in records} == {"A"}
        assert _keys(only_a[names[0]]) == {
            (names[0], "A", "192.0.2.1"),
            (names[0], "A", "192.0.2.100"),
        }
        assert await fresh.records_for(names, ()) == {name: [] for name in names}
        assert await fresh.records_for([]) == {}

    async def test_records_for_names_in_two_zones(
        self, make_provider: Any, zone: str, second_zone: str | None
    ) -> None:
        """Names in two zones read at once (providers covering one zone: a name outside
        it reads as no records, it is not an error)."""
        p = await _make(make_provider)
        names = [f"w{i}.{zone}" for i in range(4)]
        outside = [f"w{i}.outside.invalid" for i in range(3)]
        elsewhere = [f"w{i}.{second_zone}" for i in range(4)] if second_zone else []
        changes = [Change("create", _rec(n, "192.0.2.1"), "seed") for n in names]
        changes += [Change("create", _rec(n, "192.0.2.2"), "seed") for n in elsewhere]
        changes.append(Change("create", _rec(names[0], "192.0.2.3"), "seed"))
        assert all(o.ok for o in await p.apply(changes))
        got = await (await _make(make_provider)).records_for([*names, *elsewhere, *outside])
        assert _keys(got[names[0]]) == {(names[0], "A", "192.0.2.1"), (names[0], "A", "192.0.2.3")}
        for name in names[1:]:
            assert _keys(got[name]) == {(name, "A", "192.0.2.1")}
        for name in elsewhere:
            assert _keys(got[name]) == {(name, "A", "192.0.2.2")}
        assert all(got[name] == [] for name in outside)

    async def test_records_for_in_dry_run_shows_the_would_be_state(
        self, make_provider: Any, zone: str
    ) -> None:
        names = [f"d{i}.{zone}" for i in range(5)]
        real = await _make(make_provider)
        await real.apply([Change("create", _rec(n, "192.0.2.1"), "seed") for n in names])
        dry = await _make(make_provider, dry_run=True)
        out = await dry.apply(
            [
                Change("create", _rec(names[0], "192.0.2.2"), "test"),
                Change("create", _rec(names[1], "2001:db8::2", "AAAA"), "test"),
                Change("delete", _rec(names[2], "192.0.2.1"), "test"),
            ]
        )
        assert [o.ok for o in out] == [True, True, True]
        got = await dry.records_for(names)
        assert _keys(got[names[0]]) == {(names[0], "A", "192.0.2.1"), (names[0], "A", "192.0.2.2")}
        assert _keys(got[names[1]]) == {
            (names[1], "A", "192.0.2.1"),
            (names[1], "AAAA", "2001:db8::2"),
        }
        assert got[names[2]] == []
        only_a = await dry.records_for(names, A_ONLY)
        assert _keys(only_a[names[1]]) == {(names[1], "A", "192.0.2.1")}
        # the backend is unchanged
        assert all(
            _keys(rs) == {(n, "A", "192.0.2.1")}
            for n, rs in (await real.records_for(names)).items()
        )

    async def test_records_for_transient_errors(
        self,
        make_provider: Any,
        zone: str,
        inject_transient: Callable[[int], None] | None,
    ) -> None:
        """A transient fault in a read of many names is retried; when the tries are used
        up the whole read fails (never a partial answer, never "no records")."""
        if inject_transient is None:
            pytest.skip("this backend has no transient errors to inject")
        names = [f"t{i}.{zone}" for i in range(6)]
        seed = await _make(make_provider)
        await seed.apply([Change("create", _rec(n, "192.0.2.1"), "seed") for n in names])
        expected = {n: {(n, "A", "192.0.2.1")} for n in names}
        p = await _make(make_provider)
        p.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
        inject_transient(2)  # absorbed by the retries
        got = await p.records_for(names)
        assert {n: _keys(rs) for n, rs in got.items()} == expected
        p.retry = CallRetry(attempts=1)
        inject_transient(1)
        with pytest.raises(ProviderError) as info:
            await p.records_for(names)
        assert info.value.transient
        got = await p.records_for(names)
        assert {n: _keys(rs) for n, rs in got.items()} == expected

    @pytest.mark.parametrize("fault", [*FAULTS, "backend-transient-1", "backend-transient-3"])
    async def test_never_empties_a_name_under_faults(
        self,
        make_provider: Any,
        zone: str,
        inject_transient: Callable[[int], None] | None,
        fault: str,
    ) -> None:
        """www holds A1 and A4, api holds A1; A1 and A4 are down, A2 is up: the plan
        creates A2 at api then at www, then deletes A1 at api, A1 and A4 at www. Under
        every fault script, no call leaves a name without a managed record, and the
        reconciler converges once the faults are spent."""
        if fault.startswith("backend-") and inject_transient is None:
            pytest.skip("this backend has no transient errors to inject")
        www, api = f"www.{zone}", f"api.{zone}"
        a1, a2, a4 = "192.0.2.1", "192.0.2.2", "192.0.2.4"
        seed = await _make(make_provider)
        await seed.apply(
            [Change("create", _rec(n, a), "seed") for n, a in ((www, a1), (www, a4), (api, a1))]
        )
        p = await _make(make_provider)
        p.retry = CallRetry(attempts=1)
        hooks = _FaultyHooks(
            p, await _make(make_provider), [www, api], {a1, a2, a4}, FAULTS.get(fault, {})
        )
        decisions = {a1: State.DOWN, a2: State.UP, a4: State.DOWN}
        rec = Reconciler(
            p,
            names=[www, api],
            addresses=[a1, a2, a4],
            decisions=decisions,
            ttl=300,
            proxied=None,
            resync_interval=60.0,
            jitter=lambda: 0.0,
        )
        if fault.startswith("backend-"):
            assert inject_transient is not None
            inject_transient(int(fault.rsplit("-", 1)[1]))
        results = [await rec.reconcile_once() for _ in range(5)]
        assert results[-1] and rec.converged, (results, rec.last_error)
        if fault in FAULTS:
            assert not results[0]  # the fault did happen and failed the first pass
        assert hooks.calls >= 5
        assert hooks.smallest == {www: 1, api: 1}  # never 0, and the plan did go down to 1
        assert {r.content for r in await seed.records(www)} == {a2}
        assert {r.content for r in await seed.records(api)} == {a2}

    # -- TTL updates (the "update" change: degraded_ttl) --------------------------------------

    async def test_update_ttl_in_place(
        self, make_provider: Any, zone: str, backdoor: Backdoor | None
    ) -> None:
        """An update gives the record the new TTL and keeps it (and everything else);
        repeating it, or updating a record that is not there, is "already done"."""
        p = await _make(make_provider)
        www, api = f"www.{zone}", f"api.{zone}"
        await p.apply(
            [
                Change("create", _rec(www, "192.0.2.1"), "seed"),
                Change("create", _rec(www, "192.0.2.2"), "seed"),
                Change("create", _rec(www, "2001:db8::1", "AAAA"), "seed"),
                Change("create", _rec(api, "192.0.2.1"), "seed"),
            ]
        )
        if backdoor is not None:
            backdoor.add_txt(www, "kept by goavail")
        [one] = [r for r in await p.records(www) if r.content == "192.0.2.1"]
        out = await p.apply([Change("update", replace(one, ttl=60), "TTL 300 -> 60")])
        assert [o.ok for o in out] == [True]
        assert p.audit.recent[-1]["outcome"] == "applied"
        assert p.audit.recent[-1]["action"] == "update"
        fresh = await (await _make(make_provider)).records_for([www, api])
        ttls = {r.key: r.ttl for r in fresh[www]}
        assert set(ttls) == {
            (www, "A", "192.0.2.1"),
            (www, "A", "192.0.2.2"),
            (www, "AAAA", "2001:db8::1"),
        }
        assert ttls[(www, "A", "192.0.2.1")] == 60
        # a provider keeping record sets changes the set (RFC 2181 §5.2); others one record
        assert ttls[(www, "A", "192.0.2.2")] in (60, 300)
        assert ttls[(www, "AAAA", "2001:db8::1")] == 300  # another set
        assert [r.ttl for r in fresh[api]] == [300]  # another name
        if backdoor is not None:
            assert backdoor.txt(www) == {"kept by goavail"}
        other = await _make(make_provider)
        again = await other.apply([Change("update", Record(www, "A", "192.0.2.1", 60), "again")])
        assert [o.ok for o in again] == [True]
        assert other.audit.recent[-1]["outcome"] == "already-done"
        missing = await p.apply([Change("update", Record(www, "A", "192.0.2.9", 60), "gone")])
        assert [o.ok for o in missing] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"
        assert _keys(await p.records(www)) == set(ttls)

    async def test_update_ttl_repeat_is_already_done(self, make_provider: Any, zone: str) -> None:
        p = await _make(make_provider)
        name = f"www.{zone}"
        await p.apply([Change("create", _rec(name, "192.0.2.1"), "seed")])
        update = Change("update", Record(name, "A", "192.0.2.1", 60), "lower")
        assert [o.ok for o in await p.apply([update])] == [True]
        assert p.audit.recent[-1]["outcome"] == "applied"
        assert [o.ok for o in await p.apply([update])] == [True]
        assert p.audit.recent[-1]["outcome"] == "already-done"
        [got] = await (await _make(make_provider)).records(name)
        assert (got.key, got.ttl) == ((name, "A", "192.0.2.1"), 60)

    async def test_update_ttl_in_dry_run(self, make_provider: Any, zone: str) -> None:
        real = await _make(make_provider)
        name = f"www.{zone}"
        await real.apply([Change("create", _rec(name, "192.0.2.1"), "seed")])
        dry = await _make(make_provider, dry_run=True)
        [record] = await dry.records(name)
        out = await dry.apply([Change("update", replace(record, ttl=60), "lower")])
        assert [o.ok for o in out] == [True]
        assert dry.audit.recent[-1]["outcome"] == "planned"
        assert [r.ttl for r in await dry.records(name)] == [60]  # the would-be state
        assert [r.ttl for r in await real.records(name)] == [300]  # the backend unchanged

    @pytest.mark.parametrize("fault", list(TTL_FAULTS))
    async def test_ttl_changes_never_empty_a_name_under_faults(
        self, make_provider: Any, zone: str, fault: str
    ) -> None:
        """www holds A1, A2 and A4 at TTL 300, with degraded_ttl 60. A4 goes down: A1 and
        A2 get TTL 60 and A4 goes; A4 up again: it comes back and all get 300. Under
        every fault script no call leaves www without a record, and the reconciler
        converges to the TTL the rule wants once the faults are spent."""
        www = f"www.{zone}"
        a1, a2, a4 = "192.0.2.1", "192.0.2.2", "192.0.2.4"
        seed = await _make(make_provider)
        await seed.apply([Change("create", _rec(www, a), "seed") for a in (a1, a2, a4)])
        p = await _make(make_provider)
        p.retry = CallRetry(attempts=1)
        hooks = _FaultyHooks(p, await _make(make_provider), [www], {a1, a2, a4}, TTL_FAULTS[fault])
        decisions = {a1: State.UP, a2: State.UP, a4: State.DOWN}
        rec = Reconciler(
            p,
            names=[],
            addresses=[],
            specs=[NameSpec(www, ((a1, a2, a4),), ttl=300, degraded_ttl=60)],
            decisions=decisions,
            ttl=300,
            proxied=None,
            resync_interval=60.0,
            jitter=lambda: 0.0,
        )
        results = [await rec.reconcile_once() for _ in range(5)]
        assert results[-1] and rec.converged, (results, rec.last_error)
        got = {r.content: r.ttl for r in await seed.records(www)}
        assert got == {a1: 60, a2: 60}
        decisions[a4] = State.UP
        results = [await rec.reconcile_once() for _ in range(5)]
        assert results[-1] and rec.converged, (results, rec.last_error)
        got = {r.content: r.ttl for r in await seed.records(www)}
        assert got == {a1: 300, a2: 300, a4: 300}
        assert hooks.smallest == {www: 2}  # never 0: A4 went, the others stayed throughout
        assert hooks.counts["_update_ttl"] >= 2
