"""Soak: the real ``goavail monitor`` under random outages and random provider faults (issue 12).

Usage (root; the harness re-executes itself in a private network namespace)::

    .venv/bin/python -m bench.soak --duration 1800 --json bench/results/soak.json

One real ``goavail monitor --no-dry-run`` (Cloudflare provider, HTTP server on for
``/metrics``) watches five loopback targets 127.77.0.1-5 published under three
names (``www``, ``api``, ``cdn`` in ``soak.test``: every name holds every address
that is up). The Cloudflare stand-in (:mod:`tests.cfstub.server`, a real HTTP
server driven through the official SDK via ``CLOUDFLARE_BASE_URL``) starts with all
fifteen records, so every name has five records before goavail's first call.

For ``--duration`` seconds, at random moments (Poisson processes of a seeded
``random.Random``; the seed is printed and recorded):

* **outages** (mean gap ``--outage-every``): a new random set of targets is
  blackholed with nftables (:class:`tests.netns.Nft`: packets to them are dropped
  on arrival, probes time out): none (everything recovers), all of them (fail-open
  must keep every address) or a random non-empty proper subset;
* **provider faults** (mean gap ``--fault-every``): one per-operation rule
  (:meth:`~tests.cfstub.server.CloudflareStub.inject`, hitting the 1st-3rd next
  request of its operation, 1-3 times): permanent create/delete errors 400/9005 and
  403/10000, 429 with ``Retry-After`` in seconds or as an HTTP date, 500/502/503/504,
  a malformed 200 answer (:data:`~tests.cfstub.server.MALFORMED`), an inconsistent
  page (:data:`~tests.cfstub.server.PAGER`);
* **background faults** (mean gap ``--background-every``): a new random error rate
  (0 half of the time, else 2-20 %) of 429/5xx answers for every request
  (:meth:`~tests.cfstub.server.CloudflareStub.set_faults`).

``stub.watch`` sees every API request and counts, right after it, the A records of
every managed name whose address is a configured target: the smallest count any
name ever had is the invariant (it must stay >= 1; goavail never empties a name).
A name at zero is recorded with the request that left it so and the requests
before it.

After the window every fault is switched off, one last partial outage is set and
the harness waits (``--converge-timeout``) until every name holds exactly the up
targets, then clears the outage and waits until every name holds all five again.

Reported: API calls (by operation and status), faults injected and how many hit,
outages, the minimum record count per name, how often goavail decided every target
down and engaged fail-open (its ``FAIL-OPEN engaged`` log lines, one per name), the
deletes the name guard deferred, convergence at the end, goavail's
``goavail_reconcile_{passes,failed_passes,unexpected_errors}`` from ``/metrics``,
its CPU and RSS (a sample per minute), tracebacks in its log, and whether it
exited on its own. Exit status 1 when the invariant broke, goavail died or did not
stop cleanly, DNS did not converge at the end, or a record goavail does not manage
changed; 0 otherwise.

Must run as root; everything (goavail, the stand-in, the nftables table) lives in
the private namespace and vanishes with it. The schedule is reproducible from the
seed; what goavail does with it depends on timing, so two runs with one seed are
not identical.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from bench.run import _raise_on_sigterm, ensure_private_netns, machine, sample
from tests.cfstub.server import MALFORMED, PAGER, Malformed, Pager

ZONE: Final = "soak.test"
HOSTNAMES: Final = ("www", "api", "cdn")
TARGETS: Final = tuple(f"127.77.0.{i}" for i in range(1, 6))
UNMANAGED_NAME: Final = "other"
"""A name goavail does not manage; it holds a configured address and must stay untouched."""

TIMING: Final = """\
interval = "300ms"
timeout = "200ms"
failure_threshold = 2
rise_threshold = 2
"""
"""goavail's probe timing: a target is decided down or up within about a second."""

RESYNC: Final = "2s"
"""``resync_interval``: hundreds of resyncs in a 30-minute window."""

FaultOp = Literal["list", "create", "delete"]
FAULT_OPS: Final[tuple[FaultOp, ...]] = get_args(FaultOp)

FAULT_KINDS: Final = (
    "permanent-400-9005",
    "permanent-403-10000",
    "429-retry-after-seconds",
    "429-retry-after-date",
    "5xx",
    "malformed",
    "pager",
)
"""Kinds of per-operation faults, drawn with equal weights."""

