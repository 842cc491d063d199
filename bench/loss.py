"""Loss resilience: false removals under random packet loss, against the model.

One case = one or three real agents (:mod:`bench.agents`, each in its own
namespace with its own Serf agent) watching 1,000 healthy targets (198.18.0.0/22,
addresses of the private namespace) with ``interval = 1``, ``timeout = 500ms``,
``failure_threshold = N`` (``rise_threshold`` defaults to N), the Cloudflare
stand-in holding a ``www`` record for every target, ``--no-dry-run``. In cluster
cases ``min_peers_agree = 1``; every other ``[Members]`` key keeps its default
(Serf ``lan`` profile, ``announce_interval`` 10 s, ``writer_grace`` 5 s).

1. Warm-up without loss until every agent has decided every target up.
2. Each agent's namespace gets its own rule dropping ``pct`` % of the echo
   replies arriving from the targets (``numgen random mod 100 < pct drop``), so
   every probe fails with probability ``pct / 100``, independently per agent.
3. After ``settle`` seconds the window opens. Each agent's CPU time is read at both
   ends; every probe result (``--debug``), verdict, peer vote, decision and DNS
   audit line is stamped on arrival; the stand-in notes every DELETE. At the end
   a rule stops further echo requests (:meth:`BenchTable.freeze`), and one timeout
   later the nftables counters (requests sent, replies arriving, replies dropped)
   are compared with every probe result the agent ever reported.

Reported per case: false removals (records the stand-in deleted in the window),
DOWN verdicts and decisions, the coincidences of the agents' *observed* DOWN
verdicts (what the quorum stage should turn into removals), the gossip delay of
votes, and the engine's own account: probe results against the packets counted
by nftables (no lost replies), and the spacing of each target's probes (no timer
drift). Next to each figure: the independent-loss model (:mod:`bench.model`) in
closed form and as a Monte Carlo simulation.

``python -m bench.loss --reanalyse RESULTS.json --logs DIR`` recomputes the
log-derived figures from logs kept with ``bench.cluster --keep-logs DIR``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.agents import (
    OK,
    OTHER_ERROR,
    TIMEOUT,
    AgentLog,
    AgentProcess,
    BenchNet,
    agent_config,
    check_alive,
    keep_logs,
    loss_targets,
    scrape_gossip,
    wait_for,
)
from bench.model import AgentModel, expected_removals, poisson_zero, simulate
from bench.run import _seconds, sample
from tests.e2e.cluster_net import NODES


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _decided_up(agent: AgentProcess) -> int:
    """Targets ``agent`` has decided up (at least once)."""
    return len({e.fields[0] for e in agent.log.select("decision") if e.fields[1] == "up"})


def engine_account(
    agent: AgentProcess, t0: float, t1: float, timeout: float, totals: dict[str, int]
) -> dict[str, Any]:
    """The engine's own account of one agent's probes, against nftables.

    Totals (the agent's whole life, after :meth:`BenchTable.freeze` and one
    timeout): every echo request that left the namespace must have a result
    (``ok`` or ``timeout``), every reply that was delivered (arrived minus
    dropped) an ``ok``, every dropped reply a ``timeout``. Any difference is a
    probe the engine lost or invented.

    Window ``[t0, t1)``: results by send time (a reply is reported on arrival, a
    timeout ``timeout`` s after the send); the share of failed probes and how many
    probes each target got (``(t1 - t0) / interval`` when the schedule keeps time).
    The spacing of each target's consecutive sends is taken from the harness's
    arrival stamps, so it includes the harness's own reading delay.
    ``failed_after_failed_share``: of the probes that followed a failed probe of the
    same target, the share that failed too; the model assumes independent probes,
    i.e. this equals the failed share (bursty loss would make it larger).
    """
    log = agent.log
    with log.lock:
        at = log.probe_at.tolist()
        idx = log.probe_target.tolist()
        codes = bytes(log.probe_code)
        errors = dict(log.probe_errors)
    ok_total = codes.count(OK)
    timeouts_total = codes.count(TIMEOUT)
    ok = failed = 0
    sends: dict[int, list[tuple[float, int]]] = {}
    for when, target, code in zip(at, idx, codes, strict=True):
        if code == OTHER_ERROR:
            continue  # after the freeze: EPERM, reported at once
        sent = when if code == OK else when - timeout
        if t0 <= sent < t1:
            ok += code == OK
            failed += code == TIMEOUT
            sends.setdefault(target, []).append((sent, code))
    gaps: list[float] = []
    after_failed = failed_after_failed = 0
    for seq in sends.values():
        seq.sort()
        for (a, code_a), (b, code_b) in itertools.pairwise(seq):
            gaps.append(b - a)
            if code_a == TIMEOUT:
                after_failed += 1
                failed_after_failed += code_b == TIMEOUT
    per_target = [len(v) for v in sends.values()]
    sent_nft = totals.get("sent", 0)
    arrived = totals.get("arrived", 0)
    dropped = totals.get("dropped", 0)
    deviation = sorted(abs(g - 1.0) for g in gaps)
    return {
        "total_sent_nft": sent_nft,
        "total_replies_arrived_nft": arrived,
        "total_replies_dropped_nft": dropped,
        "total_ok": ok_total,
        "total_timeouts": timeouts_total,
        "errors_other_than_timeout": errors,
        "results_minus_sent": ok_total + timeouts_total - sent_nft,
        "ok_minus_delivered": ok_total - (arrived - dropped),
        "timeouts_minus_dropped": timeouts_total - dropped,
        "window_results": ok + failed,
        "window_failed_share": round(failed / (ok + failed), 5) if ok + failed else None,
        "failed_after_failed_share": round(failed_after_failed / after_failed, 5)
        if after_failed
        else None,
        "window_probes_per_target_min": min(per_target) if per_target else None,
        "window_probes_per_target_max": max(per_target) if per_target else None,
        "window_targets_probed": len(per_target),
        "spacing_deviation_p50_ms": round(1000 * deviation[len(deviation) // 2], 1)
        if deviation
        else None,
        "spacing_deviation_p99_ms": round(1000 * _pct(deviation, 0.99), 1) if deviation else None,
        "spacing_deviation_max_ms": round(1000 * deviation[-1], 1) if deviation else None,
    }


def verdict_timelines(
    logs: Mapping[str, AgentLog], since: float
) -> dict[str, list[tuple[float, str, bool]]]:
    """Per target, every agent's verdict changes since ``since``: ``(time, node, now down)``."""
    out: dict[str, list[tuple[float, str, bool]]] = {}
    for node, log in logs.items():
        for e in log.select("transition", since):
            target, _old, new = e.fields
            if new in ("up", "down"):
                out.setdefault(target, []).append((e.at, node, new == "down"))
    for events in out.values():
        events.sort()
    return out


