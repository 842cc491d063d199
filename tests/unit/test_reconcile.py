"""The reconciler against the in-memory provider: convergence, retries, dry-run, drift."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from goavail.dns.audit import AuditLog
from goavail.dns.model import Change, Record
from goavail.dns.providers.base import RETRY_AFTER_CAP, CallRetry, ProviderError
from goavail.dns.providers.memory import MemoryProvider
from goavail.dns.reconcile import Reconciler, after
from goavail.health import State
from tests.fakeclock import FakeTime

WWW = "www.example.test"
A1, A2, A3 = "192.0.2.1", "192.0.2.2", "192.0.2.3"


def make(
    decisions: dict[str, State],
    present: list[str],
    *,
    dry_run: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[Reconciler, MemoryProvider]:
    provider = MemoryProvider(
        dry_run=dry_run,
        audit=AuditLog(),
        records=[Record(WWW, "A", a, ttl=60) for a in present],
    )
    provider.retry = CallRetry(attempts=1)  # these tests look at pass-level retries
    rec = reconciler(provider, decisions, monotonic)
    return rec, provider


def reconciler(
    provider: MemoryProvider,
    decisions: dict[str, State],
    monotonic: Callable[[], float] = time.monotonic,
) -> Reconciler:
    """A reconciler of www over A1-A3 on ``provider`` (``monotonic``: its clock)."""
    return Reconciler(
        provider,
        names=[WWW],
        addresses=[A1, A2, A3],
        decisions=decisions,
        ttl=60,
        proxied=None,
        resync_interval=60.0,
        jitter=lambda: 0.0,
        monotonic=monotonic,
    )


def is_converged(rec: Reconciler) -> bool:
    """Read ``converged`` (a function call, so mypy does not keep an earlier narrowing)."""
    return rec.converged


def contents(provider: MemoryProvider) -> set[str]:
    return {r.content for r in provider.store.values()}


async def test_withdraws_and_restores() -> None:
    decisions = {A1: State.UP, A2: State.UP, A3: State.UP}
    rec, provider = make(decisions, [A1, A2, A3])
    assert await rec.reconcile_once()
    assert contents(provider) == {A1, A2, A3}
    decisions[A2] = State.DOWN
    assert await rec.reconcile_once()
    assert contents(provider) == {A1, A3}
    decisions[A2] = State.UP
    assert await rec.reconcile_once()
    assert contents(provider) == {A1, A2, A3}
    assert [e["action"] for e in provider.audit.recent] == ["delete", "create"]


async def test_idempotent_second_pass_does_nothing() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP}, [A1, A2])
    assert await rec.reconcile_once()
    calls = len(provider.calls)
    assert await rec.reconcile_once()
    assert [c for c in provider.calls[calls:] if not c.startswith("list")] == []


async def test_transient_errors_retried_until_converged() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    provider.fail_next(3)  # first read, then the next read, then the first write
    results = [await rec.reconcile_once() for _ in range(4)]
    assert results == [False, False, False, True]
    assert rec.retries == 0 and rec.converged and rec.pending == ()
    assert contents(provider) == {A2, A3}


async def test_failed_write_leaves_change_pending() -> None:
    decisions = {A1: State.DOWN, A2: State.UP, A3: State.UP}
    rec, provider = make(decisions, [A1, A2])
    provider.fail_next(1, on="delete", transient=False, message="HTTP 403 forbidden")
    assert not await rec.reconcile_once()
    # the create went through; the delete is still pending and reported
    assert contents(provider) == {A1, A2, A3}
    assert [(c.action, c.record.content) for c in rec.pending] == [("delete", A1)]
    assert rec.retries == 1
    assert rec.last_error is not None and "HTTP 403 forbidden" in rec.last_error
    assert await rec.reconcile_once()
    assert contents(provider) == {A2, A3} and rec.pending == ()


async def test_transient_write_error_stops_the_batch() -> None:
    decisions = {A1: State.DOWN, A2: State.DOWN, A3: State.UP}
    rec, provider = make(decisions, [A1, A2])
    provider.fail_next(1, on="create")
    assert not await rec.reconcile_once()
    # nothing after the rate-limited create was attempted
    assert not [c for c in provider.calls if c.startswith("delete")]
    assert len(rec.pending) == 3
    assert await rec.reconcile_once()
    assert contents(provider) == {A3}


async def test_run_loop_backs_off_and_converges() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP}, [A1, A2])
    provider.fail_next(2)
    task = asyncio.create_task(rec.run())
    try:
        async with asyncio.timeout(10):
            while not rec.converged:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert contents(provider) == {A2}
    assert rec.passes == 3


async def test_trigger_wakes_the_loop() -> None:
    decisions = {A1: State.UP, A2: State.UP}
    rec, provider = make(decisions, [A1, A2])
    task = asyncio.create_task(rec.run())
    try:
        async with asyncio.timeout(5):
            while not rec.converged:
                await asyncio.sleep(0.01)
            decisions[A1] = State.DOWN
            rec.trigger()
            while A1 in contents(provider):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert contents(provider) == {A2}


async def test_resync_repairs_drift() -> None:
    rec, provider = make({A1: State.UP, A2: State.UP}, [A1, A2])
    rec.resync_interval = 0.05
    task = asyncio.create_task(rec.run())
    try:
        async with asyncio.timeout(5):
            while not rec.converged:
                await asyncio.sleep(0.01)
            provider.store.clear()  # someone deleted the records by hand
            while contents(provider) != {A1, A2}:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()


async def test_dry_run_writes_nothing_and_audits_once() -> None:
    decisions = {A1: State.DOWN, A2: State.UP, A3: State.UP}
    rec, provider = make(decisions, [A1, A2], dry_run=True)
    for _ in range(3):
        assert await rec.reconcile_once()
    assert contents(provider) == {A1, A2}  # backend untouched
    assert [(e["action"], e["address"], e["outcome"]) for e in provider.audit.recent] == [
        ("create", A3, "planned"),
        ("delete", A1, "planned"),
    ]
    assert not [c for c in provider.calls if not c.startswith("list")]


async def test_fail_open_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    decisions = {A1: State.DOWN, A2: State.DOWN, A3: State.DOWN}
    rec, provider = make(decisions, [A1])
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        await rec.reconcile_once()
    engaged = [r for r in caplog.records if "FAIL-OPEN engaged" in r.getMessage()]
    assert len(engaged) == 1
    assert contents(provider) == {A1, A2, A3}
    decisions[A2] = State.UP
    await rec.reconcile_once()
    assert any("fail-open released" in r.getMessage() for r in caplog.records)
    assert contents(provider) == {A2}


async def test_transient_call_errors_absorbed_within_one_pass() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    provider.retry = CallRetry(attempts=3, base=0.01, cap=0.02)
    provider.fail_next(2, on="list")
    provider.fail_next(2, on="create")
    assert await rec.reconcile_once()
    assert rec.passes == 1
    assert contents(provider) == {A2, A3}


@pytest.mark.parametrize(
    ("transient", "failures", "expected"),
    [(True, 1, 0.25), (True, 3, 1.0), (False, 1, 15.0), (False, 3, 15.0)],
)
async def test_backoff_between_passes(transient: bool, failures: int, expected: float) -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP}, [A1, A2])
    assert rec.next_delay() == 60.0  # not failing: the resync interval
    provider.fail_next(failures, transient=transient, message="HTTP 403")
    for _ in range(failures):
        assert not await rec.reconcile_once()
    # jitter 0: half the exponential delay; permanent errors go straight to the 30 s cap
    assert rec.next_delay() == expected
    assert await rec.reconcile_once()
    assert rec.next_delay() == 60.0


async def test_held_changes_wait_for_the_designated_writer() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    holds = {A1: 2.5, A3: 0.0}  # another agent should delete A1; A3 is ours to create
    rec.hold = lambda change: holds.get(change.record.content, 0.0)
    assert await rec.reconcile_once()  # not a failure
    assert contents(provider) == {A1, A2, A3}
    assert [(c.action, c.record.content) for c in rec.pending] == [("delete", A1)]
    assert not is_converged(rec)
    assert rec.retries == 0
    assert rec.next_delay() == 2.5  # re-plan when the hold ends, not at the resync
    # the writer did it meanwhile: nothing left to do, converged
    del provider.store[(WWW, "A", A1)]
    assert await rec.reconcile_once()
    assert is_converged(rec)
    assert rec.pending == ()
    assert rec.next_delay() == 60.0


async def test_hold_expired_takes_over() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP}, [A1, A2])
    hold = [1.0]
    rec.hold = lambda change: hold[0]
    await rec.reconcile_once()
    assert contents(provider) == {A1, A2}
    hold[0] = 0.0  # grace over and the change has not appeared: this agent writes
    await rec.reconcile_once()
    assert contents(provider) == {A2}


async def test_planned_since_is_the_first_pass_that_planned_the_change() -> None:
    """The writers' grace runs from here (regression: a non-writer that had decided "up"
    long ago re-created a record the moment the agreeing agents deleted it, before their
    "down" votes reached it, and they deleted it again: a flap)."""
    now = [100.0]
    rec, provider = make(
        {A1: State.UP, A2: State.UP, A3: State.UP}, [A1, A2], monotonic=lambda: now[0]
    )
    create_a3 = Change("create", Record(WWW, "A", A3), "target up")
    seen: list[float | None] = []

    def hold(change: Change) -> float:
        seen.append(rec.planned_since(change))
        return math.inf  # another agent's to write

    rec.hold = hold
    assert rec.planned_since(create_a3) is None
    await rec.reconcile_once()
    assert seen == [100.0]  # the hold sees the pass that is planning it
    now[0] = 105.0
    await rec.reconcile_once()
    assert rec.planned_since(create_a3) == 100.0  # planned in every pass since
    provider.store[(WWW, "A", A3)] = Record(WWW, "A", A3, ttl=60)  # the writer made it
    now[0] = 106.0
    await rec.reconcile_once()
    assert rec.planned_since(create_a3) is None
    del provider.store[(WWW, "A", A3)]  # gone again: needed from now, not from 100
    now[0] = 200.0
    await rec.reconcile_once()
    assert rec.planned_since(create_a3) == 200.0
    assert seen[-1] == 200.0


async def test_current_records_are_kept_for_the_status_page() -> None:
    decisions = {A1: State.UP, A2: State.DOWN, A3: State.UP}
    rec, _ = make(decisions, [A1, A2])
    assert rec.current == {} and rec.read_at is None
    assert await rec.reconcile_once()
    # as read, then with the changes this pass made
    assert {r.content for r in rec.current[WWW]} == {A1, A3}
    assert rec.read_at is not None


async def test_failed_passes_are_counted() -> None:
    rec, provider = make({A1: State.UP}, [])
    provider.fail_next(1, on="list")
    assert not await rec.reconcile_once()
    assert (rec.passes, rec.failed_passes, rec.retries) == (1, 1, 1)
    assert await rec.reconcile_once()
    assert (rec.passes, rec.failed_passes, rec.retries) == (2, 1, 0)


def test_after_applies_changes_to_a_copy() -> None:
    current = {WWW: [Record(WWW, "A", A1), Record(WWW, "A", A2)]}
    result = after(
        current,
        [
            Change("delete", Record(WWW, "A", A1), "down"),
            Change("create", Record(WWW, "A", A3), "up"),
            Change("create", Record("other.example.test", "A", A3), "up"),
        ],
    )
    assert {n: [r.content for r in rs] for n, rs in result.items()} == {
        WWW: [A2, A3],
        "other.example.test": [A3],
    }
    assert [r.content for r in current[WWW]] == [A1, A2]


class SlowReadProvider(MemoryProvider):
    """A provider whose read of the records waits for ``release`` (a slow API)."""

    def __init__(self, records: list[Record]) -> None:
        super().__init__(dry_run=False, audit=AuditLog(), records=records)
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def _list(self, name: str) -> list[Record]:
        self.reading.set()
        await self.release.wait()
        return await super()._list(name)


async def test_a_decision_that_flips_back_during_the_read_is_not_acted_on() -> None:
    """A2 goes down, the pass starts reading, A2 comes back up before the read ends:
    the pass must plan from the current decision and delete nothing."""
    decisions = {A1: State.UP, A2: State.DOWN, A3: State.UP}
    provider = SlowReadProvider([Record(WWW, "A", a, ttl=60) for a in (A1, A2, A3)])
    rec = reconciler(provider, decisions)
    task = asyncio.create_task(rec.reconcile_once())
    await provider.reading.wait()
    decisions[A2] = State.UP  # back before the read returned
    provider.release.set()
    assert await task
    assert contents(provider) == {A1, A2, A3}
    assert [e["action"] for e in provider.audit.recent] == []


# -- never empty a name under partial failure (issue 12) ---------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "HTTP 400 code 9005: Content for A record is invalid",
        "HTTP 403 code 10000: Authentication error",
    ],
)
async def test_a_failed_create_holds_back_the_delete_it_replaces(message: str) -> None:
    """The name holds only A1 (down); A2 (up) is absent. The plan is "create A2,
    delete A1"; the create fails permanently: A1 must stay."""
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UNKNOWN}, [A1])
    provider.fail_next(1, transient=False, message=message, on="create")
    sizes: list[int] = []
    provider.on_call = lambda call: sizes.append(len(provider.store))
    assert not await rec.reconcile_once()
    assert contents(provider) == {A1}
    assert min(sizes) >= 1
    assert [c.action for c in rec.pending] == ["create", "delete"]
    assert [c for c in provider.calls if c.startswith("delete")] == []
    # the operator fixes it: the next pass creates A2, then withdraws A1
    assert await rec.reconcile_once()
    assert contents(provider) == {A2}
    assert min(sizes) >= 1


