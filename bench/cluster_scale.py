"""Cluster mode at fleet scale (issue 13): 10,000 targets watched by 3 or 5 agents, no loss.

Each agent is the real ``goavail monitor`` in its own network namespace with its own
Serf agent (:mod:`bench.agents`; node names ``a``, ``b``, ... on 192.0.2.1, .2, ...),
``interval = 1``, ``timeout = 500ms``, ``failure_threshold = 3`` (``rise_threshold``
the same), ``min_peers_agree = 1`` unless given, every other ``[Members]`` key at its
default (Serf ``lan`` profile, ``announce_interval`` 10 s, ``sync_port`` 7947). The
targets are RFC 2544 addresses of the private namespace (198.18.0.1 on); the Cloudflare
stand-in holds a ``www`` A record for each, so no DNS change is needed.

1. **Warm-up.** Every agent is started (in one go, without waiting); the clock starts
   when the last one has been started. Warm-up ends when every agent has logged
   ``decision for T: up`` for every target (its own verdict and ``min_peers_agree``
   peers' votes). The goal of the issue: ``rise_threshold * interval + 5 s``.
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
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.agents import (
    SYNC_PORT,
    AgentProcess,
    BenchNet,
    TrafficTable,
    agent_config,
    bench_targets,
    check_alive,
    keep_logs,
    scrape_gossip,
    wait_for,
)
from bench.loss import _self_cpu
from tests.e2e.cluster_net import ALL_NODES, SERF_PORT

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


def run_cluster_scale(agent_count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up and steady state of ``agent_count`` agents on ``args.scale_targets`` targets.

    Returns the figures of the module docstring (times in s, rates per s, RSS in MB).

    Raises:
        RuntimeError: an agent exited, or the warm-up did not finish in
            ``args.scale_warmup_limit`` seconds.
    """
    nodes = ALL_NODES[:agent_count]
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
        "min_peers_agree": args.scale_quorum,
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
        t_stub = time.monotonic()
        stand_in = net.start_stub(targets)
        result["stand_in_seed_s"] = round(time.monotonic() - t_stub, 1)
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
                min_peers_agree=args.scale_quorum,
                announce_interval=args.announce_interval,
            )
            for node in nodes
        }
        try:
            t_first = time.monotonic()
            for node in nodes:
                agents[node] = net.start_agent(
                    node, configs[node], targets, workdir, debug=False, keep_events=False
                )
            t_last = time.monotonic()
            result["start_spread_s"] = round(t_last - t_first, 3)

            def warm() -> bool:
                check_alive(list(agents.values()))
                return all(len(a.log.first_decision) >= n for a in agents.values())

            wait_for(warm, args.scale_warmup_limit, f"every agent deciding all {n} targets up", 0.5)
            per_agent: dict[str, Any] = {}
            for node, agent in agents.items():
                first = agent.log.first_decision.values()
                per_agent[node] = {
                    "warmup_s": round(max(first) - t_last, 2),
                    "first_decision_s": round(min(first) - t_last, 2),
                }
            result["warmup_s"] = max(p["warmup_s"] for p in per_agent.values())
            result["warmup_goal_met"] = result["warmup_s"] <= result["warmup_goal_s"]
            print(
                f"  {agent_count} agents: warm-up {result['warmup_s']} s "
                f"(goal {result['warmup_goal_s']:g} s); settling {args.scale_settle:g} s",
                flush=True,
            )
            time.sleep(args.scale_settle)
            check_alive(list(agents.values()))
            t0 = time.monotonic()
            c0 = {node: t.counters() for node, t in traffic.items()}
            u0 = {node: a.usage() for node, a in agents.items()}
            m0 = {node: scrape_gossip(a.namespace) for node, a in agents.items()}
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
            result["stand_in_writes_in_window"] = stand_in.write_summary(t0, t1)
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