BACKGROUND_STATUSES: Final = (429, 500, 502, 503, 504)


# -- the random schedule (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class FaultSpec:
    """One per-operation fault rule to add to the stand-in.

    Attributes:
        kind: one of :data:`FAULT_KINDS` (for the report).
        op: the operation it hits.
        nth, times: the first request it hits (1 = the next one) and how many.
        status, code, message: the error answer (permanent, 429, 5xx kinds).
        retry_after: ``Retry-After``: seconds, or an aware ``datetime`` (HTTP date).
        malformed, pager: how a 200 answer is spoiled (malformed, pager kinds).
    """

    kind: str
    op: FaultOp
    nth: int
    times: int
    status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: int | datetime | None = None
    malformed: Malformed | None = None
    pager: Pager | None = None

    @property
    def label(self) -> str:
        """``"kind op"``, e.g. ``"permanent-400-9005 create"``."""
        return f"{self.kind} {self.op}"


def random_fault(rng: random.Random, now: datetime, max_retry_after: int) -> FaultSpec:
    """Draw one fault rule.

    Args:
        rng: the schedule's random source.
        now: the wall-clock time (UTC) the rule is added: an HTTP-date
            ``Retry-After`` is 2..``max_retry_after`` seconds after it.
        max_retry_after: the longest ``Retry-After`` asked, seconds (>= 2).

    Permanent errors hit creates and deletes (Cloudflare 400/9005 "Content for A
    record must be a valid IPv4 address.", 403/10000 "Authentication error"),
    pager faults hit listings, every other kind any of list/create/delete.
    """
    kind = rng.choice(FAULT_KINDS)
    nth = rng.randint(1, 3)
    times = rng.randint(1, 3)
    if kind.startswith("permanent"):
        op: FaultOp = rng.choice(("create", "delete"))
        if kind == "permanent-400-9005":
            return FaultSpec(
                kind,
                op,
                nth,
                times,
                400,
                9005,
                "Content for A record must be a valid IPv4 address.",
            )
        return FaultSpec(kind, op, nth, times, 403, 10000, "Authentication error")
    if kind == "pager":
        return FaultSpec(kind, "list", nth, times, pager=cast(Pager, rng.choice(PAGER)))
    op = rng.choice(FAULT_OPS)
    if kind == "429-retry-after-seconds":
        return FaultSpec(kind, op, nth, 1, 429, retry_after=rng.randint(1, max_retry_after))
    if kind == "429-retry-after-date":
        when = now + timedelta(seconds=rng.randint(2, max_retry_after))
        return FaultSpec(kind, op, nth, 1, 429, retry_after=when)
    if kind == "5xx":
        return FaultSpec(kind, op, nth, times, rng.choice((500, 502, 503, 504)))
    return FaultSpec(kind, op, nth, times, malformed=cast(Malformed, rng.choice(MALFORMED)))


def random_outage(
    rng: random.Random, targets: Sequence[str], p_all: float, p_none: float
) -> frozenset[str]:
    """Draw the next set of targets to blackhole.

    With probability ``p_all`` every target (fail-open must engage), with ``p_none``
    none (everything recovers), else a random non-empty proper subset, its size
    uniform in ``1..len(targets) - 1``.
    """
    draw = rng.random()
    if draw < p_all:
        return frozenset(targets)
    if draw < p_all + p_none:
        return frozenset()
    return frozenset(rng.sample(list(targets), rng.randint(1, len(targets) - 1)))


_TRANSITION: Final = re.compile(r"target (\S+) \w+ -> (\w+) after")
_GUARD_DEFERRED: Final = "deferred: it would leave the name with no"


def all_down_episodes(lines: Sequence[str], targets: Sequence[str]) -> int:
    """How many times goavail's log shows every one of ``targets`` decided down at once
    (its ``target T old -> new after`` lines; an episode ends when one comes back)."""
    state: dict[str, str] = {}
    episodes = 0
    was_down = False
    for line in lines:
        m = _TRANSITION.search(line)
        if m is None:
            continue
        state[m.group(1)] = m.group(2)
        now_down = all(state.get(t) == "down" for t in targets)
        episodes += now_down and not was_down
        was_down = now_down
    return episodes


def expected_addresses(targets: Sequence[str], down: frozenset[str]) -> frozenset[str]:
    """What every managed name must hold once DNS converged with ``down`` blackholed:
    the up targets, or every target when all are down (fail-open)."""
    up = frozenset(targets) - down
    return up if up else frozenset(targets)