def coincidences(
    timelines: dict[str, list[tuple[float, str, bool]]], needed: int, t0: float, t1: float
) -> tuple[int, list[float]]:
    """Times in ``[t0, t1)`` when, for one target, the number of agents holding a DOWN
    verdict reached ``needed`` (from ``needed - 1``); also every completed DOWN period's
    length (seconds, any start time)."""
    count = 0
    periods: list[float] = []
    for events in timelines.values():
        down: dict[str, float] = {}
        for at, node, now_down in events:
            if now_down:
                if node in down:
                    continue
                down[node] = at
                if len(down) == needed and t0 <= at < t1:
                    count += 1
            elif node in down:
                periods.append(at - down.pop(node))
    return count, periods


def vote_delays(logs: Mapping[str, AgentLog], since: float, t1: float) -> dict[str, Any]:
    """How long each verdict change of a sender (in ``[since, t1)``) took to show up as
    "peer S votes T state" at each receiver; changes never seen before the sender's
    next change are counted as missed (a lost or overtaken vote)."""
    delays: list[float] = []
    missed = 0
    total = 0
    changes = {n: log.select("transition", since, t1) for n, log in logs.items()}
    for receiver, log in logs.items():
        seen: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for e in log.select("vote", since):
            peer, target, state = e.fields
            seen.setdefault((peer, target), []).append((e.at, state))
        for sender, events in changes.items():
            if sender == receiver:
                continue
            by_target: dict[str, list[tuple[float, str]]] = {}
            for e in events:
                by_target.setdefault(e.fields[0], []).append((e.at, e.fields[2]))
            for target, seq in by_target.items():
                votes = seen.get((sender, target), [])
                for i, (at, state) in enumerate(seq):
                    nxt = seq[i + 1][0] if i + 1 < len(seq) else float("inf")
                    total += 1
                    hit = next((v for v, s in votes if s == state and at - 0.05 <= v < nxt), None)
                    if hit is None:
                        missed += 1
                    else:
                        delays.append(max(0.0, hit - at))
    return {
        "changes": total,
        "seen": len(delays),
        "missed": missed,
        "delivered_share": round(len(delays) / total, 5) if total else None,
        "p50_s": round(statistics.median(delays), 3) if delays else None,
        "p99_s": round(_pct(delays, 0.99), 3) if delays else None,
        "max_s": round(max(delays), 3) if delays else None,
    }


