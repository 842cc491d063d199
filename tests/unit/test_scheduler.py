"""Scheduler tests without sleeping: the pure slot maths and ``poll`` driven by hand."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from goavail.checks.base import ProbeResult, ResultCallback
from goavail.checks.scheduler import ProbeScheduler, due_slots, slot_time


@pytest.mark.parametrize(
    ("slot", "n", "interval", "t0", "expected"),
    [
        (0, 4, 1.0, 100.0, 100.0),
        (1, 4, 1.0, 100.0, 100.25),
        (4, 4, 1.0, 100.0, 101.0),  # round 1, offset 0
        (7, 4, 2.0, 0.0, 3.5),  # round 1, offset 3 * 2/4
        (3, 1, 5.0, 10.0, 25.0),  # one target: once per interval
    ],
)
def test_slot_time(slot: int, n: int, interval: float, t0: float, expected: float) -> None:
    assert slot_time(slot, n, interval, t0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("next_slot", "n", "interval", "t0", "now", "expected"),
    [
        pytest.param(0, 4, 1.0, 100.0, 99.0, (0, 0), id="before-start"),
        pytest.param(0, 4, 1.0, 100.0, 100.0, (0, 1), id="slot-0-due-exactly-at-t0"),
        pytest.param(0, 4, 1.0, 100.0, 100.3, (0, 2), id="two-due"),
        pytest.param(2, 4, 1.0, 100.0, 100.3, (2, 2), id="already-submitted"),
        pytest.param(2, 4, 1.0, 100.0, 100.5, (2, 3), id="boundary-inclusive"),
        pytest.param(3, 4, 1.0, 100.0, 101.1, (3, 5), id="across-round-boundary"),
        pytest.param(0, 4, 1.0, 100.0, 100.99, (0, 4), id="whole-first-round"),
        pytest.param(1, 4, 1.0, 100.0, 103.1, (9, 13), id="stalled-keeps-last-n"),
        pytest.param(0, 3, 0.3, 0.0, 0.2, (0, 3), id="float-rounding-0.1-steps"),
        pytest.param(0, 50_000, 10.0, 0.0, 0.001, (0, 6), id="50k-targets-1ms-slice"),
        pytest.param(0, 1, 60.0, 0.0, 59.9, (0, 1), id="single-target"),
        pytest.param(1, 1, 60.0, 0.0, 60.0, (1, 2), id="single-target-next-round"),
    ],
)
def test_due_slots(
    next_slot: int, n: int, interval: float, t0: float, now: float, expected: tuple[int, int]
) -> None:
    assert due_slots(next_slot, n, interval, t0, now) == expected


def test_due_slots_agrees_with_slot_time_at_every_boundary() -> None:
    n, interval, t0 = 7, 0.3, 12345.678
    for slot in range(200):
        at = slot_time(slot, n, interval, t0)
        assert due_slots(slot, n, interval, t0, at) == (slot, slot + 1)


@pytest.mark.parametrize(("n", "interval"), [(0, 1.0), (3, 0.0), (3, -1.0)])
def test_due_slots_rejects_bad_arguments(n: int, interval: float) -> None:
    with pytest.raises(ValueError, match="positive interval"):
        due_slots(0, n, interval, 0.0, 1.0)


class RecordingProbe:
    """A probe engine that records submissions and never answers."""

    kind = "fake"
    timeout = 1.0

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def start(self) -> None:
        pass

    def submit(self, target: str, callback: ResultCallback) -> None:
        self.sent.append(target)

    async def probe(self, target: str) -> ProbeResult:
        return ProbeResult(ok=True, rtt=0.0)

    async def close(self) -> None:
        pass


def _ignore(target: str, result: ProbeResult) -> None:
    pass


def _scheduler(targets: list[str], interval: float = 1.0) -> tuple[ProbeScheduler, RecordingProbe]:
    probe = RecordingProbe()
    sched = ProbeScheduler(probe, interval, _ignore, clock=lambda: 0.0)
    sched.set_targets(targets)
    return sched, probe


def test_poll_spreads_targets_and_returns_next_due_time() -> None:
    sched, probe = _scheduler(["a", "b", "c", "d"])
    assert sched.poll(10.0) == pytest.approx(10.25)  # the first poll fixes t0
    assert probe.sent == ["a"]
    assert sched.poll(10.25) == pytest.approx(10.5)
    assert sched.poll(10.6) == pytest.approx(10.75)
    assert probe.sent == ["a", "b", "c"]
    assert sched.poll(11.0) == pytest.approx(11.25)  # d, then a of round 2
    assert probe.sent == ["a", "b", "c", "d", "a"]


def test_no_drift_over_many_rounds_with_late_wakeups() -> None:
    sched, probe = _scheduler(["a", "b"], interval=1.0)
    now, next_at = 0.0, None
    for _ in range(1000):
        next_at = sched.poll(now)
        assert next_at is not None
        now = next_at + 0.0004  # every wake-up is late; the schedule must not slip
    assert len(probe.sent) == 1000
    assert next_at == pytest.approx(500.0, abs=1e-9)  # slot 1000 due at t0 + 1000 * 0.5


def test_stall_does_not_burst_duplicates() -> None:
    sched, probe = _scheduler(["a", "b", "c"])
    sched.poll(0.0)
    sched.poll(50.0)  # 50 rounds late: only the last round's slots (148, 149, 150)
    assert probe.sent == ["a", "b", "c", "a"]


def test_empty_targets_poll_returns_none() -> None:
    sched, probe = _scheduler([])
    assert sched.poll(5.0) is None
    assert probe.sent == []


def test_set_targets_takes_effect_at_next_round_and_drops_removed_at_once() -> None:
    sched, probe = _scheduler(["a", "b", "c", "d"])
    sched.poll(0.0)  # a
    sched.set_targets(["a", "c", "e"])  # b removed, e added, mid-round
    assert sched.targets == ["a", "c", "e"]
    sched.poll(0.8)  # rest of round 1: b skipped, c and d... d also removed
    assert probe.sent == ["a", "c"]
    # Round 2 starts at t=1.0 with 3 targets spread over the interval.
    assert sched.poll(1.0) == pytest.approx(1.0 + 1 / 3)
    assert probe.sent == ["a", "c", "a"]
    sched.poll(1.99)
    assert probe.sent == ["a", "c", "a", "c", "e"]
    assert sched.poll(2.0) == pytest.approx(2.0 + 1 / 3)


def test_set_targets_same_list_keeps_phase() -> None:
    sched, probe = _scheduler(["a", "b"])
    sched.poll(0.0)
    sched.set_targets(["b", "a", "b"])  # different order: re-spread from next round
    sched.set_targets(["a", "b", "a"])  # back to the running list (deduplicated)
    assert sched.poll(0.5) == pytest.approx(1.0)
    assert probe.sent == ["a", "b"]


def test_from_empty_to_targets_starts_immediately() -> None:
    sched, probe = _scheduler([])
    assert sched.poll(3.0) is None
    sched.set_targets(["x", "y"])
    assert sched.poll(7.0) == pytest.approx(7.5)
    assert probe.sent == ["x"]
    sched.set_targets([])
    sched.poll(7.6)  # y removed: skipped; the empty list takes over at the boundary
    assert sched.poll(8.0) is None
    assert probe.sent == ["x"]


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        ProbeScheduler(RecordingProbe(), 0.0, _ignore)


class BatchRecordingProbe(RecordingProbe):
    """A :class:`goavail.checks.base.BatchProbe`: records each batch as (start, end, round)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, int, int]] = []
        self.lists: list[Sequence[str]] = []

    def submit_batch(
        self,
        targets: Sequence[str],
        start: int,
        end: int,
        round_number: int,
        callback: ResultCallback,
    ) -> None:
        assert 0 <= start < end <= len(targets)
        self.batches.append((start, end, round_number))
        if not self.lists or self.lists[-1] is not targets:
            self.lists.append(targets)


