"""Where the probing CPU goes: the pipeline built up stage by stage in one process.

Usage (root; re-executes itself in a private network namespace, like bench.run)::

    .venv/bin/python -m bench.breakdown --targets 10000 --seconds 10

Each stage probes N loopback targets (127.x.y.z) once per second for a warm-up of 3 s and
then a window of ``--seconds``; the CPU time of the process (``getrusage``: user and
system) per round is printed:

* ``bare``: the ICMP engine's target table driven by a plain loop, no asyncio and no
  scheduler: ``sendmmsg`` of every due probe from the prepared messages and ``recvmmsg``
  of the replies around an ``epoll`` wait of 2 ms, a counting callback. The floor.
* ``engine``: goavail's :class:`~goavail.checks.icmp.IcmpProbe` and
  :class:`~goavail.checks.scheduler.ProbeScheduler` on asyncio, results counted only.
* ``health``: as ``engine``, plus :func:`goavail.health.observe` per result.
* ``agent``: the whole :class:`goavail.agent.Agent` (zonefile provider in dry-run on a zone
  that holds every record, as in bench.run), logging at WARNING.

Every stage runs in its own child process, so imports and memory do not carry over.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.run import ensure_private_netns, loopback_targets, write_setup

STAGES = ("bare", "engine", "health", "agent")
WARMUP = 3.0


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def _report(stage: str, n: int, seconds: float, before: tuple[float, float]) -> str:
    user, system = (after - b for after, b in zip(_cpu(), before, strict=True))
    return (
        f"{stage:7s} {n:>7,} targets  user {user / seconds:.4f}  system {system / seconds:.4f}"
        f"  total {(user + system) / seconds:.4f} CPU s per round"
    )


def bare(targets: Sequence[str], seconds: float) -> str:
    """The floor: one IcmpProbe table driven by hand, no event loop, no callbacks."""
    from goavail.checks import icmp

    if icmp._libc_mmsg() is None:
        raise SystemExit("bench.breakdown: bare needs sendmmsg/recvmmsg")
    probe = icmp.IcmpProbe(timeout=0.5, batch_syscalls=True)
    probe._loop = asyncio.new_event_loop()  # only for start(): add_reader is never served
    probe._loop.run_until_complete(probe.start())
    fam = probe._families[4]
    probe._loop.remove_reader(fam.sock.fileno())
    table = probe._new_table(list(targets))
    got = 0

    def count(_target: str, _result: object) -> None:
        nonlocal got
        got += 1

    table.callback = count
    n, poller = len(targets), select.epoll()
    poller.register(fam.sock.fileno(), select.EPOLLIN)
    t0, sent, before, window_start = time.monotonic(), 0, _cpu(), 0.0
    while True:
        now = time.monotonic()
        if not window_start and now - t0 >= WARMUP:
            before, window_start = _cpu(), now
        if window_start and now - window_start >= seconds:
            break
        due = int((now - t0) * n) + 1
        while sent < due:
            a = sent % n
            b = min(n, a + due - sent)
            table.inflight[a:b] = b"\x01" * (b - a)
            probe._send_table(table, (sent // n) & 1, a, b)
            table.parity[a:b] = bytes([(sent // n) & 1]) * (b - a)
            sent += b - a
        poller.poll(0.002)
        probe._drain_mmsg(fam)
    return _report("bare", n, seconds, before)


async def _engine(targets: Sequence[str], seconds: float, with_health: bool) -> str:
    from goavail.checks.base import ProbeResult
    from goavail.checks.icmp import IcmpProbe
    from goavail.checks.scheduler import ProbeScheduler
    from goavail.health import Health, observe

    health: dict[str, Health] = {}

    def on_result(target: str, result: ProbeResult) -> None:
        if with_health:
            health[target], _ = observe(health.get(target, Health()), result.ok, fall=3, rise=3)

    probe = IcmpProbe(timeout=0.5)
    await probe.start()
    scheduler = ProbeScheduler(probe, 1.0, on_result)
    scheduler.set_targets(targets)
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(WARMUP)
    before = _cpu()
    await asyncio.sleep(seconds)
    line = _report("health" if with_health else "engine", len(targets), seconds, before)
    scheduler.stop()
    await task
    await probe.close()
    return line


async def _agent(targets: Sequence[str], seconds: float) -> str:
    from goavail.compose import compose, load_checked
    from goavail.options import Options

    with tempfile.TemporaryDirectory(prefix="goavail-breakdown-") as tmp:
        config = write_setup(Path(tmp), targets, "500ms")
        options = Options(config, dry_run=True, probe_type="ip", provider="zonefile")
        agent = compose(load_checked(options), options)
        task = asyncio.create_task(agent.run())
        await asyncio.sleep(WARMUP + len(targets) / 2000)  # the zone file is parsed first
        before = _cpu()
        await asyncio.sleep(seconds)
        line = _report("agent", len(targets), seconds, before)
        agent.request_stop()
        await task
    return line


def run_stage(stage: str, n: int, seconds: float) -> str:
    """Run one stage in this process and return its report line."""
    targets = loopback_targets(n)
    if stage == "bare":
        return bare(targets, seconds)
    runners: dict[str, Callable[[], str]] = {
        "engine": lambda: asyncio.run(_engine(targets, seconds, with_health=False)),
        "health": lambda: asyncio.run(_engine(targets, seconds, with_health=True)),
        "agent": lambda: asyncio.run(_agent(targets, seconds)),
    }
    return runners[stage]()


def main(argv: Sequence[str] | None = None) -> int:
    """Run every stage (or ``--stage``) in a child process each; print one line per stage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    summary = __doc__.split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.breakdown", description=summary)
    p.add_argument("--targets", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per stage")
    p.add_argument("--stage", choices=STAGES, default=None, help="run one stage only")
    args = p.parse_args(argv)
    ensure_private_netns(argv, module="bench.breakdown")
    logging.basicConfig(level=logging.WARNING)
    if args.stage is not None:
        print(run_stage(args.stage, args.targets, args.seconds), flush=True)
        return 0
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"bench.breakdown: load average {' '.join(f.read().split()[:3])}", flush=True)
    for stage in STAGES:
        cmd = [sys.executable, "-m", "bench.breakdown", *argv, "--stage", stage]
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