def write_delays(logs: Mapping[str, AgentLog], t0: float, t1: float) -> dict[str, Any]:
    """From a DOWN decision to the DELETE it causes, per agent.

    For every DOWN decision an agent logged in ``[t0, t1)``: the first delete of that
    record applied by *any* agent before this agent decided the target up again
    (``delays``), or none (``unwritten``: the DOWN ended before a write, or another
    agent had removed the record already).
    """
    applied: dict[str, list[float]] = {}
    for log in logs.values():
        for e in log.select("audit"):
            action, _name, _type, address, outcome = e.fields
            if action == "delete" and outcome == "applied":
                applied.setdefault(address, []).append(e.at)
    delays: list[float] = []
    unwritten = 0
    for log in logs.values():
        decisions = log.select("decision")
        by_target: dict[str, list[tuple[float, str]]] = {}
        for e in decisions:
            by_target.setdefault(e.fields[0], []).append((e.at, e.fields[1]))
        for target, seq in by_target.items():
            for i, (at, state) in enumerate(seq):
                if state != "down" or not t0 <= at < t1:
                    continue
                until = next((a for a, st in seq[i + 1 :] if st == "up"), float("inf"))
                hit = next((a for a in applied.get(target, []) if at - 0.05 <= a < until), None)
                if hit is None:
                    unwritten += 1
                else:
                    delays.append(max(0.0, hit - at))
    return {
        "written": len(delays),
        "unwritten": unwritten,
        "p50_s": round(statistics.median(delays), 3) if delays else None,
        "p99_s": round(_pct(delays, 0.99), 3) if delays else None,
        "max_s": round(max(delays), 3) if delays else None,
    }


def decision_backing(
    logs: Mapping[str, AgentLog], t0: float, t1: float, min_peers_agree: int, slack: float
) -> dict[str, int]:
    """Check every DOWN decision of the window against the peers' own verdicts.

    A decision line names the votes it was made with (``b=down``). Such a DOWN vote is
    *current* when that peer's own verdict (its log) was DOWN at that moment, or had
    turned UP less than ``slack`` seconds before (the UP vote may still be on its way);
    otherwise it is *stale*: the peer had been UP for longer, its UP vote was lost or late.
    A decision is ``backed`` when at least ``min_peers_agree`` of its DOWN votes were
    current, else ``stale``.
    """
    changes: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for node, log in logs.items():
        for e in log.select("transition"):
            changes.setdefault((node, e.fields[0]), []).append((e.at, e.fields[2]))

    def state_at(node: str, target: str, at: float) -> tuple[str, float]:
        last = ("unknown", 0.0)
        for when, state in changes.get((node, target), []):
            if when > at:
                break
            last = (state, when)
        return last

    backed = stale = 0
    for log in logs.values():
        for e in log.select("decision", t0, t1):
            target, state, votes = e.fields
            if state != "down":
                continue
            current = 0
            for word in votes.split():
                peer, _, vote = word.partition("=")
                if peer.endswith("(self)") or vote != "down":
                    continue
                own, since = state_at(peer, target, e.at)
                if own == "down" or (own == "up" and e.at - since < slack):
                    current += 1
            if current >= min_peers_agree:
                backed += 1
            else:
                stale += 1
    return {"down_decisions": backed + stale, "backed_by_current_votes": backed, "stale": stale}


