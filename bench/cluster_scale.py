"""Cluster mode at fleet scale (issue 13): 10,000 targets watched by 3 or 5 agents, no loss.

Each agent is the real ``goavail monitor`` in its own network namespace with its own
Serf agent (:mod:`bench.agents`; node names ``a``, ``b``, ... on 192.0.2.1, .2, ...),
``interval = 1``, ``timeout = 500ms``, ``failure_threshold = 3`` (``rise_threshold``
the same), ``min_peers_agree = 1`` unless given, every other ``[Members]`` key at its
default (Serf ``lan`` profile, ``announce_interval`` 10 s, ``sync_port`` 7947). The
targets are RFC 2544 addresses of the private namespace (198.18.0.1 on). DNS is a zone
file per agent, read in dry-run mode (as the single-node scale run, ``bench.run``), in the
shape of a real fleet: ``--scale-pool-size`` (2) targets per ``[[pools]]`` entry, each
pool published under a name of its own (``[[names]]``: ``p0.bench.test`` ...; 10,000
targets in 5,000 names), each name with an A record per target in the file.
``--scale-pool-size 0`` is the original's shape, every target under one name ``www``
(a name of 10,000 A records, which DNS could not even answer: 4,096 at most).

1. **Warm-up**, in two ways (``--scale-start``): ``together``, every agent started in
   one go without waiting (on this machine: all of them on its 2 CPUs at once); and
   ``staggered``, as in a rolling deploy, each agent started once the one before has
   joined the cluster (it has logged ``peer P joined`` for every agent before it; the
   first one: once it talks to its Serf). Either way the clock starts when the last
   agent has been started, and the warm-up ends when every agent has decided every
   target up: its ``every target decided`` line (goavail logs at most 10 first
   decisions per second one by one and sums up the rest, ``goavail/firstlines.py``).
   The goal of the issue: ``rise_threshold * interval + 5 s``. Also recorded: the CPU
   seconds every agent and its Serf used from their start to the end of the warm-up
   (``warmup_cpu_s``), next to what the machine's CPUs could give from the first start
   (``warmup_cpu_capacity_s``), the same two from the last start
   (``warmup_cpu_since_last_start_s``, ``warmup_cpu_capacity_since_last_start_s``), the
   harness's own CPU and the whole machine's busy CPU (``/proc/stat``, every process:
   other sessions' too) in the same spans, and where each agent's warm-up went
   (:func:`warmup_breakdown`).
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
from collections.abc import Sequence
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
    pool_names,
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


_FIRST_VERDICTS = re.compile(r"first verdicts on (\d+) more targets: (\d+) up")
_FIRST_VOTES = re.compile(r"peer (\S+): first votes on (\d+) more targets: (\d+) up")


def warmup_breakdown(log_path: Path, t_start: float, wall_offset: float) -> dict[str, Any]:
    """Where one agent's warm-up went, from its stamped log (``bench.agents`` writes
    ``<monotonic> <line>``): seconds after ``t_start`` of its ``starting`` line, each
    peer's ``joined`` line, its own first and last ``unknown -> up`` verdicts, each
    peer's last ``votes ... up`` line (and how many), its last first decision (the
    ``every target decided`` line). goavail logs at most 10 first verdicts, first votes
    and first decisions per second one by one and sums up the rest
    (``goavail/firstlines.py``): the summaries' counts are added, and a summary's time
    stands for its lines (a verdicts' summary comes at the end of its 1-s window, a
    votes' summary with its pull). ``arrival_lag_max_s``: the largest difference between
    a line's arrival (monotonic stamp + ``wall_offset`` = Unix time) and the time the
    agent logged in it; the logged time has whole seconds, so up to 1 s of it is
    truncation, the rest is the pipe and the harness's reader falling behind (which
    would inflate the measured warm-up).

    Raises:
        OSError: the log cannot be read.
    """
    started: float | None = None
    joined: dict[str, float] = {}
    own: list[float] = []
    own_count = 0
    votes: dict[str, list[float]] = {}
    vote_count: dict[str, int] = {}
    last_decision: float | None = None
    all_decided: float | None = None
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
            if " DEBUG " in text:
                continue  # with --debug: the summaries count these lines
            if "goavail.agent: goavail " in text and " starting:" in text:
                started = at
            elif (m := _JOINED.search(text)) is not None:
                joined.setdefault(m.group(1), at)
            elif " unknown -> up after" in text:
                own.append(at)
                own_count += 1
            elif (m := _FIRST_VERDICTS.search(text)) is not None:
                own.append(at)
                own_count += int(m.group(2))
            elif (m := _VOTE_UP.search(text)) is not None:
                votes.setdefault(m.group(1), []).append(at)
                vote_count[m.group(1)] = vote_count.get(m.group(1), 0) + 1
            elif (m := _FIRST_VOTES.search(text)) is not None:
                votes.setdefault(m.group(1), []).append(at)
                vote_count[m.group(1)] = vote_count.get(m.group(1), 0) + int(m.group(3))
            elif "decision for " in text and ": up" in text:
                last_decision = at
            elif "every target decided: " in text and all_decided is None:
                all_decided = at

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "started_s": r(started),
        "peer_joined_s": {p: r(t) for p, t in sorted(joined.items())},
        "own_first_up_s": r(min(own)) if own else None,
        "own_last_up_s": r(max(own)) if own else None,
        "own_up_verdicts": own_count,
        "peer_votes_up": dict(sorted(vote_count.items())),
        "peer_last_vote_up_s": {p: r(max(v)) for p, v in sorted(votes.items())},
        "last_decision_up_s": r(all_decided if all_decided is not None else last_decision),
        "arrival_lag_max_s": r(lag),
    }


def _start_profile(
    args: argparse.Namespace, agent_count: int, agent: AgentProcess, start: str
) -> subprocess.Popen[bytes] | None:
    """With ``--scale-profile DIR``: py-spy (``.venv/bin/py-spy``) samples ``agent`` (the
    last one started) for ``--scale-profile-seconds`` from its start (collapsed stacks,
    idle frames left out: ``DIR/scale-<agents>-<start>-<node>.folded``). None without
    the option."""
    if args.scale_profile is None:
        return None
    args.scale_profile.mkdir(parents=True, exist_ok=True)
    out = args.scale_profile / f"scale-{agent_count}-{start}-{agent.node}.folded"
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


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (``/proc/stat``: user, nice,
    system, irq, softirq, steal of every CPU; not idle or iowait): every process's,
    the other sessions' included."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _joined(agent: AgentProcess, before: Sequence[str]) -> bool:
    """True once ``agent`` is in the cluster: it has logged ``peer P joined`` for every
    agent of ``before`` (the first agent: once it talks to its own Serf)."""
    if not before:
        return agent.log.cluster_ready_at is not None
    return all(p in agent.log.joined for p in before)


def _decided(agent: AgentProcess, n: int) -> float | None:
    """Arrival of the line that says ``agent`` decided all ``n`` targets up (goavail's
    ``every target decided`` line, or the last per-target line); None before."""
    log = agent.log
    if log.decided_at is not None and log.decided_up >= n:
        return log.decided_at
    if len(log.first_decision) >= n:
        return max(log.first_decision.values())
    return None


def run_cluster_scale(
    agent_count: int, args: argparse.Namespace, start: str = "together"
) -> dict[str, Any]:
    """Warm-up and steady state of ``agent_count`` agents on ``args.scale_targets`` targets.

    ``start``: ``together`` (every agent started in one go, without waiting) or
    ``staggered`` (as in a rolling deploy: each agent started once the one before has
    joined the cluster, see :func:`_joined`). Either way the warm-up is measured from the
    last agent's start until every agent has decided every target up.

    Returns the figures of the module docstring (times in s, rates per s, RSS in MB).

    Raises:
        RuntimeError: an agent exited, an agent did not join within 60 s (staggered),
            or the warm-up did not finish in ``args.scale_warmup_limit`` seconds.
        ValueError: ``start`` is neither.
    """
    if start not in ("together", "staggered"):
        raise ValueError(f"start must be together or staggered, not {start!r}")
    nodes = ALL_NODES[:agent_count]
    nproc = os.cpu_count() or 1
    targets = bench_targets(args.scale_targets)
    n = len(targets)
    interval = float(args.interval)
    threshold = int(args.scale_threshold)
    pool_size = int(args.scale_pool_size) or None
    result: dict[str, Any] = {
        "agents": agent_count,
        "start": start,
        "targets": n,
        "names": len(pool_names(targets, pool_size)) if pool_size else 1,
        "pool_size": pool_size or n,
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
        "nproc": nproc,
        "loadavg_at_start": list(os.getloadavg()),
    }
    with (
        BenchNet(loss_targets=True, nodes=nodes) as net,
        tempfile.TemporaryDirectory(prefix=f"goavail-scale{agent_count}-") as tmp,
    ):
        workdir = Path(tmp)
        zones = {node: workdir / f"{node}.zone" for node in nodes}
        for zone in zones.values():
            write_zone(zone, targets, pool_size)
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
                pool_size=pool_size,
            )
            for node in nodes
        }
        try:
            started: dict[str, float] = {}
            h_first, busy_first = _self_cpu(), machine_busy_s()
            t_first = time.monotonic()
            for i, node in enumerate(nodes):
                if start == "staggered" and i > 0:
                    previous = agents[nodes[i - 1]]

                    def joined(
                        p: AgentProcess = previous, before: Sequence[str] = nodes[: i - 1]
                    ) -> bool:
                        check_alive(list(agents.values()))
                        return _joined(p, before)

                    wait_for(joined, 60.0, f"agent {previous.node} joining the cluster", 0.05)
                agents[node] = net.start_agent(
                    node,
                    configs[node],
                    targets,
                    workdir,
                    debug=False,
                    keep_events=False,
                    provider_args=ZONEFILE_DRY_RUN,
                )
                started[node] = time.monotonic()
            t_last = time.monotonic()
            last_usage = {node: a.usage() for node, a in agents.items()}
            h_last, busy_last = _self_cpu(), machine_busy_s()
            wall_offset = time.time() - t_last
            spy = _start_profile(args, agent_count, agents[nodes[-1]], start)
            result["start_spread_s"] = round(t_last - t_first, 3)
            result["started_s"] = {node: round(at - t_first, 2) for node, at in started.items()}

            def warm() -> bool:
                check_alive(list(agents.values()))
                return all(_decided(a, n) is not None for a in agents.values())

            wait_for(warm, args.scale_warmup_limit, f"every agent deciding all {n} targets up", 0.2)
            t_warm = time.monotonic()
            warm_usage = {node: a.usage() for node, a in agents.items()}
            h_warm, busy_warm = _self_cpu(), machine_busy_s()

            def cpu(u: dict[str, tuple[float, float]]) -> float:
                return u["goavail"][0] + u["serf"][0]

            result["warmup_cpu_s"] = round(sum(cpu(u) for u in warm_usage.values()), 2)
            result["warmup_cpu_capacity_s"] = round((t_warm - t_first) * nproc, 2)
            result["warmup_cpu_since_last_start_s"] = round(
                sum(cpu(warm_usage[k]) - cpu(last_usage[k]) for k in agents), 2
            )
            result["warmup_cpu_capacity_since_last_start_s"] = round((t_warm - t_last) * nproc, 2)
            result["harness_cpu_s"] = round(h_warm - h_first, 2)
            result["harness_cpu_since_last_start_s"] = round(h_warm - h_last, 2)
            result["machine_busy_cpu_s"] = round(busy_warm - busy_first, 2)
            result["machine_busy_cpu_since_last_start_s"] = round(busy_warm - busy_last, 2)
            result["loadavg_at_warmup_end"] = list(os.getloadavg())
            if spy is not None:
                spy.wait()
            per_agent: dict[str, Any] = {}
            for node, agent in agents.items():
                decided = _decided(agent, n)
                assert decided is not None
                first = agent.log.first_decision.values()
                per_agent[node] = {
                    "warmup_cpu_s": round(cpu(warm_usage[node]), 2),
                    "warmup_goavail_cpu_s": round(warm_usage[node]["goavail"][0], 2),
                    "warmup_s": round(decided - t_last, 2),
                    "warmup_from_own_start_s": round(decided - started[node], 2),
                    "first_decision_s": round(min(first) - t_last, 2) if first else None,
                }
            time.sleep(1.0)  # the reader threads write the last lines to the logs
            for node, agent in agents.items():
                per_agent[node]["warmup_breakdown"] = warmup_breakdown(
                    agent.log_path, t_last, wall_offset
                )
            result["warmup_s"] = max(p["warmup_s"] for p in per_agent.values())
            result["warmup_goal_met"] = result["warmup_s"] <= result["warmup_goal_s"]
            print(
                f"  {agent_count} agents, {start}: warm-up {result['warmup_s']} s "
                f"(goal {result['warmup_goal_s']:g} s); agents' CPU "
                f"{result['warmup_cpu_since_last_start_s']} s of "
                f"{result['warmup_cpu_capacity_since_last_start_s']} s since the last start; "
                f"settling {args.scale_settle:g} s",
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
                entry["reconcile_passes_at_settle_end"] = _metric(
                    m0[node], "goavail_reconcile_passes_total"
                ) or _metric(m0[node], "goavail_reconcile_passes")
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
            keep_logs(workdir, args.keep_logs, f"scale-{agent_count}-{start}")
    return result


def scale_table(results: list[dict[str, Any]]) -> str:
    """The scale results as a Markdown table, one row per agent (rates per second)."""
    head = (
        "| agents | start | node | warm-up s | Serf UDP out pkt/s (B/s) | Serf UDP in pkt/s | "
        "Serf TCP out+in B/s | sync out+in B/s | notices/s | pulls/s | goavail CPU s/s | "
        "serf CPU s/s | goavail RSS MB | serf RSS MB | old events |\n"
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |"
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
                f"| {r['agents']} | {r.get('start', 'together')} | {node} | {a['warmup_s']} "
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
