"""CPU of the warm-up's costs that issue 13's warm-up work cut, each measured alone.

Usage (no root, no network: everything in this process)::

    .venv/bin/python -m bench.warmup_cuts [--targets 10000] [--json FILE]

1. ``log_lines``: what one agent of five logs for 10,000 targets at start-up, written
   with goavail's real formatter to a pipe: a line per first verdict, "no decision yet",
   four peers' first votes and first decision (70,000 INFO lines, as before), against
   the same events through :mod:`goavail.firstlines` (10 lines a second per kind, the
   rest summarised; their DEBUG lines are not built).
2. ``zone_parse``: the zone file's first parse (dnspython) for the two shapes of the
   scale run: 10,000 A records at one name, and 10,000 in 5,000 names of two.
3. ``reconcile_pass``: one reconcile pass after the first (zone file, dry run, every
   target up, nothing to change) for the same two shapes: reading the records of every
   managed name and planning.

Each figure is ``time.process_time()`` seconds of this process (the zone file's reads
run in a worker thread of it), the best of ``--repeat`` runs. Run from a checkout of an
older goavail (``PYTHONPATH`` = that checkout) for the "before" figures of 2 and 3.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dns.zone

from bench.agents import ZONE, bench_targets, pool_names, write_zone
from goavail.dns.audit import AuditLog
from goavail.dns.plan import NameSpec
from goavail.dns.providers.zonefile import ZonefileProvider
from goavail.dns.reconcile import Reconciler
from goavail.health import State
from goavail.logs import setup_logging

PEERS = ("b", "c", "d", "e")


def _best(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return round(best, 3)


def _lines_before(targets: Sequence[str]) -> None:
    agent, cluster = logging.getLogger("goavail.agent"), logging.getLogger("goavail.cluster")
    for t in targets:
        agent.info(
            "target %s %s -> %s %s (names: %s)", t, State.UNKNOWN, State.UP,
            "after 3 consecutive successes", "p0.bench.test", extra={"target": t, "state": "up"},
        )  # fmt: skip
        agent.info(
            "no decision yet for %s: needs %d agreeing peer(s) (votes: %s)",
            t, 1, "a(self)=up", extra={"target": t},
        )  # fmt: skip
    for peer in PEERS:
        for t in targets:
            cluster.info("peer %s votes %s %s", peer, t, State.UP, extra={"target": t})
    for t in targets:
        agent.info(
            "decision for %s: %s%s", t, State.UP, " (votes: a(self)=up b=up c=up d=up e=up)",
            extra={"target": t},
        )  # fmt: skip


def _lines_now(targets: Sequence[str]) -> None:
    from goavail.firstlines import LineBudget, WarmUp, describe

    agent, cluster = logging.getLogger("goavail.agent"), logging.getLogger("goavail.cluster")
    warm = WarmUp(agent, targets, dict.fromkeys(targets, State.UP))
    for t in targets:
        level = warm.verdict(t, State.UNKNOWN, State.UP)
        if agent.isEnabledFor(level):
            agent.log(
                level, "target %s %s -> %s %s (names: %s)", t, State.UNKNOWN, State.UP,
                "after 3 consecutive successes", "p0.bench.test",
                extra={"target": t, "state": "up"},
            )  # fmt: skip
        if level != logging.INFO:
            warm.waiting()
        if agent.isEnabledFor(level):
            agent.log(
                level, "no decision yet for %s: needs %d agreeing peer(s) (votes: %s)",
                t, 1, "a(self)=up", extra={"target": t},
            )  # fmt: skip
    budget = LineBudget()
    for peer in PEERS:  # one pull per peer
        for t in targets:
            level = logging.INFO if budget.take(time.monotonic(), "up", t) else logging.DEBUG
            if cluster.isEnabledFor(level):
                cluster.log(level, "peer %s votes %s %s", peer, t, State.UP, extra={"target": t})
        tally = budget.summary()
        if tally is not None:
            cluster.info(
                "peer %s: first votes on %d more targets: %s (one line each at DEBUG)",
                peer, tally.total, describe(tally),
            )  # fmt: skip
    for t in targets:
        level = warm.decision(t, State.UP)
        if agent.isEnabledFor(level):
            agent.log(level, "decision for %s: %s%s", t, State.UP, " (votes: ...)")
        warm.check()


def log_lines(targets: Sequence[str], repeat: int) -> dict[str, float | None]:
    """CPU seconds of the start-up lines, before and now (stderr is a pipe to ``cat``)."""
    sink = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert sink.stdin is not None
    saved = os.dup(2)
    os.dup2(sink.stdin.fileno(), 2)
    try:
        setup_logging("text")
        out: dict[str, float | None] = {
            "per_target_lines_s": _best(lambda: _lines_before(targets), repeat)
        }
        try:
            out["summarised_s"] = _best(lambda: _lines_now(targets), repeat)
        except ImportError:  # run on a goavail without goavail/firstlines.py
            out["summarised_s"] = None
        return out
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.stdin.close()
        sink.wait()
        logging.getLogger().handlers.clear()


def _shape(targets: Sequence[str], pool_size: int | None) -> list[NameSpec]:
    if pool_size is None:
        return [NameSpec(f"www.{ZONE}", (tuple(targets),))]
    return [
        NameSpec(f"{label}.{ZONE}", (tuple(pool),))
        for label, pool in pool_names(targets, pool_size).items()
    ]


def zone_and_pass(targets: Sequence[str], repeat: int) -> dict[str, dict[str, float]]:
    """CPU seconds of the first parse and of a later reconcile pass, for both shapes."""
    out: dict[str, dict[str, float]] = {}
    for label, pool_size in (("one_name", None), ("names_of_2", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.zone"
            write_zone(path, targets, pool_size)
            text = path.read_text()
            parse = _best(
                functools.partial(dns.zone.from_text, text, ZONE, relativize=True), repeat
            )
            provider = ZonefileProvider(
                dry_run=True, audit=AuditLog(), path=path, origin=ZONE, ttl=120
            )
            reconciler = Reconciler(
                provider,
                names=[],
                addresses=[],
                decisions=dict.fromkeys(targets, State.UP),
                ttl=120,
                proxied=None,
                resync_interval=60.0,
                specs=_shape(targets, pool_size),
            )
            asyncio.run(reconciler.reconcile_once())  # the first pass parses

            async def passes(n: int = 5, reconciler: Reconciler = reconciler) -> None:
                for _ in range(n):
                    await reconciler.reconcile_once()

            per_pass = _best(lambda: asyncio.run(passes()), repeat) / 5
            out[label] = {"zone_parse_s": parse, "reconcile_pass_s": round(per_pass, 4)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print (and save) the figures of the module docstring."""
    p = argparse.ArgumentParser(prog="python -m bench.warmup_cuts", description=__doc__)
    p.add_argument("--targets", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    targets = bench_targets(args.targets)
    doc: dict[str, Any] = {
        "targets": len(targets),
        "loadavg_at_start": list(os.getloadavg()),
        "log_lines": log_lines(targets, args.repeat),
        "zone_file": zone_and_pass(targets, args.repeat),
    }
    doc["loadavg_at_end"] = list(os.getloadavg())
    print(json.dumps(doc, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