def write_audit(
    logs: Mapping[str, AgentLog], t0: float, t1: float, repeat_within: float
) -> dict[str, int]:
    """The deletes the agents applied in ``[t0, t1)`` (their audit lines), classified.

    * ``repeat``: the same record had been deleted less than ``repeat_within`` s
      before (it was re-created in between): DNS flapping, not a new removal.
    * ``against_own_decision``: the agent's own decision for the target was already UP
      when its delete went out (the delete was planned from an older decision).
    * ``episodes``: the deletes that are not repeats.
    """
    deletes: list[tuple[float, str, str]] = []
    decisions: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for node, log in logs.items():
        for e in log.select("audit"):
            action, _name, _type, address, outcome = e.fields
            if action == "delete" and outcome == "applied":
                deletes.append((e.at, node, address))
        for e in log.select("decision"):
            decisions.setdefault((node, e.fields[0]), []).append((e.at, e.fields[1]))
    deletes.sort()
    last: dict[str, float] = {}
    applied = repeat = against = 0
    for at, node, address in deletes:
        previous = last.get(address)
        last[address] = at
        if not t0 <= at < t1:
            continue
        applied += 1
        if previous is not None and at - previous < repeat_within:
            repeat += 1
        own = [state for when, state in decisions.get((node, address), []) if when <= at]
        if own and own[-1] == "up":
            against += 1
    return {
        "applied": applied,
        "repeat": repeat,
        "episodes": applied - repeat,
        "against_own_decision": against,
    }


REPEAT_WITHIN = 5.0
"""Seconds: a delete of a record deleted this recently is a repeat (flapping). With one
agent and N = 3 the same record cannot come back and go again in less than 5.5 s."""


def log_analysis(result: dict[str, Any], logs: Mapping[str, AgentLog]) -> None:
    """Add the figures derived from the agents' stamped log lines to ``result``.

    Needs ``result["window_monotonic_s"]`` (loss start, window start, window end) and
    ``result["min_peers_agree"]``; fills ``per_agent[node]`` (DOWN verdicts and
    decisions), the coincidences of the observed verdicts, the DOWN period length,
    decision-to-delete delays, the applied deletes, and in cluster mode the vote
    delivery and the backing of each DOWN decision.
    """
    t_loss, t0, t1 = result["window_monotonic_s"]
    quorum = int(result["min_peers_agree"])
    per_agent = result.setdefault("per_agent", {})
    for node, log in logs.items():
        entry = per_agent.setdefault(node, {})
        entry["down_verdicts"] = sum(
            1 for e in log.select("transition", t0, t1) if e.fields[1:] == ("up", "down")
        )
        entry["down_decisions"] = sum(
            1 for e in log.select("decision", t0, t1) if e.fields[1] == "down"
        )
    timelines = verdict_timelines(logs, t_loss)
    observed, periods = coincidences(timelines, quorum + 1, t0, t1)
    result["observed_verdict_coincidences"] = observed
    result["down_period_mean_s"] = round(statistics.fmean(periods), 3) if periods else None
    result["down_verdicts"] = sum(per_agent[n]["down_verdicts"] for n in logs)
    result["down_decisions"] = sum(per_agent[n]["down_decisions"] for n in logs)
    result["decision_to_delete"] = write_delays(logs, t0, t1)
    result["deletes_applied"] = write_audit(logs, t0, t1, repeat_within=REPEAT_WITHIN)
    if len(logs) > 1:
        result["vote_delivery"] = vote_delays(logs, t_loss, t1)
        result["decision_backing"] = decision_backing(logs, t0, t1, quorum, slack=1.0)


def read_kept_log(node: str, path: Path) -> AgentLog:
    """Rebuild an agent's :class:`AgentLog` from a log kept by ``--keep-logs`` (stamped
    lines; the per-probe lines are not kept, so the probe arrays stay empty)."""
    log = AgentLog(node, {})
    for line in path.read_bytes().splitlines():
        stamp, _, rest = line.partition(b" ")
        log.feed(float(stamp), rest + b"\n")
    return log


