"""Cluster mode at fleet scale (issue 13): 10,000 targets watched by 3 or 5 agents, no loss.

Each agent is the real ``goavail monitor`` in its own network namespace with its own
Serf agent (:mod:`bench.agents`; node names ``a``, ``b``, ... on 192.0.2.1, .2, ...),
``interval = 1``, ``timeout = 500ms``, ``failure_threshold = 3`` (``rise_threshold``
the same), ``min_peers_agree = 1`` unless given, every other ``[Members]`` key at its
default (Serf ``lan`` profile, ``announce_interval`` 10 s, ``sync_port`` 7947). The
targets are RFC 2544 addresses of the private namespace (198.18.0.1 on). DNS is a zone
file per agent with a ``www`` A record for each target, read in dry-run mode (as the
single-node scale run, ``bench.run``): the Cloudflare provider refuses a name with more
than 64 pages of records (6,400; DNS itself cannot answer with more than 4,096 A records
in one name), and goavail puts every target in every configured name.

1. **Warm-up.** Every agent is started (in one go, without waiting); the clock starts
   when the last one has been started. Warm-up ends when every agent has logged
   ``decision for T: up`` for every target (its own verdict and ``min_peers_agree``
   peers' votes). The goal of the issue: ``rise_threshold * interval + 5 s``. Also
   recorded: the CPU seconds every agent and its Serf used from their start to the end
   of the warm-up (``warmup_cpu_s``), next to what the machine's CPUs could give in that
   time (``warmup_cpu_capacity_s``: CPUs times seconds since the first start), and where
   each agent's warm-up went (:func:`warmup_breakdown`).
2. **Steady state.** After ``settle`` seconds a window of ``window`` seconds opens.
   Read at both ends in each agent namespace: the nftables counters of
   :class:`bench.agents.TrafficTable` (Serf's gossip port, UDP and TCP, and the sync
   port, both directions: packets and bytes, IP headers included), CPU time of the
   agent and of its Serf child (``/proc``), goavail's own ``goavail_gossip_*``
   counters (``/metrics``), Serf's "received old event" warnings (the agent logs Serf's
   output). RSS at the end of the window.

Must run inside the private network namespace of ``bench.cluster``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.agents import (
    SYNC_PORT,
    ZONEFILE_DRY_RUN,
    AgentProcess,
    BenchNet,
    TrafficTable,
    agent_config,
    bench_targets,
    check_alive,
    keep_logs,
    scrape_gossip,
    wait_for,
    write_zone,
)
from bench.loss import _self_cpu
from tests.e2e.cluster_net import ALL_NODES, SERF_PORT

_JOINED = re.compile(r"peer (\S+) joined")
_VOTE_UP = re.compile(r"peer (\S+) votes \S+ up$")

_GOSSIP_COUNTERS = {
    "notices_published": 'goavail_gossip_published_total{result="ok"}',
    "messages_accepted": 'goavail_gossip_messages_total{reason="",result="accepted"}',
    "pulls_ok": 'goavail_gossip_pulls_total{result="ok"}',
    "pulls_failed": 'goavail_gossip_pulls_total{result="failed"}',
    "pulls_served": "goavail_gossip_pulls_served_total",
}
"""goavail's counters reported per second in the window (names as ``/metrics`` shows them)."""


def _rate(after: float, before: float, seconds: float) -> float:
    return round((after - before) / seconds, 3)


def _metric(sample: dict[str, float], name: str) -> float:
    """Value of ``name`` in a scrape; a name without labels also matches the sum of its
    labelled series (the exposition's label order is not fixed)."""
    if name in sample:
        return sample[name]
    base, _, labels = name.partition("{")
    wanted = set(labels.rstrip("}").split(",")) - {""}
    total = 0.0
    for key, value in sample.items():
        k_base, _, k_labels = key.partition("{")
        if k_base == base and wanted <= set(k_labels.rstrip("}").split(",")):
            total += value
    return total


