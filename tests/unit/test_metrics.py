"""Metric values read back from a fresh registry after known events (no network).

Each test builds its own agent (not started: no socket is opened) and its own
:class:`AgentMetrics` registry, feeds it events through the agent's real entry
points (probe results, a reconcile pass, a reload, Serf events) and reads the
samples back with ``registry.get_sample_value``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from goavail import __version__
from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.checks.http import HttpProbe
from goavail.cluster.serf_rpc import Member, MemberEvent, UserEvent
from goavail.compose import compose, load_checked
from goavail.decision import Override
from goavail.dns.model import Record
from goavail.health import State
from goavail.options import Options
from goavail.web.metrics import AgentMetrics
from goavail.web.server import WebServer
from tests.syncfake import Peers, address, deliver, notice_event

A, B = "192.0.2.1", "192.0.2.2"
KEY = "0123456789abcdef"


def feed(agent: Agent, target: str, result: ProbeResult) -> None:
    """One result of the --type probe (the check it stands for)."""
    check = agent.checks.single_check
    assert check is not None
    check.on_result(target, result)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "goavail.toml"
    config.write_text(
        f"""\
failure_threshold = 2
rise_threshold = 2
port = 9
{extra}
[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}", "{B}"]
"""
    )
    return config


def make_agent(tmp_path: Path, extra: str = "") -> Agent:
    options = Options(write_config(tmp_path, extra), False, "tcp", "zonefile")
    return compose(load_checked(options), options)


def value(metrics: AgentMetrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def test_each_agent_has_its_own_registry(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    first, second = AgentMetrics(agent), AgentMetrics(agent)
    assert first.registry is not second.registry
    assert isinstance(agent.web, WebServer)
    assert agent.web.metrics.registry is not first.registry


def test_probe_results_transitions_and_rtt_histogram(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    metrics = AgentMetrics(agent)
    assert value(metrics, "goavail_target_up", target=A) == 0.0
    assert value(metrics, "goavail_target_state", target=A, state="unknown") == 1.0
    for rtt in (0.003, 0.0004):
        feed(agent, A, ProbeResult(ok=True, rtt=rtt))
    for _ in range(2):
        feed(agent, B, ProbeResult(ok=False, error="timeout"))
    assert value(metrics, "goavail_target_up", target=A) == 1.0
    assert value(metrics, "goavail_target_up", target=B) == 0.0
    assert value(metrics, "goavail_target_state", target=B, state="down") == 1.0
    assert value(metrics, "goavail_target_state", target=B, state="up") is None  # one series
    assert value(metrics, "goavail_target_rtt_seconds", target=A) == 0.0004
    assert value(metrics, "goavail_target_rtt_seconds", target=B) is None
    assert value(metrics, "goavail_targets", state="up") == 1.0
    assert value(metrics, "goavail_targets", state="down") == 1.0
    assert value(metrics, "goavail_probes_total", type="tcp", result="ok") == 2.0
    assert value(metrics, "goavail_probes_total", type="tcp", result="failed") == 2.0
    assert value(metrics, "goavail_transitions_total", target=A, to="up") == 1.0
    assert value(metrics, "goavail_transitions_total", target=B, to="down") == 1.0
    bucket = "goavail_probe_rtt_seconds_bucket"
    assert value(metrics, bucket, type="tcp", le="0.0005") == 1.0
    assert value(metrics, bucket, type="tcp", le="0.0025") == 1.0
    assert value(metrics, bucket, type="tcp", le="0.005") == 2.0
    assert value(metrics, bucket, type="tcp", le="+Inf") == 2.0
    assert value(metrics, "goavail_probe_rtt_seconds_count", type="tcp") == 2.0
    assert value(metrics, "goavail_probe_rtt_seconds_sum", type="tcp") == pytest.approx(0.0034)


async def test_dns_changes_pending_and_passes(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    metrics = AgentMetrics(agent)
    labels = {"provider": "zonefile", "action": "create", "dry_run": "false"}
    assert value(metrics, "goavail_dns_changes_total", result="applied", **labels) == 0.0
    for _ in range(2):
        feed(agent, A, ProbeResult(ok=True, rtt=0.001))
        feed(agent, B, ProbeResult(ok=True, rtt=0.001))
    assert await agent.reconciler.reconcile_once()
    assert value(metrics, "goavail_dns_changes_total", result="applied", **labels) == 2.0
    assert value(metrics, "goavail_dns_pending_changes", provider="zonefile") == 0.0
    assert value(metrics, "goavail_dns_converged", provider="zonefile") == 1.0
    assert value(metrics, "goavail_reconcile_passes_total", provider="zonefile") == 1.0
    assert value(metrics, "goavail_reconcile_failed_passes_total", provider="zonefile") == 0.0
    # the zone becomes unreadable: a failed pass, counted
    (tmp_path / "zone").write_text("garbage {\n")
    assert not await agent.reconciler.reconcile_once()
    assert value(metrics, "goavail_reconcile_failed_passes_total", provider="zonefile") == 1.0
    assert value(metrics, "goavail_reconcile_retries", provider="zonefile") == 1.0
    assert value(metrics, "goavail_dns_converged", provider="zonefile") == 0.0
    assert value(metrics, "goavail_reconcile_unexpected_errors_total", provider="zonefile") == 0.0

    # an answer nobody foresaw: a failed pass and an unexpected error, counted, no crash
    async def broken(*args: object, **kwargs: object) -> dict[str, list[Record]]:
        raise KeyError("result")

    agent.provider.records_for = broken  # type: ignore[method-assign]
    assert not await agent.reconciler.reconcile_once()
    assert value(metrics, "goavail_reconcile_unexpected_errors_total", provider="zonefile") == 1.0
    assert value(metrics, "goavail_reconcile_failed_passes_total", provider="zonefile") == 2.0


async def test_fail_open_and_overrides(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    metrics = AgentMetrics(agent)
    for _ in range(2):
        feed(agent, A, ProbeResult(ok=False, error="timeout"))
        feed(agent, B, ProbeResult(ok=True, rtt=0.001))
    agent.overrides.set(B, Override.DOWN, "maintenance")
    assert value(metrics, "goavail_target_override", target=B, mode="down") == 1.0
    assert value(metrics, "goavail_target_override", target=A, mode="down") is None
    assert await agent.reconciler.reconcile_once()
    # A is down and B drained: fail-open keeps both rather than emptying www
    assert value(metrics, "goavail_fail_open", name="www.example.test", type="A") == 1.0


async def test_reloads_by_result(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    metrics = AgentMetrics(agent)
    assert value(metrics, "goavail_config_reloads_total", result="applied") == 0.0
    assert value(metrics, "goavail_config_last_reload_successful") is None
    assert await agent.reload()
    (tmp_path / "goavail.toml").write_text("interval = -1\n")
    assert not await agent.reload()
    assert value(metrics, "goavail_config_reloads_total", result="applied") == 1.0
    assert value(metrics, "goavail_config_reloads_total", result="rejected") == 1.0
    assert value(metrics, "goavail_config_reloads_total", result="failed") == 0.0
    assert value(metrics, "goavail_config_last_reload_successful") == 0.0


def test_build_info_and_dry_run(tmp_path: Path) -> None:
    options = Options(write_config(tmp_path), True, "tcp", "zonefile")
    metrics = AgentMetrics(compose(load_checked(options), options))

    samples = [
        s
        for family in metrics.registry.collect()
        if family.name == "goavail_build"
        for s in family.samples
    ]
    assert [s.labels["version"] for s in samples] == [__version__]
    assert value(metrics, "goavail_dry_run") == 1.0
    labels = {"provider": "zonefile", "action": "delete", "dry_run": "true"}
    assert value(metrics, "goavail_dns_changes_total", result="planned", **labels) == 0.0


async def test_gossip_peers_and_quorum(tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path,
        f'node_name = "a"\n[Members]\npeers = ["198.51.100.2:7946"]\nmin_peers_agree = 1\n'
        f'crypto_key = "{KEY}"\n',
    )
    metrics = AgentMetrics(agent)
    cluster = agent.cluster
    assert cluster is not None
    assert value(metrics, "goavail_quorum_unmet") == 1.0
    assert value(metrics, "goavail_peers", status="alive") == 0.0
    cluster._on_member_event(
        MemberEvent(
            "member-join",
            [
                Member("b", "198.51.100.2", 7946, {}, "alive"),
                Member("c", "198.51.100.3", 7946, {}, "alive"),
            ],
        )
    )
    cluster._on_member_event(
        MemberEvent("member-failed", [Member("c", "198.51.100.3", 7946, {}, "failed")])
    )
    assert value(metrics, "goavail_peers", status="alive") == 1.0
    assert value(metrics, "goavail_peers", status="failed") == 1.0
    assert value(metrics, "goavail_quorum_unmet") == 0.0
    peers = Peers(KEY.encode(), cluster.event)
    cluster.sync.client = peers
    cluster.member_addr["b"] = address("b")
    old = peers.vote("b", A, "down", at=time.time())
    new = peers.vote("b", A, "up", at=time.time())
    await deliver(cluster, notice_event(new, KEY.encode(), cluster.event))
    await deliver(cluster, notice_event(old, KEY.encode(), cluster.event))  # replayed
    wrong_key = notice_event(new, b"fedcba9876543210", cluster.event)
    await deliver(cluster, wrong_key)
    await deliver(cluster, UserEvent("goavail-verdict", b"\x01" + b"v" * 60, 1, False))
    received = "goavail_gossip_messages_total"
    assert value(metrics, received, result="accepted", reason="") == 1.0
    assert value(metrics, received, result="rejected", reason="replay") == 1.0
    assert value(metrics, received, result="rejected", reason="tag") == 1.0
    assert value(metrics, received, result="rejected", reason="skew") == 0.0
    assert value(metrics, received, result="rejected", reason="legacy") == 1.0
    assert value(metrics, "goavail_gossip_pulls_total", result="ok") == 1.0
    assert value(metrics, "goavail_gossip_published_total", result="ok") == 0.0
    # this agent sees A down; its only live peer says up: A's verdict lacks quorum
    for _ in range(2):
        feed(agent, A, ProbeResult(ok=False, error="timeout"))
    assert agent.decision.local[A] is State.DOWN
    assert value(metrics, "goavail_targets_quorum_unmet") == 1.0


def test_certificates_hooks_notifications_and_heartbeat(tmp_path: Path) -> None:
    extra = """\