def reanalyse(json_path: Path, logs_dir: Path) -> None:
    """Recompute the log-derived figures of every loss case in ``json_path`` from the logs
    kept under ``logs_dir`` (``loss-<case>/goavail-<node>.log``) and write the file back.

    The engine account (probe lines) and the counters are not recomputed.

    Raises:
        OSError: a file is missing.
        KeyError: the JSON has no window times (made by an older harness).
    """
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    for result in doc.get("loss", []):
        folder = logs_dir / f"loss-{result['case']}"
        logs = {
            node: read_kept_log(node, folder / f"goavail-{node}.log")
            for node in NODES[: int(result["agents"])]
        }
        log_analysis(result, logs)
    json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.loss --reanalyse RESULTS.json --logs DIR`` (no root needed)."""
    parser = argparse.ArgumentParser(prog="python -m bench.loss", description=reanalyse.__doc__)
    parser.add_argument("--reanalyse", type=Path, required=True, metavar="RESULTS_JSON")
    parser.add_argument("--logs", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    reanalyse(args.reanalyse, args.logs)
    print(loss_table(json.loads(args.reanalyse.read_text(encoding="utf-8"))["loss"]))
    return 0


def _self_cpu() -> float:
    """CPU seconds the harness process (all its threads: readers, stand-in) used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_loss(case: str, spec: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    """Run one loss case (see the module docstring); return its figures and the model's.

    Raises:
        RuntimeError: an agent exited or the warm-up did not finish.
    """
    n_agents = spec["agents"]
    fall = spec["failure_threshold"]
    quorum = spec["min_peers_agree"]
    nodes = NODES[:n_agents]
    targets = loss_targets(args.loss_targets)
    n = len(targets)
    p = args.loss_pct / 100
    interval, timeout = float(args.interval), float(args.timeout_s)
    result: dict[str, Any] = {
        "case": case,
        "agents": n_agents,
        "failure_threshold": fall,
        "rise_threshold": fall,
        "min_peers_agree": quorum,
        "targets": n,
        "loss_pct": args.loss_pct,
        "window_s": args.loss,
        "settle_s": args.loss_settle,
        "announce_interval": args.announce_interval or "10s (default)",
        "loadavg_at_start": list(os.getloadavg()),
    }
    with (
        BenchNet(loss_targets=True) as net,
        tempfile.TemporaryDirectory(prefix=f"goavail-loss-{case}-") as tmp,
    ):
        workdir = Path(tmp)
        stand_in = net.start_stub(targets)
        tables = {node: net.table(node) for node in nodes}
        agents: dict[str, AgentProcess] = {}
        for node in nodes:
            config = agent_config(
                node=node,
                targets=targets,
                nodes=nodes,
                failure_threshold=fall,
                interval=interval,
                timeout=args.timeout,
                min_peers_agree=quorum if n_agents > 1 else None,
                announce_interval=args.announce_interval,
            )
            agents[node] = net.start_agent(node, config, targets, workdir, debug=True)
        try:
            started = time.monotonic()

            def warm() -> bool:
                check_alive(list(agents.values()))
                return all(_decided_up(a) >= n for a in agents.values())

            limit = 180.0 + 3 * (_seconds(args.announce_interval) if args.announce_interval else 10)
            wait_for(warm, limit, f"every agent deciding all {n} targets up", step=0.5)
            result["warmup_s"] = round(time.monotonic() - started, 1)
            time.sleep(2.0)  # the last records' reconcile pass
            present = stand_in.present()
            result["records_before_loss"] = len(present)
            print(f"  warm-up {result['warmup_s']} s; loss {args.loss_pct} % on", flush=True)
            t_loss = time.monotonic()
            for table in tables.values():
                table.set_loss(args.loss_pct)
            time.sleep(args.loss_settle)
            check_alive(list(agents.values()))
            cpu0 = {node: sample(a.pid) for node, a in agents.items()}
            ns_cpu0 = {node: a.namespace_cpu() for node, a in agents.items()}
            harness0 = _self_cpu()
            old0 = {node: a.log.serf_old_events for node, a in agents.items()}
            t0 = time.monotonic()
            end = t0 + args.loss
            while (now := time.monotonic()) < end:
                time.sleep(min(10.0, end - now))
                check_alive(list(agents.values()))
                print(
                    f"  {now + min(10.0, end - now) - t0:5.0f} s: "
                    f"{len(stand_in.deletes_since(t0))} removals so far",
                    flush=True,
                )
            t1 = time.monotonic()
            for table in tables.values():
                table.freeze()
            cpu1 = {node: sample(a.pid) for node, a in agents.items()}
            ns_cpu1 = {node: a.namespace_cpu() for node, a in agents.items()}
            harness1 = _self_cpu()
            old1 = {node: a.log.serf_old_events for node, a in agents.items()}
            gossip = (
                {node: scrape_gossip(a.namespace) for node, a in agents.items()}
                if n_agents > 1
                else {}
            )
            time.sleep(timeout + 1.0)  # every probe sent before the freeze has its result
            totals = {node: t.counters() for node, t in tables.items()}
            removals = len(stand_in.deletes_since(t0, t1))
            result["writes"] = stand_in.write_summary(t0, t1)
            net.stop_agents()
            window = t1 - t0
            result["measured_s"] = round(window, 2)
            result["window_monotonic_s"] = [round(t_loss, 3), round(t0, 3), round(t1, 3)]
            result["loadavg_at_end"] = list(os.getloadavg())
            result["harness_cpu_s_per_round"] = round(
                (harness1 - harness0) / (window / interval), 4
            )
            result["false_removals"] = removals
            per_agent: dict[str, Any] = {}
            rounds = window / interval
            for node, agent in agents.items():
                per_agent[node] = {
                    "cpu_s_per_round": round((cpu1[node].cpu - cpu0[node].cpu) / rounds, 4),
                    "cpu_s_per_round_with_serf": round((ns_cpu1[node] - ns_cpu0[node]) / rounds, 4),
                    "engine": engine_account(agent, t0, t1, timeout, totals[node]),
                    "serf_old_events_dropped": old1[node] - old0[node],
                    "serf_old_events_dropped_since_start": agent.log.serf_old_events,
                    "serf_old_event_ages": sorted(set(agent.log.serf_old_event_ages)),
                    "gossip_counters_at_end": gossip.get(node, {}),
                    "warnings": agent.log.warning_count,
                    "first_warnings": agent.log.warnings[:5],
                }
            result["per_agent"] = per_agent
            log_analysis(result, {node: a.log for node, a in agents.items()})
            results = sum(a["engine"]["window_results"] for a in per_agent.values())
            failed = sum(
                a["engine"]["window_results"] * (a["engine"]["window_failed_share"] or 0.0)
                for a in per_agent.values()
            )
            result["measured_p"] = round(failed / results, 5) if results else None
        finally:
            net.stop_agents()
            keep_logs(workdir, args.keep_logs, f"loss-{case}")

    model = AgentModel(p, fall, fall, timeout / interval)
    probes = window / interval
    expected = expected_removals(model, n_agents, quorum, n, probes)
    result["model"] = {
        "p": p,
        "up_period_s": round(model.up_probes * interval, 2),
        "down_period_s": round(model.down_seconds * interval, 3),
        "down_verdicts": round(model.down_rate * n * probes * n_agents, 1),
        "down_verdicts_first_order": round(model.first_order_rate * n * probes * n_agents, 1),
        "false_removals": round(expected, 2),
        "p_zero_removals": round(poisson_zero(expected), 3),
    }
    if result.get("measured_p"):
        at_p = AgentModel(result["measured_p"], fall, fall, timeout / interval)
        result["model"]["false_removals_at_measured_p"] = round(
            expected_removals(at_p, n_agents, quorum, n, probes), 2
        )
    if args.sim_replicates > 0:
        sim = simulate(
            model,
            agents=n_agents,
            min_peers_agree=quorum,
            targets=n,
            probes=round(probes),
            settle=round(args.loss_settle),
            replicates=args.sim_replicates,
            seed=ord(case),
        )
        result["simulation"] = {
            "replicates": len(sim.per_replicate),
            "false_removals_mean": round(sim.mean, 2),
            "false_removals_stdev": round(sim.stdev, 2),
            "share_with_zero": round(sim.zero_share, 3),
            "down_verdicts_mean": round(sim.downs / len(sim.per_replicate), 1),
        }
    return result


def loss_table(results: Sequence[dict[str, Any]]) -> str:
    """The loss results as a Markdown table (measured next to the model)."""
    head = (
        "| case | agents | N | min_peers_agree | DOWN verdicts (model) | observed coincidences "
        "| false removals | model (sim mean ± sd) | P(0) model |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    rows = []
    for r in results:
        sim = r.get("simulation") or {}
        sim_text = (
            f"{r['model']['false_removals']:.1f} ({sim['false_removals_mean']:.1f} ± "
            f"{sim['false_removals_stdev']:.1f})"
            if sim
            else f"{r['model']['false_removals']:.1f}"
        )
        coinc = r["observed_verdict_coincidences"] if r["agents"] > 1 else "n/a"
        rows.append(
            f"| ({r['case']}) | {r['agents']} | {r['failure_threshold']} | {r['min_peers_agree']} "
            f"| {r['down_verdicts']} ({r['model']['down_verdicts']:.0f}) | {coinc} "
            f"| {r['false_removals']} | {sim_text} | {r['model']['p_zero_removals']:.2f} |"
        )
    return "\n".join([head, *rows])


if __name__ == "__main__":
    sys.exit(main())
