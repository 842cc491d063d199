"""Several providers from one agent, without root: the agent is composed from a file with
``providers = ["zonefile", "cloudflare"]`` (nothing started), every reconciler runs as its
own task as ``Agent.run`` starts them, and the Cloudflare provider is replaced by one that
fails permanently or hangs: the zone file still follows every decision, and the status,
metrics and ``/_health`` name the provider that fails. Reloads build, reuse and close the
set of providers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from goavail.agent import Agent
from goavail.checks.base import ProbeResult
from goavail.compose import compose, load_checked
from goavail.dns.model import Record
from goavail.dns.providers.base import ProviderError
from goavail.dns.providers.memory import MemoryProvider
from goavail.events import FailOpenChanged
from goavail.options import Options
from goavail.web.metrics import AgentMetrics
from goavail.web.selfcheck import DnsCheck
from goavail.web.status import status_document

A, B = "192.0.2.1", "192.0.2.2"
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 3600 600 604800 60
@ IN NS ns1
ns1 IN A 192.0.2.53
"""


def write_config(path: Path, providers: list[str]) -> Path:
    listed = ", ".join(f'"{p}"' for p in providers)
    path.write_text(
        f"""\
failure_threshold = 2
rise_threshold = 2
port = 9
interval = "1s"
resync_interval = "1s"
providers = [{listed}]

[[pools]]
name = "web"
addresses = ["{A}", "{B}"]

[[names]]
name = "www.example.test"
pools = ["web"]

[[names]]
name = "www.example.com"
pools = ["web"]
providers = ["cloudflare"]

[Zonefile]
path = "zone"
origin = "example.test"

[Cloudflare]
dns_domain = "example.com"
zones = ["example.test"]
"""
    )
    return path


class Broken(MemoryProvider):
    """Every read fails with a permanent error (a revoked token)."""

    name = "cloudflare"

    async def _list(self, name: str) -> list[Record]:
        self.calls.append(f"list {name}")
        raise ProviderError("HTTP 403: Invalid API Token", transient=False)


class Hanging(MemoryProvider):
    """Every read hangs (an API that accepts the connection and never answers)."""

    name = "cloudflare"

    async def _list(self, name: str) -> list[Record]:
        self.calls.append(f"list {name}")
        await asyncio.Event().wait()
        raise AssertionError("not reached")


def feed(agent: Agent, target: str, ok: bool, times: int = 2) -> None:
    check = agent.checks.single_check
    assert check is not None
    for _ in range(times):
        check.on_result(target, ProbeResult(ok=ok, rtt=0.001 if ok else None))


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "unit-test-token")
    (tmp_path / "zone").write_text(ZONE)
    config = write_config(tmp_path / "goavail.toml", ["zonefile", "cloudflare"])
    options = Options(config, False, "tcp", "zonefile")
    return compose(load_checked(options), options)


def zone_addresses(agent: Agent) -> set[str]:
    return {r.content for r in agent.reconcilers["zonefile"].current.get("www.example.test", [])}


def test_each_provider_gets_its_names_and_its_reconciler(agent: Agent) -> None:
    assert list(agent.providers) == ["zonefile", "cloudflare"]
    assert agent.reconcilers["zonefile"].names == ["www.example.test"]
    # www.example.test lies in both providers' zones; www.example.com is cloudflare's only
    assert agent.reconcilers["cloudflare"].names == ["www.example.com", "www.example.test"]
    assert agent.reconcilers["zonefile"].provider is agent.providers["zonefile"]
    assert agent.reconcilers["cloudflare"].provider is agent.providers["cloudflare"]


