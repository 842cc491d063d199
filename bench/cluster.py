"""Cluster benchmarks: failover latency, loss resilience (issue 4) and scale (issue 13).

Usage (root; the harness re-executes itself in a private network namespace and
refuses to run unless ``lo`` is its only interface)::

    .venv/bin/python -m bench.cluster --cluster-latency 20 --json bench/results/cluster.json
    .venv/bin/python -m bench.cluster --loss 300 --loss-cases a,b,c \\
        --json bench/results/loss.json
    .venv/bin/python -m bench.cluster --cluster-scale 3,5 --json bench/results/scale.json

``--cluster-latency N``: N outages of one target seen by three agents
(``min_peers_agree = 1``), see :mod:`bench.cluster_latency`.

``--loss SECONDS``: the loss-resilience study, one window of SECONDS per case
(1,000 targets, 20 % random loss per probe, see :mod:`bench.loss`):
(a) one agent, threshold 3; (b) three agents, threshold 3, ``min_peers_agree`` 1;
(c) three agents, threshold 5, ``min_peers_agree`` 1; next to the independent-loss
model of :mod:`bench.model`.

``--cluster-scale 3,5``: 10,000 targets (``--scale-targets``) watched by 3, then 5
agents, no loss: warm-up time (the agents started together, then staggered as in a
rolling deploy: ``--scale-start``), then Serf's and the sync port's traffic, CPU and RSS
per agent in the steady state, see :mod:`bench.cluster_scale`. ``--cluster-scale 1``
runs one agent without ``[Members]`` (single-node mode) the same way, as a control.

Every namespace, nftables table, route and process is removed at the end, also
after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import REPO, _raise_on_sigterm, _seconds, ensure_private_netns, machine

LOSS_CASES = {
    "a": {"agents": 1, "failure_threshold": 3, "min_peers_agree": 0},
    "b": {"agents": 3, "failure_threshold": 3, "min_peers_agree": 1},
    "c": {"agents": 3, "failure_threshold": 5, "min_peers_agree": 1},
}
"""The three cases of the issue: agents, failure_threshold (= rise), min_peers_agree."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n")[0])
    p.add_argument(
        "--cluster-latency",
        type=int,
        default=0,
        metavar="TRIALS",
        help="3-agent failover latency over this many outages (>= 20 for a p99)",
    )
    p.add_argument(
        "--cluster-restart-every",
        type=int,
        default=5,
        metavar="TRIALS",
        help="start fresh agents (new relative probe phases) every this many trials (5)",
    )
    p.add_argument(
        "--loss",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="loss-resilience study: measured window per case, seconds (the issue: 300)",
    )
    p.add_argument("--loss-cases", default="a,b,c", help="which loss cases (default a,b,c)")
    p.add_argument("--loss-targets", type=int, default=1000, help="targets (default 1000)")
    p.add_argument("--loss-pct", type=int, default=20, help="random loss per probe, %% (20)")
    p.add_argument(
        "--loss-settle",
        type=float,
        default=20.0,
        help="seconds of loss before the window opens (the process reaches steady state)",
    )
    p.add_argument(
        "--sim-replicates",
        type=int,
        default=20,
        help="Monte Carlo replicates of each loss case under the model (0: skip)",
    )
    p.add_argument(
        "--cluster-scale",
        default="0",
        metavar="AGENTS[,AGENTS...]",
        help="scale run: agent counts, e.g. 3,5 (0: skip)",
    )
    p.add_argument("--scale-targets", type=int, default=10000, help="targets (default 10000)")
    p.add_argument(
        "--scale-window", type=float, default=60.0, help="steady-state window, seconds (60)"
    )
    p.add_argument(
        "--scale-settle",
        type=float,
        default=30.0,
        help="seconds after the warm-up before the window opens (30)",
    )
    p.add_argument(
        "--scale-threshold", type=int, default=3, help="failure_threshold = rise_threshold (3)"
    )
    p.add_argument("--scale-quorum", type=int, default=1, help="min_peers_agree (1)")
    p.add_argument(
        "--scale-start",
        default="together,staggered",
        help="scale run: how the agents start, together and/or staggered (rolling deploy: "
        "each once the one before has joined); default both, in that order",
    )
    p.add_argument(
        "--scale-pool-size",
        type=int,
        default=2,
        help="scale run: targets per pool, each pool under a name of its own (2: 10,000 "
        "targets in 5,000 names); 0: every target under one name, the original's shape",
    )
    p.add_argument(
        "--scale-warmup-limit",
        type=float,
        default=300.0,
        help="give up when the warm-up takes longer, seconds (300)",
    )
    p.add_argument(
        "--scale-profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="scale run: py-spy the last agent started, from its start (needs .venv/bin/py-spy)",
    )
    p.add_argument(
        "--scale-profile-seconds",
        type=float,
        default=30.0,
        help="scale run: seconds of py-spy sampling from the agents' start (30)",
    )
    p.add_argument("--timeout", default="500ms", help='probe timeout ("500ms")')
    p.add_argument(
        "--announce-interval",
        default=None,
        help='[Members] announce_interval of the agents (default: goavail\'s, "10s")',
    )
    p.add_argument(
        "--keep-logs",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy every agent's log (all lines but the per-probe ones) and config here",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args(list(argv))
    args.interval = 1.0
    args.timeout_s = _seconds(args.timeout)
    args.cases = [c.strip() for c in str(args.loss_cases).split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in LOSS_CASES]
    if unknown:
        p.error(f"unknown loss case(s) {unknown}; choose from a, b, c")
    if args.cluster_restart_every < 1:
        p.error("--cluster-restart-every must be >= 1")
    if not 0 < args.loss_pct < 100:
        p.error("--loss-pct must be between 1 and 99")
    try:
        args.scale_agents = [int(x) for x in str(args.cluster_scale).split(",") if x.strip()]
    except ValueError:
        p.error("--cluster-scale takes agent counts, e.g. 3,5")
    args.scale_agents = [k for k in args.scale_agents if k != 0]
    args.scale_starts = [x.strip() for x in str(args.scale_start).split(",") if x.strip()]
    if not args.scale_starts or any(x not in ("together", "staggered") for x in args.scale_starts):
        p.error("--scale-start takes together and/or staggered, e.g. together,staggered")
    if args.scale_pool_size < 0:
        p.error("--scale-pool-size must be 0 or more")
    if any(not 1 <= k <= 8 for k in args.scale_agents):
        p.error("--cluster-scale: 1 to 8 agents per run (1: one node, no [Members])")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: re-exec in a private namespace, run what was asked, print and save."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.cluster_latency <= 0 and args.loss <= 0 and not args.scale_agents:
        print("bench.cluster: nothing to do (give --cluster-latency, --loss or --cluster-scale)")
        return 0
    ensure_private_netns(argv, module="bench.cluster")
    os.environ["GOAVAIL_TEST_PRIVATE_NETNS"] = "1"  # checked above: only `lo` exists
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    info = machine()
    print(f"bench: {info['nproc']} CPUs, {info['cpu_model']}, Linux {info['kernel']}", flush=True)
    doc: dict[str, Any] = {
        "command": " ".join(["python -m bench.cluster", *argv]),
        "machine": info,
    }
    doc["machine"]["loadavg_at_start"] = os.getloadavg()
    # As an installed goavail is (pip writes the .pyc files): agents that compile the
    # sources at every start (PYTHONDONTWRITEBYTECODE, an editable install) would pay
    # ~0.1 CPU-s each for it.
    compileall.compile_dir(str(REPO / "goavail"), quiet=1)
    if args.cluster_latency > 0:
        from bench.cluster_latency import run_cluster_latency

        print(f"\nbench: 3-agent failover latency, {args.cluster_latency} trials ...", flush=True)
        lat = run_cluster_latency(args)
        doc["cluster_latency"] = lat
        print(
            f"3-agent failover latency (min_peers_agree 1, threshold {lat['failure_threshold']}, "
            f"interval 1 s, timeout {args.timeout}): p50 {lat['p50_s']:.3f} s, "
            f"p99 {lat['p99_s']:.3f} s, min {lat['min_s']:.3f} s, max {lat['max_s']:.3f} s, "
            f"bound {lat['bound_s']:.3f} s",
            flush=True,
        )
        _save(args, doc)
    if args.loss > 0:
        from bench.loss import loss_table, run_loss

        doc["loss"] = []
        for case in args.cases:
            print(f"\nbench: loss case ({case}) {LOSS_CASES[case]} ...", flush=True)
            result = run_loss(case, LOSS_CASES[case], args)
            doc["loss"].append(result)
            print(loss_table([result]).splitlines()[-1], flush=True)
            _save(args, doc)
        print()
        print(loss_table(doc["loss"]))
    if args.scale_agents:
        from bench.cluster_scale import run_cluster_scale, scale_table

        doc["scale"] = []
        for count in args.scale_agents:
            for start in args.scale_starts if count > 1 else ["together"]:
                print(
                    f"\nbench: scale, {args.scale_targets} targets x {count} agents, "
                    f"started {start} ...",
                    flush=True,
                )
                doc["scale"].append(run_cluster_scale(count, args, start))
                print(scale_table(doc["scale"][-1:]), flush=True)
            _save(args, doc)
    doc["machine"]["loadavg_at_end"] = os.getloadavg()
    _save(args, doc)
    return 0


def _save(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """Write the results so far (after each part: a later failure keeps the earlier ones)."""
    if args.json is None:
        return
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
