"""The ``probes`` probe of ``/_health`` with ``[[checks]]``: full rounds are counted from
every check's results (before, only the ``--type`` probe's were, so an agent with
``[[checks]]`` saw no round and its ``/_health`` turned unhealthy after three intervals)."""

from __future__ import annotations

from pathlib import Path

from goavail.checks.base import ProbeResult
from goavail.compose import compose, load_checked
from goavail.options import Options
from goavail.web.selfcheck import RoundWatch

A, B = "192.0.2.1", "192.0.2.2"


def test_rounds_of_checks_are_counted(tmp_path: Path) -> None:
    config = tmp_path / "goavail.toml"
    config.write_text(
        f"""\
interval = 1
[[checks]]
id = "ping"
type = "icmp"

[[checks]]
id = "web"
type = "tcp"
port = 80

[Zonefile]
path = "zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["{A}", "{B}"]
"""
    )
    options = Options(config, True, "ip", "zonefile")
    agent = compose(load_checked(options), options)
    watch = RoundWatch(start=0.0)
    view = agent.health_view()
    assert view.results == 0
    ping, web = agent.checks.checks["ping"], agent.checks.checks["web"]
    for target in (A, B):
        ping.on_result(target, ProbeResult(ok=True, rtt=0.001))
    watch.observe(10.0, agent.health_view().results, len(agent.targets))
    assert not watch.check(10.0, 1.0, 2).healthy  # the tcp check has not finished a round
    for target in (A, B):
        web.on_result(target, ProbeResult(ok=False, error="refused"))
    watch.observe(10.5, agent.health_view().results, len(agent.targets))
    check = watch.check(11.0, 1.0, 2)
    assert check.healthy, check
    assert agent.health_view().results == 2