def warmup_breakdown(log_path: Path, t_start: float, wall_offset: float) -> dict[str, Any]:
    """Where one agent's warm-up went, from its stamped log (``bench.agents`` writes
    ``<monotonic> <line>``): seconds after ``t_start`` of its ``starting`` line, each
    peer's ``joined`` line, its own first and last ``unknown -> up`` verdicts, each
    peer's last ``votes ... up`` line (and how many), its last ``decision ...: up``.
    ``arrival_lag_max_s``: the largest difference between a line's arrival (monotonic
    stamp + ``wall_offset`` = Unix time) and the time the agent logged in it; the logged
    time has whole seconds, so up to 1 s of it is truncation, the rest is the pipe and
    the harness's reader falling behind (which would inflate the measured warm-up).

    Raises:
        OSError: the log cannot be read.
    """
    started: float | None = None
    joined: dict[str, float] = {}
    own: list[float] = []
    votes: dict[str, list[float]] = {}
    last_decision: float | None = None
    lag = 0.0
    with log_path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            stamp, _, text = line.partition(" ")
            try:
                at = float(stamp) - t_start
                logged = datetime.fromisoformat(text[:24]).timestamp()
            except ValueError:
                continue
            lag = max(lag, float(stamp) + wall_offset - logged)
            if "goavail.agent: goavail " in text and " starting:" in text:
                started = at
            elif (m := _JOINED.search(text)) is not None:
                joined.setdefault(m.group(1), at)
            elif " unknown -> up after" in text:
                own.append(at)
            elif (m := _VOTE_UP.search(text)) is not None:
                votes.setdefault(m.group(1), []).append(at)
            elif "decision for " in text and ": up" in text:
                last_decision = at

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "started_s": r(started),
        "peer_joined_s": {p: r(t) for p, t in sorted(joined.items())},
        "own_first_up_s": r(min(own)) if own else None,
        "own_last_up_s": r(max(own)) if own else None,
        "own_up_verdicts": len(own),
        "peer_votes_up": {p: len(v) for p, v in sorted(votes.items())},
        "peer_last_vote_up_s": {p: r(max(v)) for p, v in sorted(votes.items())},
        "last_decision_up_s": r(last_decision),
        "arrival_lag_max_s": r(lag),
    }