async def test_a_create_that_times_out_after_landing_is_seen_at_the_next_pass() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UNKNOWN}, [A1])
    provider.fail_next(1, transient=False, message="timeout", on="create", landed=True)
    assert not await rec.reconcile_once()
    assert contents(provider) == {A1, A2}  # landed, but unknown to this pass: A1 kept
    assert await rec.reconcile_once()
    assert contents(provider) == {A2}


async def test_a_held_create_holds_its_names_delete() -> None:
    """Cluster, min_peers_agree = 1: every agent sees A1 down, only this one sees A2
    down, so the create of A2 is not backed here (held for ever) while the delete of
    A1 is backed. The delete must wait for A2 to appear (another agent creates it)."""
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UNKNOWN}, [A1])
    holds = {A2: math.inf}
    rec.hold = lambda change: holds.get(change.record.content, 0.0)
    assert await rec.reconcile_once()
    assert contents(provider) == {A1}
    assert [c for c in provider.calls if not c.startswith("list")] == []
    assert not is_converged(rec)
    assert {c.record.content for c in rec.pending} == {A1, A2}
    provider.store[(WWW, "A", A2)] = Record(WWW, "A", A2, ttl=60)  # the writer's create
    assert await rec.reconcile_once()
    assert contents(provider) == {A2}


