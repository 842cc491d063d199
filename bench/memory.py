"""Where the per-target bytes go (issue 14): tracemalloc on the composed agent, two sizes.

Usage (no root; nothing is probed, no socket is opened)::

    .venv/bin/python -m bench.memory --targets 2000,10000 --json bench/results/memory.json

(``make bench BENCH_SIZES=0 BENCH_MEMORY=1``, sizes ``BENCH_MEMORY_SIZES``.) For each
size N, in a fresh interpreter (so that one size's garbage and caches do not count in
the other's):

1. the configuration of :mod:`bench.cfpath` (N targets as N/2 names of two, each its
   own ``[[pools]]`` entry, over 5 Cloudflare zones) is written to a temporary
   directory;
2. the goavail modules the agent needs are imported, then :mod:`tracemalloc` starts
   (``--frames`` frames per allocation);
3. stage by stage, as ``goavail monitor`` does it: ``load`` (:func:`goavail.compose.load_checked`),
   ``compose`` (:func:`goavail.compose.compose`: the Cloudflare provider is built,
   never contacted), ``up`` (``rise`` successful results per target fed through the
   agent's own check, so that every target is up), ``pass`` (one reconcile pass
   against an in-memory provider holding every record, as the first pass on the live
   path reads them: the reconciler's current records, plan and explanations); after
   each stage the memory still allocated is taken, grouped by the innermost
   ``goavail`` frame of each allocation's traceback (``goavail/pools.py``...), else by
   its innermost frame (a library's file, e.g. ``pydantic/main.py``);
4. the agent is kept alive until the last snapshot.

Bytes per target of a module = (bytes at N2 - bytes at N1) / (N2 - N1) between the two
largest sizes, at the last stage; the table lists the modules above 1 byte per target.
tracemalloc sees Python's allocations only (not the interpreter's fixed pools or
fragmentation), so the total is below the RSS slope of :mod:`bench.cfpath`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STAGES = ("load", "compose", "up", "pass")


def _where(trace: tracemalloc.Traceback) -> str:
    """The innermost goavail frame's file (relative), else the innermost frame's."""
    for frame in reversed(trace):  # tracemalloc's order: oldest first
        name = frame.filename.replace(os.sep, "/")
        if "/goavail/" in name and "/site-packages/" not in name:
            return "goavail/" + name.rsplit("/goavail/", 1)[1]
    name = trace[-1].filename.replace(os.sep, "/")
    if "/site-packages/" in name:
        return name.rsplit("/site-packages/", 1)[1]
    return name.rsplit("/lib/python", 1)[-1]


def _by_module(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for stat in snapshot.statistics("traceback"):
        out[_where(stat.traceback)] += stat.size
    return dict(out)


def measure_one(n: int, frames: int) -> dict[str, Any]:
    """One size in this interpreter: bytes per module after each stage."""
    os.environ.setdefault("CLOUDFLARE_API_TOKEN", "bench-memory-token-not-used-0123456789")
    os.environ.setdefault("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4")
    from bench.cfpath import layout, write_config
    from bench.run import loopback_targets
    from goavail.checks.base import ProbeResult
    from goavail.compose import compose, load_checked
    from goavail.dns.audit import AuditLog
    from goavail.dns.model import Record
    from goavail.dns.providers.memory import MemoryProvider
    from goavail.options import Options

    names = layout(loopback_targets(n))
    result: dict[str, Any] = {"targets": n, "names": len(names), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="goavail-mem-") as tmp:
        path = write_config(Path(tmp), names, "20s")
        options = Options(path, False, "ip", "cloudflare")
        records = [Record(name, "A", a, ttl=60) for _zone, name, addrs in names for a in addrs]
        gc.collect()
        tracemalloc.start(frames)
        base = tracemalloc.take_snapshot()

        def stage(label: str) -> None:
            gc.collect()
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            modules = _by_module(snap)
            before = _by_module(base)
            diff = {m: modules.get(m, 0) - before.get(m, 0) for m in modules.keys() | before}
            result["stages"][label] = {m: b for m, b in diff.items() if b}

        config = load_checked(options)
        stage("load")
        agent = compose(config, options)
        del config
        stage("compose")
        check = agent.checks.single_check
        assert check is not None
        ok = ProbeResult(ok=True, rtt=0.0004, error=None)
        for _ in range(max(1, agent.config.rise_threshold or agent.config.failure_threshold)):
            for target in agent.publication.targets:
                check.on_result(target, ok)
        stage("up")
        reconciler = agent.reconciler
        provider = MemoryProvider(dry_run=False, audit=AuditLog(None), records=records)
        del records
        reconciler.provider = provider
        asyncio.run(reconciler.reconcile_once())
        stage("pass")
        result["converged"] = reconciler.converged
        del agent, provider
    return result


def per_target(results: Sequence[dict[str, Any]], label: str) -> dict[str, float]:
    """Module -> bytes per extra target between the two largest sizes at stage
    ``label``. Pure."""
    small, large = sorted(results, key=lambda r: r["targets"])[-2:]
    span = large["targets"] - small["targets"]
    a, b = small["stages"][label], large["stages"][label]
    return {m: (b.get(m, 0) - a.get(m, 0)) / span for m in a.keys() | b.keys()}


def table(results: Sequence[dict[str, Any]], floor: float = 1.0) -> str:
    """Markdown: bytes per target per module after each stage (rows above ``floor``)."""
    per = {label: per_target(results, label) for label in STAGES}
    last = per[STAGES[-1]]
    rows = sorted((m for m in last if abs(last[m]) >= floor), key=lambda m: -last[m])
    head = "| module | " + " | ".join(f"after {s}" for s in STAGES) + " |"
    lines = [head, "| --- |" + " ---: |" * len(STAGES)]
    for m in rows:
        lines.append(f"| `{m}` | " + " | ".join(f"{per[s].get(m, 0):,.0f}" for s in STAGES) + " |")
    totals = " | ".join(f"**{sum(per[s].values()):,.0f}**" for s in STAGES)
    lines.append(f"| total | {totals} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--targets", default="2000,10000", help="sizes, comma separated")
    parser.add_argument("--frames", type=int, default=12, help="traceback frames kept")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every size in a child interpreter; print the table."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.one is not None:
        json.dump(measure_one(args.one, args.frames), sys.stdout)
        return 0
    sizes = [int(s) for s in args.targets.split(",") if s]
    if len(sizes) < 2:
        print("bench.memory: give two sizes or more (--targets 10000,50000)", file=sys.stderr)
        return 2
    results = []
    for n in sizes:
        print(f"bench.memory: {n} targets ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--one", str(n), "--frames", str(args.frames)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out))
    print(table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