def test_batch_probe_gets_one_slice_per_round() -> None:
    probe = BatchRecordingProbe()
    sched = ProbeScheduler(probe, 1.0, _ignore, clock=lambda: 0.0)
    sched.set_targets(["a", "b", "c", "d"])
    sched.poll(0.0)  # slot 0
    sched.poll(0.6)  # slots 1, 2
    sched.poll(1.3)  # slots 3 (round 0) and 4, 5 (round 1): split at the round boundary
    assert probe.batches == [(0, 1, 0), (1, 3, 0), (3, 4, 0), (0, 2, 1)]
    assert probe.sent == []  # never one by one
    assert len(probe.lists) == 1  # the same list object every time


def test_batch_probe_during_a_target_change_goes_one_by_one() -> None:
    """Removed targets stop at once, mid-round: that round is submitted per target."""
    probe = BatchRecordingProbe()
    sched = ProbeScheduler(probe, 1.0, _ignore, clock=lambda: 0.0)
    sched.set_targets(["a", "b", "c", "d"])
    sched.poll(0.0)
    sched.set_targets(["a", "c", "x"])
    sched.poll(0.8)  # b is gone already; c, d (dropped) of round 0
    assert probe.sent == ["c"]
    sched.poll(1.0)  # the new list starts: a batch again
    assert probe.batches[-1] == (0, 1, 0)
    assert probe.lists[-1] == ["a", "c", "x"]


def test_poll_limit_leaves_the_rest_due() -> None:
    sched, probe = _scheduler(["a", "b", "c", "d"])
    sched.poll(0.0)  # a
    assert sched.poll(0.9, limit=2) == pytest.approx(0.75)  # b, c sent; d still due
    assert probe.sent == ["a", "b", "c"]
    assert sched.poll(0.9, limit=2) == pytest.approx(1.0)
    assert probe.sent == ["a", "b", "c", "d"]


def test_poll_limit_during_a_target_change() -> None:
    sched, probe = _scheduler(["a", "b", "c", "d"])
    sched.poll(0.0)
    sched.set_targets(["a", "b", "x"])
    assert sched.poll(1.2, limit=2) == pytest.approx(0.75)  # b, c(dropped) counted
    assert probe.sent == ["a", "b"]
    # d (dropped) ends the round; the new list starts at 1.0: its slot 0 (a) is due
    assert sched.poll(1.2, limit=2) == pytest.approx(1 + 1 / 3)
    assert probe.sent == ["a", "b", "a"]