slack_addr = "https://hooks.slack.invalid/services/T0/B0/X"

[[checks]]
id = "app"
type = "https"
host = "www.example.test"

[Heartbeat]
url = "https://hc.invalid/ping"
"""
    agent = make_agent(tmp_path, extra)
    metrics = AgentMetrics(agent)
    # Before anything happened: every series exists, at zero (no https answer yet).
    assert value(metrics, "goavail_hook_runs_total", result="timed_out") == 0.0
    assert value(metrics, "goavail_notifications_total", sink="slack_addr", result="sent") == 0.0
    assert value(metrics, "goavail_heartbeats_total", result="failed") == 0.0
    assert value(metrics, "goavail_check_cert_days_left", check="app", target=A) is None

    [check] = agent.checks.checks.values()
    assert isinstance(check.probe, HttpProbe)
    check.probe.cert_expiry[A] = time.time() + 10 * 86400  # what the engine saw (seconds)
    agent.hooks.stats.ok, agent.hooks.stats.timed_out, agent.hooks.stats.dropped = 3, 1, 2
    agent.notifier.stats["slack_addr"].sent = 4
    agent.notifier.stats["slack_addr"].retried = 1
    agent.heartbeat.ok, agent.heartbeat.failed = 5, 1

    days = value(metrics, "goavail_check_cert_days_left", check="app", target=A)
    assert days is not None and 9.99 < days <= 10.0
    assert value(metrics, "goavail_hook_runs_total", result="ok") == 3.0
    assert value(metrics, "goavail_hook_runs_total", result="timed_out") == 1.0
    assert value(metrics, "goavail_hook_events_total", result="dropped") == 2.0
    assert value(metrics, "goavail_notifications_total", sink="slack_addr", result="sent") == 4.0
    assert value(metrics, "goavail_notifications_total", sink="slack_addr", result="retried") == 1
    assert value(metrics, "goavail_heartbeats_total", result="ok") == 5.0
    assert value(metrics, "goavail_heartbeats_total", result="failed") == 1.0


def test_no_heartbeat_series_without_a_heartbeat(tmp_path: Path) -> None:
    metrics = AgentMetrics(make_agent(tmp_path))
    assert value(metrics, "goavail_heartbeats_total", result="ok") is None
    assert value(metrics, "goavail_hook_runs_total", result="ok") == 0.0


async def test_a_node_name_conflict_is_a_metric_an_unhealthy_serf_and_a_notification(
    tmp_path: Path,
) -> None:
    from goavail.cluster.serf_agent import SerfAgent
    from goavail.web.selfcheck import serf_check

    agent = make_agent(
        tmp_path,
        f'node_name = "same"\n[Members]\npeers = ["198.51.100.2:7946"]\nmin_peers_agree = 0\n'
        f'crypto_key = "{KEY}"\n',
    )
    cluster = agent.cluster
    assert cluster is not None
    sent: list[tuple[str | None, bool]] = []
    agent.notifier.name_conflict = lambda other, serf_quit: sent.append((other, serf_quit))  # type: ignore[method-assign]
    serf = SerfAgent(
        node_name="same", bind="192.0.2.1:7946", on_name_conflict=cluster._name_conflict_changed
    )
    cluster._serf = serf  # as Cluster.start() makes it, without a process
    cluster.connected = True
    metrics = AgentMetrics(agent)
    assert value(metrics, "goavail_cluster_name_conflict") == 0.0
    assert value(metrics, "goavail_cluster_name_conflicts_total") == 0.0
    assert serf_check(agent.health_view()) is not None and serf_check(agent.health_view()).healthy  # type: ignore[union-attr]
    serf._scan_for_conflict(
        "[ERR] serf: Node name conflicts with another node at 192.0.2.2:7946. Names must be unique!"
    )
    serf._scan_for_conflict("[WARN] serf: minority in name conflict resolution, quitting [0 / 0]")
    assert value(metrics, "goavail_cluster_name_conflict") == 1.0
    assert value(metrics, "goavail_cluster_name_conflicts_total") == 1.0
    check = serf_check(agent.health_view())
    assert check is not None and not check.healthy
    assert check.error is not None
    assert "node name 'same' is also used by the Serf member at 192.0.2.2:7946" in check.error
    assert "set a unique node_name" in check.error
    assert sent == [("192.0.2.2:7946", False), ("192.0.2.2:7946", True)]
    serf._set_conflict(None)
    assert value(metrics, "goavail_cluster_name_conflict") == 0.0
    assert sent[-1] == (None, False)
