"""Failover latency of a three-agent cluster (``min_peers_agree = 1``).

Three real ``goavail monitor`` agents, each in its own network namespace with its
own Serf agent (:mod:`bench.agents`), watch the targets 198.51.100.1 and .2 (the
``www`` records of the Cloudflare stand-in on the bridge). Each trial waits a
random fraction of an interval (random phase against every agent's probe
schedule), then makes 198.51.100.1 die for all three at once: the nftables
blackhole (``tests.e2e.cluster_net.Firewall.blackhole``: its replies are dropped
on arrival) is added in the three agent namespaces by three threads started
together. The latency is the time from just before the first ``nft`` command is
started to the arrival of the request deleting the record at the stand-in. The
rules are then lifted and every agent must have decided the target up again,
the record be back and every agent hold both peers' "up" votes before the next
trial. Every ``--cluster-restart-every`` trials the agents are replaced by fresh
ones started a random fraction of an interval apart, so the agents' probe phases
against each other vary too (the cluster's latency depends on the second agent
to see the outage).

Each trial is also taken apart with the agents' log lines (stamped on arrival):
when each agent turned the target DOWN, when the first agent decided (it needs
a peer's DOWN vote), which agent wrote, and how long each DOWN vote took from
the sender's transition to a receiver's log line ("peer X votes T down").

Must run inside the private network namespace of ``bench.cluster``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench.agents import (
    AgentProcess,
    BenchNet,
    TimedStub,
    agent_config,
    check_alive,
    keep_logs,
    wait_for,
)
from tests.e2e.cluster_net import NODES, TARGETS, Firewall

VICTIM: Final = TARGETS[0]
FAILURE_THRESHOLD: Final = 2
CLUSTER_ALLOWANCE: Final = 1.0
"""Seconds the issue allows a cluster on top of the single-node bound."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty sequence.

    With 20 samples p99 is the maximum, as in ``bench.latency``.
    """
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _ready(agents: dict[str, AgentProcess], since: float, *, joined: bool) -> bool:
    """Every agent has decided both targets up since ``since`` (or ever, at start-up),
    holds both peers' up votes for them, and (at start-up) saw both peers join."""
    for node, agent in agents.items():
        log = agent.log
        peers = [n for n in NODES if n != node]
        if joined and any(log.count("joined", p) == 0 for p in peers):
            return False
        targets = TARGETS if joined else (VICTIM,)
        for target in targets:
            if not log.select("decision", since) or not any(
                e.fields[:2] == (target, "up") for e in log.select("decision", since)
            ):
                return False
            votes = log.select("vote", since)
            for peer in peers:
                latest = [e for e in votes if e.fields[:2] == (peer, target)]
                if not latest or latest[-1].fields[2] != "up":
                    return False
    return True


def _parallel(actions: Sequence[Any]) -> list[float]:
    """Run the callables in threads started together; return each one's finish time."""
    done: list[float] = [0.0] * len(actions)

    def run(i: int) -> None:
        actions[i]()
        done[i] = time.monotonic()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def _trial_breakdown(agents: dict[str, AgentProcess], t0: float, t_delete: float) -> dict[str, Any]:
    """Take one trial apart with the agents' stamped log lines (times relative to t0)."""
    down_at: dict[str, float] = {}
    for node, agent in agents.items():
        for e in agent.log.select("transition", t0):
            if e.fields == (VICTIM, "up", "down"):
                down_at[node] = e.at - t0
                break
    decided_at: dict[str, float] = {}
    for node, agent in agents.items():
        for e in agent.log.select("decision", t0):
            if e.fields[:2] == (VICTIM, "down"):
                decided_at[node] = e.at - t0
                break
    writer = None
    for node, agent in agents.items():
        for e in agent.log.select("audit", t0):
            if e.fields[0] == "delete" and e.fields[3] == VICTIM and e.fields[4] == "applied":
                writer = node
    gossip: list[float] = []
    for agent in agents.values():
        for e in agent.log.select("vote", t0):
            peer, target, state = e.fields
            if target == VICTIM and state == "down" and peer in down_at:
                gossip.append(e.at - t0 - down_at[peer])
    detections = sorted(down_at.values())
    first_decider = min(decided_at, key=decided_at.__getitem__) if decided_at else None
    latency = t_delete - t0
    return {
        "latency_s": round(latency, 3),
        "down_at_s": {n: round(v, 3) for n, v in sorted(down_at.items())},
        "decided_at_s": {n: round(v, 3) for n, v in sorted(decided_at.items())},
        "second_down_s": round(detections[1], 3) if len(detections) > 1 else None,
        "first_decision_s": round(min(decided_at.values()), 3) if decided_at else None,
        "first_decider": first_decider,
        "writer": writer,
        "gossip_s": [round(g, 3) for g in gossip],
    }