@pytest.mark.parametrize("failing", [Broken, Hanging])
async def test_a_failing_provider_does_not_stop_the_other(
    agent: Agent, failing: type[MemoryProvider]
) -> None:
    bad = failing(dry_run=False, audit=agent.audit)
    agent.providers["cloudflare"] = bad
    agent.reconcilers["cloudflare"].provider = bad
    cloudflare, zonefile = agent.reconcilers["cloudflare"], agent.reconcilers["zonefile"]
    tasks = [asyncio.create_task(r.run()) for r in agent.reconcilers.values()]
    try:
        feed(agent, A, True)
        feed(agent, B, True)
        await until(lambda: zone_addresses(agent) == {A, B} and zonefile.converged)
        feed(agent, B, False)  # B down: withdrawn from the zone file at once
        await until(lambda: zone_addresses(agent) == {A} and zonefile.converged)
        feed(agent, B, True)
        await until(lambda: zone_addresses(agent) == {A, B} and zonefile.converged)
        await until(lambda: bool(bad.calls))
        assert not cloudflare.converged
        # one pass per decision (4) and the first, at most: between them it waits at its
        # backoff (or hangs), it never spins
        assert cloudflare.passes <= 5
        if failing is Broken:
            assert cloudflare.read_failed and cloudflare.retries >= 1
            assert "Invalid API Token" in (cloudflare.last_error or "")

        snap = agent.snapshot()
        views = {v.name: v for v in snap.dns_providers}
        assert views["zonefile"].converged and not views["cloudflare"].converged
        assert not snap.converged  # the sum: not every provider converged
        doc = status_document(snap)
        assert doc["agent"]["provider"] == "zonefile, cloudflare"
        states = {p["name"]: p for p in doc["dns"]["providers"]}
        assert states["zonefile"]["converged"] and states["zonefile"]["pending_changes"] == 0
        assert states["cloudflare"]["names"] == 2 and not states["cloudflare"]["converged"]

        metrics = AgentMetrics(agent)
        value = metrics.registry.get_sample_value
        assert value("goavail_dns_converged", {"provider": "zonefile"}) == 1.0
        assert value("goavail_dns_converged", {"provider": "cloudflare"}) == 0.0
        assert (
            value(
                "goavail_dns_changes_total",
                {
                    "provider": "zonefile",
                    "action": "delete",
                    "result": "applied",
                    "dry_run": "false",
                },
            )
            == 1.0
        )

        if failing is Broken:
            dns = await DnsCheck().check(agent.health_view())
            assert not dns.healthy
            assert dns.error is not None and dns.error.startswith("cloudflare: reconciler: ")
            assert "zonefile" not in dns.error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_fail_open_is_announced_once_for_every_provider(agent: Agent) -> None:
    events: list[FailOpenChanged] = []
    agent.bus.subscribe(lambda e: events.append(e) if isinstance(e, FailOpenChanged) else None)
    for name in agent.providers:
        memory = MemoryProvider(dry_run=False, audit=agent.audit)
        agent.providers[name] = memory
        agent.reconcilers[name].provider = memory
    feed(agent, A, False)
    feed(agent, B, False)
    for reconciler in agent.reconcilers.values():
        assert await reconciler.reconcile_once()
        assert reconciler.fail_open
    # www.example.test fails open at both providers, www.example.com at one: two events
    assert sorted(e.case.name for e in events if e.engaged) == [
        "www.example.com",
        "www.example.test",
    ]
    feed(agent, A, True)
    assert await agent.reconcilers["zonefile"].reconcile_once()
    assert [e for e in events if not e.engaged] == []  # cloudflare still fails it open
    assert await agent.reconcilers["cloudflare"].reconcile_once()
    assert sorted(e.case.name for e in events if not e.engaged) == [
        "www.example.com",
        "www.example.test",
    ]


async def test_a_reload_adds_reuses_and_removes_providers(agent: Agent) -> None:
    zonefile, cloudflare = agent.providers["zonefile"], agent.providers["cloudflare"]
    kept = agent.reconcilers["zonefile"]
    closed: list[str] = []

    async def close() -> None:
        closed.append("cloudflare")

    cloudflare.close = close  # type: ignore[method-assign]
    path = agent.options.config_path
    text = path.read_text()
    # cloudflare leaves: its name goes with it
    path.write_text(
        text.replace('providers = ["zonefile", "cloudflare"]', 'providers = ["zonefile"]').replace(
            '[[names]]\nname = "www.example.com"\npools = ["web"]\nproviders = ["cloudflare"]\n', ""
        )
    )
    assert await agent.reload(), agent.last_reload
    assert list(agent.providers) == ["zonefile"] and list(agent.reconcilers) == ["zonefile"]
    assert agent.providers["zonefile"] is zonefile and agent.reconcilers["zonefile"] is kept
    assert closed == ["cloudflare"]
    # and comes back: a new provider and a new reconciler; the zone file's are reused
    path.write_text(text)
    assert await agent.reload(), agent.last_reload
    assert list(agent.providers) == ["zonefile", "cloudflare"]
    assert agent.providers["zonefile"] is zonefile and agent.reconcilers["zonefile"] is kept
    assert agent.providers["cloudflare"] is not cloudflare
    assert agent.reconcilers["cloudflare"].provider is agent.providers["cloudflare"]
    assert agent.reconcilers["cloudflare"].names == ["www.example.com", "www.example.test"]


async def test_a_provider_that_cannot_be_built_fails_the_reload(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dict(agent.providers), dict(agent.reconcilers)
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    path = agent.options.config_path
    path.write_text(
        path.read_text().replace(
            'dns_domain = "example.com"', 'dns_domain = "example.com"\nttl = 300'
        )
    )
    assert not await agent.reload()
    assert agent.last_reload is not None and agent.last_reload.result == "failed"
    assert (dict(agent.providers), dict(agent.reconcilers)) == before
