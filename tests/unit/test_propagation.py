"""The pure core of served-answer verification (goavail.dns.propagation), table-driven."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from goavail.config import ConfigError, load_config
from goavail.config.providers import RFC2136Section
from goavail.config.verify import split_server
from goavail.dns.audit import AuditLog
from goavail.dns.model import Record
from goavail.dns.propagation import (
    API,
    Expectation,
    Key,
    Lag,
    Served,
    Tracker,
    agrees,
    bucket_index,
    describe_served,
    expectations,
    lag_changes,
    round_delay,
)
from goavail.dns.providers.memory import MemoryProvider
from goavail.dns.reconcile import PassOutcome, Reconciler
from goavail.health import State
from goavail.notify import events as notify_events

WWW = "www.example.test"
A1, A2, OTHER = "192.0.2.1", "192.0.2.2", "192.0.2.99"
P, S = "127.0.0.1:5301", "127.0.0.1:5302"
KEY: Key = (WWW, "A")


def exp(planned: set[str], sources: tuple[str, ...] = (P, S)) -> Expectation:
    return Expectation(KEY, frozenset(planned), frozenset({A1, A2}), sources)


@pytest.mark.parametrize(
    ("planned", "served", "expected"),
    [
        ({A1, A2}, Served(frozenset({A1, A2})), True),
        ({A1}, Served(frozenset({A1, A2})), False),  # still serves the withdrawn one
        ({A1}, Served(frozenset({A1, OTHER})), True),  # unmanaged addresses are ignored
        ({A1}, Served(frozenset()), False),
        (set(), Served(frozenset({OTHER})), True),
        ({A1}, Served(frozenset({A1}), error="timeout"), False),
        ({A1}, Served(error="SERVFAIL"), False),
    ],
)
def test_agrees_on_managed_addresses_only(
    planned: set[str], served: Served, expected: bool
) -> None:
    assert agrees(exp(planned), served) is expected


def test_withdrawal_is_propagated_only_when_the_last_server_serves_it() -> None:
    t = Tracker(limit=60)
    t.expect([exp({A1})], now=10.0, decided_at={KEY: 9.5})
    assert t.due() == [(KEY, P), (KEY, S)]
    t.observe(KEY, P, Served(frozenset({A1})), 10.1)
    t.observe(KEY, S, Served(frozenset({A1, A2})), 10.1)  # the secondary is behind
    assert t.take_propagated() == []
    assert t.due() == [(KEY, S)]
    assert t.state()[0].behind == (S,)
    t.observe(KEY, S, Served(frozenset({A1})), 12.0)
    [done] = t.take_propagated()
    assert (done.key, done.seconds, done.last) == (KEY, 2.5, S)
    assert t.settled() and t.take_propagated() == []


def test_a_resync_rechecks_every_server_without_a_propagation_time() -> None:
    t = Tracker(limit=60)
    t.expect([exp({A1})], now=0.0)
    for source in (P, S):
        t.observe(KEY, source, Served(frozenset({A1})), 1.0)
    [done] = t.take_propagated()
    assert done.seconds is None  # no decision behind it
    t.expect([exp({A1})], now=30.0)  # the same answer: a resync
    assert t.due() == [(KEY, P), (KEY, S)]
    t.observe(KEY, P, Served(frozenset({A1})), 30.1)
    t.observe(KEY, S, Served(frozenset({A1, A2})), 30.1)  # drifted
    assert t.state()[0].sources[S].behind_since == 30.1
    assert t.lagging(90.0) == {}
    assert list(t.lagging(90.2)) == [S]


@pytest.mark.parametrize(
    ("now", "lagging"),
    [(70.0, []), (70.5, [S]), (200.0, [S])],
)
def test_lagging_past_the_limit_names_the_server(now: float, lagging: list[str]) -> None:
    t = Tracker(limit=60)
    t.expect([exp({A1})], now=10.0, decided_at={KEY: 10.0})
    t.observe(KEY, P, Served(frozenset({A1})), 10.1)
    t.observe(KEY, S, Served(frozenset({A1, A2})), 10.1)
    assert list(t.lagging(now)) == lagging
    if lagging:
        lag = t.lagging(now)[S]
        assert lag.keys == (KEY,) and lag.since == 10.0
        assert lag.detail == f"serves {A1}, {A2}"
    assert t.next_deadline() == 70.0


def test_a_new_answer_keeps_the_lag_of_a_server_that_never_caught_up() -> None:
    t = Tracker(limit=60)
    t.expect([exp({A1})], now=0.0, decided_at={KEY: 0.0})
    t.observe(KEY, P, Served(frozenset({A1})), 0.1)
    t.observe(KEY, S, Served(frozenset({A1, A2})), 0.1)
    t.expect([exp({A2})], now=50.0, decided_at={KEY: 50.0})  # changes faster than the limit
    t.observe(KEY, P, Served(frozenset({A2})), 50.1)
    t.observe(KEY, S, Served(frozenset({A1, A2})), 50.1)
    assert list(t.lagging(61.0)) == [S]  # behind since 0, not since 50
    assert t.state()[0].sources[P].behind_since is None


def test_unknown_keys_and_sources_are_ignored_and_dropped_keys_forgotten() -> None:
    t = Tracker(limit=60)
    t.expect([exp({A1})], now=0.0)
    other: Key = ("other.example.test", "A")
    t.observe(other, P, Served(), 1.0)
    t.observe(KEY, "127.0.0.9:53", Served(), 1.0)
    assert t.due() == [(KEY, P), (KEY, S)]
    t.expect([], now=2.0)
    assert t.due() == [] and t.state() == [] and t.settled()


@pytest.mark.parametrize(
    ("before", "after", "started", "recovered"),
    [
        ({}, {"a": "x"}, ["a"], []),
        ({"a": "x"}, {}, [], ["a"]),
        ({"a": "x"}, {"a": "y", "b": "z"}, ["b"], []),
        ({}, {}, [], []),
    ],
)
def test_lag_changes(
    before: dict[str, str], after: dict[str, str], started: list[str], recovered: list[str]
) -> None:
    def lags(d: dict[str, str]) -> dict[str, Lag]:
        return {s: Lag(s, (KEY,), 0.0, detail) for s, detail in d.items()}

    s, r = lag_changes(lags(before), lags(after))
    assert [lag.source for lag in s] == started
    assert [lag.source for lag in r] == recovered


@pytest.mark.parametrize(
    ("n", "interval", "limit", "expected"),
    [
        (1, 1.0, 60.0, 1.0),
        (2, 1.0, 60.0, 1.5),
        (3, 1.0, 60.0, 2.25),
        (20, 1.0, 60.0, 30.0),  # at most 30 s
        (20, 1.0, 10.0, 5.0),  # at most half the limit
        (20, 10.0, 4.0, 10.0),  # never below the interval
        (0, 0.5, 60.0, 0.5),
    ],
)
def test_round_delay(n: int, interval: float, limit: float, expected: float) -> None:
    assert round_delay(n, interval, limit) == pytest.approx(expected)


def test_expectations_per_family_with_managed_addresses_and_sources() -> None:
    v6 = "2001:db8::1"
    found = expectations(
        records={WWW: [A1, OTHER, v6], "api.example.test": [A1]},
        managed={WWW: (A1, A2, v6), "api.example.test": (A1,), "none.example.test": (A1,)},
        sources={WWW: (P, S), "api.example.test": (API,)},
    )
    assert found == [
        Expectation((WWW, "A"), frozenset({A1}), frozenset({A1, A2}), (P, S)),
        Expectation((WWW, "AAAA"), frozenset({v6}), frozenset({v6}), (P, S)),
        Expectation(("api.example.test", "A"), frozenset({A1}), frozenset({A1}), (API,)),
    ]


@pytest.mark.parametrize(
    ("seconds", "index"), [(0.0, 0), (0.05, 0), (0.051, 1), (600.0, 12), (601.0, 13)]
)
def test_bucket_index(seconds: float, index: int) -> None:
    assert bucket_index(seconds) == index


@pytest.mark.parametrize(
    ("served", "text"),
    [
        (None, "not asked yet"),
        (Served(error="timeout after 2s"), "no answer: timeout after 2s"),
        (Served(), "serves no address"),
        (Served(frozenset({A2, A1})), f"serves {A1}, {A2}"),
    ],
)
def test_describe_served(served: Served | None, text: str) -> None:
    assert describe_served(served) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5300", ("192.0.2.53", 5300)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:DB8::53]:54", ("2001:db8::53", 54)),
    ],
)
def test_split_server(text: str, expected: tuple[str, int]) -> None:
    assert split_server(text) == expected


@pytest.mark.parametrize(
    "text", ["ns1.example.test", "192.0.2.1:0", "[2001:db8::1]", "192.0.2.4:x"]
)
def test_split_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_server(text)


BASE = {"server": "127.0.0.1", "zone": "example.test"}


@pytest.mark.parametrize(
    ("verify", "on", "servers"),
    [
        (None, False, None),
        (False, False, None),
        (True, True, []),
        ({"servers": ["127.0.0.1:5301", "127.0.0.1"]}, True, ["127.0.0.1:5301", "127.0.0.1:53"]),
        ({"servers": ["127.0.0.1"], "enabled": False}, False, None),
    ],
)
def test_verify_config_shapes(verify: object, on: bool, servers: list[str] | None) -> None:
    data = dict(BASE) if verify is None else {**BASE, "verify": verify}
    section = RFC2136Section.model_validate(data)
    settings = section.verification()
    assert (settings is not None) is on
    if settings is not None:
        assert settings.servers == servers and settings.limit == 60.0


# -- the reconciler's hook, the notification, the config's key paths -------------------------


def _reconciler(dry_run: bool, clock: list[float], seen: list[PassOutcome]) -> Reconciler:
    provider = MemoryProvider(
        dry_run=dry_run, audit=AuditLog(), records=[Record(WWW, "A", a) for a in (A1, A2)]
    )
    return Reconciler(
        provider,
        names=[WWW],
        addresses=[A1, A2],
        decisions={A1: State.UP, A2: State.DOWN},
        ttl=60,
        proxied=None,
        resync_interval=60.0,
        monotonic=lambda: clock[0],
        on_pass=seen.append,
    )


async def test_each_pass_hands_its_outcome_with_the_decision_time() -> None:
    clock: list[float] = [100.0]
    seen: list[PassOutcome] = []
    rec = _reconciler(False, clock, seen)
    clock[0] = 105.0
    rec.trigger()  # the decision wakes the reconciler at 105
    clock[0] = 107.0
    assert await rec.reconcile_once()
    [outcome] = seen
    assert [(c.action, c.record.content) for c in outcome.made] == [("delete", A2)]
    assert outcome.decided_at == {KEY: 105.0}
    assert [r.content for r in outcome.records[WWW]] == [A1]
    assert outcome.at == 107.0
    assert await rec.reconcile_once()  # a resync: nothing made, nothing decided
    assert seen[1].made == () and seen[1].decided_at == {}


async def test_dry_run_hands_nothing_to_verify() -> None:
    seen: list[PassOutcome] = []
    rec = _reconciler(True, [0.0], seen)
    assert await rec.reconcile_once()
    assert seen == []


@pytest.mark.parametrize(
    ("lagging", "kind", "text"),
    [
        (
            True,
            "propagation_lagging",
            f"PROPAGATION LAGGING at rfc2136: server {S} has not served the planned answer "
            f"of {WWW} A for more than 60s (serves {A1}, {A2})",
        ),
        (
            False,
            "propagation_recovered",
            f"propagation recovered at rfc2136: server {S} serves the planned answers again",
        ),
    ],
)
def test_the_notification_names_the_server(lagging: bool, kind: str, text: str) -> None:
    lag = Lag(S, (KEY,), 1.0, f"serves {A1}, {A2}")
    event = notify_events.propagation(
        "rfc2136", lag, lagging=lagging, limit=60.0, now=datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert event.kind == kind
    assert event.fields["server"] == S and event.fields["names"] == [f"{WWW} A"]
    assert notify_events.describe(event) == text


def test_verify_problems_are_listed_with_their_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "goavail.toml"
    path.write_text(
        "[RFC2136]\n"
        'server = "127.0.0.1"\nzone = "example.test"\n'
        'hostnames = ["www"]\nip_addresses = ["192.0.2.1"]\n'
        'verify = { servers = ["ns1.example.test", "192.0.2.53:99999"], limit = "10ms", '
        "retries = -1, colour = 1 }\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = info.value.problems
    assert len(found) == 5
    for where in ("servers[0]", "servers[1]", "limit", "retries", "colour"):
        assert any(p.startswith(f"RFC2136.verify.{where}:") for p in found), (where, found)


async def test_the_verifier_reports_a_lagging_server_then_its_recovery() -> None:
    """The verifier's loop with a scripted ``ask`` and a clock that moves 0.5 s per query:
    the secondary serves the old answer for its first 6 queries, then the new one."""
    from goavail.config.verify import VerifySection
    from goavail.dns.verifier import Verifier
    from goavail.dns.verifiers import VerifierSet

    clock = [0.0]
    asked: dict[str, int] = {P: 0, S: 0}

    async def ask(source: str, key: Key, *, query_timeout: float, retries: int) -> Served:
        asked[source] += 1
        clock[0] += 0.5
        old = source == S and asked[S] <= 6
        return Served(frozenset({A1, A2} if old else {A1}))

    lags: list[tuple[str, bool]] = []
    settings = VerifySection(servers=[P, S], limit=1.0, interval=0.01)
    provider = MemoryProvider(dry_run=False, audit=AuditLog())

    def build(name: str, section: object, prov: object) -> Verifier:
        return Verifier(
            name,
            settings,
            zone="example.test",
            provider=provider,
            resync_interval=60.0,
            on_lag=lambda _, lag, on: lags.append((lag.source, on)),
            monotonic=lambda: clock[0],
            ask=ask,
        )

    section = RFC2136Section.model_validate({**BASE, "verify": {"servers": [P, S]}})
    verifiers = VerifierSet(build, dry_run=False)
    verifiers.reconfigure({"rfc2136": section}, {"rfc2136": provider}, 60.0)
    runner = asyncio.create_task(verifiers.run())
    from goavail.dns.plan import NameSpec

    spec = NameSpec(WWW, ((A1, A2),))
    verifiers.offer(
        "rfc2136",
        PassOutcome({WWW: [Record(WWW, "A", A1)]}, (spec,), (), {KEY: 0.0}, 0.0),
    )
    verifier = verifiers.verifiers["rfc2136"]
    while verifier.view().count == 0:
        await asyncio.sleep(0.01)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert lags == [(S, True), (S, False)]
    view = verifier.view()
    assert view.count == 1 and view.lagging == {}
    # decided at 0; the secondary's 7th answer (the first new one) came at 0.5 + 7 * 0.5
    assert view.seconds_sum == 4.0
    [state] = verifiers.answer(WWW)["rfc2136"]
    assert state.planned == {A1} and state.behind == ()