def _one_trial(
    agents: dict[str, AgentProcess],
    firewalls: Sequence[Firewall],
    stand_in: TimedStub,
    rng: random.Random,
    interval: float,
    bound: float,
) -> dict[str, Any]:
    """One outage: random pause, blackhole on all three, wait for the DELETE, heal, recover."""
    time.sleep(1.0 + rng.uniform(0, interval))
    check_alive(list(agents.values()))
    t0 = time.monotonic()
    done = _parallel([lambda fw=fw: fw.blackhole(VICTIM) for fw in firewalls])

    def deleted() -> bool:
        return bool(stand_in.deletes_since(t0))

    wait_for(deleted, 10 * bound, "the DELETE", step=0.01)
    t_delete = stand_in.deletes_since(t0)[0]

    def all_down() -> bool:
        return all(
            any(e.fields == (VICTIM, "up", "down") for e in a.log.select("transition", t0))
            for a in agents.values()
        )

    with contextlib.suppress(RuntimeError):  # breakdown only: a late line is not fatal
        wait_for(all_down, FAILURE_THRESHOLD * interval + 2.0, "every agent's down line")
    time.sleep(0.5)  # and their decision and vote lines
    trial = _trial_breakdown(agents, t0, t_delete)
    trial["nft_done_s"] = [round(d - t0, 3) for d in done]
    t_heal = time.monotonic()
    _parallel([fw.heal for fw in firewalls])

    def restored() -> bool:
        check_alive(list(agents.values()))
        return VICTIM in stand_in.present() and _ready(agents, t_heal, joined=False)

    wait_for(restored, 60, "the recovery")
    return trial


def run_cluster_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.cluster_latency`` trials; return samples, p50/p99/min/max, bound, breakdown.

    Raises:
        RuntimeError: an agent exited, or a DELETE / the recovery did not come in time.
    """
    interval = float(args.interval)
    timeout_s = float(args.timeout_s)
    single_bound = FAILURE_THRESHOLD * interval + timeout_s + 0.2
    bound = single_bound + CLUSTER_ALLOWANCE
    rng = random.Random()
    trials: list[dict[str, Any]] = []
    warnings: dict[str, int] = {}
    with BenchNet() as net, tempfile.TemporaryDirectory(prefix="goavail-clat-") as tmp:
        stand_in = net.start_stub(TARGETS)
        firewalls = [net.topo[node].fw for node in NODES]
        group = 0
        while len(trials) < args.cluster_latency:
            # Fresh agents every few trials, started a random fraction of an interval
            # apart: their probe phases against each other change too.
            group += 1
            workdir = Path(tmp) / f"start{group}"
            workdir.mkdir()
            agents: dict[str, AgentProcess] = {}
            for node in NODES:
                time.sleep(rng.uniform(0, interval))
                config = agent_config(
                    node=node,
                    targets=TARGETS,
                    nodes=NODES,
                    failure_threshold=FAILURE_THRESHOLD,
                    interval=interval,
                    timeout=args.timeout,
                    min_peers_agree=1,
                    announce_interval=args.announce_interval,
                )
                agents[node] = net.start_agent(node, config, TARGETS, workdir, debug=False)

            try:

                def ready_at_start(agents: dict[str, AgentProcess] = agents) -> bool:
                    check_alive(list(agents.values()))
                    return _ready(agents, 0.0, joined=True)

                wait_for(ready_at_start, 90, "three agents joined, every target decided up")
                print(f"  cluster start {group}: 3 agents ready", flush=True)
                for _ in range(min(args.cluster_restart_every, args.cluster_latency - len(trials))):
                    trials.append(_one_trial(agents, firewalls, stand_in, rng, interval, bound))
                    t = trials[-1]
                    print(
                        f"  cluster latency trial {len(trials)}: {t['latency_s']:.3f} s "
                        f"(agents down at {t['down_at_s']}, first decision "
                        f"{t['first_decision_s']} by {t['first_decider']}, "
                        f"written by {t['writer']})",
                        flush=True,
                    )
                for node, agent in agents.items():
                    warnings[node] = warnings.get(node, 0) + agent.log.warning_count
            finally:
                net.stop_agents()
                keep_logs(workdir, args.keep_logs, f"cluster-latency/start{group}")
    samples = [t["latency_s"] for t in trials]
    detections = [v for t in trials for v in t["down_at_s"].values()]
    second = [t["second_down_s"] for t in trials if t["second_down_s"] is not None]
    decision_wait = [
        t["first_decision_s"] - t["second_down_s"]
        for t in trials
        if t["first_decision_s"] is not None and t["second_down_s"] is not None
    ]
    write_wait = [
        t["latency_s"] - t["first_decision_s"] for t in trials if t["first_decision_s"] is not None
    ]
    writers: dict[str, int] = {}
    for t in trials:
        writers[str(t["writer"])] = writers.get(str(t["writer"]), 0) + 1
    return {
        "trials": len(samples),
        "agents": len(NODES),
        "min_peers_agree": 1,
        "failure_threshold": FAILURE_THRESHOLD,
        "interval_s": interval,
        "timeout_s": timeout_s,
        "serf_profile": "lan (default)",
        "announce_interval": args.announce_interval or "10s (default)",
        "writer_grace_s": 5.0,
        "single_node_bound_s": round(single_bound, 3),
        "bound_s": round(bound, 3),
        "p50_s": round(statistics.median(samples), 3),
        "p99_s": round(percentile(samples, 0.99), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
        "samples_s": samples,
        "breakdown": {
            "one_agent_detection_s": _summary(detections),
            "second_detection_s": _summary(second),
            "second_detection_to_first_decision_s": _summary(decision_wait),
            "first_decision_to_delete_s": _summary(write_wait),
            "vote_gossip_s": _summary([g for t in trials for g in t["gossip_s"]]),
            "nft_all_three_in_place_s": _summary([max(t["nft_done_s"]) for t in trials]),
            "writers": writers,
        },
        "agent_starts": group,
        "agent_warnings": warnings,
        "trial_details": trials,
    }