@pytest.mark.parametrize("on", ["list", "create"])
async def test_an_unexpected_exception_is_a_failed_pass_not_a_crash(
    on: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec, provider = make({A1: State.UP, A2: State.UP, A3: State.UNKNOWN}, [A1])
    provider.fail_next(3, on=on, error=ValueError("add() has non-origin SOA"))
    with caplog.at_level(logging.ERROR):
        results = [await rec.reconcile_once() for _ in range(4)]
    assert results == [False, False, False, True]
    assert rec.unexpected_errors == 3
    assert rec.failed_passes == 3 and rec.retries == 0
    assert contents(provider) == {A1, A2}
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1  # once per kind, then one line each
    assert "non-origin SOA" in caplog.text


async def test_an_unexpected_exception_backs_off() -> None:
    rec, provider = make({A1: State.UP, A2: State.UP, A3: State.UNKNOWN}, [A1])
    provider.fail_next(5, on="list", error=KeyError("result"))
    delays = []
    for _ in range(5):
        assert not await rec.reconcile_once()
        delays.append(rec.next_delay())
    assert delays == sorted(delays) and delays[-1] > delays[0]
    assert rec.read_failed


class FlipDuringWrite(MemoryProvider):
    """Flips a decision while the first write of a pass is in flight (a slow API)."""

    def __init__(self, records: list[Record], decisions: dict[str, State]) -> None:
        super().__init__(dry_run=False, audit=AuditLog(), records=records)
        self.decisions = decisions
        self.flip: tuple[str, State] | None = None

    async def _create(self, record: Record) -> None:
        await super()._create(record)
        if self.flip is not None:
            target, state = self.flip
            self.decisions[target] = state
            self.flip = None


async def test_a_change_whose_decision_moved_during_the_pass_is_not_made() -> None:
    """The pass plans "create A3, delete A2"; while the create is in flight A2 comes
    back up: its delete must not go out (a wrong removal)."""
    decisions = {A1: State.UP, A2: State.DOWN, A3: State.UP}
    provider = FlipDuringWrite([Record(WWW, "A", a, ttl=60) for a in (A1, A2)], decisions)
    provider.retry = CallRetry(attempts=1)
    rec = reconciler(provider, decisions)
    provider.flip = (A2, State.UP)
    assert not await rec.reconcile_once()
    assert contents(provider) == {A1, A2, A3}
    assert [c for c in provider.calls if c.startswith("delete")] == []
    assert await rec.reconcile_once()
    assert contents(provider) == {A1, A2, A3}


async def test_a_change_is_not_made_once_another_agent_is_the_writer() -> None:
    rec, provider = make({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    writer = ["self"]
    rec.hold = lambda change: 0.0 if writer[0] == "self" else 5.0
    real = provider._create

    async def create_then_lose_the_role(record: Record) -> None:
        await real(record)
        writer[0] = "peer"

    provider._create = create_then_lose_the_role  # type: ignore[method-assign]
    assert not await rec.reconcile_once()
    assert contents(provider) == {A1, A2, A3}  # the create went out, the delete did not


# -- Retry-After: the server's wait is honoured across passes (fake time, nothing sleeps) --


def make_timed(
    decisions: dict[str, State], present: list[str]
) -> tuple[Reconciler, MemoryProvider, FakeTime]:
    rec, provider = make(decisions, present)
    provider.retry = CallRetry(attempts=3, base=0.2, cap=2.0, max_retry_after=10.0)
    time = FakeTime()
    provider.clock = time.clock
    return rec, provider, time


async def test_next_pass_waits_what_the_server_asked() -> None:
    rec, provider, time = make_timed({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    provider.fail_next(1, on="list", message="HTTP 429", retry_after=60)
    assert not await rec.reconcile_once()
    assert time.slept == []  # 60 s is over max_retry_after: the pass ends, nobody sleeps
    assert provider.calls == [f"list {WWW}"]
    # the backoff of a first failed pass is 0.25 s; the server asked for 60
    assert rec.next_delay() == 60.0
    time.advance(20)
    assert rec.next_delay() == 40.0
    # a pass triggered meanwhile (a decision changed) sends nothing and fails at once
    assert not await rec.reconcile_once()
    assert provider.calls == [f"list {WWW}"]
    assert rec.last_error is not None and "asked to wait (Retry-After), 40.0 s to go" in (
        rec.last_error
    )
    assert rec.next_delay() == 40.0
    time.advance(40)
    assert rec.next_delay() == 0.5  # only the reconciler's own backoff is left
    assert await rec.reconcile_once()
    assert contents(provider) == {A2, A3}
    assert time.slept == []


async def test_a_short_retry_after_is_waited_within_the_pass() -> None:
    rec, provider, time = make_timed({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    provider.fail_next(1, on="create", message="HTTP 429", retry_after=5)
    assert await rec.reconcile_once()
    assert time.slept == [5.0]  # max(backoff <= 0.2 s, Retry-After 5 s), then the retry
    assert [c.split()[0] for c in provider.calls] == ["list", "create", "create", "delete"]
    assert contents(provider) == {A2, A3}


async def test_a_rate_limited_write_holds_every_call_until_the_instant() -> None:
    rec, provider, time = make_timed({A1: State.DOWN, A2: State.UP, A3: State.UP}, [A1, A2])
    provider.fail_next(1, on="create", message="HTTP 429", retry_after=30)
    assert not await rec.reconcile_once()
    assert [c.split()[0] for c in provider.calls] == ["list", "create"]
    assert rec.next_delay() == 30.0
    for _ in range(3):  # passes triggered before the instant make no call at all
        time.advance(5)
        assert not await rec.reconcile_once()
    assert [c.split()[0] for c in provider.calls] == ["list", "create"]
    assert rec.next_delay() == 15.0
    time.advance(12)
    # 3 s to go is within max_retry_after: the next pass waits them, then goes on
    assert await rec.reconcile_once()
    assert time.slept == [pytest.approx(3.0)]
    assert contents(provider) == {A2, A3}


async def test_retry_after_is_capped() -> None:
    rec, provider, _ = make_timed({A1: State.DOWN, A2: State.UP}, [A1, A2])
    provider.fail_next(1, on="list", message="HTTP 429", retry_after=math.inf)
    assert not await rec.reconcile_once()
    assert provider.retry_wait() == RETRY_AFTER_CAP
    assert rec.next_delay() == RETRY_AFTER_CAP


async def test_resync_interval_is_not_shortened_by_a_spent_wait() -> None:
    rec, provider, _ = make_timed({A1: State.DOWN, A2: State.UP}, [A1, A2])
    provider.fail_next(1, on="list", message="HTTP 429", retry_after=2)
    assert await rec.reconcile_once()  # 2 s waited within the pass
    assert provider.retry_wait() == 0.0
    assert rec.next_delay() == 60.0  # converged: the resync interval


async def test_health_check_sends_nothing_while_told_to_wait() -> None:
    _, provider, time = make_timed({A1: State.UP}, [A1])
    provider.fail_next(1, on="list", message="HTTP 429", retry_after=20)
    with pytest.raises(ProviderError, match="HTTP 429") as info:
        await provider.check(WWW)
    assert info.value.retry_after == 20
    with pytest.raises(ProviderError, match=r"20\.0 s to go") as info:
        await provider.check(WWW)
    assert info.value.transient and info.value.retry_after == 20.0
    assert provider.calls == [f"list {WWW}"]
    time.advance(20)
    await provider.check(WWW)
    assert len(provider.calls) == 2


async def test_a_pass_reads_every_name_at_once_and_only_the_configured_families() -> None:
    other = "api.example.test"
    provider = MemoryProvider(
        dry_run=False,
        audit=AuditLog(),
        records=[
            Record(WWW, "A", A1, ttl=60),
            Record(WWW, "AAAA", "2001:db8::9", ttl=60),  # not goavail's: no IPv6 configured
            Record(other, "A", A1, ttl=60),
        ],
    )
    asked: list[tuple[list[str], tuple[str, ...]]] = []
    real = provider.records_for

    async def records_for(names: Any, types: Any = ("A", "AAAA")) -> dict[str, list[Record]]:
        asked.append((list(names), tuple(types)))
        return await real(names, types)

    provider.records_for = records_for  # type: ignore[method-assign]
    rec = Reconciler(
        provider,
        names=[WWW, other],
        addresses=[A1],
        decisions={A1: State.UP},
        ttl=60,
        proxied=None,
        resync_interval=60.0,
    )
    assert await rec.reconcile_once()
    assert asked == [([WWW, other], ("A",))]  # one bulk read per pass
    assert {n: {r.key for r in rs} for n, rs in rec.current.items()} == {
        WWW: {(WWW, "A", A1)},
        other: {(other, "A", A1)},
    }
    rec.reconfigure(
        provider=provider,
        names=[WWW],
        addresses=[A1, "2001:db8::1"],
        ttl=60,
        proxied=None,
        resync_interval=60.0,
    )
    await rec.reconcile_once()
    assert asked[-1] == ([WWW], ("A", "AAAA"))
    assert (WWW, "AAAA", "2001:db8::9") in {r.key for r in rec.current[WWW]}
