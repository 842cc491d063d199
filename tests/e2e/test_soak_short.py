"""A 15-second soak (:mod:`bench.soak`): the real ``goavail monitor`` under random
outages and random Cloudflare faults, the zone read after every API call.

The 30-minute run is a benchmark (``make bench BENCH_SIZES=0 BENCH_SOAK=1800``,
BENCHMARKS.md); this short one keeps the harness working and asserts the same
invariant in the suite: no managed name ever has zero records, goavail neither
dies nor logs a traceback, and DNS converges once the faults stop. Events come
faster than in the long run (an outage every 2 s, a fault every second, a new
background error rate every 5 s) and ``Retry-After`` is at most 3 s, so a run
stays around 25 seconds.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bench.soak import (
    FAULT_KINDS,
    TARGETS,
    FaultSpec,
    all_down_episodes,
    expected_addresses,
    parse_args,
    random_fault,
    random_outage,
    run_soak,
)

pytestmark = pytest.mark.e2e


def test_short_soak_never_empties_a_name() -> None:
    args = parse_args(
        [
            *("--duration", "15", "--seed", "20261204"),
            *("--outage-every", "2", "--fault-every", "1", "--background-every", "5"),
            *("--p-all", "0.25", "--max-retry-after", "3", "--converge-timeout", "60"),
        ]
    )
    result = run_soak(args, log=lambda text: None)
    assert result.api_calls > 50
    assert result.faults_hit > 0
    assert result.outages > 0
    assert result.min_records >= 1, result.violations[:1]
    assert result.calls_with_an_empty_name == 0
    assert not result.goavail_died
    assert result.tracebacks_in_log == 0, result.traceback_heads
    assert result.reconcile_unexpected_errors == 0
    assert result.converged_after_last_outage and result.converged_after_recovery
    assert result.ok, result.problems


def test_schedule_is_reproducible_from_the_seed() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def draw(seed: int) -> tuple[list[FaultSpec], list[frozenset[str]]]:
        rng = random.Random(seed)
        faults = [random_fault(rng, now, 15) for _ in range(60)]
        return faults, [random_outage(rng, TARGETS, 0.15, 0.2) for _ in range(60)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    faults, _ = draw(7)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    dated = [f.retry_after for f in faults if f.kind == "429-retry-after-date"]
    assert all(isinstance(d, datetime) and now < d <= now + timedelta(seconds=15) for d in dated)


def test_outages_cover_all_none_and_subsets() -> None:
    rng = random.Random(3)
    drawn = [random_outage(rng, TARGETS, 0.15, 0.2) for _ in range(400)]
    assert frozenset(TARGETS) in drawn
    assert frozenset() in drawn
    assert any(0 < len(d) < len(TARGETS) for d in drawn)


def test_expected_addresses_fail_open() -> None:
    assert expected_addresses(TARGETS, frozenset(TARGETS)) == frozenset(TARGETS)
    assert expected_addresses(TARGETS, frozenset(TARGETS[:2])) == frozenset(TARGETS[2:])
    assert expected_addresses(TARGETS, frozenset()) == frozenset(TARGETS)


def test_all_down_episodes_from_the_log() -> None:
    def line(target: str, old: str, new: str) -> str:
        return f"INFO    goavail.agent: target {target} {old} -> {new} after 2 probes"

    a, b = "127.77.0.1", "127.77.0.2"
    lines = [
        line(a, "unknown", "up"),
        line(b, "unknown", "up"),
        line(a, "up", "down"),
        line(b, "up", "down"),  # episode 1
        "2026-01-01T00:00:01+0000 WARNING goavail.dns.reconcile: FAIL-OPEN engaged ...",
        line(a, "down", "up"),
        line(a, "up", "down"),  # episode 2
        line(a, "down", "up"),
    ]
    assert all_down_episodes(lines, (a, b)) == 2
    assert all_down_episodes(lines[:3], (a, b)) == 0
