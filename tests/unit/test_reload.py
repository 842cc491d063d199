"""The transactional reload, without root and without running the agent: the agent is
composed (nothing started), its reload port is the real :class:`goavail.compose.Assembler`
or one that fails, and ``reload()`` is awaited directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from goavail.agent import Agent, Loaded, Parts
from goavail.checks.multi import CheckSet
from goavail.compose import Assembler, compose, load_checked
from goavail.errors import SetupError
from goavail.options import Options

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"


def write(path: Path, addresses: list[str], origin: str = "example.test") -> Path:
    quoted = ", ".join(f'"{a}"' for a in addresses)
    path.write_text(
        f'failure_threshold = 2\nport = 9\n[Zonefile]\npath = "zone"\norigin = "{origin}"\n'
        f'hostnames = ["www"]\nip_addresses = [{quoted}]\n'
    )
    return path


def agent_for(tmp_path: Path) -> Agent:
    options = Options(write(tmp_path / "goavail.toml", [A, B]), True, "tcp", "zonefile")
    return compose(load_checked(options), options)


class FailingAssembler(Assembler):
    """The real loader, and a build that fails after the real one built everything."""

    built: Parts | None = None

    async def build(self, loaded: Loaded, running: Parts, checks: CheckSet) -> Parts:
        self.built = await super().build(loaded, running, checks)
        raise SetupError("no credentials for the new provider")


async def test_a_part_that_cannot_be_built_leaves_the_running_set_untouched(
    tmp_path: Path,
) -> None:
    agent = agent_for(tmp_path)
    failing = FailingAssembler(agent.options)
    agent.assembler = failing
    before = (agent.config, agent.provider, agent.audit, agent.checks.checks, [*agent.targets])
    write(agent.options.config_path, [A, C], origin="other.test")

    assert not await agent.reload()

    assert (
        agent.config,
        agent.provider,
        agent.audit,
        agent.checks.checks,
        list(agent.targets),
    ) == before
    assert agent.reconciler.provider is before[1]
    assert agent.last_reload is not None and agent.last_reload.result == "failed"
    assert agent.last_reload.problems == ("no credentials for the new provider",)
    assert agent.reloads["failed"] == 1
    assert failing.built is not None and failing.built.provider is not before[1]


async def test_a_valid_file_is_built_completely_then_swapped_in(tmp_path: Path) -> None:
    agent = agent_for(tmp_path)
    old_provider = agent.provider
    write(agent.options.config_path, [A, C], origin="other.test")

    assert await agent.reload()

    assert list(agent.targets) == [A, C]
    assert agent.provider is not old_provider
    assert agent.reconciler.provider is agent.provider
    assert agent.section.domain == "other.test"
    assert agent.last_reload is not None and agent.last_reload.result == "applied"


async def test_an_invalid_file_is_rejected_before_anything_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = agent_for(tmp_path)
    agent.options.config_path.write_text("failure_threshold = 0\n")
    built: list[Loaded] = []

    async def build(loaded: Loaded, running: Parts, checks: CheckSet) -> Parts:
        built.append(loaded)
        raise AssertionError("not reached")

    monkeypatch.setattr(agent.assembler, "build", build)
    assert not await agent.reload()
    assert built == []
    assert agent.last_reload is not None and agent.last_reload.result == "rejected"