# -- watching the stand-in -----------------------------------------------------------------------

_OPS: Final = {
    ("GET", "/zones/{zone_id}/dns_records"): "list",
    ("POST", "/zones/{zone_id}/dns_records"): "create",
    ("DELETE", "/zones/{zone_id}/dns_records/{record_id}"): "delete",
    ("GET", "/zones"): "zones",
}


@dataclass
class Violation:
    """A managed name seen with no record: when, after which request, and the context."""

    at_s: float
    name: str
    request: str
    status: int
    counts: dict[str, int]
    recent: list[str]


class ZoneWatch:
    """The ``stub.watch`` callback: counts requests and managed records after each one.

    Args:
        zone: the zone name.
        names: the managed names (fully qualified).
        managed: the configured addresses.
        started: ``time.monotonic()`` of the run's start (violation times are relative).

    Called in the stand-in's thread with its state lock held; the harness reads the
    attributes under :attr:`lock`.
    """

    def __init__(
        self, zone: str, names: Sequence[str], managed: Sequence[str], started: float
    ) -> None:
        self.zone = zone
        self.names = tuple(names)
        self.managed = frozenset(managed)
        self.started = started
        self.lock = threading.Lock()
        self.calls = 0
        self.by_op_status: collections.Counter[tuple[str, int]] = collections.Counter()
        self.min_records = dict.fromkeys(self.names, len(self.managed))
        self.max_records = dict.fromkeys(self.names, 0)
        self.zero_calls = 0
        self.violations: list[Violation] = []
        self.unmanaged: list[dict[str, Any]] | None = None
        self._recent: collections.deque[str] = collections.deque(maxlen=30)

    def __call__(self, entry: Any, zones: Mapping[str, list[dict[str, Any]]]) -> None:
        records = zones.get(self.zone, [])
        counts = dict.fromkeys(self.names, 0)
        for rec in records:
            if rec["type"] == "A" and rec["name"] in counts and rec["content"] in self.managed:
                counts[rec["name"]] += 1
        op = _OPS.get((entry.method, entry.route), f"{entry.method} {entry.route}")
        text = f"{time.monotonic() - self.started:8.2f}s {entry.method} {entry.path} {entry.status}"
        with self.lock:
            self.calls += 1
            self.by_op_status[(op, entry.status)] += 1
            self._recent.append(f"{text} -> {counts}")
            empty = [n for n, c in counts.items() if c == 0]
            if empty:
                self.zero_calls += 1
            for name, count in counts.items():
                self.min_records[name] = min(self.min_records[name], count)
                self.max_records[name] = max(self.max_records[name], count)
            for name in empty:
                if len(self.violations) < 20:
                    self.violations.append(
                        Violation(
                            round(time.monotonic() - self.started, 3),
                            name,
                            f"{entry.method} {entry.path}",
                            entry.status,
                            counts,
                            list(self._recent),
                        )
                    )

    def current(self, records: Sequence[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
        """The managed addresses of every managed name in ``records`` (the zone's records)."""
        out: dict[str, set[str]] = {n: set() for n in self.names}
        for rec in records:
            if rec["type"] == "A" and rec["name"] in out and rec["content"] in self.managed:
                out[rec["name"]].add(rec["content"])
        return {n: frozenset(a) for n, a in out.items()}


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class SoakResult:
    """Everything the soak reports (written as JSON)."""

    seed: int
    duration_s: float
    elapsed_s: float = 0.0
    api_calls: int = 0
    api_calls_by_op_status: dict[str, int] = field(default_factory=dict)
    faults_injected: int = 0
    faults_hit: int = 0
    fault_hits_total: int = 0
    faults_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    background_fault_changes: int = 0
    background_faults_answered: dict[str, int] = field(default_factory=dict)
    outages: int = 0
    outages_all_down: int = 0
    outages_none_down: int = 0
    min_records_per_name: dict[str, int] = field(default_factory=dict)
    max_records_per_name: dict[str, int] = field(default_factory=dict)
    min_records: int = 0
    calls_with_an_empty_name: int = 0
    guard_deferred_deletes: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    watch_errors: list[str] = field(default_factory=list)
    all_down_decided: int = 0
    fail_open_engaged: int = 0
    fail_open_released: int = 0
    final_outage: list[str] = field(default_factory=list)
    converged_after_last_outage: bool = False
    converge_s: float | None = None
    converged_after_recovery: bool = False
    recovery_s: float | None = None
    dns_converged_metric: float | None = None
    final_records: dict[str, list[str]] = field(default_factory=dict)
    unmanaged_untouched: bool = False
    reconcile_passes: float | None = None
    reconcile_failed_passes: float | None = None
    reconcile_unexpected_errors: float | None = None
    dns_changes: dict[str, float] = field(default_factory=dict)
    tracebacks_in_log: int = 0
    traceback_heads: list[str] = field(default_factory=list)
    log_errors: int = 0
    log_warnings: int = 0
    goavail_cpu_s: float | None = None
    goavail_cpu_share: float | None = None
    goavail_rss_mb_start: float | None = None
    goavail_rss_mb_end: float | None = None
    goavail_peak_rss_mb: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    goavail_died: bool = False
    goavail_exit_code: int | None = None
    log_path: str | None = None
    ok: bool = False
    problems: list[str] = field(default_factory=list)


def _metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    """goavail's ``/metrics`` as samples, or None when it does not answer."""
    import aiohttp

    from tests.e2e.harness import http, metric_values

    try:
        reply = http("GET", url, timeout=5.0)
    except (aiohttp.ClientError, TimeoutError):
        return None
    return metric_values(reply.text) if reply.status == 200 else None


def _one(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return samples.get((name, frozenset()), 0.0)


def _wait(predicate: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> float | None:
    """Seconds until ``predicate`` held for 2 s in a row, or None after ``timeout``
    (or as soon as ``alive`` is false)."""
    start = time.monotonic()
    since: float | None = None
    while time.monotonic() - start < timeout and alive():
        now = time.monotonic()
        if predicate():
            since = now if since is None else since
            if now - since >= 2.0:
                return round(since - start, 2)
        else:
            since = None
        time.sleep(0.1)
    return None


def _top_processes(n: int = 8) -> list[str]:
    """The ``n`` busiest processes by name and CPU share (names only, no arguments)."""
    out = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [" ".join(line.split()) for line in out.splitlines()[:n]]


def run_soak(args: argparse.Namespace, log: Callable[[str], None] = print) -> SoakResult:
    """Run the soak described in the module docstring; return its result.

    Must run inside a private network namespace (:func:`bench.run.ensure_private_netns`
    or the test session's); sets ``GOAVAIL_TEST_PRIVATE_NETNS`` for :class:`Nft`.
    """
    os.environ["GOAVAIL_TEST_PRIVATE_NETNS"] = "1"
    from tests.cfstub.server import CloudflareStub
    from tests.e2e.harness import (
        FAST,
        GoavailProcess,
        cloudflare_toml,
        free_port,
        stub_env,
        wait_until,
    )
    from tests.netns import Nft

    rng = random.Random(args.seed)
    result = SoakResult(seed=args.seed, duration_s=args.duration)
    names = [f"{h}.{ZONE}" for h in HOSTNAMES]
    started = time.monotonic()
    watch = ZoneWatch(ZONE, names, TARGETS, started)
    rules: list[tuple[FaultSpec, Any]] = []
    background: collections.Counter[int] = collections.Counter()

    with (
        CloudflareStub() as stub,
        tempfile.TemporaryDirectory(prefix="goavail-soak-") as tmp,
        Nft() as nft,
    ):
        pick_fault = stub.state.pick_fault

        def counting_pick_fault() -> tuple[int | None, float]:
            status, delay = pick_fault()
            if status is not None:
                background[status] += 1
            return status, delay

        stub.state.pick_fault = counting_pick_fault  # type: ignore[method-assign]
        stub.add_zone(ZONE)
        for name in names:
            for target in TARGETS:
                stub.add_record(ZONE, name, "A", target, ttl=120)
        stub.add_record(ZONE, f"{UNMANAGED_NAME}.{ZONE}", "A", TARGETS[0], ttl=300)
        stub.add_record(ZONE, names[0], "TXT", '"not managed by goavail"', ttl=300)
        unmanaged_before = [
            r for r in stub.records(ZONE) if r["type"] != "A" or r["name"] not in names
        ]
        stub.watch(watch)

        workdir = Path(tmp)
        listen = f"127.0.0.1:{free_port()}"
        metrics_url = f"http://{listen}/metrics"
        config = TIMING + cloudflare_toml(
            TARGETS, domain=ZONE, hostnames=HOSTNAMES, resync=RESYNC, listen=listen
        ).removeprefix(FAST)
        proc = GoavailProcess(workdir, config, args=["--no-dry-run"], env=stub_env(stub))
        with proc:
            wait_until(
                lambda: len(proc.matching(r"unknown -> up")) >= len(TARGETS),
                timeout=60,
                message=lambda: f"not every target came up; goavail output:\n{proc.tail()}",
            )
            log(
                f"soak: goavail (pid {proc.pid}) up, every target up; window of {args.duration:g} s"
            )
            first = sample(proc.pid)
            result.goavail_rss_mb_start = round(first.rss_mb, 1)
            t0 = time.monotonic()
            end = t0 + args.duration
            clock = {
                "outage": t0 + rng.expovariate(1 / args.outage_every),
                "fault": t0 + rng.expovariate(1 / args.fault_every),
                "background": t0 + rng.expovariate(1 / args.background_every),
                "sample": t0 + args.sample_every,
            }
            down: frozenset[str] = frozenset()

            def record_sample() -> None:
                s = sample(proc.pid)
                m = _metrics(metrics_url) or {}
                with watch.lock:
                    calls = watch.calls
                    low = min(watch.min_records.values())
                result.timeline.append(
                    {
                        "t_s": round(time.monotonic() - t0),
                        "api_calls": calls,
                        "min_records": low,
                        "cpu_s": round(s.cpu - first.cpu, 2),
                        "rss_mb": round(s.rss_mb, 1),
                        "passes": _one(m, "goavail_reconcile_passes_total"),
                        "failed_passes": _one(m, "goavail_reconcile_failed_passes_total"),
                        "unexpected_errors": _one(m, "goavail_reconcile_unexpected_errors_total"),
                        "loadavg_1m": round(os.getloadavg()[0], 2),
                    }
                )
                stub.clear_log()  # the stand-in's own log would grow for ever
                log(f"soak: {json.dumps(result.timeline[-1])}")

            while proc.alive:
                now = time.monotonic()
                if now >= end:
                    break
                event = min(clock, key=lambda k: clock[k])
                if clock[event] > now:
                    time.sleep(min(0.1, clock[event] - now))
                    continue
                if event == "outage":
                    down = random_outage(rng, TARGETS, args.p_all, args.p_none)
                    nft.clear()
                    nft.blackhole(*sorted(down))
                    result.outages += 1
                    result.outages_all_down += len(down) == len(TARGETS)
                    result.outages_none_down += not down
                    clock[event] = now + rng.expovariate(1 / args.outage_every)
                elif event == "fault":
                    spec = random_fault(rng, datetime.now(UTC), args.max_retry_after)
                    rule = stub.inject(
                        spec.op,
                        nth=spec.nth,
                        times=spec.times,
                        status=spec.status,
                        code=spec.code,
                        message=spec.message,
                        retry_after=spec.retry_after,
                        malformed=spec.malformed,
                        pager=spec.pager,
                    )
                    rules.append((spec, rule))
                    with stub.state.lock:  # finished rules need not be checked any more
                        stub.state.op_faults[:] = [
                            r
                            for r in stub.state.op_faults
                            if r.times is None or r.seen < r.nth + r.times - 1
                        ]
                    clock[event] = now + rng.expovariate(1 / args.fault_every)
                elif event == "background":
                    rate = 0.0 if rng.random() < 0.5 else round(rng.uniform(0.02, 0.2), 3)
                    stub.set_faults(
                        rate,
                        statuses=BACKGROUND_STATUSES,
                        seed=rng.randrange(2**32),
                        retry_after=rng.randint(1, 3),
                    )
                    result.background_fault_changes += 1
                    clock[event] = now + rng.expovariate(1 / args.background_every)
                else:
                    record_sample()
                    clock[event] = now + args.sample_every

            result.elapsed_s = round(time.monotonic() - t0, 1)
            if proc.alive:
                stub.clear_faults()
                final = random_outage(rng, TARGETS, 0.0, 0.0)
                result.final_outage = sorted(final)
                nft.clear()
                nft.blackhole(*sorted(final))
                want = expected_addresses(TARGETS, final)
                log(f"soak: window over; faults off, last outage {sorted(final)}")

                def holds(expected: frozenset[str]) -> Callable[[], bool]:
                    return lambda: all(
                        v == expected for v in watch.current(stub.records(ZONE)).values()
                    )

                result.converge_s = _wait(holds(want), args.converge_timeout, lambda: proc.alive)
                result.converged_after_last_outage = result.converge_s is not None
                nft.clear()
                result.recovery_s = _wait(
                    holds(frozenset(TARGETS)), args.converge_timeout, lambda: proc.alive
                )
                result.converged_after_recovery = result.recovery_s is not None
                record_sample()
                m = _metrics(metrics_url) or {}
                result.dns_converged_metric = m.get(("goavail_dns_converged", frozenset()))
                result.reconcile_passes = _one(m, "goavail_reconcile_passes_total")
                result.reconcile_failed_passes = _one(m, "goavail_reconcile_failed_passes_total")
                result.reconcile_unexpected_errors = _one(
                    m, "goavail_reconcile_unexpected_errors_total"
                )
                result.dns_changes = {
                    ",".join(f"{k}={v}" for k, v in sorted(labels)): value
                    for (metric_name, labels), value in m.items()
                    if metric_name == "goavail_dns_changes_total"
                }
                last = sample(proc.pid)
                result.goavail_cpu_s = round(last.cpu - first.cpu, 1)
                span = last.at - first.at
                result.goavail_cpu_share = round((last.cpu - first.cpu) / span, 4)
                result.goavail_rss_mb_end = round(last.rss_mb, 1)
                result.goavail_peak_rss_mb = round(last.hwm_mb, 1)
                result.goavail_exit_code = proc.stop()
            else:
                result.goavail_died = True
                result.goavail_exit_code = proc.returncode
            records = stub.records(ZONE)
            result.final_records = {n: sorted(a) for n, a in watch.current(records).items()}
            unmanaged_after = [r for r in records if r["type"] != "A" or r["name"] not in names]
            result.unmanaged_untouched = unmanaged_after == unmanaged_before
            lines = proc.lines
        result.watch_errors = [repr(e) for e in stub.watch_errors]

    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        args.log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result.log_path = str(args.log_file)
    result.all_down_decided = all_down_episodes(lines, TARGETS)
    result.guard_deferred_deletes = sum(_GUARD_DEFERRED in line for line in lines)
    result.fail_open_engaged = sum("FAIL-OPEN engaged" in line for line in lines)
    result.fail_open_released = sum("fail-open released" in line for line in lines)
    result.log_errors = sum(" ERROR " in line for line in lines)
    result.log_warnings = sum(" WARNING " in line for line in lines)
    heads = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    result.tracebacks_in_log = len(heads)
    for i in heads[:5]:
        tail = next(
            (
                lines[j]
                for j in range(i + 1, min(len(lines), i + 200))
                if re.match(r"^\w", lines[j])
            ),
            "",
        )
        result.traceback_heads.append(tail)
    with watch.lock:
        result.api_calls = watch.calls
        result.api_calls_by_op_status = {
            f"{op} {status}": n for (op, status), n in sorted(watch.by_op_status.items())
        }
        result.min_records_per_name = dict(watch.min_records)
        result.max_records_per_name = dict(watch.max_records)
        result.min_records = min(watch.min_records.values())
        result.calls_with_an_empty_name = watch.zero_calls
        result.violations = [asdict(v) for v in watch.violations]
    result.faults_injected = len(rules)
    result.faults_hit = sum(1 for _, r in rules if r.hits > 0)
    result.fault_hits_total = sum(r.hits for _, r in rules)
    by_kind: dict[str, dict[str, int]] = {}
    for spec, rule in rules:
        entry = by_kind.setdefault(spec.label, {"injected": 0, "hit": 0, "hits": 0})
        entry["injected"] += 1
        entry["hit"] += rule.hits > 0
        entry["hits"] += rule.hits
    result.faults_by_kind = dict(sorted(by_kind.items()))
    result.background_faults_answered = {str(k): v for k, v in sorted(background.items())}
    judge(result)
    return result


def judge(result: SoakResult) -> None:
    """Fill ``result.problems`` and ``result.ok`` (pure)."""
    problems: list[str] = []
    if result.min_records < 1:
        problems.append(
            f"invariant broken: a managed name had 0 records after "
            f"{result.calls_with_an_empty_name} API call(s)"
        )
    if result.watch_errors:
        problems.append(f"the zone watch raised: {result.watch_errors[:3]}")
    if result.goavail_died:
        problems.append(f"goavail died (exit code {result.goavail_exit_code})")
    elif result.goavail_exit_code != 0:
        problems.append(f"goavail did not stop cleanly (exit code {result.goavail_exit_code})")
    if not result.goavail_died and not (
        result.converged_after_last_outage and result.converged_after_recovery
    ):
        problems.append("DNS did not converge at the end with faults off")
    if not result.unmanaged_untouched:
        problems.append("a record goavail does not manage was changed")
    result.problems = problems
    result.ok = not problems


def report(result: SoakResult) -> str:
    """The headline figures as text lines."""
    return "\n".join(
        [
            f"seed {result.seed}, window {result.elapsed_s:g} s",
            f"API calls: {result.api_calls:,}",
            f"faults: {result.faults_injected} rules injected, {result.faults_hit} hit "
            f"({result.fault_hits_total} answers); background changes "
            f"{result.background_fault_changes}, background faults answered "
            f"{sum(result.background_faults_answered.values())}",
            f"outages: {result.outages} ({result.outages_all_down} with every target down, "
            f"{result.outages_none_down} with none)",
            f"minimum records of any name: {result.min_records} (per name "
            f"{result.min_records_per_name})",
            f"every target decided down {result.all_down_decided} times; fail-open engaged "
            f"{result.fail_open_engaged} times (name by name; released "
            f"{result.fail_open_released}); deletes deferred by the name guard "
            f"{result.guard_deferred_deletes}",
            f"end: converged after the last outage {result.converged_after_last_outage} "
            f"({result.converge_s} s), after recovery {result.converged_after_recovery} "
            f"({result.recovery_s} s), goavail_dns_converged {result.dns_converged_metric}",
            f"goavail: passes {result.reconcile_passes}, failed {result.reconcile_failed_passes}, "
            f"unexpected errors {result.reconcile_unexpected_errors}, tracebacks "
            f"{result.tracebacks_in_log}, CPU {result.goavail_cpu_s} s "
            f"({result.goavail_cpu_share} of a core), RSS {result.goavail_rss_mb_start} -> "
            f"{result.goavail_rss_mb_end} MB (peak {result.goavail_peak_rss_mb}), died "
            f"{result.goavail_died}, exit code {result.goavail_exit_code}",
            "OK" if result.ok else "FAILED: " + "; ".join(result.problems),
        ]
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=1800.0, help="window, seconds (1800)")
    p.add_argument("--seed", type=int, default=None, help="schedule seed (default: random)")
    p.add_argument("--outage-every", type=float, default=8.0, help="mean seconds between outages")
    p.add_argument("--fault-every", type=float, default=4.0, help="mean seconds between faults")
    p.add_argument(
        "--background-every", type=float, default=60.0, help="mean s between background rates"
    )
    p.add_argument("--p-all", type=float, default=0.15, help="share of outages of every target")
    p.add_argument("--p-none", type=float, default=0.2, help="share of outages of no target")
    p.add_argument("--max-retry-after", type=int, default=15, help="longest Retry-After, s")
    p.add_argument("--sample-every", type=float, default=60.0, help="seconds between samples")
    p.add_argument(
        "--converge-timeout", type=float, default=180.0, help="limit of each final wait, s"
    )
    p.add_argument("--json", type=Path, default=None, help="write the result here as JSON")
    p.add_argument("--log-file", type=Path, default=None, help="write goavail's log here")
    args = p.parse_args(list(argv))
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    if args.max_retry_after < 2:
        p.error("--max-retry-after must be >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: re-exec in a private namespace, soak, print and save; 1 on a problem."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    ensure_private_netns(argv, module="bench.soak")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    info = machine()
    info["busiest_processes_at_start"] = _top_processes()
    print(
        f"soak: seed {args.seed}; {info['nproc']} CPUs, {info['cpu_model']}, "
        f"load {info['loadavg_at_start']}",
        flush=True,
    )
    result = run_soak(args, log=lambda text: print(text, flush=True))
    info["loadavg_at_end"] = os.getloadavg()
    info["busiest_processes_at_end"] = _top_processes()
    print(report(result), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join(["python -m bench.soak", *argv]),
            "seed": args.seed,
            "machine": info,
            "settings": {
                k: v for k, v in vars(args).items() if k not in ("json", "log_file", "seed")
            }
            | {"timing": TIMING.strip().splitlines(), "resync_interval": RESYNC},
            "result": asdict(result),
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"soak: wrote {args.json}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