def _start_profile(
    args: argparse.Namespace, agent_count: int, agent: AgentProcess
) -> subprocess.Popen[bytes] | None:
    """With ``--scale-profile DIR``: py-spy (``.venv/bin/py-spy``) samples the first agent
    for its first ``--scale-profile-seconds`` (collapsed stacks, idle frames left out:
    ``DIR/scale-<agents>-<node>.folded``). None without the option."""
    if args.scale_profile is None:
        return None
    args.scale_profile.mkdir(parents=True, exist_ok=True)
    out = args.scale_profile / f"scale-{agent_count}-{agent.node}.folded"
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy), "record", "--pid", str(agent.pid), "--format", "raw", "--rate", "100",
            "--nonblocking", "--duration", str(int(args.scale_profile_seconds)),
            "--output", str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_cluster_scale(agent_count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up and steady state of ``agent_count`` agents on ``args.scale_targets`` targets.

    Returns the figures of the module docstring (times in s, rates per s, RSS in MB).

    Raises:
        RuntimeError: an agent exited, or the warm-up did not finish in
            ``args.scale_warmup_limit`` seconds.
    """
    nodes = ALL_NODES[:agent_count]
    nproc = os.cpu_count() or 1
    targets = bench_targets(args.scale_targets)
    n = len(targets)
    interval = float(args.interval)
    threshold = int(args.scale_threshold)
    result: dict[str, Any] = {
        "agents": agent_count,
        "targets": n,
        "interval_s": interval,
        "timeout": args.timeout,
        "failure_threshold": threshold,
        "rise_threshold": threshold,
        "min_peers_agree": args.scale_quorum if agent_count > 1 else None,
        "announce_interval": args.announce_interval or "10s (default)",
        "serf_profile": "lan (default)",
        "gossip_port": SERF_PORT,
        "sync_port": SYNC_PORT,
        "settle_s": args.scale_settle,
        "window_s": args.scale_window,
        "warmup_goal_s": threshold * interval + 5.0,
        "loadavg_at_start": list(os.getloadavg()),
    }
    with (
        BenchNet(loss_targets=True, nodes=nodes) as net,
        tempfile.TemporaryDirectory(prefix=f"goavail-scale{agent_count}-") as tmp,
    ):
        workdir = Path(tmp)
        zones = {node: workdir / f"{node}.zone" for node in nodes}
        for zone in zones.values():
            write_zone(zone, targets)
        traffic = {node: TrafficTable(net.topo[node].name) for node in nodes}
        agents: dict[str, AgentProcess] = {}
        configs = {
            node: agent_config(
                node=node,
                targets=targets,
                nodes=nodes,
                failure_threshold=threshold,
                interval=interval,
                timeout=args.timeout,
                min_peers_agree=args.scale_quorum if agent_count > 1 else None,
                announce_interval=args.announce_interval,
                zone_file=zones[node],
            )
            for node in nodes
        }
        try:
            t_first = time.monotonic()
            for node in nodes:
                agents[node] = net.start_agent(
                    node,
                    configs[node],
                    targets,
                    workdir,
                    debug=False,
                    keep_events=False,
                    provider_args=ZONEFILE_DRY_RUN,
                )
            t_last = time.monotonic()
            wall_offset = time.time() - t_last
            spy = _start_profile(args, agent_count, agents[nodes[0]])
            result["start_spread_s"] = round(t_last - t_first, 3)

            def warm() -> bool:
                check_alive(list(agents.values()))
                return all(len(a.log.first_decision) >= n for a in agents.values())

            wait_for(warm, args.scale_warmup_limit, f"every agent deciding all {n} targets up", 0.5)
            warm_usage = {node: a.usage() for node, a in agents.items()}
            result["warmup_cpu_s"] = round(
                sum(u["goavail"][0] + u["serf"][0] for u in warm_usage.values()), 2
            )
            result["warmup_cpu_capacity_s"] = round((time.monotonic() - t_first) * nproc, 2)
            if spy is not None:
                spy.wait()
            per_agent: dict[str, Any] = {}
            for node, agent in agents.items():
                first = agent.log.first_decision.values()
                per_agent[node] = {
                    "warmup_cpu_s": round(
                        warm_usage[node]["goavail"][0] + warm_usage[node]["serf"][0], 2
                    ),
                    "warmup_s": round(max(first) - t_last, 2),
                    "first_decision_s": round(min(first) - t_last, 2),
                }
            time.sleep(1.0)  # the reader threads write the last lines to the logs
            for node, agent in agents.items():
                per_agent[node]["warmup_breakdown"] = warmup_breakdown(
                    agent.log_path, t_last, wall_offset
                )
            result["warmup_s"] = max(p["warmup_s"] for p in per_agent.values())
            result["warmup_goal_met"] = result["warmup_s"] <= result["warmup_goal_s"]
            print(
                f"  {agent_count} agents: warm-up {result['warmup_s']} s "
                f"(goal {result['warmup_goal_s']:g} s); settling {args.scale_settle:g} s",
                flush=True,
            )
            time.sleep(args.scale_settle)
            check_alive(list(agents.values()))
            # /metrics first: rendering it (every target's series) is not part of the window
            m0 = {node: scrape_gossip(a.namespace) for node, a in agents.items()}
            t0 = time.monotonic()
            c0 = {node: t.counters() for node, t in traffic.items()}
            u0 = {node: a.usage() for node, a in agents.items()}
            old0 = {node: a.log.serf_old_events for node, a in agents.items()}
            h0 = _self_cpu()
            end = t0 + args.scale_window
            while (now := time.monotonic()) < end:
                time.sleep(min(10.0, end - now))
                check_alive(list(agents.values()))
            t1 = time.monotonic()
            c1 = {node: t.counters() for node, t in traffic.items()}
            u1 = {node: a.usage() for node, a in agents.items()}
            m1 = {node: scrape_gossip(a.namespace) for node, a in agents.items()}
            h1 = _self_cpu()
            window = t1 - t0
            result["measured_s"] = round(window, 2)
            result["harness_cpu_s_per_s"] = round((h1 - h0) / window, 3)
            for node, agent in agents.items():
                entry = per_agent[node]
                rates: dict[str, Any] = {}
                for name in sorted(c1[node]):
                    p1, b1 = c1[node][name]
                    p0, b0 = c0[node].get(name, (0, 0))
                    rates[name] = {
                        "packets_per_s": _rate(p1, p0, window),
                        "bytes_per_s": _rate(b1, b0, window),
                    }
                entry["traffic"] = rates
                entry["goavail"] = {
                    key: _rate(_metric(m1[node], metric), _metric(m0[node], metric), window)
                    for key, metric in _GOSSIP_COUNTERS.items()
                }
                entry["goavail"]["metrics_read"] = bool(m0[node]) and bool(m1[node])
                entry["probes_at_window_end"] = {
                    k: v for k, v in m1[node].items() if k.startswith("goavail_probes_total")
                }
                entry["probes_at_warmup_end"] = {
                    k: v for k, v in m0[node].items() if k.startswith("goavail_probes_total")
                }
                entry["rejected_total"] = sum(
                    v for k, v in m1[node].items() if 'result="rejected"' in k
                )
                for kind in ("goavail", "serf"):
                    entry[f"{kind}_cpu_s_per_s"] = round(
                        (u1[node][kind][0] - u0[node][kind][0]) / window, 4
                    )
                    entry[f"{kind}_rss_mb"] = round(u1[node][kind][1], 1)
                entry["serf_old_events_in_window"] = agent.log.serf_old_events - old0[node]
                entry["serf_old_events_since_start"] = agent.log.serf_old_events
                entry["serf_old_event_ages"] = sorted(set(agent.log.serf_old_event_ages))
                entry["other_decisions"] = agent.log.other_decisions
                entry["warnings"] = agent.log.warning_count
                entry["first_warnings"] = agent.log.warnings[:5]
            result["per_agent"] = per_agent
            result["serf_old_events_total"] = sum(a.log.serf_old_events for a in agents.values())
            result["loadavg_at_end"] = list(os.getloadavg())
        finally:
            net.stop_agents()
            keep_logs(workdir, args.keep_logs, f"scale-{agent_count}")
    return result


def scale_table(results: list[dict[str, Any]]) -> str:
    """The scale results as a Markdown table, one row per agent (rates per second)."""
    head = (
        "| agents | node | warm-up s | Serf UDP out pkt/s (B/s) | Serf UDP in pkt/s | "
        "Serf TCP out+in B/s | sync out+in B/s | notices/s | pulls/s | goavail CPU s/s | "
        "serf CPU s/s | goavail RSS MB | serf RSS MB | old events |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |"
    )
    rows = []
    for r in results:
        for node, a in r.get("per_agent", {}).items():
            t = a.get("traffic", {})

            def rate(name: str, key: str, t: dict[str, Any] = t) -> float:
                return float(t.get(name, {}).get(key, 0.0))

            g = a.get("goavail", {})
            tcp = rate("gossip_tcp_out", "bytes_per_s") + rate("gossip_tcp_in", "bytes_per_s")
            rows.append(
                f"| {r['agents']} | {node} | {a['warmup_s']} "
                f"| {rate('gossip_udp_out', 'packets_per_s'):.1f} "
                f"({rate('gossip_udp_out', 'bytes_per_s'):.0f}) "
                f"| {rate('gossip_udp_in', 'packets_per_s'):.1f} "
                f"| {tcp:.0f} "
                f"| {rate('sync_out', 'bytes_per_s') + rate('sync_in', 'bytes_per_s'):.0f} "
                f"| {g.get('notices_published', 0):.2f} | {g.get('pulls_ok', 0):.2f} "
                f"| {a.get('goavail_cpu_s_per_s', 0):.3f} | {a.get('serf_cpu_s_per_s', 0):.3f} "
                f"| {a.get('goavail_rss_mb', 0):.1f} | {a.get('serf_rss_mb', 0):.1f} "
                f"| {a.get('serf_old_events_since_start', 0)} |"
            )
    return "\n".join([head, *rows])
